package io.github.qcowloom.api;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * What an open is told of the encryption (LUKS or AES) of each image in its backing chain, by depth: 0 the image
 * opened, 1 its backing file, 2 that file's, and so on. These are QEMU's options {@code encrypt.key-secret} and
 * {@code encrypt.format}, then {@code backing.encrypt.key-secret}, {@code backing.backing.encrypt.key-secret}, ...:
 * each image of a chain has a passphrase of its own, and an image given none cannot be unlocked, whatever the image
 * above it was given.
 *
 * <p>A passphrase is asked of its {@link Passphrase} only by the open of an image that is encrypted (an inspection
 * given one unlocks too), so a secret that cannot be found fails that image's open alone, as QEMU looks a secret up
 * only where a cipher needs it. Immutable; its {@link #toString()} names no passphrase. The {@link UnlockedKeys} it
 * may carry (a cache of master keys, shared by reference) are no part of its equality.
 */
public final class ChainEncryption {
    /** Nothing said of any image. */
    public static final ChainEncryption NONE = new ChainEncryption(List.of(), null);

    /** Where a passphrase comes from, asked at most once per open of the image it belongs to. */
    @FunctionalInterface
    public interface Passphrase {
        /**
         * The passphrase's bytes, in an array the caller may wipe.
         *
         * @throws EncryptionKeyException if it cannot be had (QEMU's "No secret with id 'x'")
         */
        byte[] bytes() throws EncryptionKeyException;
    }

    /** One image's options: {@code format} null where none was given, {@code passphrase} null for none. */
    private record Layer(String format, Passphrase passphrase) {
        static final Layer EMPTY = new Layer(null, null);

        boolean empty() {
            return format == null && passphrase == null;
        }
    }

    /** By depth; never ends with an empty layer, so an empty list says nothing. */
    private final List<Layer> layers;
    /** Where each image's unlock looks first and keeps what it unlocked; null for nowhere. */
    private final UnlockedKeys keys;

    private ChainEncryption(List<Layer> layers, UnlockedKeys keys) {
        this.layers = List.copyOf(layers);
        this.keys = keys;
    }

    /**
     * These options with every image's unlock (the chain's too) looking in {@code keys} first, and keeping there
     * what it unlocked (null: none).
     */
    public ChainEncryption rememberingKeys(UnlockedKeys keys) {
        return new ChainEncryption(layers, keys);
    }

    /** Where an unlock looks first and keeps what it unlocked, or null. */
    public UnlockedKeys unlockedKeys() {
        return keys;
    }

    /**
     * These options with {@code passphrase} for the image at {@code depth}; null removes it. A copy is kept, for as
     * long as these options are: a caller who must wipe the passphrase gives a {@link Passphrase} instead.
     */
    public ChainEncryption withPassphrase(int depth, byte[] passphrase) {
        requireDepth(depth);
        if (passphrase == null) {
            return withPassphrase(depth, (Passphrase) null);
        }
        byte[] copy = passphrase.clone();
        return withPassphrase(depth, copy::clone);
    }

    /** These options with the passphrase of the image at {@code depth} taken from {@code source} (null: none). */
    public ChainEncryption withPassphrase(int depth, Passphrase source) {
        requireDepth(depth);
        return with(depth, new Layer(layer(depth).format(), source));
    }

    /**
     * These options with the encryption format the image at {@code depth} must have (QEMU's {@code encrypt.format}:
     * an image without encryption, or with another format, is then refused in QEMU's words); null for any.
     */
    public ChainEncryption withFormat(int depth, String format) {
        requireDepth(depth);
        return with(depth, new Layer(format, layer(depth).passphrase()));
    }

    private static void requireDepth(int depth) {
        if (depth < 0) {
            throw new IllegalArgumentException("depth " + depth);
        }
    }

    private ChainEncryption with(int depth, Layer layer) {
        List<Layer> next = new ArrayList<>(layers);
        while (next.size() <= depth) {
            next.add(Layer.EMPTY);
        }
        next.set(depth, layer);
        while (!next.isEmpty() && next.get(next.size() - 1).empty()) {
            next.remove(next.size() - 1);
        }
        return new ChainEncryption(next, keys);
    }

    private Layer layer(int depth) {
        return depth < layers.size() ? layers.get(depth) : Layer.EMPTY;
    }

    /** The passphrase of the image itself (depth 0), in a new array the caller may wipe, or null for none. */
    public byte[] passphrase() throws EncryptionKeyException {
        Passphrase p = layer(0).passphrase();
        return p == null ? null : p.bytes();
    }

    /** Whether the image itself was given a passphrase, without asking its source for it. */
    public boolean hasPassphrase() {
        return layer(0).passphrase() != null;
    }

    /** The encryption format the image itself must have, if one was given. */
    public Optional<String> format() {
        return Optional.ofNullable(layer(0).format());
    }

    /** What these options say of the image {@code depth} levels down its chain, as that image's own (depth 0). */
    public ChainEncryption below(int depth) {
        requireDepth(depth);
        return new ChainEncryption(depth >= layers.size() ? List.of() : layers.subList(depth, layers.size()), keys);
    }

    /** Whether these options say anything of an image below the first (QEMU then opens a backing file). */
    public boolean saysAnythingBelow() {
        return layers.size() > 1;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ChainEncryption c && c.layers.equals(layers);
    }

    @Override
    public int hashCode() {
        return Objects.hash(layers);
    }

    /** The depths given a passphrase or a format, without the passphrases. */
    @Override
    public String toString() {
        List<String> said = new ArrayList<>();
        for (int d = 0; d < layers.size(); d++) {
            Layer l = layers.get(d);
            if (!l.empty()) {
                said.add(d + ":" + (l.passphrase() != null ? "passphrase" : "") + (l.format() != null
                        ? (l.passphrase() != null ? "," : "") + "format=" + l.format() : ""));
            }
        }
        return said.isEmpty() ? "none" : Arrays.toString(said.toArray());
    }
}
