package android.graphics;

import java.io.InputStream;

/** Compile-check stub. */
public class BitmapFactory {
    public static Bitmap decodeStream(InputStream is) { return null; }
}
