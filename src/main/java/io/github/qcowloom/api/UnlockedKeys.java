package io.github.qcowloom.api;

import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The master keys of the LUKS images a task has unlocked, kept until it closes this, so that an image it opens again
 * is not unlocked again: an unlock runs seconds of PBKDF2 by design, and {@code commit}, say, opens its base once in
 * the chain it reads and once to write it (QEMU unlocks each image once and reopens it). Given through {@link
 * ChainEncryption#rememberingKeys}, for every image of the chain.
 *
 * <p>A key is found again only for the same LUKS header, byte for byte, and the same passphrase: that header's
 * master key digest accepted the key once and accepts it again. What is not compared is the key slots' material
 * after the header, which the same passphrase unlocked; a file whose slots changed between two opens of one task
 * (under its locks) keeps the key it had. A passphrase is kept only as its HMAC under a key of this instance's;
 * {@link #close} wipes every key kept.
 *
 * <p>Lock discipline: {@code lock} guards {@code kept}, {@code closed}, {@code reused} and {@code mac}; it is held
 * only to look up, add or wipe, never across an unlock.
 */
public final class UnlockedKeys implements AutoCloseable {
    private record Kept(byte[] header, byte[] passphraseMac, byte[] masterKey) {
    }

    private final ReentrantLock lock = new ReentrantLock();
    /** The passphrases' HMAC, under a random key: what is kept says nothing of a passphrase outside this object. */
    private final Mac mac;
    private final List<Kept> kept = new ArrayList<>();
    private boolean closed;
    private int reused;

    public UnlockedKeys() {
        byte[] macKey = new byte[32];
        new SecureRandom().nextBytes(macKey);
        try {
            mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(macKey, "HmacSHA256"));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("the JDK has no HmacSHA256", e);
        } finally {
            Arrays.fill(macKey, (byte) 0);
        }
    }

    /**
     * The master key kept for {@code header} (the LUKS header's bytes) and {@code passphrase}, in a new array the
     * caller wipes, or null if none is.
     */
    public byte[] find(byte[] header, byte[] passphrase) {
        lock.lock();
        try {
            byte[] given = mac.doFinal(passphrase);
            for (Kept k : kept) {
                if (Arrays.equals(k.header(), header) && MessageDigest.isEqual(k.passphraseMac(), given)) {
                    reused++;
                    return k.masterKey().clone();
                }
            }
            return null;
        } finally {
            lock.unlock();
        }
    }

    /** Keeps copies of what an unlock of {@code header} with {@code passphrase} gave; nothing once closed. */
    public void remember(byte[] header, byte[] passphrase, byte[] masterKey) {
        lock.lock();
        try {
            if (!closed) {
                kept.add(new Kept(header.clone(), mac.doFinal(passphrase), masterKey.clone()));
            }
        } finally {
            lock.unlock();
        }
    }

    /** How many opens took a kept key rather than unlocking. */
    public int reused() {
        lock.lock();
        try {
            return reused;
        } finally {
            lock.unlock();
        }
    }

    /** Wipes and forgets every key kept; later unlocks are not kept. */
    @Override
    public void close() {
        lock.lock();
        try {
            closed = true;
            for (Kept k : kept) {
                Arrays.fill(k.masterKey(), (byte) 0);
            }
            kept.clear();
        } finally {
            lock.unlock();
        }
    }
}
