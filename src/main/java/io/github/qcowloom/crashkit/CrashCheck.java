package io.github.qcowloom.crashkit;

/**
 * The verdict of {@link CrashInvariants} on one crash state.
 *
 * @param ok true if every invariant held
 * @param message on failure, which invariant (crash.md §3 letter) broke, how, and the crash state's description
 */
public record CrashCheck(boolean ok, String message) {
    static final CrashCheck OK = new CrashCheck(true, "ok");

    static CrashCheck fail(CrashState state, String invariant, String what) {
        return new CrashCheck(false, "invariant " + invariant + " broken in crash state [" + state + "]: " + what);
    }
}
