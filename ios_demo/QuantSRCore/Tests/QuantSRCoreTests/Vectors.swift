import Foundation
import XCTest
@testable import QuantSRCore

/// The shared test vectors, written by `tests/make_vectors.py` from quantsr's Python code and read by the Android
/// and iOS demos' tests alike. Located from this file: ios_demo/QuantSRCore/Tests/QuantSRCoreTests/ -> repo root
/// -> tests/vectors (override with the environment variable QUANTSR_VECTORS).
enum Vectors {
    static var directory: URL {
        if let path = ProcessInfo.processInfo.environment["QUANTSR_VECTORS"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()   // QuantSRCoreTests
            .deletingLastPathComponent()   // Tests
            .deletingLastPathComponent()   // QuantSRCore
            .deletingLastPathComponent()   // ios_demo
            .deletingLastPathComponent()   // repository root
            .appendingPathComponent("tests/vectors", isDirectory: true)
    }

    static func data(_ name: String) throws -> Data {
        let url = directory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("missing shared vector file \(url.path): run `python tests/make_vectors.py` in the repository")
            throw CocoaError(.fileNoSuchFile)
        }
        return try Data(contentsOf: url)
    }

    static func load<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        try JSONDecoder().decode(T.self, from: data(name))
    }

    /// Android `Bitmap.getPixels` values (signed `(a << 24) | (r << 16) | (g << 8) | b`) to RGBA bytes.
    static func rgba(fromARGB argb: [Int], width: Int, height: Int) -> RGBAImage {
        var pixels = [UInt8](repeating: 0, count: argb.count * 4)
        for (i, value) in argb.enumerated() {
            let v = UInt32(truncatingIfNeeded: value)
            pixels[i * 4] = UInt8((v >> 16) & 0xFF)
            pixels[i * 4 + 1] = UInt8((v >> 8) & 0xFF)
            pixels[i * 4 + 2] = UInt8(v & 0xFF)
            pixels[i * 4 + 3] = UInt8((v >> 24) & 0xFF)
        }
        return RGBAImage(width: width, height: height, pixels: pixels)
    }

    /// RGBA bytes to signed ARGB ints (for comparing with the vectors).
    static func argb(from image: RGBAImage) -> [Int] {
        (0..<(image.width * image.height)).map { i in
            let p = image.pixels
            let v = UInt32(p[i * 4 + 3]) << 24 | UInt32(p[i * 4]) << 16 | UInt32(p[i * 4 + 1]) << 8 | UInt32(p[i * 4 + 2])
            return Int(Int32(bitPattern: v))
        }
    }
}

// MARK: - vector file formats (schema 1)

struct PixelVectors: Decodable {
    struct ArgbToFloat: Decodable { let height: Int; let width: Int; let argb: [Int]; let float: [Double] }
    struct FloatToUInt8: Decodable {
        let float: [Double]
        let uint8: [Int]
        let tiesHalfToEven: [Double]
        enum CodingKeys: String, CodingKey { case float, uint8, tiesHalfToEven = "ties_half_to_even" }
    }
    struct UInt8ToArgb: Decodable {
        let height: Int; let width: Int; let planarUInt8: [Int]; let argb: [Int]
        enum CodingKeys: String, CodingKey { case height, width, argb, planarUInt8 = "planar_uint8" }
    }
    struct Exif: Decodable {
        struct Case: Decodable { let orientation: Int; let height: Int; let width: Int; let argb: [Int] }
        let height: Int; let width: Int; let argb: [Int]; let cases: [Case]
    }
    let schema: Int
    let argbToFloat: ArgbToFloat
    let floatToUInt8: FloatToUInt8
    let uint8ToArgb: UInt8ToArgb
    let exifOrientation: Exif
    enum CodingKeys: String, CodingKey {
        case schema, argbToFloat = "argb_to_float", floatToUInt8 = "float_to_uint8"
        case uint8ToArgb = "uint8_to_argb", exifOrientation = "exif_orientation"
    }
}

struct TilingVectors: Decodable {
    struct Case: Decodable { let height: Int; let width: Int; let tile: Int; let overlap: Int; let tiles: [[Int]] }
    struct Invalid: Decodable { let tile: Int; let overlap: Int }
    let schema: Int
    let fields: [String]
    let cases: [Case]
    let invalid: [Invalid]
}

struct StitchVectors: Decodable {
    struct Case: Decodable {
        let model: String; let scale: Int; let tile: Int; let overlap: Int
        let outHeight: Int; let outWidth: Int; let argb: [Int]
        enum CodingKeys: String, CodingKey {
            case model, scale, tile, overlap, argb, outHeight = "out_height", outWidth = "out_width"
        }
    }
    let schema: Int
    let minSide: Int
    let height: Int
    let width: Int
    let argb: [Int]
    let cases: [Case]
    enum CodingKeys: String, CodingKey { case schema, height, width, argb, cases, minSide = "min_side" }
}

struct ManifestVectors: Decodable {
    struct Model: Decodable {
        let name: String; let file: String; let sha256: String?; let bytes: Int?; let scale: Int
        let weightBits: Int?; let activationBits: Int?; let backend: String; let tile: Int; let overlap: Int
        let minSide: Int; let inputName: String; let inputShape: [Int]?; let outputName: String
        let outputShape: [Int]?
        enum CodingKeys: String, CodingKey {
            case name, file, sha256, bytes, scale, backend, tile, overlap
            case weightBits = "weight_bits", activationBits = "activation_bits", minSide = "min_side"
            case inputName = "input_name", inputShape = "input_shape", outputName = "output_name"
            case outputShape = "output_shape"
        }
    }
    struct Defaults: Decodable {
        let tile: Int; let overlap: Int; let minSide: Int; let inputName: String; let outputName: String
        enum CodingKeys: String, CodingKey {
            case tile, overlap, minSide = "min_side", inputName = "input_name", outputName = "output_name"
        }
    }
    struct Invalid: Decodable {
        let text: String
        let errorContains: String
        enum CodingKeys: String, CodingKey { case text, errorContains = "error_contains" }
    }
    let schema: Int
    let models: [Model]
    let defaultsWhenMissing: Defaults
    let invalid: [Invalid]
    enum CodingKeys: String, CodingKey { case schema, models, invalid, defaultsWhenMissing = "defaults_when_missing" }
}

struct LatencyVectors: Decodable {
    struct Case: Decodable {
        let samples: [Double]; let n: Int; let min: Double; let max: Double; let mean: Double; let median: Double
        let p50: Double; let p90: Double; let p99: Double
    }
    struct BenchRow: Decodable {
        let samplesMs: [Double]; let side: Int; let scale: Int; let bytes: Int; let vmRssKB: Int
        enum CodingKeys: String, CodingKey {
            case side, scale, bytes, samplesMs = "samples_ms", vmRssKB = "vm_rss_kb"
        }
    }
    let schema: Int
    let cases: [Case]
    let benchRow: BenchRow
    enum CodingKeys: String, CodingKey { case schema, cases, benchRow = "bench_row" }
}
