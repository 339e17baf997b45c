import Glibc

/// Seeded generator (xoshiro256**, state expanded from the seed by SplitMix64). Every random
/// draw in gatednet comes from one of these, so the same seed gives the same numbers on every
/// machine.
public struct SeededGenerator: RandomNumberGenerator {
    private var s0, s1, s2, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(&x); s1 = splitMix(&x); s2 = splitMix(&x); s3 = splitMix(&x)
    }

    /// A generator for a sub-stream, e.g. (shuffle seed, epoch): distinct streams per index.
    public init(seed: UInt64, stream: UInt64) {
        self.init(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03) &+ stream)
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Standard normal by Box–Muller (one value per call; simple and reproducible).
    public mutating func nextGaussian() -> Double {
        var u1 = nextUnit()
        while u1 <= 0 { u1 = nextUnit() }
        let u2 = nextUnit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// Uniform integer in [0, bound), bound >= 1, without modulo bias.
    public mutating func nextInt(below bound: Int) -> Int {
        Int(truncatingIfNeeded: next(upperBound: UInt64(bound)))
    }

    /// Fisher–Yates shuffle of an index array in place.
    public mutating func shuffle(_ a: inout [Int32]) {
        var i = a.count - 1
        while i > 0 {
            let j = nextInt(below: i + 1)
            a.swapAt(i, j)
            i -= 1
        }
    }
}

