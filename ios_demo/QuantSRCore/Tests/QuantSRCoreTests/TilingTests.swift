import Foundation
import XCTest
@testable import QuantSRCore

final class TilingTests: XCTestCase {
    func testPlanTilesMatchesQuantsr() throws {
        let v = try Vectors.load(TilingVectors.self, "tiling.json")
        XCTAssertEqual(v.schema, 1)
        XCTAssertEqual(v.fields, ["y0", "y1", "x0", "x1", "py0", "py1", "px0", "px1"])
        XCTAssertFalse(v.cases.isEmpty)
        for c in v.cases {
            let tiles = try TilePlanner.planTiles(height: c.height, width: c.width, tile: c.tile, overlap: c.overlap)
            let got = tiles.map { [$0.y0, $0.y1, $0.x0, $0.x1, $0.py0, $0.py1, $0.px0, $0.px1] }
            XCTAssertEqual(got, c.tiles, "\(c.height)x\(c.width) tile \(c.tile) overlap \(c.overlap)")
        }
    }

    func testInvalidTilingThrows() throws {
        let v = try Vectors.load(TilingVectors.self, "tiling.json")
        XCTAssertFalse(v.invalid.isEmpty)
        for c in v.invalid {
            XCTAssertThrowsError(try TilePlanner.planTiles(height: 8, width: 8, tile: c.tile, overlap: c.overlap))
            XCTAssertThrowsError(try TiledUpscaler(scale: 2, tile: c.tile, overlap: c.overlap))
        }
    }

    func testInputSize() {
        let tile = Tile(y0: 0, y1: 3, x0: 0, x1: 12, py0: 0, py1: 5, px0: 0, px1: 12)
        let dynamic = TilePlanner.inputSize(for: tile)
        XCTAssertEqual(dynamic.height, 8)    // padded up to min_side by edge replication
        XCTAssertEqual(dynamic.width, 12)
        let fixed = TilePlanner.inputSize(for: tile, fixedSide: 64)
        XCTAssertEqual(fixed.height, 64)
        XCTAssertEqual(fixed.width, 64)
        XCTAssertEqual(TilePlanner.coreSide(fixedSide: 64, overlap: 16), 32)
    }

    func testFixedSideRejectsTooLargeTiles() {
        XCTAssertThrowsError(try TiledUpscaler(scale: 4, tile: 40, overlap: 16, fixedSide: 64))
        XCTAssertNoThrow(try TiledUpscaler(scale: 4, tile: 32, overlap: 16, fixedSide: 64))
    }
}

final class InputLimitTests: XCTestCase {
    func testFitted() {
        let a = InputLimit.fitted(width: 4032, height: 3024, maxSide: 512)
        XCTAssertEqual(a.width, 512)
        XCTAssertEqual(a.height, 384)
        let b = InputLimit.fitted(width: 300, height: 200, maxSide: 512)   // never upscaled
        XCTAssertEqual(b.width, 300)
        XCTAssertEqual(b.height, 200)
        let c = InputLimit.fitted(width: 5000, height: 3, maxSide: 100)
        XCTAssertEqual(c.width, 100)
        XCTAssertEqual(c.height, 1)
    }
}
