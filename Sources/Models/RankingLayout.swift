import Dispatch
import Foundation
import RecCore

/// Where each dense parameter lives in the flat parameter array.
struct DenseLayout {
    let input, hidden1, hidden2: Int
    let w1, b1, alpha1, w2, b2, alpha2, w3, b3, count: Int
    /// TWIN with projections: `projections` square matrices of `projectionDim`, from `proj`.
    let proj, projections, projectionDim: Int
    /// The auxiliary head, when there is one (after everything else, so a model without it
    /// has the same layout and initial values as before it existed): input -> hidden1 ->
    /// PReLU -> 1.
    let hasAux: Bool
    let auxW1, auxB1, auxAlpha, auxW2, auxB2: Int
    /// BatchNorm on the input, when there is one (last of all): gamma and beta (learned),
    /// then the running mean and variance (state that steps never move: their gradient
    /// is always 0, so Adam leaves them, and they are not penalised).
    let hasBatchNorm: Bool
    let bnGamma, bnBeta, bnMean, bnVar: Int

    init(input: Int, hidden1: Int, hidden2: Int, projections: Int = 0, projectionDim: Int = 0, aux: Bool = false, batchNorm: Bool = false) {
        self.input = input
        self.hidden1 = hidden1
        self.hidden2 = hidden2
        self.projections = projections
        self.projectionDim = projectionDim
        w1 = 0
        b1 = w1 + hidden1 * input
        alpha1 = b1 + hidden1
        w2 = alpha1 + 1
        b2 = w2 + hidden2 * hidden1
        alpha2 = b2 + hidden2
        w3 = alpha2 + 1
        b3 = w3 + hidden2
        proj = b3 + 1
        hasAux = aux
        auxW1 = proj + projections * projectionDim * projectionDim
        auxB1 = auxW1 + hidden1 * input
        auxAlpha = auxB1 + hidden1
        auxW2 = auxAlpha + 1
        auxB2 = auxW2 + hidden1
        hasBatchNorm = batchNorm
        bnGamma = aux ? auxB2 + 1 : auxW1
        bnBeta = bnGamma + input
        bnMean = bnBeta + input
        bnVar = bnMean + input
        count = batchNorm ? bnVar + input : bnGamma
    }

    /// The projection of `role` (0 query, 1 keys, 2 target representation, 3 behaviour
    /// representation) for field `f`, row-major.
    func projection(_ role: Int, _ f: Int, fields: Int) -> Int {
        proj + (role * fields + f) * projectionDim * projectionDim
    }

    /// Weights and PReLU slopes (penalised, drawn N(0, scale^2)); biases are the rest.
    func isWeight(_ i: Int) -> Bool {
        if hasBatchNorm && i >= bnBeta { return false }  // beta, running mean and variance
        return !((b1..<b1 + hidden1).contains(i) || (b2..<b2 + hidden2).contains(i) || i == b3
                 || (hasAux && ((auxB1..<auxB1 + hidden1).contains(i) || i == auxB2)))
    }

    /// The reference's init: N(0, scale^2) for every non-bias tensor (PReLU slopes
    /// included), U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases (PyTorch's default).
    func initialValues(seed: UInt64, scale: Float) -> [Float] {
        var rng = RandomStream(seed: seed, 99, 1)
        return (0..<count).map { i in
            // BatchNorm starts as the identity (PyTorch's init): gamma 1, beta 0, mean 0, var 1.
            if hasBatchNorm && i >= bnGamma { return i < bnBeta || i >= bnVar ? 1 : 0 }
            if isWeight(i) { return scale * Float(rng.nextGaussian()) }
            let fanIn = i < alpha1 ? input : i < alpha2 ? hidden1 : i < proj ? hidden2 : i < auxAlpha ? input : hidden1
            return Float(rng.nextDouble() * 2 - 1) / Float(fanIn).squareRoot()
        }
    }
}

