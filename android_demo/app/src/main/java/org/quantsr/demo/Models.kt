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
        val models = Manifest.parse(text).filter { it.isExecuTorch }
        if (models.isEmpty()) throw IOException("$MANIFEST lists no ExecuTorch (.pte) models")
        return models
    }

    /** The model's path under `filesDir/models`, copied from the assets unless an identical copy is there. */
    fun install(
        assets: AssetManager,
        entry: ModelEntry,
        filesDir: File,
    ): File {
        val dir = File(filesDir, "models")
        dir.mkdirs()
        val target = File(dir, entry.file)
        if (target.isFile && (entry.bytes == null || target.length() == entry.bytes) &&
            (entry.sha256 == null || sha256(target) == entry.sha256)
        ) {
            return target
        }
        val tmp = File(dir, entry.file + ".tmp")
        try {
            assets.open(entry.file).use { input -> tmp.outputStream().use { input.copyTo(it, 1 shl 16) } }
        } catch (e: FileNotFoundException) {
            throw IOException("models.json lists ${entry.file} but the assets do not hold it")
        }
        if (entry.sha256 != null && sha256(tmp) != entry.sha256) {
            tmp.delete()
            throw IOException("${entry.file}: sha256 differs from models.json (stale assets? re-run the sync)")
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
