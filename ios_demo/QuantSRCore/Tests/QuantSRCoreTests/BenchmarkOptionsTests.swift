import Foundation
import XCTest
@testable import QuantSRCore

final class BenchmarkOptionsTests: XCTestCase {
    func testAbsentFlagMeansInteractive() throws {
        XCTAssertNil(try BenchmarkOptions.parse(["QuantSRDemo", "-NSDocumentRevisionsDebugMode", "YES"]))
    }

    func testParsesAllFlags() throws {
        let o = try XCTUnwrap(BenchmarkOptions.parse([
            "QuantSRDemo", "-benchmark", "-iterations", "50", "-warmup", "0", "-sizes", "64,128",
            "-model", "IMDN x4 W4A4", "-backend", "coreml", "-computeUnits", "cpuOnly", "-output", "b.json",
            "-exitWhenDone",
        ]))
        XCTAssertEqual(o.iterations, 50)
        XCTAssertEqual(o.warmup, 0)
        XCTAssertEqual(o.sizes, [64, 128])
        XCTAssertEqual(o.modelName, "IMDN x4 W4A4")
        XCTAssertEqual(o.backend, .coreml)
        XCTAssertEqual(o.computeUnits, .cpuOnly)
        XCTAssertEqual(o.outputFile, "b.json")
        XCTAssertTrue(o.exitWhenDone)
    }

    func testDefaults() throws {
        let o = try XCTUnwrap(BenchmarkOptions.parse(["-benchmark"]))
        XCTAssertEqual(o, BenchmarkOptions())
    }

    func testBadValues() {
        XCTAssertThrowsError(try BenchmarkOptions.parse(["-benchmark", "-iterations", "0"]))
        XCTAssertThrowsError(try BenchmarkOptions.parse(["-benchmark", "-iterations"]))
        XCTAssertThrowsError(try BenchmarkOptions.parse(["-benchmark", "-backend", "tflite"]))
        XCTAssertThrowsError(try BenchmarkOptions.parse(["-benchmark", "-sizes", "64,x"]))
        XCTAssertThrowsError(try BenchmarkOptions.parse(["-benchmark", "-output", "../b.json"]))
    }

    func testSyntheticInputIsDeterministicAndInRange() {
        let a = SyntheticInput.tensor(side: 8), b = SyntheticInput.tensor(side: 8)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.shape, [1, 3, 8, 8])
        XCTAssertTrue(a.data.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertNotEqual(SyntheticInput.tensor(side: 8, seed: 1), a)
    }
}
