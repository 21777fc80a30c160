/// Crop-and-stitch tiling, a line-for-line port of `quantsr.runtime.tiling.plan_tiles` and `quantsr.runtime.upscale._run_tiled`.

/// Core region `[y0, y1) x [x0, x1)` and the padded input region `[py0, py1) x [px0, px1)`, in LR pixels.
public struct Tile: Equatable, Codable, Sendable {
    public let y0: Int, y1: Int, x0: Int, x1: Int
    public let py0: Int, py1: Int, px0: Int, px1: Int

    public init(y0: Int, y1: Int, x0: Int, x1: Int, py0: Int, py1: Int, px0: Int, px1: Int) {
        self.y0 = y0; self.y1 = y1; self.x0 = x0; self.x1 = x1
        self.py0 = py0; self.py1 = py1; self.px0 = px0; self.px1 = px1
    }

    public var inputHeight: Int { py1 - py0 }
    public var inputWidth: Int { px1 - px0 }
}

public enum TilingError: Error, Equatable, CustomStringConvertible {
    case invalidTile(Int)
    case invalidOverlap(Int)
    case emptyImage
    case tileTooLargeForModel(tile: Int, overlap: Int, modelSide: Int)
    case unexpectedOutputShape(expected: [Int], got: [Int])

    public var description: String {
        switch self {
        case .invalidTile(let t): return "tile size must be positive, got \(t)"
        case .invalidOverlap(let o): return "tile overlap must be >= 0, got \(o)"
        case .emptyImage: return "the image is empty (0 pixels)"
        case let .tileTooLargeForModel(tile, overlap, side):
            return "tile \(tile) + 2 x overlap \(overlap) exceeds the model's fixed input side \(side)"
        case let .unexpectedOutputShape(expected, got):
            return "the model returned shape \(got), expected \(expected)"
        }
    }
}

public enum TilePlanner {
    /// Cover an image with `tile`-sized cores, each read with `overlap` extra pixels on every side
    /// (row-major order, as `plan_tiles`).
    public static func planTiles(height: Int, width: Int, tile: Int, overlap: Int) throws -> [Tile] {
        guard tile > 0 else { throw TilingError.invalidTile(tile) }
        guard overlap >= 0 else { throw TilingError.invalidOverlap(overlap) }
        var tiles: [Tile] = []
        for y0 in stride(from: 0, to: height, by: tile) {
            for x0 in stride(from: 0, to: width, by: tile) {
                let y1 = min(y0 + tile, height), x1 = min(x0 + tile, width)
                tiles.append(Tile(y0: y0, y1: y1, x0: x0, x1: x1,
                                  py0: max(0, y0 - overlap), py1: min(height, y1 + overlap),
                                  px0: max(0, x0 - overlap), px1: min(width, x1 + overlap)))
            }
        }
        return tiles
    }

    /// The model input size for a tile: the tile's padded region, grown to `minSide` by edge replication
    /// (`_run_tiled`), or exactly `fixedSide` for a fixed-shape model (Core ML export: 64 by default).
    public static func inputSize(for tile: Tile, minSide: Int = PixelConversion.minSide,
                                 fixedSide: Int? = nil) -> (height: Int, width: Int) {
        if let side = fixedSide { return (side, side) }
        return (max(tile.inputHeight, minSide), max(tile.inputWidth, minSide))
    }

    /// The largest core side a fixed-shape model allows with `overlap`: `fixedSide - 2 * overlap`.
    public static func coreSide(fixedSide: Int, overlap: Int) -> Int {
        fixedSide - 2 * overlap
    }
}

/// Tiled upscaling of an RGBA image with any model runner (`[1, 3, h, w] -> [1, 3, s h, s w]`).
public struct TiledUpscaler: Sendable {
    public let scale: Int
    public let tile: Int
    public let overlap: Int
    public let minSide: Int
    /// Set for fixed-shape models: every tile is fed as exactly `fixedSide x fixedSide`.
    public let fixedSide: Int?

    public init(scale: Int, tile: Int, overlap: Int, minSide: Int = PixelConversion.minSide,
                fixedSide: Int? = nil) throws {
        guard tile > 0 else { throw TilingError.invalidTile(tile) }
        guard overlap >= 0 else { throw TilingError.invalidOverlap(overlap) }
        if let side = fixedSide, tile + 2 * overlap > side {
            throw TilingError.tileTooLargeForModel(tile: tile, overlap: overlap, modelSide: side)
        }
        self.scale = scale
        self.tile = tile
        self.overlap = overlap
        self.minSide = minSide
        self.fixedSide = fixedSide
    }

    public func plan(for image: RGBAImage) throws -> [Tile] {
        try TilePlanner.planTiles(height: image.height, width: image.width, tile: tile, overlap: overlap)
    }

    /// Run `model` tile by tile and stitch the cores into a `scale`x larger image. `progress(done, total)` is
    /// called after each tile; `model` may throw (e.g. `CancellationError`) to stop.
    public func upscale(_ image: RGBAImage, progress: ((Int, Int) -> Void)? = nil,
                        model: (PlanarTensor) throws -> PlanarTensor) throws -> RGBAImage {
        guard image.width > 0 && image.height > 0 else { throw TilingError.emptyImage }
        let tiles = try plan(for: image)
        var out = RGBAImage(width: image.width * scale, height: image.height * scale)
        for (i, t) in tiles.enumerated() {
            let size = TilePlanner.inputSize(for: t, minSide: minSide, fixedSide: fixedSide)
            let input = PixelConversion.tensor(from: image, y0: t.py0, y1: t.py1, x0: t.px0, x1: t.px1,
                                               paddedHeight: size.height, paddedWidth: size.width)
            let sr = try model(input)
            let expected = [1, 3, size.height * scale, size.width * scale]
            guard sr.shape == expected else {
                throw TilingError.unexpectedOutputShape(expected: expected, got: sr.shape)
            }
            PixelConversion.write(sr, srcY: (t.y0 - t.py0) * scale, srcX: (t.x0 - t.px0) * scale,
                                  height: (t.y1 - t.y0) * scale, width: (t.x1 - t.x0) * scale,
                                  into: &out, dstY: t.y0 * scale, dstX: t.x0 * scale)
            progress?(i + 1, tiles.count)
        }
        return out
    }
}

/// Test double and reference model: nearest-neighbour upscaling of a `[1, C, H, W]` tensor.
public enum NearestNeighbour {
    public static func upscale(_ input: PlanarTensor, scale: Int) -> PlanarTensor {
        precondition(input.shape.count == 4, "expected [N, C, H, W], got \(input.shape)")
        let n = input.shape[0], c = input.shape[1], h = input.shape[2], w = input.shape[3]
        let oh = h * scale, ow = w * scale
        var out = [Float](repeating: 0, count: n * c * oh * ow)
        for p in 0..<(n * c) {
            for y in 0..<oh {
                for x in 0..<ow {
                    out[(p * oh + y) * ow + x] = input.data[(p * h + y / scale) * w + x / scale]
                }
            }
        }
        return PlanarTensor(shape: [n, c, oh, ow], data: out)
    }
}
