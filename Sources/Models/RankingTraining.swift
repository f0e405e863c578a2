import Dispatch
import Foundation
import RecCore

extension RankingModel {
    // MARK: Training

    /// Mean binary cross-entropy of a batch; adds its gradients (mean over the batch) to
    /// worker 0's. The probabilities the model gave before learning from the batch go to
    /// `predictions`. With several workers, each takes a contiguous share of the batch and
    /// their gradients are then added into worker 0's in worker order.
    func accumulateGradients<H: HistorySource>(_ batch: ArraySlice<LabeledSample>, histories: H, predictions: UnsafeMutablePointer<Float>? = nil) -> Float {
        if layout.hasBatchNorm && batch.count > 1 { return accumulateGradientsBatchNorm(batch, histories: histories, predictions: predictions) }
        let scale = 1 / Float(batch.count)
        let parts = min(workers.count, max(1, batch.count / 16))
        let per = (batch.count + parts - 1) / parts
        let losses = UnsafeMutableBufferPointer<Float>.allocate(capacity: parts)
        defer { losses.deallocate() }
        let job = BatchJob(model: self, batch: batch, histories: histories, predictions: predictions, losses: losses)
        if parts == 1 {
            job.run(part: 0, per: per, scale: scale)
        } else {
            DispatchQueue.concurrentPerform(iterations: parts) { part in job.run(part: part, per: per, scale: scale) }
            let merging = ContinuousClock.now
            mergeWorkers(parts)
            if profile != nil { profile!.merge += ContinuousClock.now - merging }
        }
        return losses.reduce(0, +) * scale
    }

    /// One optimisation step on a mini-batch: returns its mean loss before the step, and
    /// writes the probabilities given before the step to `predictions` (test-then-train).
    @discardableResult
    public func train<H: HistorySource>(_ batch: ArraySlice<LabeledSample>, histories: H, predictions: UnsafeMutablePointer<Float>? = nil) -> Float {
        guard !batch.isEmpty else { return 0 }
        let clock = ContinuousClock(), start = clock.now
        let loss = accumulateGradients(batch, histories: histories, predictions: predictions)
        let gradients = clock.now
        step += 1
        applyDenseAdam()
        let denseStep = clock.now
        applyTableOptimizer()
        if profile != nil {
            let end = clock.now
            profile!.gradients += gradients - start
            profile!.denseOptimizer += denseStep - gradients
            profile!.tableOptimizer += end - denseStep
            profile!.steps += 1
        }
        return loss
    }

    /// Adds workers 1..<parts's gradients into worker 0's, in worker order, and clears
    /// theirs: each table's on its own thread, the dense layers' on another.
    func mergeWorkers(_ parts: Int) {
        let merge = Shared(self)
        DispatchQueue.concurrentPerform(iterations: tables.count + 1) { t in
            let model = merge.model, into = model.workers[0]
            for part in 1..<parts {
                let from = model.workers[part]
                if t < model.tables.count {
                    into.sparse[t].add(from.sparse[t])
                    from.sparse[t].clear()
                } else {
                    into.addDense(from)
                }
            }
        }
    }

    /// The tables' step on worker 0's gradients, which it then clears. Lazy Adam splits
    /// each table's touched rows among the threads (a row's update reads and writes that
    /// row only, so the result does not depend on the split).
    func applyTableOptimizer() {
        let w = workers[0]
        switch settings.tableOptimizer {
        case .lazyAdam:
            for i in tables.indices where tables[i].tracksChanges { tables[i].markChanged(w.sparse[i]) }
            let parts = workers.count
            let chunks = tables.indices.flatMap { i in
                let n = w.sparse[i].touched.count, per = (n + parts - 1) / parts
                return stride(from: 0, to: n, by: max(per, 1)).map { (table: i, slots: $0..<min(n, $0 + per)) }
            }
            if parts == 1 || chunks.count <= 1 {
                for c in chunks { tables[c.table].applyAdam(w.sparse[c.table], slots: c.slots, step: step, settings.adam) }
            } else {
                let shared = Shared(self), step = step, adam = settings.adam
                DispatchQueue.concurrentPerform(iterations: chunks.count) { k in
                    let c = chunks[k], model = shared.model
                    model.tables[c.table].applyAdam(model.workers[0].sparse[c.table], slots: c.slots, step: step, adam)
                }
            }
        case .adam:
            for i in tables.indices { tables[i].applyDenseAdam(w.sparse[i], step: step, settings.adam) }
        }
        for i in tables.indices { w.sparse[i].clear() }
    }

    func applyDenseAdam() {
        let a = settings.adam, l = layout, l2 = settings.l2
        let bc1 = 1 - pow(a.beta1, Float(step)), bc2 = 1 - pow(a.beta2, Float(step))
        dense.withUnsafeMutableBufferPointer { x in
            denseM.withUnsafeMutableBufferPointer { m in
                denseV.withUnsafeMutableBufferPointer { v in
                    workers[0].denseGradient.withUnsafeMutableBufferPointer { gp in
                        for i in 0..<l.count {
                            var g = gp[i]
                            if l.isWeight(i) { g += 2 * l2 * x[i] }
                            m[i] = a.beta1 * m[i] + (1 - a.beta1) * g
                            v[i] = a.beta2 * v[i] + (1 - a.beta2) * g * g
                            x[i] -= a.learningRate / bc1 * m[i] / ((v[i] / bc2).squareRoot() + a.epsilon)
                            gp[i] = 0
                        }
                    }
                }
            }
        }
    }
}

