/// An 8-bit RGBA image in row-major order, 4 bytes per pixel, no row padding (`bytesPerRow == 4 * width`).
/// The alpha byte is carried but ignored by the model: the app draws photos opaque (alpha 255).
public struct RGBAImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 4,
                     "RGBAImage: \(pixels.count) bytes for \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A black, opaque image.
    public init(width: Int, height: Int) {
        var pixels = [UInt8](repeating: 0, count: width * height * 4)
        var i = 3
        while i < pixels.count {
            pixels[i] = 255
            i += 4
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    public var bytesPerRow: Int { width * 4 }
}

/// A contiguous float32 tensor (row-major, the last dimension fastest), as the models take and return:
/// input "lr" `[1, 3, H, W]` RGB in [0, 1], output "sr" `[1, 3, sH, sW]`.
public struct PlanarTensor: Equatable, Sendable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "PlanarTensor: \(data.count) values for shape \(shape)")
        self.shape = shape
        self.data = data
    }

    public var count: Int { data.count }
}

/// Size limits for the demo (a 12 MP photo upscaled x4 would need 768 MB of RGBA output).
public enum InputLimit {
    /// Long side the demo reduces photos to by default before upscaling.
    public static let defaultMaxSide = 512

    /// `width x height` scaled down (never up) so the long side is at most `maxSide`; sides at least 1, rounded
    /// to nearest.
    public static func fitted(width: Int, height: Int, maxSide: Int) -> (width: Int, height: Int) {
        let long = max(width, height)
        guard long > maxSide, maxSide > 0 else { return (width, height) }
        let f = Double(maxSide) / Double(long)
        return (max(1, Int((Double(width) * f).rounded())), max(1, Int((Double(height) * f).rounded())))
    }
}
