package org.quantsr.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.fail
import org.junit.Test

class JsonTest {
    @Test
    fun parsesAllValueKinds() {
        val v = Json.parse(" {\"a\": [1, -2, 3.5, 1e3, -0.25E-2], \"b\": \"x\\\"\\u00e9\\n\", \"c\": true, \"d\": null, \"e\": {}} ")
        val m = v.asObject("v")
        assertEquals(listOf(1L, -2L, 3.5, 1000.0, -0.0025), m["a"])
        assertEquals("x\"\u00e9\n", m["b"])
        assertEquals(true, m["c"])
        assertEquals(null, m["d"])
        assertEquals(emptyMap<String, Any?>(), m["e"])
        assertEquals(listOf("a", "b", "c", "d", "e"), m.keys.toList())
    }

    @Test
    fun roundTrips() {
        val value = linkedMapOf("s" to "a\tb\u0001", "n" to 3L, "d" to 0.1, "l" to listOf(1L, null, false), "nan" to null)
        assertEquals(value, Json.parse(Json.write(value)))
        assertEquals("{\"x\": null}", Json.write(mapOf("x" to Double.NaN)))
    }

    @Test
    fun rejectsMalformedText() {
        for (bad in listOf("", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"abc", "{\"a\": 1,}", "tru", "[1] x", "-")) {
            try {
                Json.parse(bad)
                fail("accepted '$bad'")
            } catch (e: JsonException) {
            }
        }
    }
}
