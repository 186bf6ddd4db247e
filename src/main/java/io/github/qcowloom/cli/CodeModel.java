package io.github.qcowloom.cli;

import java.util.List;
import java.util.function.Consumer;
import java.util.function.IntConsumer;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.IGetter;
import picocli.CommandLine.Model.ISetter;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Model.PositionalParamSpec;

/**
 * A command's picocli model built in code, for the commands that must start fastest (info, check, convert).
 * Picocli reads an annotated command by reflection, and the JDK makes a proxy class for each annotation type it
 * parses: 50-70 ms of a 0.15 s {@code info}, more than the command's own work, and 60 ms before a convert's
 * copy. Each option's value goes to its field through a
 * lambda; an option that is not given leaves the field's own initial value.
 */
final class CodeModel {
    private final CommandSpec spec;

    private CodeModel(CommandSpec spec) {
        this.spec = spec;
    }

    /** A model that runs {@code command} (its {@code call()}), described by {@code description} in the help. */
    static CodeModel of(Object command, String description) {
        CommandSpec spec = CommandSpec.wrapWithoutInspection(command);
        spec.usageMessage().description(description);
        return new CodeModel(spec);
    }

    /** An option taking a value, shown in the help as {@code name=<label>}. */
    CodeModel option(String name, String label, String description, Consumer<String> field) {
        spec.addOption(OptionSpec.builder(name).type(String.class).arity("1").paramLabel("<" + label + ">")
                .description(description).setter(new FieldSetter<>(field)).getter(NO_INITIAL_VALUE).build());
        return this;
    }

    /**
     * An option taking an int, shown in the help as {@code name=label}, without the angle brackets of
     * {@link #option} (as {@code -m=N}); picocli refuses a value that is not an int.
     */
    CodeModel intOption(String name, String label, String description, IntConsumer field) {
        spec.addOption(OptionSpec.builder(name).type(int.class).arity("1").paramLabel(label)
                .description(description).setter(new FieldSetter<Integer>(field::accept)).getter(NO_INITIAL_VALUE)
                .build());
        return this;
    }

    /**
     * An option that may be given many times, each value added to {@code values} in order (see {@link ListSetter}).
     */
    CodeModel repeatableOption(String name, String label, String description, List<String> values) {
        spec.addOption(OptionSpec.builder(name).type(List.class).auxiliaryTypes(String.class).arity("1")
                .paramLabel("<" + label + ">").description(description).setter(new ListSetter(values))
                .getter(new ListGetter(values)).build());
        return this;
    }

    /** An option without a value, setting its field to true when given. */
    CodeModel flag(String[] names, String description, Consumer<Boolean> field) {
        spec.addOption(OptionSpec.builder(names).type(boolean.class).description(description)
                .setter(new FieldSetter<>(field)).getter(NO_INITIAL_VALUE).build());
        return this;
    }

    /** The required positional parameter {@code index}, shown as {@code label}. */
    CodeModel parameter(int index, String label, Consumer<String> field) {
        spec.addPositional(PositionalParamSpec.builder().index(Integer.toString(index)).arity("1").required(true)
                .paramLabel(label).type(String.class).setter(new FieldSetter<>(field)).getter(NO_INITIAL_VALUE)
                .build());
        return this;
    }

    /**
     * The positional parameters from {@code index} on, at least {@code min} of them (0: none required), shown as
     * {@code label}, each
     * added to {@code values} in order (see {@link ListSetter}).
     */
    CodeModel parameters(int index, int min, String label, String description, List<String> values) {
        spec.addPositional(PositionalParamSpec.builder().index(index + "..*").arity(min + "..*").required(min > 0)
                .paramLabel(label).description(description).type(List.class).auxiliaryTypes(String.class)
                .setter(new ListSetter(values))
                .getter(new ListGetter(values)).build());
        return this;
    }

    CommandSpec spec() {
        return spec;
    }

    /** Picocli asks for an initial value to restore between parses; a field keeps its own. */
    private static final IGetter NO_INITIAL_VALUE = new IGetter() {
        @Override
        public <T> T get() {
            return null;
        }
    };

    /**
     * Fills a list-valued argument's list. Picocli sets the argument to its initial value, none, before each parse,
     * which empties the list. At the argument's first use in a parse it makes a list of its own and hands it to the
     * setter, empty and then holding the value, which the setter copies; after that the getter ({@link
     * ListGetter}) returns {@code values}, to which picocli adds each later value (and hands it back, which changes
     * nothing).
     */
    private record ListSetter(List<String> values) implements ISetter {
        @Override
        @SuppressWarnings("unchecked")
        public <T> T set(T value) {
            if (value != values) { // null, or picocli's own list (see above)
                values.clear();
                if (value != null) {
                    values.addAll((List<String>) value);
                }
            }
            return null;
        }
    }

    private record ListGetter(List<String> values) implements IGetter {
        @Override
        @SuppressWarnings("unchecked")
        public <T> T get() {
            return (T) values;
        }
    }

    /** Sets a field from a parsed value; picocli sets only values given on the command line (no default value). */
    private record FieldSetter<V>(Consumer<V> field) implements ISetter {
        @Override
        @SuppressWarnings("unchecked")
        public <T> T set(T value) {
            if (value != null) {
                field.accept((V) value);
            }
            return null;
        }
    }
}
