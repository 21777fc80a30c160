package android.content.res;

import java.io.IOException;
import java.io.InputStream;

/** Compile-check stub. */
public final class AssetManager {
    public InputStream open(String fileName) throws IOException { return null; }
}
