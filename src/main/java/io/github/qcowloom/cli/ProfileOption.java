package io.github.qcowloom.cli;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.Profiles;
import java.io.IOException;
import picocli.CommandLine.Option;

/** The {@code --profile} option shared by the commands that open images: a name from props/ or a .properties path. */
final class ProfileOption {
    static final String DESCRIPTION = "Configuration profile: a name from props/ or a .properties path.";

    @Option(names = "--profile", description = DESCRIPTION)
    String profile = "default";

    /** {@code base} with the profile's settings applied. */
    OpenOptions apply(OpenOptions base) throws IOException {
        return Profiles.apply(Profiles.load(profile), base);
    }
}
