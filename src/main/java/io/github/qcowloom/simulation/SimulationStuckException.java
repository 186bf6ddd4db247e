package io.github.qcowloom.simulation;

/** The simulated threads stopped making progress: each waits for another (deadlock), or they spin (livelock). */
public final class SimulationStuckException extends RuntimeException {
    private final String threads;

    SimulationStuckException(String message, String threads) {
        super(message + "\n" + threads);
        this.threads = threads;
    }

    /** Each live thread of the simulation with the top of its stack. */
    public String threads() {
        return threads;
    }
}
