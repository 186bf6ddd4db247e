package io.github.qcowloom.bitmap;

import io.github.qcowloom.api.ImageException;

/** A step of a bitmap edit that QEMU would refuse; its message is QEMU's, the step is {@link #action()}. */
public final class BitmapActionException extends ImageException {
    private final transient BitmapAction action;

    BitmapActionException(BitmapAction action, String message) {
        super(message);
        this.action = action;
    }

    /** The step refused. */
    public BitmapAction action() {
        return action;
    }
}
