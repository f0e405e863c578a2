import Foundation
import RecCore

/// One request as Poly learns from it: the user, and in `items[start..<start + shown]` the
/// items shown, clicked ones first. Each click is a positive; the shown items not clicked
/// are its first negatives.
public struct PolySlate: Sendable, Equatable {
    public var user: UserID
    public var start: Int
    public var clicked: Int
    public var shown: Int
    public init(user: UserID, start: Int, clicked: Int, shown: Int) {
        self.user = user
        self.start = start
        self.clicked = clicked
        self.shown = shown
    }
}

extension PolyModel {
    /// One optimisation step on the slates (those without a click are skipped): the mean
    /// NCE loss over clicks plus lambda times the mean summary loss, before the step.
    @discardableResult
    public func train<H: HistorySource>(_ slates: ArraySlice<PolySlate>, items: UnsafeBufferPointer<ItemID>, histories: H) -> Float {
        let loss = accumulateGradients(slates, items: items, histories: histories)
        guard loss.clicks > 0 else { return 0 }
        step += 1
        applyAdam()
        return loss.value
    }

    /// Adds the mean gradients of the slates to the model's; returns the loss and the
    /// number of clicks (positives) it averaged over.
    func accumulateGradients<H: HistorySource>(_ slates: ArraySlice<PolySlate>, items: UnsafeBufferPointer<ItemID>,
                                               histories: H) -> (value: Float, clicks: Int) {
        var clicks = 0, summaries = 0
        for s in slates where s.clicked > 0 {
            clicks += s.clicked
            if histories.history(of: s.user).count > 0 { summaries += 1 }
        }
        guard clicks > 0 else { return (0, 0) }
        let nceScale = 1 / Float(clicks), summaryScale = settings.summaryWeight / Float(max(1, summaries))
        var loss: Float = 0
        for s in slates where s.clicked > 0 {
            loss += slateGradients(s, items: items, history: histories.history(of: s.user), nceScale: nceScale, summaryScale: summaryScale)
        }
        return (loss, clicks)
    }

    /// Forward and backward for one slate; returns its scaled loss.
    func slateGradients(_ slate: PolySlate, items shownItems: UnsafeBufferPointer<ItemID>, history: UnsafeBufferPointer<HistoryEntry>,
                        nceScale: Float, summaryScale: Float) -> Float {
        let s = settings, d = s.dim, c = user
        encodeUser(history)
        c.dUpe.initialize(repeating: 0, count: s.userCodes * d)
        c.dz.initialize(repeating: 0, count: (c.count + 1) * d)
        var rng = RandomStream(seed: s.seed, 42, UInt64(truncatingIfNeeded: step) << 32 | UInt64(slate.user))
        let skipped = slate.shown - slate.clicked
        var loss: Float = 0
        let logits = c.nceLogits
        for click in 0..<slate.clicked {
            let positive = shownItems[slate.start + click]
            // Negatives: the slate's non-clicks (a different rotation per click), then
            // random live items.
            for q in 0...s.negatives {
                var item: ItemID
                if q == 0 {
                    item = positive
                } else if q <= skipped {
                    item = shownItems[slate.start + slate.clicked + (click * s.negatives + q - 1) % skipped]
                } else {
                    item = negativePool[rng.nextInt(below: negativePool.count)]
                    var tries = 0
                    while item == positive && tries < 8 {
                        item = negativePool[rng.nextInt(below: negativePool.count)]
                        tries += 1
                    }
                }
                let slot = items[q]
                slot.item = Int(item)
                encodeItem(Int(item), slot)
                slot.score = match(slot.cpe, slot.g, products: slot.products, weights: slot.weights)
                logits[q] = slot.score / s.temperature
            }
            // NCE: -log softmax(logits)[0].
            var top = -Float.infinity
            for q in 0...s.negatives { top = max(top, logits[q]) }
            var total: Float = 0
            for q in 0...s.negatives { total += exp(logits[q] - top) }
            loss += (log(total) + top - logits[0]) * nceScale
            for q in 0...s.negatives {
                let p = exp(logits[q] - top) / total
                itemBackward(items[q], dScore: (p - (q == 0 ? 1 : 0)) / s.temperature * nceScale)
            }
        }
        if c.count > 0 { loss += summaryGradients(&rng, user: slate.user, scale: summaryScale) }
        userBackward()
        return loss
    }

