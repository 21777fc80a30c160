import Foundation

/// Latency statistics as the shared vectors (tests/vectors/latency.json) define them: min, max, mean
/// (left-to-right sum / n), median as Python `statistics.median` (`quantsr bench`'s `median_ms`), and
/// nearest-rank percentiles `sorted[ceil(p / 100 * n) - 1]`.
public struct LatencyStats: Codable, Equatable, Sendable {
    public let n: Int
    public let min: Double
    public let max: Double
    public let mean: Double
    public let median: Double
    public let p50: Double
    public let p90: Double
    public let p99: Double

    public init(samples: [Double]) {
        precondition(!samples.isEmpty, "no latency samples")
        let sorted = samples.sorted()
        n = samples.count
        min = sorted[0]
        max = sorted[sorted.count - 1]
        var total = 0.0
        for x in samples { total += x }
        mean = total / Double(samples.count)
        median = LatencyStats.median(samples)
        p50 = LatencyStats.nearestRank(sorted: sorted, 50)
        p90 = LatencyStats.nearestRank(sorted: sorted, 90)
        p99 = LatencyStats.nearestRank(sorted: sorted, 99)
    }

    /// `statistics.median`: the middle value, or the mean of the two middle values.
    public static func median(_ samples: [Double]) -> Double {
        precondition(!samples.isEmpty, "median of no samples")
        let s = samples.sorted()
        let n = s.count
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    }

    /// Nearest rank: `sorted[max(1, ceil(p / 100 * n)) - 1]`.
    public static func nearestRank(sorted: [Double], _ p: Double) -> Double {
        precondition(!sorted.isEmpty, "percentile of no samples")
        let rank = Swift.max(1, Int((p / 100 * Double(sorted.count)).rounded(.up)))
        return sorted[Swift.min(rank, sorted.count) - 1]
    }

    /// Python's `round(x, digits)`: the decimal nearest to the exact binary value, ties to even
    /// (printf formats the exact value the same way).
    public static func pythonRound(_ x: Double, _ digits: Int) -> Double {
        Double(String(format: "%.\(digits)f", x)) ?? x
    }

    /// Output megapixels per second (as `quantsr bench`): `(side * scale)^2 / 1e6 / (ms / 1000)`.
    public static func megapixelsPerSecond(side: Int, scale: Int, ms: Double) -> Double {
        Double((side * scale) * (side * scale)) / 1e6 / (ms / 1000)
    }
}

/// A monotonic wall-clock stopwatch in milliseconds.
public struct Stopwatch {
    private let start: UInt64

    public init() {
        start = DispatchTime.now().uptimeNanoseconds
    }

    public var elapsedMs: Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }
}
