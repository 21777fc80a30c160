package org.quantsr.demo

import android.content.res.AssetManager
import org.quantsr.demo.core.Manifest
import org.quantsr.demo.core.ModelEntry
import java.io.File
import java.io.FileNotFoundException
import java.io.IOException
import java.security.MessageDigest

/** models.json and the `.pte` files in the APK's assets; ExecuTorch needs a real file, so models are copied out. */
object Models {
    const val MANIFEST = "models.json"

    fun list(assets: AssetManager): List<ModelEntry> {
        val text =
            try {
                assets.open(MANIFEST).use { it.readBytes().toString(Charsets.UTF_8) }
            } catch (e: FileNotFoundException) {
                throw IOException(
                    "no $MANIFEST in the app's assets: put the exported .pte files and $MANIFEST into " +
                        "android_demo/app/src/main/assets (see android_demo/README.md) and rebuild",
                )
            }
        return executorchModels(text)
    }

    /** models.json and `.pte` files pushed to a folder on the device (`--es model_dir`, see README.md). */
    fun listPushed(dir: File): List<ModelEntry> {
        val manifest = File(dir, MANIFEST)
        if (!manifest.isFile) throw IOException("no $MANIFEST in $dir: push it with the .pte files")
        return executorchModels(manifest.readText())
    }

    /** A pushed model, run in place (it is a real file already), after the same checks as an installed copy. */
    fun pushed(
        dir: File,
        entry: ModelEntry,
    ): File {
        val file = File(dir, entry.file)
        if (!file.isFile) throw IOException("$MANIFEST lists ${entry.file} but $dir does not hold it")
        if (!matches(file, entry)) throw IOException("${entry.file}: size or sha256 differs from $MANIFEST in $dir")
        return file
    }

    private fun executorchModels(manifest: String): List<ModelEntry> {
        val models = Manifest.parse(manifest).filter { it.isExecuTorch }
        if (models.isEmpty()) throw IOException("$MANIFEST lists no ExecuTorch (.pte) models")
        return models
    }

    /** Whether `file` has the size and sha256 that models.json gives (when it gives them). */
    private fun matches(
        file: File,
        entry: ModelEntry,
    ): Boolean =
        (entry.bytes == null || file.length() == entry.bytes) &&
            (entry.sha256 == null || sha256(file) == entry.sha256)

    /** The model's path under `filesDir/models`, copied from the assets unless an identical copy is there. */
    fun install(
        assets: AssetManager,
        entry: ModelEntry,
        filesDir: File,
    ): File {
        val dir = File(filesDir, "models")
        dir.mkdirs()
        val target = File(dir, entry.file)
        if (target.isFile && matches(target, entry)) return target
        val tmp = File(dir, entry.file + ".tmp")
        try {
            assets.open(entry.file).use { input -> tmp.outputStream().use { input.copyTo(it, 1 shl 16) } }
        } catch (e: FileNotFoundException) {
            throw IOException("models.json lists ${entry.file} but the assets do not hold it")
        }
        if (entry.sha256 != null && sha256(tmp) != entry.sha256) {
            tmp.delete()
            throw IOException("${entry.file}: sha256 differs from models.json (stale assets? re-run `quantsr mobile sync --app android`)")
        }
        if (!tmp.renameTo(target)) throw IOException("cannot move $tmp to $target")
        return target
    }

    fun sha256(file: File): String {
        val md = MessageDigest.getInstance("SHA-256")
        file.inputStream().use { input ->
            val buf = ByteArray(1 shl 16)
            while (true) {
                val n = input.read(buf)
                if (n < 0) break
                md.update(buf, 0, n)
            }
        }
        return md.digest().joinToString("") { "%02x".format(it) }
    }
}
