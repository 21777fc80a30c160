package android.widget;

import android.content.Context;

/** Compile-check stub. */
public class Button extends TextView {
    public Button(Context context) { super(context); }
}
