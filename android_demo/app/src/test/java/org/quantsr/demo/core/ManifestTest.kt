package org.quantsr.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class ManifestTest {
    private val expected = Vectors.load("models_expected.json")

    private fun shape(v: Any?): List<Long>? = (v as List<*>?)?.map { it as Long }

    @Test
    fun parsesTheExampleManifest() {
        val models = Manifest.parse(Vectors.text("models.json"))
        val want = expected.objects("models")
        assertEquals(want.size, models.size)
        for ((m, e) in models.zip(want)) {
            assertEquals(e["name"], m.name)
            assertEquals(e["file"], m.file)
            assertEquals(e["sha256"], m.sha256)
            assertEquals(e["bytes"], m.bytes)
            assertEquals(e.int("scale"), m.scale)
            assertEquals(e.int("weight_bits"), m.weightBits)
            assertEquals(e.int("activation_bits"), m.activationBits)
            assertEquals(e["backend"], m.backend)
            assertEquals(e.int("tile"), m.tile)
            assertEquals(e.int("overlap"), m.overlap)
            assertEquals(e.int("min_side"), m.minSide)
            assertEquals(e["input_name"], m.inputName)
            assertEquals(shape(e["input_shape"]), m.inputShape)
            assertEquals(e["output_name"], m.outputName)
            assertEquals(shape(e["output_shape"]), m.outputShape)
        }
        assertTrue(models.all { it.isExecuTorch })
        val coreml = "{\"models\": [{\"file\": \"m.mlpackage\", \"scale\": 4, \"backend\": \"coreml\"}]}"
        assertTrue(Manifest.parse(coreml).none { it.isExecuTorch })
        assertNull(models[0].fixedSide)
        assertEquals(64, models[1].fixedSide)
    }

    @Test
    fun appliesDefaults() {
        val d = expected.obj("defaults_when_missing")
        val m = Manifest.parse("{\"models\": [{\"name\": \"m\", \"file\": \"m.pte\", \"scale\": 2}]}").single()
        assertEquals(d.int("tile"), m.tile)
        assertEquals(d.int("overlap"), m.overlap)
        assertEquals(d.int("min_side"), m.minSide)
        assertEquals(d["input_name"], m.inputName)
        assertEquals(d["output_name"], m.outputName)
        assertNull(m.inputShape)
        assertNull(m.weightBits)
    }

    @Test
    fun labelStatesTheBitsOnce() {
        val json =
            "{\"models\": [" +
                "{\"name\": \"imdn x4 W4A4\", \"file\": \"a.pte\", \"scale\": 4, \"bits\": {\"weights\": 4, \"activations\": 4}}, " +
                "{\"name\": \"mine\", \"file\": \"b.pte\", \"scale\": 4, \"bits\": {\"weights\": 2, \"activations\": 2}}, " +
                "{\"name\": \"fp\", \"file\": \"c.pte\", \"scale\": 4}]}"
        val labels = Manifest.parse(json).map { it.label }
        assertEquals(listOf("imdn x4 W4A4", "mine (W2A2)", "fp"), labels)
    }

    @Test
    fun rejectsBadManifestsNamingTheProblem() {
        for (bad in expected.objects("invalid")) {
            try {
                Manifest.parse(bad["text"] as String)
                fail("accepted ${bad["text"]}")
            } catch (e: ManifestException) {
                val word = bad["error_contains"] as String
                assertTrue("'${e.message}' should mention '$word'", e.message!!.contains(word))
            }
        }
    }
}