/// Per-sample working memory, allocated once.
final class Scratch {
    var n = 0, k = 0
    let scores: UnsafeMutablePointer<Float>
    let items: UnsafeMutablePointer<Int32>
    let selected: UnsafeMutablePointer<Int>
    let order: UnsafeMutablePointer<UInt64>
    let weights, dWeights: UnsafeMutablePointer<Float>
    /// Backward: the table rows of the behaviours attended to (one field at a time), and
    /// d(loss)/d(search score) of each.
    let rows: UnsafeMutablePointer<Int>
    let dScores: UnsafeMutablePointer<Float>
    let vt, h, dvt, dh, dq, x, dx, z1, a1, dz1, da1, z2, a2, dz2, da2: UnsafeMutablePointer<Float>
    /// TWIN with projections: y = P_Q q and u = P_K^T y per field, the unprojected
    /// weighted sum of representations, and backward temporaries.
    let projY, projU, hRaw, dr, dy: UnsafeMutablePointer<Float>
    /// The auxiliary head: the softmax over every searched score and its gradients, h_all
    /// (raw and as the head sees it), its input, activations and their gradients.
    let allWeights, dAll, hAll, hAllRaw, xAux, dxAux, zAux, aAux, dzAux, daAux: UnsafeMutablePointer<Float>
    /// BatchNorm: the normalised input the MLP reads.
    let y: UnsafeMutablePointer<Float>
    /// Per field: the attention table's base, the target's query row, the search scale.
    let keyBase = UnsafeMutablePointer<UnsafeMutablePointer<Float>>.allocate(capacity: 3)
    let query = UnsafeMutablePointer<UnsafeMutablePointer<Float>>.allocate(capacity: 3)
    let scale = UnsafeMutablePointer<Float>.allocate(capacity: 3)
    private var all: [UnsafeMutableRawPointer] = []

    init(_ s: RankingModelSettings) {
        func f(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            p.initialize(repeating: 0, count: max(count, 1))
            return p
        }
        let dR = s.representationDim * s.fields.rawValue, dA = s.attentionDim * s.fields.rawValue
        scores = f(s.maxHistory)
        items = .allocate(capacity: s.maxHistory)
        selected = .allocate(capacity: s.topK)
        order = .allocate(capacity: 2 * s.maxHistory + 64)
        weights = f(s.topK); dWeights = f(s.topK)
        rows = .allocate(capacity: s.maxHistory); dScores = f(s.maxHistory)
        vt = f(dR); h = f(dR); dvt = f(dR); dh = f(dR); dq = f(dA)
        x = f(3 * dR); dx = f(3 * dR)
        z1 = f(s.hidden1); a1 = f(s.hidden1); dz1 = f(s.hidden1); da1 = f(s.hidden1)
        z2 = f(s.hidden2); a2 = f(s.hidden2); dz2 = f(s.hidden2); da2 = f(s.hidden2)
        projY = f(dA); projU = f(dA); hRaw = f(dR); dr = f(dR); dy = f(dA)
        let auxOn = s.auxLossWeight > 0
        allWeights = f(auxOn ? s.maxHistory : 0); dAll = f(auxOn ? s.maxHistory : 0)
        hAll = f(dR); hAllRaw = f(dR); xAux = f(3 * dR); dxAux = f(3 * dR)
        zAux = f(s.hidden1); aAux = f(s.hidden1); dzAux = f(s.hidden1); daAux = f(s.hidden1)
        y = f(3 * dR)
        let floats: [UnsafeMutablePointer<Float>] = [dScores, projY, projU, hRaw, dr, dy, scores, weights, dWeights, vt, h, dvt, dh, dq, x, dx,
                                                     z1, a1, dz1, da1, z2, a2, dz2, da2,
                                                     allWeights, dAll, hAll, hAllRaw, xAux, dxAux, zAux, aAux, dzAux, daAux, y]
        all = floats.map { UnsafeMutableRawPointer($0) }
        all += [UnsafeMutableRawPointer(rows), UnsafeMutableRawPointer(items), UnsafeMutableRawPointer(selected), UnsafeMutableRawPointer(order), UnsafeMutableRawPointer(keyBase),
               UnsafeMutableRawPointer(query), UnsafeMutableRawPointer(scale)]
    }

    deinit { for p in all { p.deallocate() } }
}
