package android.content;

/** Compile-check stub. */
public final class ContentValues {
    public ContentValues() {}
    public void put(String key, String value) {}
    public void put(String key, Integer value) {}
    public void put(String key, Long value) {}
}
