package org.quantsr.demo.core

/**
 * Pixel conversion exactly as `quantsr.runtime.upscale`: ARGB ints (Android `Bitmap.getPixels`) to planar float RGB in
 * [0, 1] (`value / 255` in float32, alpha ignored), and float to uint8 as `clamp(0, 1) * 255` (float32) rounded
 * half to even (`torch.round` == `Math.rint`). Output pixels are opaque (alpha 255).
 */
object Pixels {
    /** quantsr's float -> uint8: clamp to [0, 1], times 255 in float32, round half to even. NaN gives 0. */
    fun toUint8(v: Float): Int {
        if (v.isNaN()) return 0
        val c =
            if (v < 0f) {
                0f
            } else if (v > 1f) {
                1f
            } else {
                v
            }
        return Math.rint((c * 255f).toDouble()).toInt()
    }

    fun argb(
        r: Int,
        g: Int,
        b: Int,
    ): Int = (0xFF shl 24) or (r shl 16) or (g shl 8) or b

    /** The whole `width` x `height` image as a planar [1, 3, H, W] float array. */
    fun argbToPlanar(
        pixels: IntArray,
        width: Int,
        height: Int,
    ): FloatArray {
        require(pixels.size == width * height) { "expected ${width * height} pixels, got ${pixels.size}" }
        val plane = width * height
        val out = FloatArray(3 * plane)
        for (i in 0 until plane) putArgb(out, plane, i, pixels[i])
        return out
    }

    /** Write the ARGB pixel `p` as planar floats in [0, 1] at index `i` of each `plane`-sized channel of `out`. */
    fun putArgb(
        out: FloatArray,
        plane: Int,
        i: Int,
        p: Int,
    ) {
        out[i] = ((p shr 16) and 0xFF) / 255f
        out[plane + i] = ((p shr 8) and 0xFF) / 255f
        out[2 * plane + i] = (p and 0xFF) / 255f
    }

    /** Planar [1, 3, H, W] floats to opaque ARGB ints. */
    fun planarToArgb(
        planar: FloatArray,
        width: Int,
        height: Int,
    ): IntArray = cropToArgb(planar, width, height, 0, 0, width, height)

    /** The region [y0, y0 + h) x [x0, x0 + w) of a planar [1, 3, H, W] float image as opaque ARGB ints. */
    fun cropToArgb(
        planar: FloatArray,
        width: Int,
        height: Int,
        x0: Int,
        y0: Int,
        w: Int,
        h: Int,
    ): IntArray {
        require(planar.size == 3 * width * height) { "expected ${3 * width * height} floats, got ${planar.size}" }
        require(x0 >= 0 && y0 >= 0 && x0 + w <= width && y0 + h <= height) { "crop outside the image" }
        val plane = width * height
        val out = IntArray(w * h)
        for (y in 0 until h) {
            val row = (y0 + y) * width + x0
            for (x in 0 until w) {
                val i = row + x
                out[y * w + x] =
                    argb(toUint8(planar[i]), toUint8(planar[plane + i]), toUint8(planar[2 * plane + i]))
            }
        }
        return out
    }

    /** Planar uint8 [3, H, W] (0..255) to opaque ARGB ints. */
    fun planarUint8ToArgb(
        planar: IntArray,
        width: Int,
        height: Int,
    ): IntArray {
        val plane = width * height
        require(planar.size == 3 * plane) { "expected ${3 * plane} values, got ${planar.size}" }
        return IntArray(plane) { argb(planar[it], planar[plane + it], planar[2 * plane + it]) }
    }
}

/** Pixels of an image with its size. */
class Image(
    val width: Int,
    val height: Int,
    val argb: IntArray,
) {
    init {
        require(width > 0 && height > 0 && argb.size == width * height) { "bad image ${width}x$height" }
    }
}

/** EXIF orientation (tag 0x0112, values 1-8) applied as PIL's `ImageOps.exif_transpose`, which quantsr uses. */
object Orientation {
    fun upright(
        image: Image,
        orientation: Int,
    ): Image {
        if (orientation !in 2..8) return image
        val w = image.width
        val h = image.height
        val src = image.argb
        val swap = orientation >= 5
        val ow = if (swap) h else w
        val oh = if (swap) w else h
        val out = IntArray(ow * oh)
        for (y in 0 until oh) {
            for (x in 0 until ow) {
                val (sy, sx) =
                    when (orientation) {
                        2 -> y to w - 1 - x

                        // flip left-right
                        3 -> h - 1 - y to w - 1 - x

                        // rotate 180
                        4 -> h - 1 - y to x

                        // flip top-bottom
                        5 -> x to y

                        // transpose
                        6 -> h - 1 - x to y

                        // rotate 90 clockwise
                        7 -> h - 1 - x to w - 1 - y

                        // transverse
                        else -> x to w - 1 - y // 8: rotate 90 counter-clockwise
                    }
                out[y * ow + x] = src[sy * w + sx]
            }
        }
        return Image(ow, oh, out)
    }
}