    /// Back through the matching and the item's CPE for d(loss)/d(score) = dScore: into
    /// d(loss)/dA, the dense gradients and the token rows.
    func itemBackward(_ slot: ItemScratch, dScore: Float) {
        let s = settings, d = s.dim, m = s.userCodes, n = s.contentCodes, l = layout
        let a = user.upe, w = slot.weights, k = slot.products, score = slot.score
        slot.dCpe.initialize(repeating: 0, count: n * d)
        slot.dG.initialize(repeating: 0, count: n * d)
        for j in 0..<m {
            for c in 0..<n {
                let i = j * n + c
                if s.matching == .learned {
                    // s = sum w_i k_i with w = softmax(a): ds/dk = w, ds/da = w (k - s).
                    let dK = dScore * w[i], dA = dScore * w[i] * (k[i] - score)
                    axpy(dK, slot.cpe + c * d, user.dUpe + j * d, d)
                    axpy(dA, slot.g + c * d, user.dUpe + j * d, d)
                    axpy(dK, a + j * d, slot.dCpe + c * d, d)
                    axpy(dA, a + j * d, slot.dG + c * d, d)
                } else {
                    // w = softmax(k): ds/dk = w (1 + k - s).
                    let dK = dScore * w[i] * (1 + k[i] - score)
                    axpy(dK, slot.cpe + c * d, user.dUpe + j * d, d)
                    axpy(dK, a + j * d, slot.dCpe + c * d, d)
                }
            }
        }
        dense.withUnsafeBufferPointer { wp in
            denseGradient.withUnsafeMutableBufferPointer { gp in
                let p = wp.baseAddress!, g = gp.baseAddress!
                if s.matching == .learned {
                    // G = gelu(B W^s): dpre = dG gelu'(pre); dW^s[a] += B[a] dpre; dB[a] += <W^s[a], dpre>.
                    let dPre = slot.work
                    for c in 0..<n {
                        for b in 0..<d { dPre[b] = slot.dG[c * d + b] * geluDerivative(slot.pre[c * d + b]) }
                        for a in 0..<d {
                            axpy(slot.cpe[c * d + a], dPre, g + l.ws + a * d, d)
                            slot.dCpe[c * d + a] += dot(p + l.ws + a * d, dPre, d)
                        }
                    }
                }
                slot.dStates.initialize(repeating: 0, count: rowsPerItem * d)
                l.content.backward(p, z: slot.states, rowsPerItem, tanhStates: slot.tanhStates, alpha: slot.alpha, dOut: slot.dCpe,
                                   dz: slot.dStates, g: g, work: slot.work)
            }
        }
        for r in 0..<rowsPerItem { accumulateToken(Int(itemTokens[slot.item * rowsPerItem + r]), slot.dStates + r * d, 1) }
    }

    /// The summary loss of the encoded user: -sum_t w_t log P(t | s_u) over the user's top
    /// TF-IDF tokens (of their running summary state, or else of the clicks in the
    /// window), P a softmax over the token table (tied) plus a bias, sampled when the
    /// vocabulary is large. Adds d(loss)/ds_u to the last row of dz; returns the scaled loss.
    func summaryGradients(_ rng: inout RandomStream, user id: UserID, scale: Float) -> Float {
        let s = settings, d = s.dim, c = user
        let targets = c.summaryTargets, weights = c.summaryWeights, logits = c.summaryLogits
        let documents = Float(itemCount)
        func idf(_ t: Int) -> Float { log(documents / Float(max(1, documentFrequency[t]))) }
        c.ranked.removeAll(keepingCapacity: true)
        if let profiles, Int(id) < profiles.users {
            let base = Int(id) * profiles.slots
            for slot in 0..<profiles.slots where profiles.tokens[base + slot] >= 0 {
                let t = profiles.tokens[base + slot]
                c.ranked.append((profiles.weights[base + slot] * idf(Int(t)), t))
            }
        } else {
            // Term frequencies over the window's content tokens (not categories).
            c.seen.removeAll(keepingCapacity: true)
            for i in 0..<c.count {
                let base = Int(c.items[i]) * rowsPerItem
                for r in 0..<tokensPerItem {
                    let t = Int(itemTokens[base + r])
                    if c.tokenCounts[t] == 0 { c.seen.append(Int32(t)) }
                    c.tokenCounts[t] += 1
                }
            }
            for t in c.seen {
                c.ranked.append((Float(c.tokenCounts[Int(t)]) * idf(Int(t)), t))
                c.tokenCounts[Int(t)] = 0
            }
        }
        c.ranked.sort { $0 > $1 }
        var count = 0, mass: Float = 0
        for (weight, t) in c.ranked.prefix(s.summaryTokens) where weight > 0 {
            targets[count] = t
            weights[count] = weight
            mass += weight
            count += 1
        }
        guard count > 0 else { return 0 }
        for i in 0..<count {
            weights[i] /= mass
            c.tokenCounts[Int(targets[i])] = -1  // marks targets while negatives are drawn
        }
        let positives = count
        if vocabulary <= s.summaryNegatives + positives {
            for t in 0..<vocabulary where c.tokenCounts[t] == 0 {
                targets[count] = Int32(t)
                weights[count] = 0
                count += 1
            }
        } else {
            // Uniform samples: the log-Q correction is the same for every candidate, so it cancels.
            for _ in 0..<s.summaryNegatives {
                let t = rng.nextInt(below: vocabulary)
                guard c.tokenCounts[t] == 0 else { continue }
                targets[count] = Int32(t)
                weights[count] = 0
                count += 1
            }
        }
        for i in 0..<positives { c.tokenCounts[Int(targets[i])] = 0 }
        let summary = c.z + c.count * d
        var top = -Float.infinity
        dense.withUnsafeBufferPointer { p in
            for i in 0..<count {
                logits[i] = dot(tokens.row(Int(targets[i])), summary, d) + p[layout.outputBias + Int(targets[i])]
                top = max(top, logits[i])
            }
        }
        var total: Float = 0
        for i in 0..<count { total += exp(logits[i] - top) }
        let logTotal = log(total) + top
        var loss: Float = 0
        for i in 0..<positives { loss -= weights[i] * (logits[i] - logTotal) }
        // d(loss)/d(logit_i) = p_i - w_i.
        let dSummary = c.dz + c.count * d
        for i in 0..<count {
            let t = Int(targets[i])
            let g = (exp(logits[i] - logTotal) - weights[i]) * scale
            axpy(g, tokens.row(t), dSummary, d)
            accumulateToken(t, summary, g)
            denseGradient[layout.outputBias + t] += g
        }
        return loss * scale
    }

