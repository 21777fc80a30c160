package org.quantsr.demo.core

import kotlin.random.Random

/** Benchmark-mode settings, from the launching intent's extras (see android_demo/README.md). */
data class BenchmarkConfig(
    val iterations: Int = 20,
    val warmup: Int = 3,
    val sizes: List<Int> = listOf(64, 256),
    val threads: Int = 0,
) {
    companion object {
        /** "64,256" -> [64, 256]; sides must lie in [min, 1024]. */
        fun parseSizes(
            text: String?,
            minSide: Int = Tiling.MIN_SIDE,
        ): List<Int> {
            if (text.isNullOrBlank()) return BenchmarkConfig().sizes
            return text.split(',').map {
                val side = it.trim().toIntOrNull() ?: throw IllegalArgumentException("sizes: '$it' is not an integer")
                require(side in minSide..1024) { "sizes: $side is outside [$minSide, 1024]" }
                side
            }
        }
    }
}

/**
 * Times `model` like `quantsr bench`: a fixed random input per size (seeded by the side), `warmup` untimed runs,
 * then `iterations` timed runs; one row per size with the fields of quantsr.bench.rows.BenchRow.
 */
object Benchmark {
    fun run(
        model: TileModel,
        variant: String,
        scale: Int,
        bytes: Long?,
        config: BenchmarkConfig,
        rssKb: () -> Long?,
        clockNs: () -> Long = System::nanoTime,
        progress: (String) -> Unit = {},
    ): List<Map<String, Any?>> {
        require(config.iterations >= 1) { "iterations must be >= 1" }
        val rows = ArrayList<Map<String, Any?>>()
        for (side in config.sizes) {
            val rng = Random(side)
            val input = FloatArray(3 * side * side) { rng.nextFloat() }
            repeat(config.warmup) { model.run(input, side, side) }
            val rss = rssKb()
            val samples = DoubleArray(config.iterations)
            for (i in 0 until config.iterations) {
                val start = clockNs()
                model.run(input, side, side)
                samples[i] = (clockNs() - start) / 1e6
                progress("${side}x$side: ${i + 1}/${config.iterations}")
            }
            rows.add(Bench.row(variant, side, side, scale, samples, bytes, rss))
        }
        return rows
    }

    /** The results file: like `quantsr bench --json` ({"rows": [...]}) plus what identifies the run. */
    fun report(
        rows: List<Map<String, Any?>>,
        model: ModelEntry,
        device: String,
        config: BenchmarkConfig,
    ): String =
        Json.write(
            linkedMapOf(
                "app" to "quantsr android demo",
                "runtime" to "executorch-android 1.5.1",
                "device" to device,
                "model" to model.file,
                "sha256" to model.sha256,
                "threads" to config.threads,
                "iterations" to config.iterations,
                "warmup" to config.warmup,
                "percentiles" to "nearest-rank; median_ms as Python statistics.median",
                "rows" to rows,
            ),
        ) + "\n"
}
