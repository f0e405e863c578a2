/// The gradient checker the model tests share: each parameter is nudged by ±`eps` and the
/// central difference of the loss is set against the analytic gradient.
///
/// `loss` returns the loss and, for models with kinks (top-K choice, PReLU), its regime:
/// a nudge that changes the regime crosses a kink, where a finite difference means
/// nothing, and is skipped. Mismatches are collected, not asserted, so any test framework
/// can report them.
public struct CentralDifferences {
    public struct Mismatch: CustomStringConvertible, Sendable {
        public let parameter: String
        public let analytic: Float
        public let numeric: Float
        public var description: String { "\(parameter): analytic \(analytic), numeric \(numeric)" }
    }

    /// Float32 with eps 1e-2: truncation ~1e-4 relative, rounding ~1e-5 absolute; the
    /// bound is 2e-3 absolute plus 3% of the larger.
    public var eps: Float = 1e-2
    public var absoluteTolerance: Float = 2e-3
    public var relativeTolerance: Float = 0.03
    public private(set) var checked = 0
    public private(set) var skipped = 0
    /// Parameters whose analytic gradient is not ~0 (so a test can tell that gradient
    /// reached them, not only that zeros agree).
    public private(set) var nonzero = 0
    public private(set) var mismatches: [Mismatch] = []
    let loss: () -> (loss: Double, regime: [Int])
    let regime: [Int]

    /// `loss` at the parameters as they are fixes the regime every nudge must keep.
    public init(loss: @escaping () -> (loss: Double, regime: [Int])) {
        self.loss = loss
        regime = loss().regime
    }

    /// For a loss without kinks.
    public init(loss: @escaping () -> Double) {
        self.init(loss: { (loss(), []) })
    }

    /// Checks one parameter, read and written through `read` and `write` (restored after).
    public mutating func check(_ parameter: @autoclosure () -> String, analytic: Float, read: () -> Float, write: (Float) -> Void) {
        let original = read()
        write(original + eps)
        let up = loss()
        write(original - eps)
        let down = loss()
        write(original)
        guard up.regime == regime && down.regime == regime else {
            skipped += 1
            return
        }
        let numeric = Float((up.loss - down.loss) / Double(2 * eps))
        checked += 1
        if abs(analytic) > 1e-4 { nonzero += 1 }
        if abs(analytic - numeric) > absoluteTolerance + relativeTolerance * max(abs(analytic), abs(numeric)) {
            mismatches.append(Mismatch(parameter: parameter(), analytic: analytic, numeric: numeric))
        }
    }
}
