package org.quantsr.demo

import android.content.ContentResolver
import android.content.ContentValues
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.media.ExifInterface
import android.net.Uri
import android.os.Build
import android.os.Environment
import android.provider.MediaStore
import org.quantsr.demo.core.Image
import org.quantsr.demo.core.Orientation
import org.quantsr.demo.core.TileSink
import java.io.File
import java.io.IOException

/** Bitmap <-> pixels, photo decoding (EXIF orientation applied, as quantsr does) and saving. */
object Photos {
    fun decode(
        resolver: ContentResolver,
        uri: Uri,
    ): Image {
        val bitmap =
            resolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it) }
                ?: throw IOException("cannot decode $uri as an image")
        val orientation =
            try {
                resolver.openInputStream(uri)?.use {
                    ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
                } ?: ExifInterface.ORIENTATION_NORMAL
            } catch (e: IOException) {
                ExifInterface.ORIENTATION_NORMAL
            }
        val image = toImage(bitmap)
        bitmap.recycle()
        return Orientation.upright(image, orientation)
    }

    fun toImage(bitmap: Bitmap): Image {
        val w = bitmap.width
        val h = bitmap.height
        val pixels = IntArray(w * h)
        bitmap.getPixels(pixels, 0, w, 0, 0, w, h)
        return Image(w, h, pixels)
    }

    fun toBitmap(image: Image): Bitmap {
        val bitmap = Bitmap.createBitmap(image.width, image.height, Bitmap.Config.ARGB_8888)
        bitmap.setPixels(image.argb, 0, image.width, 0, 0, image.width, image.height)
        return bitmap
    }

    /** Finished tiles go straight into the output bitmap (no full-size float or int copy of the output). */
    fun sinkInto(bitmap: Bitmap) = TileSink { argb, x, y, w, h -> bitmap.setPixels(argb, 0, w, x, y, w, h) }

    fun scaled(
        image: Image,
        width: Int,
        height: Int,
    ): Image {
        if (width == image.width && height == image.height) return image
        val src = toBitmap(image)
        val small = Bitmap.createScaledBitmap(src, width, height, true)
        src.recycle()
        return toImage(small).also { small.recycle() }
    }

    /** Saves a PNG: MediaStore Pictures/quantsr on Android 10+, the app's own Pictures folder before. */
    fun save(
        resolver: ContentResolver,
        bitmap: Bitmap,
        name: String,
        appPictures: File?,
    ): String {
        if (Build.VERSION.SDK_INT >= 29) {
            val values = ContentValues()
            values.put(MediaStore.MediaColumns.DISPLAY_NAME, name)
            values.put(MediaStore.MediaColumns.MIME_TYPE, "image/png")
            values.put(MediaStore.MediaColumns.RELATIVE_PATH, Environment.DIRECTORY_PICTURES + "/quantsr")
            values.put(MediaStore.MediaColumns.IS_PENDING, 1)
            val uri =
                resolver.insert(MediaStore.Images.Media.EXTERNAL_CONTENT_URI, values)
                    ?: throw IOException("MediaStore refused a new image")
            try {
                resolver.openOutputStream(uri)?.use { bitmap.compress(Bitmap.CompressFormat.PNG, 100, it) }
                    ?: throw IOException("cannot write $uri")
                val done = ContentValues()
                done.put(MediaStore.MediaColumns.IS_PENDING, 0)
                resolver.update(uri, done, null, null)
            } catch (e: IOException) {
                resolver.delete(uri, null, null)
                throw e
            }
            return "Pictures/quantsr/$name"
        }
        val dir = appPictures ?: throw IOException("no external storage")
        dir.mkdirs()
        val file = File(dir, name)
        file.outputStream().use { bitmap.compress(Bitmap.CompressFormat.PNG, 100, it) }
        return file.path
    }
}
