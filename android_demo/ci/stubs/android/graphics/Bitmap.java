package android.graphics;

import java.io.OutputStream;

/** Compile-check stub. */
public final class Bitmap {
    public enum Config { ALPHA_8, RGB_565, ARGB_8888 }
    public enum CompressFormat { JPEG, PNG, WEBP }
    public static Bitmap createBitmap(int width, int height, Config config) { return null; }
    public static Bitmap createScaledBitmap(Bitmap src, int dstWidth, int dstHeight, boolean filter) { return null; }
    public int getWidth() { return 0; }
    public int getHeight() { return 0; }
    public void getPixels(int[] pixels, int offset, int stride, int x, int y, int width, int height) {}
    public void setPixels(int[] pixels, int offset, int stride, int x, int y, int width, int height) {}
    public boolean compress(CompressFormat format, int quality, OutputStream stream) { return true; }
    public void recycle() {}
}
