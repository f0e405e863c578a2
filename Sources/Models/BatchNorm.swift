import Foundation
import RecCore

/// The reference's BatchNorm on the MLP's input (`BatchNorm1d` before the first layer;
/// shared/baselines/dare-reference.md), kept as an option to measure what dropping it for
/// streaming costs. A training step normalises each input dimension by its batch's mean
/// and (biased) variance, then scales by gamma and shifts by beta; the running mean and
/// (unbiased) variance follow with momentum 0.1, and scoring uses them. Because a batch's
/// statistics couple its samples, such a step runs in two passes on one thread: every
/// sample's input first, then the MLP and, after the BatchNorm backward over the batch,
/// each sample's embedding backward (its embedding forward run again).
extension RankingModel {
    static let batchNormEpsilon: Float = 1e-5
    static let batchNormMomentum: Float = 0.1

    /// y = gamma (x - mean) / sqrt(var + eps) + beta, with the running statistics (`y`
    /// may be `x`).
    func normalizeWithRunningStatistics(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        let l = layout
        dense.withUnsafeBufferPointer { w in
            for d in 0..<l.input {
                let a = w[l.bnGamma + d] / (w[l.bnVar + d] + Self.batchNormEpsilon).squareRoot()
                y[d] = (x[d] - w[l.bnMean + d]) * a + w[l.bnBeta + d]
            }
        }
    }

    /// The backward pass of `normalizeWithRunningStatistics` for input `x`, from d(loss)/dy
    /// in the scratch's dx (replaced by d(loss)/dx); adds gamma's and beta's gradients.
    func backwardThroughRunningStatistics(_ x: UnsafePointer<Float>, _ worker: Worker) {
        let l = layout, c = worker.scratch
        dense.withUnsafeBufferPointer { wp in
            worker.denseGradient.withUnsafeMutableBufferPointer { gp in
                let w = wp.baseAddress!, g = gp.baseAddress!
                for d in 0..<l.input {
                    let inv = 1 / (w[l.bnVar + d] + Self.batchNormEpsilon).squareRoot()
                    g[l.bnGamma + d] += c.dx[d] * (x[d] - w[l.bnMean + d]) * inv
                    g[l.bnBeta + d] += c.dx[d]
                    c.dx[d] *= w[l.bnGamma + d] * inv
                }
            }
        }
    }

    /// One batch's loss and gradients with batch statistics (worker 0), and the running
    /// statistics' update.
    func accumulateGradientsBatchNorm<H: HistorySource>(_ batch: ArraySlice<LabeledSample>, histories: H,
                                                         predictions: UnsafeMutablePointer<Float>?) -> Float {
        let l = layout, D = l.input, B = batch.count, worker = workers[0], c = worker.scratch
        let scale = 1 / Float(B)
        let (x, xHat, dy) = batchNormBuffers(B * D)
        for (i, sample) in batch.enumerated() {
            embed(window(histories.history(of: sample.user)), sample.target, worker)
            (x + i * D).update(from: c.x, count: D)
        }
        let (mean, variance) = batchStatistics(x, B, D)
        var loss: Float = 0
        dense.withUnsafeBufferPointer { wp in
            let w = wp.baseAddress!
            for d in 0..<D {
                let inv = 1 / (variance[d] + Self.batchNormEpsilon).squareRoot()
                for i in 0..<B { xHat[i * D + d] = (x[i * D + d] - mean[d]) * inv }
            }
            for (i, sample) in batch.enumerated() {
                for d in 0..<D { c.y[d] = w[l.bnGamma + d] * xHat[i * D + d] + w[l.bnBeta + d] }
                let logit = mlpForward(c.y, c)
                predictions?[i] = sigmoid(logit)
                loss += sample.weight * (max(logit, 0) - logit * sample.label + log1p(exp(-abs(logit))))
                mlpBackward(c.y, dLogit: sample.weight * (sigmoid(logit) - sample.label) * scale, worker)
                (dy + i * D).update(from: c.dx, count: D)
            }
        }
        // dx_i = gamma / sigma (dy_i - mean(dy) - xhat_i mean(dy xhat)); gamma and beta gather over the batch.
        dense.withUnsafeBufferPointer { wp in
            worker.denseGradient.withUnsafeMutableBufferPointer { gp in
                let w = wp.baseAddress!, g = gp.baseAddress!
                for d in 0..<D {
                    var sumDy: Float = 0, sumDyXHat: Float = 0
                    for i in 0..<B {
                        sumDy += dy[i * D + d]
                        sumDyXHat += dy[i * D + d] * xHat[i * D + d]
                    }
                    g[l.bnGamma + d] += sumDyXHat
                    g[l.bnBeta + d] += sumDy
                    let a = w[l.bnGamma + d] / (variance[d] + Self.batchNormEpsilon).squareRoot()
                    for i in 0..<B { dy[i * D + d] = a * (dy[i * D + d] - sumDy * scale - xHat[i * D + d] * sumDyXHat * scale) }
                }
            }
        }
        let auxWeight = settings.auxLossWeight
        for (i, sample) in batch.enumerated() {
            embed(window(histories.history(of: sample.user)), sample.target, worker)
            c.dx.update(from: dy + i * D, count: D)
            embedBackward(sample.target, worker)
            if auxWeight > 0 {  // the auxiliary head reads the un-normalised v_t and h_all
                let aux = auxForward(sample.target, worker)
                loss += auxWeight * sample.weight * (max(aux, 0) - aux * sample.label + log1p(exp(-abs(aux))))
                auxBackward(sample.target, dLogit: auxWeight * sample.weight * (sigmoid(aux) - sample.label) * scale, worker)
            }
        }
        let m = Self.batchNormMomentum, unbiased = Float(B) / Float(B - 1)
        for d in 0..<D {
            dense[l.bnMean + d] = (1 - m) * dense[l.bnMean + d] + m * mean[d]
            dense[l.bnVar + d] = (1 - m) * dense[l.bnVar + d] + m * variance[d] * unbiased
        }
        return loss * scale
    }

