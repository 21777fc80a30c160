package android.os;

/** Compile-check stub. */
public class Build {
    public static final String MANUFACTURER = "";
    public static final String MODEL = "";
    public static class VERSION {
        public static final int SDK_INT = 0;
    }
}
