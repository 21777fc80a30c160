package android.widget;

import android.content.Context;
import android.view.View;

/** Compile-check stub. */
public class TextView extends View {
    public TextView(Context context) {}
    public CharSequence getText() { return ""; }
    public final void setText(CharSequence text) {}
}
