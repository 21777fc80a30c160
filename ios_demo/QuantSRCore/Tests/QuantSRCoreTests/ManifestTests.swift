import Foundation
import XCTest
@testable import QuantSRCore

final class ManifestTests: XCTestCase {
    func testParsesTheExampleManifest() throws {
        let manifest = try ModelManifest.parse(Vectors.data("models.json"))
        let expected = try Vectors.load(ManifestVectors.self, "models_expected.json")
        XCTAssertEqual(manifest.schema, expected.schema)
        XCTAssertEqual(manifest.models.count, expected.models.count)
        for (m, e) in zip(manifest.models, expected.models) {
            XCTAssertEqual(m.name, e.name)
            XCTAssertEqual(m.file, e.file)
            XCTAssertEqual(m.sha256, e.sha256)
            XCTAssertEqual(m.bytes, e.bytes)
            XCTAssertEqual(m.scale, e.scale)
            XCTAssertEqual(m.weightBits, e.weightBits)
            XCTAssertEqual(m.activationBits, e.activationBits)
            XCTAssertEqual(m.backend, e.backend)
            XCTAssertEqual(m.tile, e.tile)
            XCTAssertEqual(m.overlap, e.overlap)
            XCTAssertEqual(m.minSide, e.minSide)
            XCTAssertEqual(m.inputName, e.inputName)
            XCTAssertEqual(m.inputShape, e.inputShape)
            XCTAssertEqual(m.outputName, e.outputName)
            XCTAssertEqual(m.outputShape, e.outputShape)
            XCTAssertEqual(m.kind, .executorch)
        }
    }

    func testDefaultsWhenMissing() throws {
        let d = try Vectors.load(ManifestVectors.self, "models_expected.json").defaultsWhenMissing
        let m = try XCTUnwrap(ModelManifest.parse(#"{"schema": 1, "models": [{"file": "a.pte", "scale": 2}]}"#)
            .models.first)
        XCTAssertEqual(m.tile, d.tile)
        XCTAssertEqual(m.overlap, d.overlap)
        XCTAssertEqual(m.minSide, d.minSide)
        XCTAssertEqual(m.inputName, d.inputName)
        XCTAssertEqual(m.outputName, d.outputName)
        XCTAssertEqual(m.name, "a")
        XCTAssertEqual(m.kind, .executorch)
        XCTAssertNil(m.fixedSide)
    }

    func testRejectsInvalidManifestsWithANamedReason() throws {
        let invalid = try Vectors.load(ManifestVectors.self, "models_expected.json").invalid
        XCTAssertFalse(invalid.isEmpty)
        for c in invalid {
            XCTAssertThrowsError(try ModelManifest.parse(c.text), c.text) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(c.errorContains),
                              "error for \(c.text) is \"\(message)\", should contain \"\(c.errorContains)\"")
            }
        }
    }

    func testExampleTiling() throws {
        let models = try ModelManifest.parse(Vectors.data("models.json")).models
        let dynamic = models[0].tiling(), fixed = models[1].tiling()
        XCTAssertEqual(dynamic.tile, 256)      // as given (max_side 1024 allows 256 + 2 x 16)
        XCTAssertEqual(dynamic.overlap, 16)
        XCTAssertNil(dynamic.fixedSide)
        XCTAssertEqual(fixed.fixedSide, 64)    // [1, 3, 64, 64] input: 32 px cores + 16 px margins
        XCTAssertEqual(fixed.tile, 32)
        XCTAssertEqual(fixed.overlap, 16)
    }

    func testCoreMLCardTiling() throws {
        // a `quantsr export --format coreml` card: fixed 64 x 64 input -> 32 px cores with a 16 px margin
        let text = #"{"schema": 1, "models": [{"file": "m.mlpackage", "backend": "coreml", "scale": 4, "tile": 64,"#
            + #" "input": {"name": "lr", "dtype": "float32", "shape": [1, 3, 64, 64]}}]}"#
        let m = try XCTUnwrap(ModelManifest.parse(text).models.first)
        XCTAssertEqual(m.kind, .coreml)
        XCTAssertEqual(m.fixedSide, 64)
        let t = m.tiling()
        XCTAssertEqual(t.tile, 32)
        XCTAssertEqual(t.overlap, 16)
        XCTAssertEqual(t.fixedSide, 64)
        XCTAssertNoThrow(try TiledUpscaler(scale: m.scale, tile: t.tile, overlap: t.overlap, fixedSide: t.fixedSide))
    }
}
