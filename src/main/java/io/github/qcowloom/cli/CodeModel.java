package io.github.qcowloom.cli;

import java.util.function.Consumer;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.IGetter;
import picocli.CommandLine.Model.ISetter;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Model.PositionalParamSpec;

/**
 * A command's picocli model built in code, for the commands that must start fastest (info, check). Picocli reads
 * an annotated command by reflection, and the JDK makes a proxy class for each annotation type it parses: 50-70 ms
 * of a 0.15 s {@code info}, more than the command's own work. Each option's value goes to its field through a
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
