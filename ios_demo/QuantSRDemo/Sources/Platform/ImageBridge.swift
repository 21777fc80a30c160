import CoreGraphics
import QuantSRCore
import UIKit

/// UIImage / CGImage <-> RGBAImage. Pixels are copied without color management when the photo is RGB (drawn into
/// a context with the photo's own color space), as quantsr/PIL read the stored values; EXIF orientation is applied
/// by QuantSRCore.ExifOrientation, as quantsr applies ImageOps.exif_transpose.
enum ImageBridge {
    enum BridgeError: Error, CustomStringConvertible {
        case noBitmap
        case contextFailed
        case imageFailed

        var description: String {
            switch self {
            case .noBitmap: return "the photo has no bitmap data"
            case .contextFailed: return "could not create a bitmap context"
            case .imageFailed: return "could not create an image from the pixels"
            }
        }
    }

    /// UIImage.Orientation -> EXIF orientation 1...8.
    static func exifOrientation(_ orientation: UIImage.Orientation) -> Int {
        switch orientation {
        case .up: return 1
        case .upMirrored: return 2
        case .down: return 3
        case .downMirrored: return 4
        case .leftMirrored: return 5
        case .right: return 6
        case .rightMirrored: return 7
        case .left: return 8
        @unknown default: return 1
        }
    }

    /// The upright pixels of a photo, reduced (never enlarged) so the long side is at most `maxSide` when given.
    static func pixels(of image: UIImage, maxSide: Int?) throws -> RGBAImage {
        guard let source = image.cgImage else { throw BridgeError.noBitmap }
        let stored = try pixels(of: source, width: source.width, height: source.height)
        let upright = ExifOrientation.upright(stored, orientation: exifOrientation(image.imageOrientation))
        guard let maxSide else { return upright }
        let size = InputLimit.fitted(width: upright.width, height: upright.height, maxSide: maxSide)
        if size.width == upright.width && size.height == upright.height { return upright }
        let uprightImage = try ImageBridge.cgImage(from: upright, colorSpace: source.colorSpace)
        return try pixels(of: uprightImage, width: size.width, height: size.height)
    }

    /// Draw `cgImage` into an RGBX (alpha ignored, opaque) 8-bit context of `width x height`.
    static func pixels(of cgImage: CGImage, width: Int, height: Int) throws -> RGBAImage {
        var bytes = [UInt8](repeating: 255, count: width * height * 4)
        let space = colorSpace(matching: cgImage.colorSpace)
        let drawn = bytes.withUnsafeMutableBytes { buffer -> Bool in
            guard let context = CGContext(data: buffer.baseAddress, width: width, height: height,
                                          bitsPerComponent: 8, bytesPerRow: width * 4, space: space,
                                          bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else { return false }
            context.interpolationQuality = .high
            context.draw(cgImage, in: CGRect(x: 0, y: 0, width: width, height: height))
            return true
        }
        guard drawn else { throw BridgeError.contextFailed }
        for i in stride(from: 3, to: bytes.count, by: 4) {
            bytes[i] = 255
        }
        return RGBAImage(width: width, height: height, pixels: bytes)
    }

    static func cgImage(from image: RGBAImage, colorSpace: CGColorSpace? = nil) throws -> CGImage {
        guard let provider = CGDataProvider(data: Data(image.pixels) as CFData),
              let made = CGImage(width: image.width, height: image.height, bitsPerComponent: 8, bitsPerPixel: 32,
                                    bytesPerRow: image.bytesPerRow, space: self.colorSpace(matching: colorSpace),
                                    bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.noneSkipLast.rawValue),
                                    provider: provider, decode: nil, shouldInterpolate: false,
                                    intent: .defaultIntent) else { throw BridgeError.imageFailed }
        return made
    }

    static func uiImage(from image: RGBAImage, colorSpace: CGColorSpace? = nil) throws -> UIImage {
        let made = try ImageBridge.cgImage(from: image, colorSpace: colorSpace)
        return UIImage(cgImage: made)
    }

    /// Lossless PNG for saving to Photos.
    static func pngData(from image: RGBAImage, colorSpace: CGColorSpace? = nil) throws -> Data {
        guard let data = try ImageBridge.uiImage(from: image, colorSpace: colorSpace).pngData() else {
            throw BridgeError.imageFailed
        }
        return data
    }

    /// The color space pixels are read and written in: the photo's own 8-bit-capable RGB space (no conversion of
    /// the stored values, as PIL), else sRGB (grayscale, CMYK, extended-range / HDR spaces are converted).
    static func workingColorSpace(for image: UIImage) -> CGColorSpace {
        colorSpace(matching: image.cgImage?.colorSpace)
    }

    private static func colorSpace(matching space: CGColorSpace?) -> CGColorSpace {
        if let space, space.model == .rgb, !CGColorSpaceUsesExtendedRange(space) { return space }
        return CGColorSpace(name: CGColorSpace.sRGB) ?? CGColorSpaceCreateDeviceRGB()
    }
}