    /// Back through UPE, the summary pooling, the sessions, LayerNorm and the content
    /// encoder, from d(loss)/dA (and d(loss)/ds_u already in the last row of dz).
    func userBackward() {
        let d = settings.dim, c = user, l = layout, count = c.count
        dense.withUnsafeBufferPointer { wp in
            denseGradient.withUnsafeMutableBufferPointer { gp in
                let p = wp.baseAddress!, g = gp.baseAddress!
                l.user.backward(p, z: c.z, count + 1, tanhStates: c.userStates, alpha: c.userAlpha, dOut: c.dUpe, dz: c.dz, g: g, work: c.work)
                guard count > 0 else {
                    axpy(1, c.dz, g + l.prior, d)
                    return
                }
                l.summaryPooling.backward(p, z: c.z, count, tanhStates: c.summaryStates, alpha: c.summaryAlpha,
                                          dOut: c.dz + count * d, dz: c.dz, g: g, work: c.work)
                for k in 0..<c.sessionCount {
                    // z_i = h_i + W_c mean_k: W_c gets (sum of the session's dz) mean_k^T; each
                    // h_i gets dz_i + W_c^T (sum dz) / |session|.
                    let range = c.session(k), sum = c.dSessions + k * d, mean = c.sessionMean + k * d
                    sum.initialize(repeating: 0, count: d)
                    for i in range { axpy(1, c.dz + i * d, sum, d) }
                    let dMean = c.mixed
                    dMean.initialize(repeating: 0, count: d)
                    for o in 0..<d {
                        axpy(sum[o], mean, g + l.wc + o * d, d)
                        axpy(sum[o], p + l.wc + o * d, dMean, d)
                    }
                    for i in range {
                        let dh = c.dh, xHat = c.normalized + i * d
                        for e in 0..<d { dh[e] = c.dz[i * d + e] + dMean[e] / Float(range.count) }
                        // h = gamma x^ + beta, x^ = (u - mu) / sigma.
                        var m1: Float = 0, m2: Float = 0
                        for e in 0..<d {
                            g[l.gamma + e] += dh[e] * xHat[e]
                            g[l.beta + e] += dh[e]
                            let dx = dh[e] * p[l.gamma + e]
                            m1 += dx
                            m2 += dx * xHat[e]
                        }
                        m1 /= Float(d)
                        m2 /= Float(d)
                        for e in 0..<d { c.du[e] = (dh[e] * p[l.gamma + e] - m1 - xHat[e] * m2) / c.sigma[i] }
                        // u = W_h x + e_sos.
                        let x = c.meanTokens + i * d
                        c.dx.initialize(repeating: 0, count: d)
                        for o in 0..<d {
                            axpy(c.du[o], x, g + l.wh + o * d, d)
                            axpy(c.du[o], p + l.wh + o * d, c.dx, d)
                            g[l.sos + o] += c.du[o]
                        }
                        let base = Int(c.items[i]) * rowsPerItem
                        for r in 0..<rowsPerItem { accumulateToken(Int(itemTokens[base + r]), c.dx, 1 / Float(rowsPerItem)) }
                    }
                }
            }
        }
    }

    @inline(__always)
    func accumulateToken(_ row: Int, _ vector: UnsafePointer<Float>, _ scale: Float) {
        let offset = sparse.slot(row)
        sparse.gradients.withUnsafeMutableBufferPointer { g in axpy(scale, vector, g.baseAddress! + offset, settings.dim) }
    }

    func applyAdam() {
        let a = settings.adam
        let bc1 = 1 - pow(a.beta1, Float(step)), bc2 = 1 - pow(a.beta2, Float(step))
        for i in 0..<layout.count {
            let g = denseGradient[i]
            denseM[i] = a.beta1 * denseM[i] + (1 - a.beta1) * g
            denseV[i] = a.beta2 * denseV[i] + (1 - a.beta2) * g * g
            dense[i] -= a.learningRate / bc1 * denseM[i] / ((denseV[i] / bc2).squareRoot() + a.epsilon)
            denseGradient[i] = 0
        }
        tokens.applyAdam(sparse, step: step, a)
        sparse.clear()
    }
}
