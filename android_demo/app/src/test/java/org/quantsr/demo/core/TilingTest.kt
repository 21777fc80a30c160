package org.quantsr.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** The fake models of tests/make_vectors.py ("nearest", "ramp", "mirror"). */
object FakeModels {
    fun byName(
        name: String,
        scale: Int,
    ): TileModel {
        require(name in setOf("nearest", "ramp", "mirror")) { "unknown fake model $name" }
        return TileModel { input, h, w -> upscale(name, input, h, w, scale) }
    }

    fun nearest(scale: Int) = byName("nearest", scale)

    private fun upscale(
        name: String,
        input: FloatArray,
        h: Int,
        w: Int,
        s: Int,
    ): FloatArray {
        val oh = h * s
        val ow = w * s
        val out = FloatArray(3 * oh * ow)
        for (c in 0 until 3) {
            for (y in 0 until oh) {
                for (x in 0 until ow) {
                    val v = input[c * h * w + (y / s) * w + x / s]
                    out[c * oh * ow + y * ow + x] =
                        when (name) {
                            "ramp" -> v + (y + x).toFloat() / 512f
                            "mirror" -> (v + input[c * h * w + (h - 1 - y / s) * w + (w - 1 - x / s)]) * 0.5f
                            else -> v
                        }
                }
            }
        }
        return out
    }
}

class TilingTest {
    @Test
    fun planTilesMatchesQuantsr() {
        val v = Vectors.load("tiling.json")
        val cases = v.objects("cases")
        assertTrue(cases.size >= 10)
        for (c in cases) {
            val got = Tiling.planTiles(c.int("height"), c.int("width"), c.int("tile"), c.int("overlap"))
            val expected = c["tiles"].asList("tiles").map { it.asIntArray("tile").toList() }
            assertEquals("case $c", expected, got.map { listOf(it.y0, it.y1, it.x0, it.x1, it.py0, it.py1, it.px0, it.px1) })
        }
        for (bad in v.objects("invalid")) {
            try {
                Tiling.planTiles(10, 10, bad.int("tile"), bad.int("overlap"))
                fail("accepted $bad")
            } catch (expected: IllegalArgumentException) {
            }
        }
    }

    @Test
    fun stitchMatchesRunTiled() {
        val v = Vectors.load("stitch.json")
        val image = Image(v.int("width"), v.int("height"), v["argb"].asIntArray("argb"))
        for (c in v.objects("cases")) {
            val s = c.int("scale")
            val sink = ArraySink(c.int("out_width"), c.int("out_height"))
            var last = 0
            val n =
                Tiling.upscale(
                    image,
                    s,
                    c.int("tile"),
                    c.int("overlap"),
                    FakeModels.byName(c["model"] as String, s),
                    sink,
                    minSide = v.int("min_side"),
                    progress = { done, _ -> last = done },
                )
            assertEquals(n, last)
            assertArrayEquals("case $c", c["argb"].asIntArray("argb"), sink.argb)
        }
    }

    @Test
    fun fixedSideModelsGetPaddedPatches() {
        val v = Vectors.load("stitch.json")
        val image = Image(v.int("width"), v.int("height"), v["argb"].asIntArray("argb"))
        val sink = ArraySink(image.width * 2, image.height * 2)
        val seen = HashSet<Pair<Int, Int>>()
        val model =
            TileModel { input, h, w ->
                seen.add(h to w)
                FakeModels.nearest(2).run(input, h, w)
            }
        val tile = Tiling.tileFor(256, 2, fixedSide = 8)
        assertEquals(4, tile)
        Tiling.upscale(image, 2, tile, 2, model, sink, fixedSide = 8)
        assertEquals(setOf(8 to 8), seen)
        // nearest is translation-invariant: tiles must reproduce whole-image nearest upscaling
        for (y in 0 until image.height * 2) {
            for (x in 0 until image.width * 2) {
                val p = image.argb[(y / 2) * image.width + x / 2] or (0xFF shl 24)
                assertEquals("($x, $y)", p, sink.argb[y * image.width * 2 + x])
            }
        }
    }

    @Test
    fun wrongModelOutputSizeIsAClearError() {
        val image = Image(3, 3, IntArray(9))
        try {
            Tiling.upscale(image, 4, 8, 0, FakeModels.nearest(2), ArraySink(12, 12))
            fail("accepted a x2 output for x4")
        } catch (e: IllegalStateException) {
            assertTrue(e.message!!, e.message!!.contains("x4"))
        }
    }

    @Test
    fun fitInputKeepsOutputBounded() {
        assertEquals(100 to 50, Tiling.fitInput(100, 50, 4, 16_000_000))
        val (w, h) = Tiling.fitInput(4000, 3000, 4, 16_000_000)
        assertTrue(w.toLong() * h * 16 <= 16_000_000 && w > 900 && h > 700)
    }
}
