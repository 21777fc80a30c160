package org.quantsr.demo.core

/** Core region [y0, y1) x [x0, x1) and the padded input region [py0, py1) x [px0, px1), in LR pixels. */
data class Tile(
    val y0: Int,
    val y1: Int,
    val x0: Int,
    val x1: Int,
    val py0: Int,
    val py1: Int,
    val px0: Int,
    val px1: Int,
)

/** A model run on one patch: planar [1, 3, height, width] floats in, planar [1, 3, s*height, s*width] out. */
fun interface TileModel {
    fun run(
        input: FloatArray,
        height: Int,
        width: Int,
    ): FloatArray
}

/** Receives each finished block of output pixels (opaque ARGB, `width` x `height`, at `x`, `y`). */
fun interface TileSink {
    fun put(
        argb: IntArray,
        x: Int,
        y: Int,
        width: Int,
        height: Int,
    )
}

/** Writes blocks into one ARGB array (tests; the app writes straight into the output Bitmap instead). */
class ArraySink(
    val width: Int,
    val height: Int,
) : TileSink {
    val argb = IntArray(width * height)

    override fun put(
        argb: IntArray,
        x: Int,
        y: Int,
        width: Int,
        height: Int,
    ) {
        for (r in 0 until height) System.arraycopy(argb, r * width, this.argb, (y + r) * this.width + x, width)
    }
}

/**
 * Crop-and-stitch tiling, the same as `quantsr.runtime.tiling.plan_tiles` + `quantsr.runtime.upscale._run_tiled`: cores of
 * `tile` LR pixels, each read with `overlap` extra pixels on every side (clipped at the image border); patches
 * smaller than `minSide` (or than a fixed model input) are padded on the bottom/right by edge replication and the
 * padding is cropped away with the margin; each core is converted to uint8 as soon as it is done.
 */
object Tiling {
    const val MIN_SIDE = 8 // quantsr.artifacts.cards.DEFAULT_MIN_SIDE: the .pte files are exported with H, W in [8, 1024]

    fun planTiles(
        height: Int,
        width: Int,
        tile: Int,
        overlap: Int,
    ): List<Tile> {
        require(tile > 0) { "tile size must be positive, got $tile" }
        require(overlap >= 0) { "tile overlap must be >= 0, got $overlap" }
        val tiles = ArrayList<Tile>()
        for (y0 in 0 until height step tile) {
            for (x0 in 0 until width step tile) {
                val y1 = minOf(y0 + tile, height)
                val x1 = minOf(x0 + tile, width)
                tiles.add(
                    Tile(
                        y0,
                        y1,
                        x0,
                        x1,
                        maxOf(0, y0 - overlap),
                        minOf(height, y1 + overlap),
                        maxOf(0, x0 - overlap),
                        minOf(width, x1 + overlap),
                    ),
                )
            }
        }
        return tiles
    }

    /**
     * The padded region of `tile` as a planar float patch of `padH` x `padW` (>= the region): rows and columns past
     * the region repeat its last row / column (torch `pad(..., mode="replicate")` on the bottom/right).
     */
    fun patch(
        image: Image,
        t: Tile,
        padH: Int,
        padW: Int,
    ): FloatArray {
        val h = t.py1 - t.py0
        val w = t.px1 - t.px0
        require(padH >= h && padW >= w) { "padding must not shrink the patch" }
        val plane = padH * padW
        val out = FloatArray(3 * plane)
        for (y in 0 until padH) {
            val row = (t.py0 + minOf(y, h - 1)) * image.width + t.px0
            for (x in 0 until padW) {
                Pixels.putArgb(out, plane, y * padW + x, image.argb[row + minOf(x, w - 1)])
            }
        }
        return out
    }

    /**
     * Upscale `image` by `scale` tile by tile into `sink`. `fixedSide`: the model's fixed input side (a `.pte`
     * exported with `--tile`), or null for dynamic H/W; then every patch is padded to exactly that side and `tile`
     * must leave room for the margins (see [tileFor]). Returns the number of tiles run.
     */
    fun upscale(
        image: Image,
        scale: Int,
        tile: Int,
        overlap: Int,
        model: TileModel,
        sink: TileSink,
        minSide: Int = MIN_SIDE,
        fixedSide: Int? = null,
        progress: (done: Int, total: Int) -> Unit = { _, _ -> },
        cancelled: () -> Boolean = { false },
    ): Int {
        require(scale >= 1) { "scale must be >= 1, got $scale" }
        val tiles = planTiles(image.height, image.width, tile, overlap)
        tiles.forEachIndexed { n, t ->
            if (cancelled()) throw InterruptedException("cancelled")
            val ph = t.py1 - t.py0
            val pw = t.px1 - t.px0
            val padH = fixedSide ?: maxOf(ph, minSide)
            val padW = fixedSide ?: maxOf(pw, minSide)
            require(padH >= ph && padW >= pw) {
                "tile $tile + 2 x overlap $overlap does not fit the model's fixed input side $fixedSide"
            }
            val sr = model.run(patch(image, t, padH, padW), padH, padW)
            val outH = padH * scale
            val outW = padW * scale
            check(sr.size == 3 * outH * outW) {
                "the model returned ${sr.size} values for a ${padH}x$padW input; expected 3 x $outH x $outW (x$scale)"
            }
            val core =
                Pixels.cropToArgb(
                    sr,
                    outW,
                    outH,
                    (t.x0 - t.px0) * scale,
                    (t.y0 - t.py0) * scale,
                    (t.x1 - t.x0) * scale,
                    (t.y1 - t.y0) * scale,
                )
            sink.put(core, t.x0 * scale, t.y0 * scale, (t.x1 - t.x0) * scale, (t.y1 - t.y0) * scale)
            progress(n + 1, tiles.size)
        }
        return tiles.size
    }

    /** The core tile side for a model: `requested` for dynamic H/W, else what fits the fixed side with margins. */
    fun tileFor(
        requested: Int,
        overlap: Int,
        fixedSide: Int?,
    ): Int {
        if (fixedSide == null) return requested
        val t = fixedSide - 2 * overlap
        require(t >= 1) { "overlap $overlap leaves no core in the model's fixed $fixedSide px input" }
        return t
    }

    /**
     * The input size to feed so that the output stays within `maxOutputPixels` (a phone cannot hold a 200 MP
     * bitmap): (width, height) unchanged if it fits, else scaled down keeping the aspect ratio.
     */
    fun fitInput(
        width: Int,
        height: Int,
        scale: Int,
        maxOutputPixels: Long,
    ): Pair<Int, Int> {
        val out = width.toLong() * height * scale * scale
        if (out <= maxOutputPixels) return width to height
        val f = Math.sqrt(maxOutputPixels.toDouble() / out)
        return maxOf(1, (width * f).toInt()) to maxOf(1, (height * f).toInt())
    }
}
