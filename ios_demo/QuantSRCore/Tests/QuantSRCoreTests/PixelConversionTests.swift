import Foundation
import XCTest
@testable import QuantSRCore

final class PixelConversionTests: XCTestCase {
    func testSchema() throws {
        XCTAssertEqual(try Vectors.load(PixelVectors.self, "pixels.json").schema, 1)
    }

    func testBytesToPlanarFloat() throws {
        let v = try Vectors.load(PixelVectors.self, "pixels.json").argbToFloat
        let image = Vectors.rgba(fromARGB: v.argb, width: v.width, height: v.height)
        let tensor = PixelConversion.tensor(from: image)
        XCTAssertEqual(tensor.shape, [1, 3, v.height, v.width])
        XCTAssertEqual(tensor.data.count, v.float.count)
        for (i, (got, want)) in zip(tensor.data, v.float).enumerated() {
            XCTAssertEqual(got, Float(want), "value \(i)")   // bit-exact: Float(byte) / 255 in float32
        }
    }

    func testFloatToByteClampsAndRoundsHalfToEven() throws {
        let v = try Vectors.load(PixelVectors.self, "pixels.json").floatToUInt8
        XCTAssertEqual(v.float.count, v.uint8.count)
        for (x, want) in zip(v.float, v.uint8) {
            XCTAssertEqual(Int(PixelConversion.toByte(Float(x))), want, "toByte(\(Float(x)))")
        }
        XCTAssertFalse(v.tiesHalfToEven.isEmpty)
        for x in v.tiesHalfToEven {
            let scaled = Float(x) * 255
            XCTAssertEqual(scaled, scaled.rounded(.down) + 0.5, "\(x) * 255 is an exact tie")
            XCTAssertEqual(Int(PixelConversion.toByte(Float(x))) % 2, 0, "tie \(x) rounds to even")
        }
        XCTAssertEqual(PixelConversion.toByte(.nan), 0)
    }

    func testPlanarBytesToImage() throws {
        let v = try Vectors.load(PixelVectors.self, "pixels.json").uint8ToArgb
        // planar uint8 as floats k / 255 go back to the same bytes
        let tensor = PlanarTensor(shape: [1, 3, v.height, v.width],
                                  data: v.planarUInt8.map { PixelConversion.toFloat(UInt8($0)) })
        let image = PixelConversion.image(from: tensor)
        XCTAssertEqual(Vectors.argb(from: image), v.argb)
    }

    func testRoundTripAllBytes() {
        for b in 0...255 {
            XCTAssertEqual(PixelConversion.toByte(PixelConversion.toFloat(UInt8(b))), UInt8(b))
        }
    }

    func testExifOrientationMatchesPIL() throws {
        let v = try Vectors.load(PixelVectors.self, "pixels.json").exifOrientation
        let image = Vectors.rgba(fromARGB: v.argb, width: v.width, height: v.height)
        XCTAssertEqual(v.cases.count, 8)
        for c in v.cases {
            let upright = ExifOrientation.upright(image, orientation: c.orientation)
            XCTAssertEqual(upright.width, c.width, "orientation \(c.orientation)")
            XCTAssertEqual(upright.height, c.height, "orientation \(c.orientation)")
            XCTAssertEqual(Vectors.argb(from: upright), c.argb, "orientation \(c.orientation)")
        }
    }

    func testPaddingReplicatesBottomAndRightEdges() {
        // 2x3 image, region rows 0..<2, cols 1..<3, padded to 4x4
        var pixels = [UInt8]()
        for v in 0..<6 { pixels += [UInt8(v * 10), UInt8(v * 10 + 1), UInt8(v * 10 + 2), 255] }
        let image = RGBAImage(width: 3, height: 2, pixels: pixels)
        let t = PixelConversion.tensor(from: image, y0: 0, y1: 2, x0: 1, x1: 3, paddedHeight: 4, paddedWidth: 4)
        let red = t.data[0..<16].map { PixelConversion.toByte($0) }
        XCTAssertEqual(red, [10, 20, 20, 20,
                             40, 50, 50, 50,
                             40, 50, 50, 50,
                             40, 50, 50, 50])
    }

    func testStridedCopy() {
        // a [1, 3, 2, 2] tensor stored with a padded row stride of 3 and channel stride of 7
        let shape = [1, 3, 2, 2], strides = [21, 7, 3, 1]
        var storage = [Float](repeating: -1, count: 21)
        var expected = [Float]()
        for c in 0..<3 {
            for y in 0..<2 {
                for x in 0..<2 {
                    let v = Float(c * 100 + y * 10 + x)
                    storage[c * 7 + y * 3 + x] = v
                    expected.append(v)
                }
            }
        }
        XCTAssertEqual(StridedCopy.contiguous(storage, shape: shape, strides: strides), expected)
        var back = [Float](repeating: -1, count: 21)
        back.withUnsafeMutableBufferPointer { StridedCopy.scatter(expected, into: $0, shape: shape, strides: strides) }
        XCTAssertEqual(back, storage)
    }
}
