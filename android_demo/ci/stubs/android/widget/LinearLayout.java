package android.widget;

import android.content.Context;
import android.view.ViewGroup;

/** Compile-check stub. */
public class LinearLayout extends ViewGroup {
    public static final int HORIZONTAL = 0;
    public static final int VERTICAL = 1;
    public static class LayoutParams extends ViewGroup.MarginLayoutParams {
        public LayoutParams(int width, int height) { super(width, height); }
        public LayoutParams(int width, int height, float weight) { super(width, height); }
    }
    public LinearLayout(Context context) {}
    public int getOrientation() { return HORIZONTAL; }
    public void setOrientation(int orientation) {}
}
