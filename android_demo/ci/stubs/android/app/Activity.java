package android.app;

import android.content.ContentResolver;
import android.content.Context;
import android.content.Intent;
import android.content.res.AssetManager;
import android.os.Bundle;
import android.view.View;
import java.io.File;

/** Compile-check stub (android.app.Activity, API 35): only the members the demo uses. */
public class Activity extends Context {
    public static final int RESULT_OK = -1;
    public static final int RESULT_CANCELED = 0;
    protected void onCreate(Bundle savedInstanceState) {}
    protected void onDestroy() {}
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {}
    public void startActivityForResult(Intent intent, int requestCode) {}
    public void setContentView(View view) {}
    public Intent getIntent() { return null; }
    public final void runOnUiThread(Runnable action) {}
    public void finish() {}
    @Override public AssetManager getAssets() { return null; }
    @Override public File getFilesDir() { return null; }
    @Override public File getExternalFilesDir(String type) { return null; }
    @Override public ContentResolver getContentResolver() { return null; }
}
