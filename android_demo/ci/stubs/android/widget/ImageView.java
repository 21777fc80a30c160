package android.widget;

import android.content.Context;
import android.graphics.Bitmap;
import android.view.View;

/** Compile-check stub. */
public class ImageView extends View {
    public enum ScaleType { MATRIX, FIT_XY, FIT_START, FIT_CENTER, FIT_END, CENTER, CENTER_CROP, CENTER_INSIDE }
    public ImageView(Context context) {}
    public void setImageBitmap(Bitmap bm) {}
    public ScaleType getScaleType() { return ScaleType.FIT_CENTER; }
    public void setScaleType(ScaleType scaleType) {}
}
