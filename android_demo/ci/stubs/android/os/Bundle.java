package android.os;

/** Compile-check stub. */
public final class Bundle {}
