/// Pixel <-> tensor conversion, exactly as `quantsr.runtime.upscale._run_tiled` does it:
///
/// * in: `uint8 -> float32`, divided by 255 in float32 (`patch.float().div_(255.0)`), planar R, G, B;
/// * tiles smaller than the model's minimum side (`MIN_SIDE = 8`) are padded at the bottom and right by edge
///   replication (`F.pad(..., mode="replicate")`) and the padding is cropped from the output;
/// * out: `clamp(0, 1)`, `* 255` in float32, rounded half to even (`torch.round`), to `uint8`.
public enum PixelConversion {
    /// The smallest input side the exported `.pte` models accept (`quantsr.artifacts.cards.DEFAULT_MIN_SIDE`).
    public static let minSide = 8

    /// One byte to the model's float: `Float(byte) / 255` (float32 division, as torch).
    @inlinable
    public static func toFloat(_ byte: UInt8) -> Float {
        Float(byte) / 255
    }

    /// One model output value to a byte: clamp to [0, 1], times 255 (float32), round half to even.
    /// NaN (which torch would turn into an unspecified byte) becomes 0.
    @inlinable
    public static func toByte(_ value: Float) -> UInt8 {
        if value.isNaN { return 0 }
        let clamped = min(max(value, 0), 1)
        return UInt8((clamped * 255).rounded(.toNearestOrEven))
    }

    /// The whole image as a `[1, 3, H, W]` tensor (no padding).
    public static func tensor(from image: RGBAImage) -> PlanarTensor {
        tensor(from: image, y0: 0, y1: image.height, x0: 0, x1: image.width,
               paddedHeight: image.height, paddedWidth: image.width)
    }

    /// The region `[y0, y1) x [x0, x1)` of `image` as a `[1, 3, paddedHeight, paddedWidth]` tensor; rows and
    /// columns past the region repeat its last row / column (edge replication at the bottom and right).
    public static func tensor(from image: RGBAImage, y0: Int, y1: Int, x0: Int, x1: Int,
                              paddedHeight: Int, paddedWidth: Int) -> PlanarTensor {
        precondition(0 <= y0 && y0 < y1 && y1 <= image.height && 0 <= x0 && x0 < x1 && x1 <= image.width,
                     "region [\(y0), \(y1)) x [\(x0), \(x1)) outside a \(image.width)x\(image.height) image")
        precondition(paddedHeight >= y1 - y0 && paddedWidth >= x1 - x0, "padded size smaller than the region")
        let plane = paddedHeight * paddedWidth
        var data = [Float](repeating: 0, count: 3 * plane)
        // The 256 possible values, computed once (same float32 division as toFloat).
        let lut = (0...255).map { toFloat(UInt8($0)) }
        image.pixels.withUnsafeBufferPointer { px in
            data.withUnsafeMutableBufferPointer { out in
                for y in 0..<paddedHeight {
                    let sy = min(y0 + y, y1 - 1)
                    let rowStart = sy * image.width * 4
                    for x in 0..<paddedWidth {
                        let sx = min(x0 + x, x1 - 1)
                        let p = rowStart + sx * 4
                        let o = y * paddedWidth + x
                        out[o] = lut[Int(px[p])]
                        out[plane + o] = lut[Int(px[p + 1])]
                        out[2 * plane + o] = lut[Int(px[p + 2])]
                    }
                }
            }
        }
        return PlanarTensor(shape: [1, 3, paddedHeight, paddedWidth], data: data)
    }

    /// Write the window `[srcY, srcY + height) x [srcX, srcX + width)` of a `[1, 3, H, W]` tensor into `image`
    /// at (`dstY`, `dstX`) as bytes (alpha 255).
    public static func write(_ tensor: PlanarTensor, srcY: Int, srcX: Int, height: Int, width: Int,
                             into image: inout RGBAImage, dstY: Int, dstX: Int) {
        precondition(tensor.shape.count == 4 && tensor.shape[0] == 1 && tensor.shape[1] == 3,
                     "expected a [1, 3, H, W] tensor, got \(tensor.shape)")
        let th = tensor.shape[2], tw = tensor.shape[3]
        precondition(srcY >= 0 && srcX >= 0 && srcY + height <= th && srcX + width <= tw,
                     "window outside the \(tw)x\(th) tensor")
        precondition(dstY >= 0 && dstX >= 0 && dstY + height <= image.height && dstX + width <= image.width,
                     "window outside the \(image.width)x\(image.height) image")
        let plane = th * tw
        let imageWidth = image.width
        tensor.data.withUnsafeBufferPointer { src in
            image.pixels.withUnsafeMutableBufferPointer { px in
                for y in 0..<height {
                    for x in 0..<width {
                        let s = (srcY + y) * tw + srcX + x
                        let p = ((dstY + y) * imageWidth + dstX + x) * 4
                        px[p] = toByte(src[s])
                        px[p + 1] = toByte(src[plane + s])
                        px[p + 2] = toByte(src[2 * plane + s])
                        px[p + 3] = 255
                    }
                }
            }
        }
    }

    /// A whole `[1, 3, H, W]` tensor as an opaque image.
    public static func image(from tensor: PlanarTensor) -> RGBAImage {
        precondition(tensor.shape.count == 4, "expected a [1, 3, H, W] tensor, got \(tensor.shape)")
        var out = RGBAImage(width: tensor.shape[3], height: tensor.shape[2])
        write(tensor, srcY: 0, srcX: 0, height: tensor.shape[2], width: tensor.shape[3], into: &out, dstY: 0, dstX: 0)
        return out
    }
}

/// Strided float32 storage (as an `MLMultiArray` output, whose `strides` need not be contiguous) to contiguous.
public enum StridedCopy {
    /// Gather `shape` elements from `source`, element `[i0, i1, ...]` at `sum(i_k * strides[k])`.
    public static func contiguous(_ source: UnsafeBufferPointer<Float>, shape: [Int], strides: [Int]) -> [Float] {
        precondition(shape.count == strides.count, "shape \(shape) and strides \(strides) differ in rank")
        let total = shape.reduce(1, *)
        var out = [Float]()
        out.reserveCapacity(total)
        forEachOffset(shape: shape, strides: strides) { out.append(source[$0]) }
        return out
    }

    /// Array convenience for tests.
    public static func contiguous(_ source: [Float], shape: [Int], strides: [Int]) -> [Float] {
        source.withUnsafeBufferPointer { contiguous($0, shape: shape, strides: strides) }
    }

    /// Scatter contiguous `values` into strided storage (an `MLMultiArray` input).
    public static func scatter(_ values: [Float], into destination: UnsafeMutableBufferPointer<Float>,
                               shape: [Int], strides: [Int]) {
        precondition(shape.count == strides.count && values.count == shape.reduce(1, *))
        var next = 0
        forEachOffset(shape: shape, strides: strides) { offset in
            destination[offset] = values[next]
            next += 1
        }
    }

    /// Calls `body` with the storage offset `sum(i_k * strides[k])` of every element `[i0, i1, ...]` of `shape`,
    /// in row-major order (the last index fastest), the order of a contiguous array.
    private static func forEachOffset(shape: [Int], strides: [Int], _ body: (Int) -> Void) {
        let total = shape.reduce(1, *)
        if total == 0 { return }
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<total {
            var offset = 0
            for k in 0..<shape.count { offset += index[k] * strides[k] }
            body(offset)
            var k = shape.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0
                k -= 1
            }
        }
    }
}
