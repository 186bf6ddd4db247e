package io.github.qcowloom.bitmap;

/** One step of a bitmap edit, as qemu-img bitmap takes them: each on the bitmap it names, in the order given. */
public sealed interface BitmapAction {
    /** The bitmap the step changes. */
    String bitmap();

    /** qemu-img's word for the step, as its messages name it. */
    String operation();

    /** A new, empty, enabled bitmap; {@code granularity} 0 for QEMU's default. */
    record Add(String bitmap, long granularity) implements BitmapAction {
        @Override
        public String operation() {
            return "add";
        }
    }

    /** Removes the bitmap, in use or not. */
    record Remove(String bitmap) implements BitmapAction {
        @Override
        public String operation() {
            return "remove";
        }
    }

    /** Clears every bit. */
    record Clear(String bitmap) implements BitmapAction {
        @Override
        public String operation() {
            return "clear";
        }
    }

    /** Sets the auto flag: QEMU then records the guest's writes in the bitmap. */
    record Enable(String bitmap) implements BitmapAction {
        @Override
        public String operation() {
            return "enable";
        }
    }

    /** Clears the auto flag. */
    record Disable(String bitmap) implements BitmapAction {
        @Override
        public String operation() {
            return "disable";
        }
    }

    /** Sets in {@code bitmap} every bit that covers a byte {@code source} has set. */
    record Merge(String source, String bitmap) implements BitmapAction {
        @Override
        public String operation() {
            return "merge";
        }
    }
}
