package io.github.qcowloom.nbd;

/** Runs each request on the reading thread: one at a time, in order, so a run replays exactly. */
final class InlineExecutor extends TestExecutor {
    @Override
    public void execute(Runnable task) {
        task.run();
    }
}
