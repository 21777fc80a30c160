package org.quantsr.demo.core

/** A malformed JSON text; the message says where. */
class JsonException(
    message: String,
) : IllegalArgumentException(message)

/**
 * A tiny JSON reader and writer (no Android classes, no libraries): objects become `Map<String, Any?>` (key
 * order kept), arrays `List<Any?>`, integers `Long`, other numbers `Double`, then `String`, `Boolean`, `null`.
 */
object Json {
    fun parse(text: String): Any? = Reader(text).document()

    fun write(value: Any?): String = StringBuilder().also { write(it, value) }.toString()

    private fun write(
        out: StringBuilder,
        value: Any?,
    ) {
        when (value) {
            null -> {
                out.append("null")
            }

            is String -> {
                writeString(out, value)
            }

            is Boolean -> {
                out.append(value)
            }

            is Double -> {
                out.append(if (value.isFinite()) value.toString() else "null")
            }

            is Float -> {
                write(out, value.toDouble())
            }

            is Number -> {
                out.append(value.toLong())
            }

            is Map<*, *> -> {
                out.append('{')
                value.entries.forEachIndexed { i, e ->
                    if (i > 0) out.append(", ")
                    writeString(out, e.key.toString())
                    out.append(": ")
                    write(out, e.value)
                }
                out.append('}')
            }

            is Iterable<*> -> {
                out.append('[')
                value.forEachIndexed { i, v ->
                    if (i > 0) out.append(", ")
                    write(out, v)
                }
                out.append(']')
            }

            is DoubleArray -> {
                write(out, value.toList())
            }

            is IntArray -> {
                write(out, value.toList())
            }

            is LongArray -> {
                write(out, value.toList())
            }

            else -> {
                throw IllegalArgumentException("cannot write ${value::class.java.name} as JSON")
            }
        }
    }

    private fun writeString(
        out: StringBuilder,
        s: String,
    ) {
        out.append('"')
        for (c in s) {
            when {
                c == '"' -> out.append("\\\"")
                c == '\\' -> out.append("\\\\")
                c == '\n' -> out.append("\\n")
                c == '\r' -> out.append("\\r")
                c == '\t' -> out.append("\\t")
                c < ' ' -> out.append(String.format("\\u%04x", c.code))
                else -> out.append(c)
            }
        }
        out.append('"')
    }

    private class Reader(
        val s: String,
    ) {
        var i = 0

        fun document(): Any? {
            val v = value()
            skipSpace()
            if (i != s.length) fail("unexpected '${s[i]}' after the value")
            return v
        }

        fun fail(what: String): Nothing = throw JsonException("invalid JSON at offset $i: $what")

        fun skipSpace() {
            while (i < s.length && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
        }

        fun value(): Any? {
            skipSpace()
            if (i >= s.length) fail("unexpected end of text")
            return when (val c = s[i]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c == '-' || c in '0'..'9') number() else fail("unexpected '$c'")
            }
        }

        fun literal(
            word: String,
            v: Any?,
        ): Any? {
            if (!s.startsWith(word, i)) fail("expected $word")
            i += word.length
            return v
        }

        fun obj(): Map<String, Any?> {
            val map = LinkedHashMap<String, Any?>()
            i++
            skipSpace()
            if (i < s.length && s[i] == '}') {
                i++
                return map
            }
            while (true) {
                skipSpace()
                if (i >= s.length || s[i] != '"') fail("expected a string key")
                val key = string()
                skipSpace()
                if (i >= s.length || s[i] != ':') fail("expected ':'")
                i++
                map[key] = value()
                if (endOf('}', "object")) return map
            }
        }

        /** After an item of an object or array: true at its `close`, false after a ',' (another item follows). */
        fun endOf(
            close: Char,
            what: String,
        ): Boolean {
            skipSpace()
            if (i >= s.length) fail("unterminated $what")
            return when (s[i++]) {
                ',' -> {
                    false
                }

                close -> {
                    true
                }

                else -> {
                    i--
                    fail("expected ',' or '$close'")
                }
            }
        }

        fun array(): List<Any?> {
            val list = ArrayList<Any?>()
            i++
            skipSpace()
            if (i < s.length && s[i] == ']') {
                i++
                return list
            }
            while (true) {
                list.add(value())
                if (endOf(']', "array")) return list
            }
        }

        fun string(): String {
            val sb = StringBuilder()
            i++
            while (true) {
                if (i >= s.length) fail("unterminated string")
                val c = s[i++]
                when {
                    c == '"' -> {
                        return sb.toString()
                    }

                    c == '\\' -> {
                        if (i >= s.length) fail("unterminated escape")
                        when (val e = s[i++]) {
                            '"', '\\', '/' -> {
                                sb.append(e)
                            }

                            'b' -> {
                                sb.append('\b')
                            }

                            'f' -> {
                                sb.append('\u000C')
                            }

                            'n' -> {
                                sb.append('\n')
                            }

                            'r' -> {
                                sb.append('\r')
                            }

                            't' -> {
                                sb.append('\t')
                            }

                            'u' -> {
                                if (i + 4 > s.length) fail("short \\u escape")
                                val code = s.substring(i, i + 4).toIntOrNull(16) ?: fail("bad \\u escape")
                                sb.append(code.toChar())
                                i += 4
                            }

                            else -> {
                                fail("bad escape \\$e")
                            }
                        }
                    }

                    c < ' ' -> {
                        fail("control character in string")
                    }

                    else -> {
                        sb.append(c)
                    }
                }
            }
        }

        fun number(): Any {
            val start = i
            if (s[i] == '-') i++
            if (i >= s.length || s[i] !in '0'..'9') fail("bad number")
            if (s[i] == '0') i++ else while (i < s.length && s[i] in '0'..'9') i++
            var integer = true
            if (i < s.length && s[i] == '.') {
                integer = false
                i++
                if (i >= s.length || s[i] !in '0'..'9') fail("bad number")
                while (i < s.length && s[i] in '0'..'9') i++
            }
            if (i < s.length && (s[i] == 'e' || s[i] == 'E')) {
                integer = false
                i++
                if (i < s.length && (s[i] == '+' || s[i] == '-')) i++
                if (i >= s.length || s[i] !in '0'..'9') fail("bad number")
                while (i < s.length && s[i] in '0'..'9') i++
            }
            val text = s.substring(start, i)
            return if (integer) text.toLongOrNull() ?: text.toDouble() else text.toDouble()
        }
    }
}

/** Typed views of parsed JSON for readers of vectors and manifests. */
@Suppress("UNCHECKED_CAST")
fun Any?.asObject(what: String): Map<String, Any?> = this as? Map<String, Any?> ?: throw JsonException("$what must be a JSON object")

fun Any?.asList(what: String): List<Any?> = this as? List<*> ?: throw JsonException("$what must be a JSON array")

fun Any?.asDoubleArray(what: String): DoubleArray =
    asList(what).map { (it as? Number ?: throw JsonException("$what must hold numbers")).toDouble() }.toDoubleArray()

fun Any?.asFloatArray(what: String): FloatArray = asDoubleArray(what).let { d -> FloatArray(d.size) { d[it].toFloat() } }

fun Any?.asIntArray(what: String): IntArray =
    asList(what)
        .map {
            val n = it as? Long ?: throw JsonException("$what must hold integers")
            if (n < Int.MIN_VALUE || n > Int.MAX_VALUE) throw JsonException("$what: $n is not a 32-bit integer")
            n.toInt()
        }.toIntArray()
