package android.media;

import java.io.IOException;
import java.io.InputStream;

/** Compile-check stub (the InputStream constructor is API 24). */
public class ExifInterface {
    public static final String TAG_ORIENTATION = "Orientation";
    public static final int ORIENTATION_NORMAL = 1;
    public ExifInterface(InputStream inputStream) throws IOException {}
    public int getAttributeInt(String tag, int defaultValue) { return defaultValue; }
}