/// One thread's working state: scratch for a sample, and the gradients it accumulates.
final class Worker {
    let scratch: Scratch
    var denseGradient: [Float]
    var sparse: [SparseGradient]
    let settings: RankingModelSettings
    /// A user's targets searched together: the history's keys, their queries and scores.
    lazy var group = ScoringScratch(settings, input: 3 * settings.fields.rawValue * settings.representationDim, gathersValues: false)
    /// The group's MLP as products (`forwardTogether`, `backwardTogether`).
    lazy var mlpGroup = GroupScratch(settings, input: 3 * settings.fields.rawValue * settings.representationDim)
    /// The targets of the group being searched.
    let groupTargets = UnsafeMutablePointer<ItemID>.allocate(capacity: RankingModel.groupLimit)

    init(_ s: RankingModelSettings, tables: [EmbeddingTable], denseCount: Int) {
        settings = s
        scratch = Scratch(s)
        denseGradient = [Float](repeating: 0, count: denseCount)
        sparse = tables.map { SparseGradient(dim: $0.dim) }
    }

    deinit { groupTargets.deallocate() }

    /// Adds `other`'s dense gradients into these and clears `other`'s.
    func addDense(_ other: Worker) {
        denseGradient.withUnsafeMutableBufferPointer { d in
            other.denseGradient.withUnsafeMutableBufferPointer { o in
                for i in d.indices {
                    d[i] += o[i]
                    o[i] = 0
                }
            }
        }
    }
}

/// The model, handed to the threads of a step. `@unchecked Sendable` because each thread
/// writes only what its task names (a table's gradients or rows, or the dense gradients),
/// and no two tasks name the same.
struct Shared: @unchecked Sendable {
    let model: RankingModel
    init(_ model: RankingModel) { self.model = model }
}

/// One mini-batch's gradient work, shared by the workers. `@unchecked Sendable` because
/// worker `part` writes only its own scratch and gradients, `predictions` and `losses` at
/// its own indices, and everyone only reads the parameters, which no one writes until all
/// workers are done.
struct BatchJob<H: HistorySource>: @unchecked Sendable {
    let model: RankingModel
    let batch: ArraySlice<LabeledSample>
    let histories: H
    let predictions: UnsafeMutablePointer<Float>?
    let losses: UnsafeMutableBufferPointer<Float>

    func run(part: Int, per: Int, scale: Float) {
        let worker = model.workers[part]
        var loss: Float = 0
        let start = batch.startIndex + part * per, end = min(batch.endIndex, start + per)
        let together = model.searchesTogether && !model.settings.design.projects
        var first = start
        while first < end {
            // A user's adjacent samples (the impressions of one slate) share a history:
            // their search is one product (`searchTogether`), and so are their MLP's
            // forward and backward passes where the model allows (`forwardTogether`);
            // each sample's embedding and its backward run alone, in sample order.
            let user = batch[first].user
            var count = 1
            while together && count < RankingModel.groupLimit && first + count < end && batch[first + count].user == user { count += 1 }
            let history = model.window(histories.history(of: user))
            let targets = UnsafeBufferPointer(start: worker.groupTargets, count: count)
            if count > 1 {
                for i in 0..<count { worker.groupTargets[i] = batch[first + i].target }
                model.searchTogether(history, targets: targets, worker)
            }
            if count > 1 && model.trainsMLPTogether {
                let g = worker.mlpGroup
                model.forwardTogether(history, targets: targets, worker)
                for index in first..<first + count {
                    let sample = batch[index], logit = g.logits[index - first]
                    predictions?[index - batch.startIndex] = sigmoid(logit)
                    loss += Self.loss(logit, sample)
                    g.dLogits[index - first] = sample.weight * (sigmoid(logit) - sample.label) * scale
                }
                model.backwardTogether(targets: targets, worker)
                first += count
                continue
            }
            for index in first..<first + count {
                let sample = batch[index]
                if count > 1 {
                    model.takeSearched(index - first, history, worker)
                    model.embedSearched(history, sample.target, worker)
                } else {
                    model.embed(history, sample.target, worker)
                }
                loss += step(sample, index: index, logit: model.forwardEmbedded(worker), scale: scale, worker)
            }
            first += count
        }
        losses[part] = loss
    }

    /// Weighted binary cross-entropy with logits, w (softplus(z) - y z), computed stably.
    @inline(__always)
    static func loss(_ logit: Float, _ sample: LabeledSample) -> Float {
        sample.weight * (max(logit, 0) - logit * sample.label + log1p(exp(-abs(logit))))
    }

    /// The rest of a sample's step once its forward pass is in the worker's scratch: its
    /// prediction, the backward pass, and the auxiliary head's; returns its loss.
    private func step(_ sample: LabeledSample, index: Int, logit: Float, scale: Float, _ worker: Worker) -> Float {
        var loss = Self.loss(logit, sample)
        predictions?[index - batch.startIndex] = sigmoid(logit)
        model.backward(sample.target, dLogit: sample.weight * (sigmoid(logit) - sample.label) * scale, worker)
        let auxWeight = model.settings.auxLossWeight
        if auxWeight > 0 {
            let aux = model.auxForward(sample.target, worker)
            loss += auxWeight * sample.weight * (max(aux, 0) - aux * sample.label + log1p(exp(-abs(aux))))
            model.auxBackward(sample.target, dLogit: auxWeight * sample.weight * (sigmoid(aux) - sample.label) * scale, worker)
        }
        return loss
    }
}
