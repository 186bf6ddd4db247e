package io.github.qcowloom.api;

/** The image (or the request) needs a feature this driver does not implement; {@link #feature()} names it. */
public class UnsupportedFeatureException extends ImageException {
    private final String feature;

    public UnsupportedFeatureException(String feature, String message) {
        super(message);
        this.feature = feature;
    }

    public UnsupportedFeatureException(String feature) {
        this(feature, "Unsupported feature: " + feature);
    }

    public String feature() {
        return feature;
    }

    /** The same refusal, its message preceded by {@code context} (qemu-img's "Could not open 'x': "). */
    public UnsupportedFeatureException withContext(String context) {
        UnsupportedFeatureException e = new UnsupportedFeatureException(feature, context + getMessage());
        e.initCause(this);
        return e;
    }
}
