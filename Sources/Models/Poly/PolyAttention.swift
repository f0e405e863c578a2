import Foundation
import RecCore

/// Poly-attention in the tanh form of MINER and EmbSum (shared/baselines/embsum-reference.md
/// §2): for each of `count` learned context codes c_j over a sequence Z (L x d),
///
///     a_{j,t} = c_j . tanh(Z_t W),   alpha_j = softmax_t(a_{j,.}),   v_j = sum_t alpha_{j,t} Z_t
///
/// The values are the unprojected Z; W is d x d (the context-code dimension is d) and
/// row-major, so tanh(Z_t W) is a sum of W's rows weighted by Z_t. There is no padding:
/// callers pass exactly the L positions that exist, so no mask is needed.
struct PolyAttention {
    /// Offsets of W and of the codes (count x d) in the dense parameters.
    let w: Int
    let codes: Int
    let count: Int
    let d: Int

    /// Fills `tanhStates` (L x d), `alpha` (count x L) and `out` (count x d).
    func forward(_ p: UnsafePointer<Float>, z: UnsafePointer<Float>, _ length: Int,
                 tanhStates: UnsafeMutablePointer<Float>, alpha: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        for t in 0..<length {
            let state = tanhStates + t * d
            state.initialize(repeating: 0, count: d)
            for a in 0..<d { axpy(z[t * d + a], p + w + a * d, state, d) }
            for b in 0..<d { state[b] = tanh(state[b]) }
        }
        for j in 0..<count {
            let row = alpha + j * length, code = p + codes + j * d
            var top = -Float.infinity
            for t in 0..<length {
                row[t] = dot(code, tanhStates + t * d, d)
                top = max(top, row[t])
            }
            var total: Float = 0
            for t in 0..<length {
                row[t] = exp(row[t] - top)
                total += row[t]
            }
            let v = out + j * d
            v.initialize(repeating: 0, count: d)
            for t in 0..<length {
                row[t] /= total
                axpy(row[t], z + t * d, v, d)
            }
        }
    }

    /// Adds the gradients of W and the codes to `g`, and d(loss)/dZ to `dz` (L x d), given
    /// d(loss)/d(out) in `dOut` (count x d). `work` holds count x L + 2 d floats.
    func backward(_ p: UnsafePointer<Float>, z: UnsafePointer<Float>, _ length: Int,
                  tanhStates: UnsafePointer<Float>, alpha: UnsafePointer<Float>, dOut: UnsafePointer<Float>,
                  dz: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>, work: UnsafeMutablePointer<Float>) {
        let dScores = work, dState = work + count * length, dPre = dState + d
        for j in 0..<count {
            let row = alpha + j * length, dv = dOut + j * d, ds = dScores + j * length
            // v_j = sum_t alpha_t Z_t: the values get alpha_t dv; alpha gets <dv, Z_t>.
            var mean: Float = 0
            for t in 0..<length {
                ds[t] = dot(dv, z + t * d, d)
                mean += row[t] * ds[t]
                axpy(row[t], dv, dz + t * d, d)
            }
            // Softmax: da_t = alpha_t (dalpha_t - sum alpha dalpha).
            for t in 0..<length { ds[t] = row[t] * (ds[t] - mean) }
            for t in 0..<length { axpy(ds[t], tanhStates + t * d, g + codes + j * d, d) }
        }
        for t in 0..<length {
            let state = tanhStates + t * d
            dState.initialize(repeating: 0, count: d)
            for j in 0..<count { axpy(dScores[j * length + t], p + codes + j * d, dState, d) }
            for b in 0..<d { dPre[b] = dState[b] * (1 - state[b] * state[b]) }
            // pre = sum_a Z_t[a] W[a]: dW[a] += Z_t[a] dpre, dZ_t[a] += <W[a], dpre>.
            let zt = z + t * d, dzt = dz + t * d
            for a in 0..<d {
                axpy(zt[a], dPre, g + w + a * d, d)
                dzt[a] += dot(p + w + a * d, dPre, d)
            }
        }
    }
}

/// GELU, the tanh approximation (as PyTorch's `approximate="tanh"`).
@inline(__always)
func gelu(_ x: Float) -> Float {
    let c: Float = 0.797_884_6  // sqrt(2 / pi)
    return 0.5 * x * (1 + tanh(c * (x + 0.044715 * x * x * x)))
}

@inline(__always)
func geluDerivative(_ x: Float) -> Float {
    let c: Float = 0.797_884_6
    let u = tanh(c * (x + 0.044715 * x * x * x))
    return 0.5 * (1 + u) + 0.5 * x * (1 - u * u) * c * (1 + 3 * 0.044715 * x * x)
}
