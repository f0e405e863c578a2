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
            for part in 1..<parts { workers[0].add(workers[part]) }
        }
        return losses.reduce(0, +) * scale
    }

    /// One optimisation step on a mini-batch: returns its mean loss before the step, and
    /// writes the probabilities given before the step to `predictions` (test-then-train).
    @discardableResult
    public func train<H: HistorySource>(_ batch: ArraySlice<LabeledSample>, histories: H, predictions: UnsafeMutablePointer<Float>? = nil) -> Float {
        guard !batch.isEmpty else { return 0 }
        let loss = accumulateGradients(batch, histories: histories, predictions: predictions)
        step += 1
        applyDenseAdam()
        let w = workers[0]
        for i in tables.indices {
            switch settings.tableOptimizer {
            case .lazyAdam: tables[i].applyAdam(w.sparse[i], step: step, settings.adam)
            case .adam: tables[i].applyDenseAdam(w.sparse[i], step: step, settings.adam)
            }
            w.sparse[i].clear()
        }
        return loss
    }

    func applyDenseAdam() {
        let a = settings.adam, l = layout
        let bc1 = 1 - pow(a.beta1, Float(step)), bc2 = 1 - pow(a.beta2, Float(step))
        let w = workers[0]
        for i in 0..<l.count {
            var g = w.denseGradient[i]
            if l.isWeight(i) { g += 2 * settings.l2 * dense[i] }
            denseM[i] = a.beta1 * denseM[i] + (1 - a.beta1) * g
            denseV[i] = a.beta2 * denseV[i] + (1 - a.beta2) * g * g
            dense[i] -= a.learningRate / bc1 * denseM[i] / ((denseV[i] / bc2).squareRoot() + a.epsilon)
            w.denseGradient[i] = 0
        }
    }
}

/// One thread's working state: scratch for a sample, and the gradients it accumulates.
final class Worker {
    let scratch: Scratch
    var denseGradient: [Float]
    var sparse: [SparseGradient]

    init(_ s: RankingModelSettings, tables: [EmbeddingTable], denseCount: Int) {
        scratch = Scratch(s)
        denseGradient = [Float](repeating: 0, count: denseCount)
        sparse = tables.map { SparseGradient(rows: $0.rows, dim: $0.dim) }
    }

    /// Adds `other`'s gradients into these (rows in `other`'s order) and clears `other`'s.
    func add(_ other: Worker) {
        for i in denseGradient.indices {
            denseGradient[i] += other.denseGradient[i]
            other.denseGradient[i] = 0
        }
        for t in sparse.indices {
            let dim = sparse[t].dim
            for (slot, row) in other.sparse[t].touched.enumerated() {
                let offset = sparse[t].slot(Int(row))
                other.sparse[t].gradients.withUnsafeBufferPointer { g in
                    sparse[t].gradients.withUnsafeMutableBufferPointer { d in axpy(1, g.baseAddress! + slot * dim, d.baseAddress! + offset, dim) }
                }
            }
            other.sparse[t].clear()
        }
    }
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
        for index in start..<max(start, end) {
            let sample = batch[index]
            let logit = model.forward(model.window(histories.history(of: sample.user)), sample.target, worker)
            predictions?[index - batch.startIndex] = sigmoid(logit)
            // Weighted BCE with logits: w (softplus(z) - y z), computed stably.
            loss += sample.weight * (max(logit, 0) - logit * sample.label + log1p(exp(-abs(logit))))
            model.backward(sample.target, dLogit: sample.weight * (sigmoid(logit) - sample.label) * scale, worker)
            let auxWeight = model.settings.auxLossWeight
            if auxWeight > 0 {
                let aux = model.auxForward(sample.target, worker)
                loss += auxWeight * sample.weight * (max(aux, 0) - aux * sample.label + log1p(exp(-abs(aux))))
                model.auxBackward(sample.target, dLogit: auxWeight * sample.weight * (sigmoid(aux) - sample.label) * scale, worker)
            }
        }
        losses[part] = loss
    }
}
