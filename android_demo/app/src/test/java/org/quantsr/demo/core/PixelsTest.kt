package org.quantsr.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class PixelsTest {
    private val v = Vectors.load("pixels.json")

    @Test
    fun argbToPlanarFloatIsValueOver255() {
        val a = v.obj("argb_to_float")
        val got = Pixels.argbToPlanar(a["argb"].asIntArray("argb"), a.int("width"), a.int("height"))
        val expected = a["float"].asFloatArray("float")
        assertEquals(expected.size, got.size)
        for (i in got.indices) assertEquals("float $i", expected[i].toRawBits(), got[i].toRawBits())
    }

    @Test
    fun floatToUint8ClampsScalesAndRoundsHalfToEven() {
        val f = v.obj("float_to_uint8")
        val src = f["float"].asFloatArray("float")
        val expected = f["uint8"].asIntArray("uint8")
        for (i in src.indices) assertEquals("toUint8(${src[i]})", expected[i], Pixels.toUint8(src[i]))
        for (t in f["ties_half_to_even"].asFloatArray("ties")) assertEquals(0, Pixels.toUint8(t) % 2)
    }

    @Test
    fun planarToArgbIsOpaque() {
        val u = v.obj("uint8_to_argb")
        val got = Pixels.planarUint8ToArgb(u["planar_uint8"].asIntArray("planar"), u.int("width"), u.int("height"))
        assertArrayEquals(u["argb"].asIntArray("argb"), got)
        // the float path gives the same pixels for value/255 inputs
        val w = u.int("width")
        val h = u.int("height")
        val planar = u["planar_uint8"].asIntArray("planar").let { p -> FloatArray(p.size) { p[it] / 255f } }
        assertArrayEquals(got, Pixels.planarToArgb(planar, w, h))
    }

    @Test
    fun exifOrientationMatchesPil() {
        val e = v.obj("exif_orientation")
        val image = Image(e.int("width"), e.int("height"), e["argb"].asIntArray("argb"))
        val cases = e.objects("cases")
        assertEquals(8, cases.size)
        for (c in cases) {
            val o = c.int("orientation")
            val got = Orientation.upright(image, o)
            assertEquals("width, orientation $o", c.int("width"), got.width)
            assertEquals("height, orientation $o", c.int("height"), got.height)
            assertArrayEquals("orientation $o", c["argb"].asIntArray("argb"), got.argb)
        }
    }
}
