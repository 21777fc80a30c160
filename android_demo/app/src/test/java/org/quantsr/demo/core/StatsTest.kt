package org.quantsr.demo.core

import org.junit.Assert.assertEquals
import org.junit.Test

class StatsTest {
    private val v = Vectors.load("latency.json")

    @Test
    fun latencyStatisticsMatchTheVectors() {
        for (c in v.objects("cases")) {
            val st = LatencyStats.of(c["samples"].asDoubleArray("samples"))
            val at = "samples ${c["samples"]}"
            assertEquals(at, c.int("n"), st.n)
            for ((key, got) in listOf(
                "min" to st.min,
                "max" to st.max,
                "median" to st.median,
                "p50" to st.p50,
                "p90" to st.p90,
                "p99" to st.p99,
            )) {
                assertEquals("$key of $at", (c[key] as Number).toDouble(), got, 0.0)
            }
            assertEquals("mean of $at", (c["mean"] as Number).toDouble(), st.mean, 1e-9)
        }
    }

    @Test
    fun benchRowHasQuantsrBenchFields() {
        val b = v.obj("bench_row")
        val want = b.obj("expected")
        val row =
            Bench.row(
                want["variant"] as String,
                b.int("side"),
                b.int("side"),
                b.int("scale"),
                b["samples_ms"].asDoubleArray("samples_ms"),
                (b["bytes"] as Long),
                (b["vm_rss_kb"] as Long),
            )
        for ((key, value) in want) {
            val got = row[key]
            if (value is Number && got is Number) {
                assertEquals(key, value.toDouble(), got.toDouble(), 0.0)
            } else if (value is List<*>) {
                assertEquals(key, value.map { (it as Number).toDouble() }, (got as List<*>).map { (it as Number).toDouble() })
            } else {
                assertEquals(key, value, got)
            }
        }
        // written and read back through the JSON writer
        val back = Json.parse(Json.write(row)).asObject("row")
        assertEquals(row.keys, back.keys)
    }

    @Test
    fun readsVmRss() {
        assertEquals(123456L, Bench.vmRssKb("Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t  123456 kB\n"))
        assertEquals(null, Bench.vmRssKb("Name:\tx\n"))
    }

    @Test
    fun roundsLikePython() {
        assertEquals(2.67, Bench.round(2.675, 2), 0.0) // 2.675 is 2.67499999... in binary
        assertEquals(0.1, Bench.round(0.125, 1), 0.0)
        assertEquals(120.6, Bench.round(123456 / 1024.0, 1), 0.0)
    }
}

class BenchmarkTest {
    @Test
    fun runsWarmupThenTimedIterationsPerSize() {
        var calls = 0
        var now = 0L
        val model =
            TileModel { input, h, _ ->
                calls++
                now += 1_500_000L * h / 64 // 1.5 ms per 64 rows
                FloatArray(input.size * 4)
            }
        val config = BenchmarkConfig(iterations = 5, warmup = 2, sizes = listOf(64, 128))
        val rows = Benchmark.run(model, "fake", 2, 42L, config, rssKb = { 2048L }, clockNs = { now })
        assertEquals(2 * (5 + 2), calls)
        assertEquals(listOf("64x64", "128x128"), rows.map { it["input"] })
        assertEquals(1.5, rows[0]["median_ms"])
        assertEquals(3.0, rows[1]["median_ms"])
        assertEquals(2.0, rows[0]["rss_mb"])
        assertEquals(round3((128.0 * 128) / 1e6 / 0.0015), rows[0]["megapixels_per_s"])
        val report = Json.parse(Benchmark.report(rows, Manifest.parse(Vectors.text("models.json"))[0], "test", config))
        assertEquals(2, report.asObject("report")["rows"].asList("rows").size)
    }

    @Test
    fun parsesSizes() {
        assertEquals(listOf(64, 256), BenchmarkConfig.parseSizes(null))
        assertEquals(listOf(32, 128), BenchmarkConfig.parseSizes(" 32, 128"))
        for (bad in listOf("x", "4", "2048")) {
            try {
                BenchmarkConfig.parseSizes(bad)
                org.junit.Assert.fail("accepted $bad")
            } catch (e: IllegalArgumentException) {
            }
        }
    }

    private fun round3(x: Double) = Bench.round(x, 3)
}
