package org.quantsr.demo.core

import java.io.File

/**
 * The shared vectors of the quantsr repository (the JSON files in `tests/vectors`, written by `tests/make_vectors.py` from
 * quantsr's Python code). Found from the system property `quantsr.vectors`, else by walking up from the working
 * directory to a folder holding `tests/vectors`.
 */
object Vectors {
    val dir: File by lazy {
        System.getProperty("quantsr.vectors")?.let { return@lazy File(it) }
        var d: File? = File(System.getProperty("user.dir")).absoluteFile
        while (d != null) {
            val v = File(d, "tests/vectors")
            if (File(v, "tiling.json").isFile) return@lazy v
            d = d.parentFile
        }
        throw IllegalStateException(
            "tests/vectors not found above ${System.getProperty("user.dir")}; pass -Dquantsr.vectors=/path/to/tests/vectors",
        )
    }

    fun text(name: String): String {
        val f = File(dir, name)
        check(f.isFile) { "$f is missing: run `python tests/make_vectors.py` in the quantsr repository" }
        return f.readText()
    }

    fun load(name: String): Map<String, Any?> = Json.parse(text(name)).asObject(name)
}

fun Map<String, Any?>.obj(key: String): Map<String, Any?> = this[key].asObject(key)

fun Map<String, Any?>.int(key: String): Int = (this[key] as Long).toInt()

fun Map<String, Any?>.objects(key: String): List<Map<String, Any?>> = this[key].asList(key).map { it.asObject(key) }
