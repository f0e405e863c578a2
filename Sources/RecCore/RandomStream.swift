import Foundation

/// A seeded random stream (xoshiro256**), one per (seed, domain, entity, ...), so that no
/// result depends on which thread or which partition handled an entity first.
///
/// Its algorithms are fixed here rather than borrowed from the standard library (whose
/// `random(in:using:)` may change between Swift versions), so a seed gives the same
/// results on every build.
public struct RandomStream: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64

    /// A stream for `seed` and a path of identifiers, such as (domain, user, tick).
    public init(seed: UInt64, _ a: UInt64, _ b: UInt64 = 0, _ c: UInt64 = 0) {
        // Mix the path into one key (each step a full splitmix64 avalanche), then expand.
        var key = SplitMix64.mix(seed ^ 0x6A09_E667_F3BC_C908)
        key = SplitMix64.mix(key ^ a &* 0x9E37_79B9_7F4A_7C15)
        key = SplitMix64.mix(key ^ b &* 0xC2B2_AE3D_27D4_EB4F)
        key = SplitMix64.mix(key ^ c &* 0x1656_67B1_9E37_79F9)
        var sm = SplitMix64(state: key)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    /// Uniform in [0, 1), 53 bits.
    @inline(__always)
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Uniform in [0, 1), 24 bits.
    @inline(__always)
    public mutating func nextFloat() -> Float {
        Float(next() >> 40) * 0x1.0p-24
    }

    /// Uniform in 0..<bound, unbiased (Lemire's multiply-and-reject).
    @inline(__always)
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0)
        let n = UInt64(bound)
        var m = next().multipliedFullWidth(by: n)
        if m.low < n {
            let threshold = (0 &- n) % n
            while m.low < threshold { m = next().multipliedFullWidth(by: n) }
        }
        return Int(m.high)
    }

    /// True with probability `p`.
    @inline(__always)
    public mutating func bernoulli(_ p: Double) -> Bool { nextDouble() < p }

    /// A Poisson draw with mean `mean` (Knuth's product method below 30, a rounded normal
    /// above: enough for arrival counts).
    public mutating func nextPoisson(_ mean: Double) -> Int {
        guard mean > 0 else { return 0 }
        if mean > 30 { return max(0, Int((mean + mean.squareRoot() * nextGaussian()).rounded())) }
        let limit = exp(-mean)
        var k = 0
        var p = nextDouble()
        while p > limit {
            k += 1
            p *= nextDouble()
        }
        return k
    }

    /// A Gamma(shape, 1) draw (Marsaglia and Tsang's squeeze; shapes below 1 through
    /// Gamma(shape + 1) * U^(1/shape)).
    public mutating func nextGamma(_ shape: Double) -> Double {
        precondition(shape > 0, "a Gamma shape must be positive")
        if shape < 1 {
            var u = nextDouble()
            while u <= 0 { u = nextDouble() }
            return nextGamma(shape + 1) * pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3.0, c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = nextGaussian()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = nextDouble()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if u > 0, log(u) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
        }
    }

    /// A Beta(a, b) draw, as X / (X + Y) of two Gamma draws.
    public mutating func nextBeta(_ a: Double, _ b: Double) -> Double {
        let x = nextGamma(a), y = nextGamma(b)
        return x / (x + y)
    }

    /// A standard normal draw (Box-Muller; one of the pair is discarded for simplicity).
    public mutating func nextGaussian() -> Double {
        var u = nextDouble()
        while u <= 0 { u = nextDouble() }
        let v = nextDouble()
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

/// Domains of randomness: each subsystem draws from its own streams.
public enum RandomDomain: UInt64, Sendable {
    case catalog = 1
    case users = 2
    case requests = 3
    case responses = 4
    case policy = 5
    case assignment = 6
    case drift = 7
    case history = 8
    case arrivals = 9
}

extension RandomStream {
    public init(seed: UInt64, _ domain: RandomDomain, _ b: UInt64 = 0, _ c: UInt64 = 0) {
        self.init(seed: seed, domain.rawValue, b, c)
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): the seeding generator xoshiro's authors recommend.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A hash that never changes between runs or builds (unlike `Hasher`), for assigning
/// users to arms by (user, salt).
public enum StableHash {
    /// FNV-1a over the salt's UTF-8 bytes, then the user, finished with splitmix64.
    public static func hash(_ salt: String, _ value: UInt64) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in salt.utf8 {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01B3
        }
        return SplitMix64.mix(h ^ SplitMix64.mix(value))
    }

    /// The hash as a uniform number in [0, 1).
    public static func unit(_ salt: String, _ value: UInt64) -> Double {
        Double(hash(salt, value) >> 11) * 0x1.0p-53
    }
}
