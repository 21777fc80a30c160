package android.content;

import android.net.Uri;

/** Compile-check stub. */
public class Intent {
    public static final String ACTION_GET_CONTENT = "android.intent.action.GET_CONTENT";
    public static final String CATEGORY_OPENABLE = "android.intent.category.OPENABLE";
    public Intent(String action) {}
    public Intent setType(String type) { return this; }
    public String getType() { return null; }
    public Intent addCategory(String category) { return this; }
    public Uri getData() { return null; }
    public String getStringExtra(String name) { return null; }
    public boolean getBooleanExtra(String name, boolean defaultValue) { return defaultValue; }
    public int getIntExtra(String name, int defaultValue) { return defaultValue; }
}