    /// The batch's loss with batch statistics, without gradients (for tests; no auxiliary
    /// head). `regime` gets each sample's kept behaviours and PReLU signs.
    func batchNormLoss<H: HistorySource>(_ batch: ArraySlice<LabeledSample>, histories: H, regime: UnsafeMutablePointer<[Int]>? = nil) -> Double {
        let l = layout, D = l.input, B = batch.count, worker = workers[0], c = worker.scratch
        var x = [Float](repeating: 0, count: B * D)
        regime?.pointee = []
        for (i, sample) in batch.enumerated() {
            embed(window(histories.history(of: sample.user)), sample.target, worker)
            for d in 0..<D { x[i * D + d] = c.x[d] }
            regime?.pointee += (0..<c.k).map { c.selected[$0] } + [-1]
        }
        let (mean, variance) = x.withUnsafeBufferPointer { batchStatistics($0.baseAddress!, B, D) }
        var loss = 0.0
        for (i, sample) in batch.enumerated() {
            for d in 0..<D {
                c.y[d] = dense[l.bnGamma + d] * (x[i * D + d] - mean[d]) / (variance[d] + Self.batchNormEpsilon).squareRoot() + dense[l.bnBeta + d]
            }
            let z = Double(mlpForward(c.y, c)), y = Double(sample.label)
            regime?.pointee += (0..<l.hidden1).map { c.z1[$0] > 0 ? 1 : 0 } + (0..<l.hidden2).map { c.z2[$0] > 0 ? 1 : 0 }
            loss += Double(sample.weight) * (Swift.max(z, 0) - z * y + Foundation.log1p(Foundation.exp(-Swift.abs(z))))
        }
        return loss / Double(B)
    }

    /// Per dimension: the batch's mean and biased variance.
    func batchStatistics(_ x: UnsafePointer<Float>, _ B: Int, _ D: Int) -> (mean: [Float], variance: [Float]) {
        var mean = [Float](repeating: 0, count: D), variance = mean
        for i in 0..<B { for d in 0..<D { mean[d] += x[i * D + d] } }
        for d in 0..<D { mean[d] /= Float(B) }
        for i in 0..<B {
            for d in 0..<D {
                let e = x[i * D + d] - mean[d]
                variance[d] += e * e
            }
        }
        for d in 0..<D { variance[d] /= Float(B) }
        return (mean, variance)
    }

    /// The step's buffers (x, xhat, dy), grown as batches need and kept.
    func batchNormBuffers(_ count: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        if batchNormScratch.capacity < 3 * count { batchNormScratch = FloatBuffer(capacity: 3 * count) }
        let base = batchNormScratch.pointer
        return (base, base + count, base + 2 * count)
    }
}

/// A buffer of floats that lives as long as its owner.
final class FloatBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let capacity: Int
    init(capacity: Int) {
        self.capacity = capacity
        pointer = .allocate(capacity: max(capacity, 1))
        pointer.initialize(repeating: 0, count: max(capacity, 1))
    }
    deinit { pointer.deallocate() }
}
