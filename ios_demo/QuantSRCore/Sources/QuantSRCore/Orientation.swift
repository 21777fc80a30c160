/// EXIF orientation, applied before upscaling as quantsr does (`PIL.ImageOps.exif_transpose`). The app reads the
/// photo's raw pixels (`CGImage`) and its orientation (`UIImage.imageOrientation`, mapped to EXIF 1...8) and makes
/// the image upright here, so the result matches quantsr pixel for pixel.
public enum ExifOrientation {
    /// The upright image for EXIF `orientation` (1 = already upright; values outside 1...8 are treated as 1).
    /// PIL's transposes: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270,
    /// 7 TRANSVERSE, 8 ROTATE_90.
    public static func upright(_ image: RGBAImage, orientation: Int) -> RGBAImage {
        let h = image.height, w = image.width
        let swaps = (5...8).contains(orientation)
        let oh = swaps ? w : h, ow = swaps ? h : w
        if !(2...8).contains(orientation) { return image }
        var out = [UInt8](repeating: 0, count: image.pixels.count)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<oh {
                    for x in 0..<ow {
                        let (sy, sx) = source(orientation, y: y, x: x, height: h, width: w)
                        let s = (sy * w + sx) * 4, d = (y * ow + x) * 4
                        dst[d] = src[s]
                        dst[d + 1] = src[s + 1]
                        dst[d + 2] = src[s + 2]
                        dst[d + 3] = src[s + 3]
                    }
                }
            }
        }
        return RGBAImage(width: ow, height: oh, pixels: out)
    }

    /// The source pixel (row, column) of upright pixel (`y`, `x`) for a `height` x `width` stored image.
    static func source(_ orientation: Int, y: Int, x: Int, height h: Int, width w: Int) -> (Int, Int) {
        switch orientation {
        case 2: return (y, w - 1 - x)
        case 3: return (h - 1 - y, w - 1 - x)
        case 4: return (h - 1 - y, x)
        case 5: return (x, y)
        case 6: return (h - 1 - x, y)
        case 7: return (h - 1 - x, w - 1 - y)
        case 8: return (x, w - 1 - y)
        default: return (y, x)
        }
    }
}
