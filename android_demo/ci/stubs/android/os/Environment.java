package android.os;

/** Compile-check stub. */
public class Environment {
    public static String DIRECTORY_PICTURES = "Pictures";
}
