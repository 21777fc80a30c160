package android.content;

import android.content.res.AssetManager;
import java.io.File;

/** Compile-check stub: only the members the demo uses, with the SDK's signatures. */
public abstract class Context {
    public abstract AssetManager getAssets();
    public abstract File getFilesDir();
    public abstract File getExternalFilesDir(String type);
    public abstract ContentResolver getContentResolver();
}
