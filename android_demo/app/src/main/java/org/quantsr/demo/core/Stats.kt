package org.quantsr.demo.core

import java.math.BigDecimal
import java.math.RoundingMode
import kotlin.math.ceil

/**
 * Latency statistics: `median` as Python's `statistics.median` (mean of the two middle values for an even count;
 * what `quantsr bench` reports as median_ms), p50/p90/p99 nearest-rank (`sorted[ceil(p / 100 * n) - 1]`), mean
 * as a left-to-right sum divided by n.
 */
data class LatencyStats(
    val n: Int,
    val min: Double,
    val max: Double,
    val mean: Double,
    val median: Double,
    val p50: Double,
    val p90: Double,
    val p99: Double,
) {
    companion object {
        fun of(samples: DoubleArray): LatencyStats {
            require(samples.isNotEmpty()) { "no latency samples" }
            val s = samples.sortedArray()
            val n = s.size
            var total = 0.0
            for (x in samples) total += x
            val median = if (n % 2 == 1) s[n / 2] else (s[n / 2 - 1] + s[n / 2]) / 2.0
            return LatencyStats(n, s[0], s[n - 1], total / n, median, nearestRank(s, 50.0), nearestRank(s, 90.0), nearestRank(s, 99.0))
        }

        fun nearestRank(
            sorted: DoubleArray,
            p: Double,
        ): Double = sorted[maxOf(1, ceil(p / 100.0 * sorted.size).toInt()) - 1]
    }
}

/** Benchmark rows with the fields of `quantsr bench`'s JSON rows (quantsr.bench.rows.BenchRow). */
object Bench {
    /** Python's `round(x, digits)` (exact binary value, ties to even). */
    fun round(
        x: Double,
        digits: Int,
    ): Double = BigDecimal(x).setScale(digits, RoundingMode.HALF_EVEN).toDouble()

    /** `VmRSS` of a /proc/<pid>/status text, in kB; null if absent. */
    fun vmRssKb(status: String): Long? =
        status
            .lineSequence()
            .firstOrNull { it.startsWith("VmRSS:") }
            ?.substringAfter(':')
            ?.trim()
            ?.substringBefore(' ')
            ?.toLongOrNull()

    /**
     * One row: `variant`, `input` ("WxH"), `median_ms`, `megapixels_per_s` (output), `bytes`, `gzip_bytes`,
     * `ideal_bytes`, `set5_psnr` (null here), `rss_mb`, `samples_ms`, plus `p90_ms`, `p99_ms`, `mean_ms`, `min_ms`.
     */
    fun row(
        variant: String,
        width: Int,
        height: Int,
        scale: Int,
        samplesMs: DoubleArray,
        bytes: Long?,
        rssKb: Long?,
    ): Map<String, Any?> {
        val st = LatencyStats.of(samplesMs)
        val outPixels = (width.toLong() * scale) * (height.toLong() * scale)
        return linkedMapOf(
            "variant" to variant,
            "input" to "${width}x$height",
            "median_ms" to round(st.median, 2),
            "megapixels_per_s" to round(outPixels / 1e6 / (st.median / 1000.0), 3),
            "bytes" to bytes,
            "gzip_bytes" to null,
            "ideal_bytes" to null,
            "set5_psnr" to null,
            "rss_mb" to rssKb?.let { round(it / 1024.0, 1) },
            "samples_ms" to samplesMs.map { round(it, 2) },
            "p90_ms" to round(st.p90, 2),
            "p99_ms" to round(st.p99, 2),
            "mean_ms" to round(st.mean, 2),
            "min_ms" to round(st.min, 2),
        )
    }
}
