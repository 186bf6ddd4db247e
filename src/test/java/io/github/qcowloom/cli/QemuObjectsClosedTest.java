package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.github.qcowloom.api.UnlockedKeys;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;

/**
 * The keys a command's secrets unlocked are wiped when its run ends, whether its secrets are a picocli mixin
 * (commit's, inside another mixin) or a field of a command built in code (check's, info's, convert's).
 */
class QemuObjectsClosedTest {
    private static final byte[] HEADER = {1, 2, 3};
    private static final byte[] PASSPHRASE = {4, 5};
    private static final byte[] KEY = {6, 7, 8};

    private static UnlockedKeys holding(QemuObjects secrets) {
        UnlockedKeys keys = secrets.unlockedKeys();
        keys.remember(HEADER, PASSPHRASE, KEY);
        assertArrayEquals(KEY, keys.find(HEADER, PASSPHRASE));
        return keys;
    }

    @Test
    void theSecretsOfEveryKindOfCommandAreClosed() {
        CommitCommand commit = new CommitCommand();
        CommandLine commitLine = new CommandLine(commit); // picocli makes the mixins
        CheckCommand check = new CheckCommand();
        CommandSpec root = CommandSpec.create();
        CommandLine rootLine = new CommandLine(root);
        rootLine.addSubcommand("commit", commitLine);
        rootLine.addSubcommand("check", check.spec);
        UnlockedKeys commitKeys = holding(commit.file.objects);
        UnlockedKeys checkKeys = holding(check.objects);
        Main.closeSecrets(root);
        assertNull(commitKeys.find(HEADER, PASSPHRASE));
        assertNull(checkKeys.find(HEADER, PASSPHRASE));
        InfoCommand info = new InfoCommand();
        UnlockedKeys infoKeys = holding(info.objects);
        Main.closeSecrets(info.spec);
        assertNull(infoKeys.find(HEADER, PASSPHRASE));
        ConvertCommand convert = new ConvertCommand();
        UnlockedKeys convertKeys = holding(convert.objects);
        Main.closeSecrets(convert.spec);
        assertNull(convertKeys.find(HEADER, PASSPHRASE));
    }
}
