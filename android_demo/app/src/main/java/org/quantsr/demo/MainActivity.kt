package org.quantsr.demo

import android.app.Activity
import android.content.Intent
import android.graphics.Bitmap
import android.os.Build
import android.os.Bundle
import android.util.Log
import android.view.ViewGroup
import android.widget.Button
import android.widget.ImageView
import android.widget.LinearLayout
import android.widget.TextView
import org.quantsr.demo.core.Bench
import org.quantsr.demo.core.Benchmark
import org.quantsr.demo.core.BenchmarkConfig
import org.quantsr.demo.core.Image
import org.quantsr.demo.core.ModelEntry
import org.quantsr.demo.core.Tiling
import java.io.File
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Pick a photo, pick a model from assets/models.json, upscale it tile by tile on a worker thread, compare
 * before/after, save. Started with `--ez benchmark true` it times the model instead (see README.md).
 */
class MainActivity : Activity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var models: List<ModelEntry> = emptyList()
    private var pushedModelDir: File? = null // `--es model_dir`: models pushed with adb instead of the assets
    private var modelsProblem: String? = null // why no models could be listed
    private var modelIndex = 0
    private var engine: Engine? = null // used on the worker thread only
    private var input: Image? = null
    private var before: Bitmap? = null
    private var after: Bitmap? = null
    private var showingAfter = false
    private var busy = false

    private lateinit var status: TextView
    private lateinit var picture: ImageView
    private lateinit var modelButton: Button
    private lateinit var upscaleButton: Button
    private lateinit var compareButton: Button
    private lateinit var saveButton: Button

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        buildViews()
        pushedModelDir = intent.getStringExtra(EXTRA_MODEL_DIR)?.let { File(it) }
        try {
            models = pushedModelDir?.let { Models.listPushed(it) } ?: Models.list(assets)
        } catch (e: Exception) {
            modelsProblem = e.message
            say("${e.message}")
        }
        if (models.isNotEmpty()) {
            val wanted = intent.getStringExtra(EXTRA_MODEL)
            modelIndex = models.indexOfFirst { it.file == wanted || it.name == wanted }.coerceAtLeast(0)
            showModel()
        }
        if (intent.getBooleanExtra(EXTRA_BENCHMARK, false)) benchmark()
        refresh()
    }

    override fun onDestroy() {
        worker.execute { engine?.close() }
        worker.shutdown()
        super.onDestroy()
    }

    private fun buildViews() {
        val wrap = ViewGroup.LayoutParams.WRAP_CONTENT
        val match = ViewGroup.LayoutParams.MATCH_PARENT

        fun button(
            label: String,
            row: LinearLayout,
            onClick: () -> Unit,
        ): Button {
            val b = Button(this)
            b.text = label
            b.setOnClickListener { onClick() }
            row.addView(b, LinearLayout.LayoutParams(0, wrap, 1f))
            return b
        }
        val root = LinearLayout(this)
        root.orientation = LinearLayout.VERTICAL
        root.fitsSystemWindows = true // targetSdk 35 draws edge to edge: keep the buttons off the status bar
        val row1 = LinearLayout(this)
        val row2 = LinearLayout(this)
        button("Pick photo", row1) { pickPhoto() }
        modelButton = button("No model", row1) { nextModel() }
        upscaleButton = button("Upscale", row2) { upscale() }
        compareButton = button("Before", row2) { toggleCompare() }
        saveButton = button("Save", row2) { save() }
        status = TextView(this)
        status.setPadding(16, 8, 16, 8)
        picture = ImageView(this)
        picture.scaleType = ImageView.ScaleType.FIT_CENTER
        root.addView(row1, LinearLayout.LayoutParams(match, wrap))
        root.addView(row2, LinearLayout.LayoutParams(match, wrap))
        root.addView(status, LinearLayout.LayoutParams(match, wrap))
        root.addView(picture, LinearLayout.LayoutParams(match, 0, 1f))
        setContentView(root)
    }

    private fun refresh() {
        val model = models.getOrNull(modelIndex)
        upscaleButton.isEnabled = !busy && input != null && model != null
        modelButton.isEnabled = !busy && models.size > 1
        compareButton.isEnabled = after != null
        compareButton.text = if (showingAfter) "Before" else "After"
        saveButton.isEnabled = !busy && after != null
        picture.setImageBitmap(if (showingAfter) after else before)
    }

    private fun say(text: String) {
        Log.i(TAG, text)
        runOnUiThread { status.text = text }
    }

    private fun showModel() {
        val m = models[modelIndex]
        modelButton.text = m.label
        val size = m.bytes?.let { "%.2f MB".format(it / 1e6) } ?: "size unknown"
        say("${m.label}: x${m.scale}, ${m.file}, $size, tile ${m.tile} + ${m.overlap} px margin")
    }

    private fun nextModel() {
        modelIndex = (modelIndex + 1) % models.size
        showModel()
        refresh()
    }

    private fun pickPhoto() {
        val pick = Intent(Intent.ACTION_GET_CONTENT)
        pick.type = "image/*"
        pick.addCategory(Intent.CATEGORY_OPENABLE)
        startActivityForResult(pick, REQUEST_PHOTO)
    }

    override fun onActivityResult(
        requestCode: Int,
        resultCode: Int,
        data: Intent?,
    ) {
        super.onActivityResult(requestCode, resultCode, data)
        val uri = data?.data
        if (requestCode != REQUEST_PHOTO || resultCode != RESULT_OK || uri == null) return
        inBackground("cannot open the photo") {
            val image = Photos.decode(contentResolver, uri)
            val scale = models.getOrNull(modelIndex)?.scale ?: 4
            val (w, h) = Tiling.fitInput(image.width, image.height, scale, MAX_OUTPUT_PIXELS)
            val fitted = Photos.scaled(image, w, h)
            val note = if (w != image.width) " (reduced from ${image.width}x${image.height} to fit memory)" else ""
            val bitmap = Photos.toBitmap(fitted)
            runOnUiThread {
                input = fitted
                before = bitmap
                after = null
                showingAfter = false
            }
            say("photo ${fitted.width}x${fitted.height}$note")
        }
    }

    /**
     * Runs `task` on the worker thread with the buttons disabled; an exception is logged and shown as
     * "`failure`: message". Afterwards the buttons come back and `then` runs, on the UI thread.
     */
    private fun inBackground(
        failure: String,
        then: () -> Unit = {},
        task: () -> Unit,
    ) {
        busy = true
        refresh()
        worker.execute {
            try {
                task()
            } catch (e: Exception) {
                Log.e(TAG, failure, e)
                say("$failure: ${e.message}")
            }
            runOnUiThread {
                busy = false
                refresh()
                then()
            }
        }
    }

    /** Loads (or reuses) the engine for `model`; worker thread only. */
    private fun engineFor(
        model: ModelEntry,
        threads: Int,
    ): Engine {
        engine?.let { if (it.entry == model) return it }
        engine?.close()
        engine = null
        say("loading ${model.file} ...")
        val file = pushedModelDir?.let { Models.pushed(it, model) } ?: Models.install(assets, model, filesDir)
        return Engine(file.path, model, threads).also { engine = it }
    }

    private fun upscale() {
        val image = input ?: return
        val model = models[modelIndex]
        inBackground("upscale failed") {
            val e = engineFor(model, 0)
            val out = Bitmap.createBitmap(image.width * model.scale, image.height * model.scale, Bitmap.Config.ARGB_8888)
            val tile = Tiling.tileFor(model.tile, model.overlap, model.fixedSide)
            val start = System.nanoTime()
            val tiles =
                Tiling.upscale(
                    image,
                    model.scale,
                    tile,
                    model.overlap,
                    e,
                    Photos.sinkInto(out),
                    minSide = model.minSide,
                    fixedSide = model.fixedSide,
                    progress = { done, total -> say("tile $done / $total") },
                )
            val ms = (System.nanoTime() - start) / 1e6
            runOnUiThread {
                after = out
                showingAfter = true
            }
            val size = File(e.path).length() / 1e6
            say(
                "${model.label}: ${image.width}x${image.height} -> ${out.width}x${out.height} in " +
                    "%.0f ms (%d tiles, %.1f ms/tile); model %.2f MB".format(ms, tiles, ms / tiles, size),
            )
        }
    }

    private fun toggleCompare() {
        showingAfter = !showingAfter
        refresh()
    }

    private fun save() {
        val bitmap = after ?: return
        inBackground("save failed") {
            val name = "quantsr_x${models[modelIndex].scale}_${System.currentTimeMillis()}.png"
            say("saved ${Photos.save(contentResolver, bitmap, name, getExternalFilesDir("Pictures"))}")
        }
    }

    /**
     * `adb shell am start ... --ez benchmark true [--ei iterations 20] [--ei warmup 3] [--es sizes 64,256] ...`;
     * logs QUANTSR_BENCHMARK_DONE <file> or QUANTSR_BENCHMARK_FAILED: <why> (`quantsr mobile bench-android` waits
     * for them).
     */
    private fun benchmark() {
        val model = models.getOrNull(modelIndex) ?: return say("QUANTSR_BENCHMARK_FAILED: no models: $modelsProblem")
        val exitWhenDone = intent.getBooleanExtra(EXTRA_EXIT, false)
        inBackground("QUANTSR_BENCHMARK_FAILED", then = { if (exitWhenDone) finish() }) {
            val config =
                BenchmarkConfig(
                    iterations = intent.getIntExtra(EXTRA_ITERATIONS, 20),
                    warmup = intent.getIntExtra(EXTRA_WARMUP, 3),
                    sizes =
                        model.fixedSide?.let { listOf(it) }
                            ?: BenchmarkConfig.parseSizes(intent.getStringExtra(EXTRA_SIZES), model.minSide),
                    threads = intent.getIntExtra(EXTRA_THREADS, 0),
                )
            val e = engineFor(model, config.threads)
            val rows =
                Benchmark.run(
                    e,
                    "${model.label} (executorch-android)",
                    model.scale,
                    File(e.path).length(),
                    config,
                    rssKb = { Bench.vmRssKb(File("/proc/self/status").readText()) },
                    progress = { say("benchmark $it") },
                )
            val device = "${Build.MANUFACTURER} ${Build.MODEL} (API ${Build.VERSION.SDK_INT})"
            val text = Benchmark.report(rows, model, device, config)
            val dir = getExternalFilesDir(null) ?: filesDir
            val file = File(dir, BENCHMARK_FILE)
            file.writeText(text)
            File(filesDir, BENCHMARK_FILE).writeText(text)
            val summary = rows.joinToString("; ") { "${it["input"]}: ${it["median_ms"]} ms median" }
            say("benchmark done: $summary; wrote ${file.path}")
            Log.i(TAG, "QUANTSR_BENCHMARK_DONE ${file.path}")
        }
    }

    companion object {
        const val TAG = "quantsr"
        const val REQUEST_PHOTO = 1
        const val MAX_OUTPUT_PIXELS = 16_000_000L // 64 MB as ARGB_8888
        const val BENCHMARK_FILE = "benchmark_results.json"
        const val EXTRA_BENCHMARK = "benchmark"
        const val EXTRA_ITERATIONS = "iterations"
        const val EXTRA_WARMUP = "warmup"
        const val EXTRA_SIZES = "sizes"
        const val EXTRA_THREADS = "threads"
        const val EXTRA_MODEL = "model"
        const val EXTRA_MODEL_DIR = "model_dir"
        const val EXTRA_EXIT = "exit"
    }
}
