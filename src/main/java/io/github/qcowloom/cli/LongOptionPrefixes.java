package io.github.qcowloom.cli;

import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.Set;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * Long options shortened as getopt_long takes them, as qemu-img and qemu-nbd read their options: {@code --out=json}
 * for {@code --output=json}, a prefix of one option's name only (of several, none is taken, and the parser refuses
 * the text). Picocli's own abbreviations read more than prefixes and fail on an empty argument ({@code -b ''}).
 */
final class LongOptionPrefixes {
    private LongOptionPrefixes() {
    }

    /**
     * {@code args} (a command's name, then its arguments) with each shortened long option of {@code command} given
     * in full; the value after an option that takes one, and everything after {@code --}, left as they are.
     */
    static String[] expand(CommandSpec command, String[] args) {
        String[] expanded = args.clone();
        for (int i = 1; i < expanded.length; i++) {
            String arg = expanded[i];
            if (arg.equals("--")) {
                break;
            }
            if (!arg.startsWith("--")) {
                // findOption also takes a name without its dashes: a file named "f" is no option
                OptionSpec option = arg.startsWith("-") ? command.findOption(arg) : null;
                if (option != null && option.arity().min() > 0) {
                    i++; // its value, whatever it looks like
                }
                continue;
            }
            int eq = arg.indexOf('=');
            String name = eq < 0 ? arg : arg.substring(0, eq);
            OptionSpec option = command.findOption(name);
            if (option == null) {
                option = unique(command, name);
                if (option != null) {
                    expanded[i] = option.longestName() + (eq < 0 ? "" : arg.substring(eq));
                }
            }
            if (option != null && eq < 0 && option.arity().min() > 0) {
                i++;
            }
        }
        return expanded;
    }

    /** The one option with a long name that starts with {@code prefix}, or null for none or several. */
    private static OptionSpec unique(CommandSpec command, String prefix) {
        Set<OptionSpec> found = new LinkedHashSet<>();
        for (OptionSpec o : command.options()) {
            if (Arrays.stream(o.names()).anyMatch(n -> n.startsWith("--") && n.startsWith(prefix))) {
                found.add(o);
            }
        }
        return found.size() == 1 ? found.iterator().next() : null;
    }
}
