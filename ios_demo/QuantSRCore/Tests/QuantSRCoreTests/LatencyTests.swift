import Foundation
import XCTest
@testable import QuantSRCore

final class LatencyTests: XCTestCase {
    func testStatisticsMatchTheVectors() throws {
        let v = try Vectors.load(LatencyVectors.self, "latency.json")
        XCTAssertEqual(v.schema, 1)
        XCTAssertFalse(v.cases.isEmpty)
        for c in v.cases {
            let s = LatencyStats(samples: c.samples)
            // Same arithmetic as Python (left-to-right sum / n), so equal up to JSON decimal parsing.
            XCTAssertEqual(s.n, c.n)
            XCTAssertEqual(s.min, c.min, accuracy: tolerance(c.min))
            XCTAssertEqual(s.max, c.max, accuracy: tolerance(c.max))
            XCTAssertEqual(s.mean, c.mean, accuracy: tolerance(c.mean), "mean of \(c.samples)")
            XCTAssertEqual(s.median, c.median, accuracy: tolerance(c.median))
            XCTAssertEqual(s.p50, c.p50, accuracy: tolerance(c.p50))
            XCTAssertEqual(s.p90, c.p90, accuracy: tolerance(c.p90))
            XCTAssertEqual(s.p99, c.p99, accuracy: tolerance(c.p99))
        }
    }

    func testBenchRowMatchesQuantsrBench() throws {
        let v = try Vectors.load(LatencyVectors.self, "latency.json").benchRow
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Vectors.data("latency.json")) as? [String: Any])
        let expected = try XCTUnwrap((root["bench_row"] as? [String: Any])?["expected"] as? [String: Any])
        let variant = try XCTUnwrap(expected["variant"] as? String)
        let row = BenchmarkRow(variant: variant, side: v.side, scale: v.scale, samplesMs: v.samplesMs,
                               bytes: v.bytes, rssKB: v.vmRssKB)
        let encoded = try XCTUnwrap(JSONSerialization.jsonObject(with: BenchmarkRow.encode([row])) as? [[String: Any]])
        let got = try XCTUnwrap(encoded.first)
        for (key, want) in expected {
            let have = try XCTUnwrap(got[key], "the row has no \"\(key)\"")
            XCTAssertTrue(jsonEqual(have, want), "\(key): \(have) != \(want)")
        }
    }

    private func tolerance(_ x: Double) -> Double { 1e-12 * Swift.max(1, abs(x)) }

    private func number(_ value: Any) -> Double? {
        if let d = value as? Double { return d }
        if let i = value as? Int { return Double(i) }
        if let n = value as? NSNumber { return n.doubleValue }
        return nil
    }

    /// JSON values equal: numbers to 1e-12 relative (decimal printing/parsing may differ by an ulp across
    /// Foundation versions), null, strings, arrays element by element.
    private func jsonEqual(_ a: Any, _ b: Any) -> Bool {
        if a is NSNull || b is NSNull { return a is NSNull && b is NSNull }
        if let x = number(a), let y = number(b) { return abs(x - y) <= tolerance(y) }
        if let x = a as? String, let y = b as? String { return x == y }
        if let x = a as? [Any], let y = b as? [Any] {
            return x.count == y.count && zip(x, y).allSatisfy { jsonEqual($0, $1) }
        }
        return false
    }

    func testPythonRound() {
        XCTAssertEqual(LatencyStats.pythonRound(0.125, 2), 0.12)   // exact tie -> even
        XCTAssertEqual(LatencyStats.pythonRound(2.675, 2), 2.67)   // 2.67499999... in binary
        XCTAssertEqual(LatencyStats.pythonRound(15.2945, 2), 15.29)
    }
}
