import Foundation
import XCTest
@testable import QuantSRCore

/// The fake models of tests/make_vectors.py.
enum FakeModel {
    /// "nearest": out[c, Y, X] = in[c, Y / s, X / s].
    static func nearest(_ scale: Int) -> (PlanarTensor) -> PlanarTensor {
        { NearestNeighbour.upscale($0, scale: scale) }
    }

    /// "ramp": nearest + Float(Y + X) / 512 (float32), Y, X output coordinates inside the padded patch.
    static func ramp(_ scale: Int) -> (PlanarTensor) -> PlanarTensor {
        { input in
            var up = NearestNeighbour.upscale(input, scale: scale)
            let h = up.shape[2], w = up.shape[3]
            for c in 0..<up.shape[1] {
                for y in 0..<h {
                    for x in 0..<w {
                        up.data[(c * h + y) * w + x] += Float(y + x) / 512
                    }
                }
            }
            return up
        }
    }

    /// "mirror": (nearest(x) + nearest(x flipped in H and W)) * 0.5 (float32): every output pixel depends on the
    /// opposite corner of the padded patch, so the padding's side, size and content all show.
    static func mirror(_ scale: Int) -> (PlanarTensor) -> PlanarTensor {
        { input in
            var flipped = input
            let h = input.shape[2], w = input.shape[3]
            for c in 0..<input.shape[1] {
                for y in 0..<h {
                    for x in 0..<w {
                        flipped.data[(c * h + y) * w + x] = input.data[(c * h + (h - 1 - y)) * w + (w - 1 - x)]
                    }
                }
            }
            var up = NearestNeighbour.upscale(input, scale: scale)
            let other = NearestNeighbour.upscale(flipped, scale: scale)
            for i in 0..<up.data.count {
                up.data[i] = (up.data[i] + other.data[i]) * 0.5
            }
            return up
        }
    }

    static func named(_ name: String, scale: Int) -> ((PlanarTensor) -> PlanarTensor)? {
        switch name {
        case "nearest": return nearest(scale)
        case "ramp": return ramp(scale)
        case "mirror": return mirror(scale)
        default: return nil
        }
    }
}

final class StitchTests: XCTestCase {
    func testTiledUpscaleMatchesQuantsrRunTiled() throws {
        let v = try Vectors.load(StitchVectors.self, "stitch.json")
        XCTAssertEqual(v.schema, 1)
        XCTAssertEqual(v.minSide, PixelConversion.minSide)
        let image = Vectors.rgba(fromARGB: v.argb, width: v.width, height: v.height)
        XCTAssertFalse(v.cases.isEmpty)
        for c in v.cases {
            let model = try XCTUnwrap(FakeModel.named(c.model, scale: c.scale), "unknown fake model \(c.model)")
            let upscaler = try TiledUpscaler(scale: c.scale, tile: c.tile, overlap: c.overlap, minSide: v.minSide)
            var calls = 0
            let out = try upscaler.upscale(image, progress: { done, total in
                calls += 1
                XCTAssertEqual(done, calls)
                XCTAssertEqual(total, try! upscaler.plan(for: image).count)
            }, model: model)
            XCTAssertEqual(out.width, c.outWidth)
            XCTAssertEqual(out.height, c.outHeight)
            XCTAssertEqual(Vectors.argb(from: out), c.argb, "\(c.model) x\(c.scale) tile \(c.tile) overlap \(c.overlap)")
        }
    }

    func testWrongOutputShapeThrows() throws {
        let upscaler = try TiledUpscaler(scale: 2, tile: 4, overlap: 1)
        let image = RGBAImage(width: 5, height: 5)
        XCTAssertThrowsError(try upscaler.upscale(image, model: { NearestNeighbour.upscale($0, scale: 3) }))
    }

    func testModelErrorsStopTheRun() throws {
        struct Stop: Error {}
        let upscaler = try TiledUpscaler(scale: 2, tile: 4, overlap: 1)
        var calls = 0
        XCTAssertThrowsError(try upscaler.upscale(RGBAImage(width: 9, height: 9), model: { _ in
            calls += 1
            throw Stop()
        }))
        XCTAssertEqual(calls, 1)
    }

    func testFixedSideModelSeesOnlyFixedInputs() throws {
        // A fixed 16x16 model: with nearest-neighbour the result equals whole-image nearest-neighbour.
        let v = try Vectors.load(StitchVectors.self, "stitch.json")
        let image = Vectors.rgba(fromARGB: v.argb, width: v.width, height: v.height)
        let upscaler = try TiledUpscaler(scale: 2, tile: 4, overlap: 6, fixedSide: 16)
        let out = try upscaler.upscale(image, model: { input in
            XCTAssertEqual(input.shape, [1, 3, 16, 16])
            return NearestNeighbour.upscale(input, scale: 2)
        })
        let whole = PixelConversion.image(from: NearestNeighbour.upscale(PixelConversion.tensor(from: image), scale: 2))
        XCTAssertEqual(out, whole)
    }
}
