package android.content;

import android.net.Uri;
import java.io.FileNotFoundException;
import java.io.InputStream;
import java.io.OutputStream;

/** Compile-check stub. */
public abstract class ContentResolver {
    public final InputStream openInputStream(Uri uri) throws FileNotFoundException { return null; }
    public final OutputStream openOutputStream(Uri uri) throws FileNotFoundException { return null; }
    public final Uri insert(Uri url, ContentValues values) { return null; }
    public final int update(Uri uri, ContentValues values, String where, String[] selectionArgs) { return 0; }
    public final int delete(Uri url, String where, String[] selectionArgs) { return 0; }
}
