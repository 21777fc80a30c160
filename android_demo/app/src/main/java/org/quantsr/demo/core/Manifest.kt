package org.quantsr.demo.core

/** A models.json that the app cannot use; the message names the entry and field. */
class ManifestException(
    message: String,
) : IllegalArgumentException(message)

/** One model of `models.json` (fields of the `quantsr export` model card plus `name` and `overlap`). */
data class ModelEntry(
    val name: String,
    val file: String,
    val sha256: String?,
    val bytes: Long?,
    val scale: Int,
    val weightBits: Int?,
    val activationBits: Int?,
    val backend: String?,
    val tile: Int,
    val overlap: Int,
    val minSide: Int,
    val inputName: String,
    val inputShape: List<Long>?,
    val outputName: String,
    val outputShape: List<Long>?,
) {
    /** Whether this app can run it: ExecuTorch `.pte` files (a shared models.json may also list Core ML ones). */
    val isExecuTorch: Boolean get() = (backend == null || backend.startsWith("executorch")) && file.endsWith(".pte")

    /** The fixed input side of a model exported with `--tile`, null for dynamic H/W. */
    val fixedSide: Int? get() = inputShape?.let { it[2].toInt() }

    /** The name, with the bit-widths appended unless the name already states them (sync writes "... W4A4"). */
    val label: String
        get() {
            val bits = weightBits?.let { "W${it}A${activationBits ?: it}" } ?: return name
            return if (name.contains(bits)) name else "$name ($bits)"
        }
}

/**
 * Reads `models.json`: `{"schema": 1, "models": [{"name", "file", "scale", ...}]}`. Required per model: `name`,
 * `file` (a plain file name next to models.json) and `scale`; defaults: tile 256, overlap 16, min_side 8,
 * input/output names `lr`/`sr`, shapes null (dynamic H/W).
 */
object Manifest {
    const val SCHEMA = 1
    const val DEFAULT_TILE = 256
    const val DEFAULT_OVERLAP = 16

    fun parse(text: String): List<ModelEntry> {
        val root =
            try {
                Json.parse(text)
            } catch (e: JsonException) {
                throw ManifestException("models.json is not valid JSON: ${e.message}")
            }
        if (root !is Map<*, *>) throw ManifestException("models.json must be a JSON object with \"models\"")
        val schema = root["schema"]
        if (schema != null && schema != SCHEMA.toLong()) {
            throw ManifestException("unsupported models.json schema $schema (this app reads schema $SCHEMA)")
        }
        val models = root["models"] as? List<*> ?: throw ManifestException("models.json has no \"models\" array")
        return models.mapIndexed { i, m ->
            entry(m as? Map<*, *> ?: throw ManifestException("models[$i] is not an object"), "models[$i]")
        }
    }

    private fun entry(
        m: Map<*, *>,
        at: String,
    ): ModelEntry {
        fun str(key: String): String? =
            when (val v = m[key]) {
                null -> null
                is String -> v
                else -> throw ManifestException("$at: \"$key\" must be a string")
            }

        fun int(
            key: String,
            from: Map<*, *> = m,
        ): Int? =
            when (val v = from[key]) {
                null -> {
                    null
                }

                is Long -> {
                    if ((v >= 1 || (key == "overlap" && v == 0L)) &&
                        v <= Int.MAX_VALUE
                    ) {
                        v.toInt()
                    } else {
                        throw ManifestException("$at: \"$key\" out of range: $v")
                    }
                }

                else -> {
                    throw ManifestException("$at: \"$key\" must be an integer, got ${Json.write(v)}")
                }
            }

        fun shape(key: String): List<Long>? {
            val io = m[key] as? Map<*, *> ?: return null
            val s = io["shape"] ?: return null
            val dims = (s as? List<*>)?.map { it as? Long }
            if (dims == null || dims.size != 4 || dims.any { it == null || it < 1 } || dims[1] != 3L) {
                throw ManifestException("$at: \"$key\".shape must be [1, 3, H, W] or null, got ${Json.write(s)}")
            }
            return dims.map { it!! }
        }
        val file = str("file") ?: throw ManifestException("$at: missing \"file\"")
        if (file.isEmpty() || file.contains('/') || file.contains('\\') || file.startsWith(".")) {
            throw ManifestException("$at: \"file\" must be a plain file name next to models.json, got \"$file\"")
        }
        val scale = int("scale") ?: throw ManifestException("$at: missing \"scale\"")
        val bits = m["bits"] as? Map<*, *>
        val input = m["input"] as? Map<*, *>
        val output = m["output"] as? Map<*, *>
        val inputShape = shape("input")
        val outputShape = shape("output")
        if (inputShape != null && outputShape != null &&
            (outputShape[2] != inputShape[2] * scale || outputShape[3] != inputShape[3] * scale)
        ) {
            throw ManifestException("$at: output shape $outputShape is not input shape $inputShape x$scale")
        }
        return ModelEntry(
            name = str("name") ?: file,
            file = file,
            sha256 = str("sha256"),
            bytes = (m["bytes"] as? Long),
            scale = scale,
            weightBits = bits?.let { int("weights", it) },
            activationBits = bits?.let { int("activations", it) },
            backend = str("backend"),
            tile = int("tile") ?: DEFAULT_TILE,
            overlap = int("overlap") ?: DEFAULT_OVERLAP,
            minSide = int("min_side") ?: Tiling.MIN_SIDE,
            inputName = input?.get("name") as? String ?: "lr",
            inputShape = inputShape,
            outputName = output?.get("name") as? String ?: "sr",
            outputShape = outputShape,
        )
    }
}
