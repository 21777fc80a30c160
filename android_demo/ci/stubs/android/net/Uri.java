package android.net;

/** Compile-check stub. */
public abstract class Uri {}
