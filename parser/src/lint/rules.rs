//! The rules BuildKit checks (`docker build --check`): their names, docs
//! pages and one-line descriptions. The messages are written where each rule
//! is checked, in BuildKit's words.

use std::fmt;

/// One lint rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// `AS Build`: stage names should be lower case.
    StageNameCasing,
    /// `FROM x as y`: the `as` keyword should match the case of `FROM`.
    FromAsCasing,
    /// An instruction continued over an empty line.
    NoEmptyContinuation,
    /// Instruction keywords should all be upper case or all lower case.
    ConsistentInstructionCasing,
    /// Two stages with one name.
    DuplicateStageName,
    /// A stage named `scratch` or `context`.
    ReservedStageName,
    /// CMD or ENTRYPOINT in shell form.
    JsonArgsRecommended,
    /// MAINTAINER.
    MaintainerDeprecated,
    /// A FROM line using an ARG that was never declared.
    UndefinedArgInFrom,
    /// The first WORKDIR of a stage is relative.
    WorkdirRelativePath,
    /// A variable used before it is defined.
    UndefinedVar,
    /// Two CMD, ENTRYPOINT or HEALTHCHECK in one stage.
    MultipleInstructionsDisallowed,
    /// `ENV key value` instead of `ENV key=value`.
    LegacyKeyValueFormat,
    /// `FROM --platform=$TARGETPLATFORM`.
    RedundantTargetPlatform,
    /// An ARG or ENV whose name says it holds a secret.
    SecretsUsedInArgOrEnv,
    /// A FROM image that is invalid with the global ARGs' defaults.
    InvalidDefaultArgInFrom,
    /// `FROM --platform=linux/amd64`: a constant platform.
    FromPlatformFlagConstDisallowed,
    /// COPY or ADD of a file `.dockerignore` excludes.
    CopyIgnoredFile,
    /// A comment above FROM or ARG that does not describe it (experimental).
    InvalidDefinitionDescription,
    /// `EXPOSE 80/TCP`: protocols should be lower case.
    ExposeProtoCasing,
}

/// Name, docs page (under docs/lint/) and description of each rule.
const TABLE: [(Rule, &str, &str, &str); 20] = [
    (Rule::StageNameCasing, "StageNameCasing", "stage-name-casing",
        "Stage names should be lowercase"),
    (Rule::FromAsCasing, "FromAsCasing", "from-as-casing",
        "The 'as' keyword should match the case of the 'from' keyword"),
    (Rule::NoEmptyContinuation, "NoEmptyContinuation", "no-empty-continuation",
        "Empty continuation lines will become errors in a future release"),
    (Rule::ConsistentInstructionCasing, "ConsistentInstructionCasing",
        "consistent-instruction-casing",
        "All commands within the Dockerfile should use the same casing (either upper or lower)"),
    (Rule::DuplicateStageName, "DuplicateStageName", "duplicate-stage-name",
        "Stage names should be unique"),
    (Rule::ReservedStageName, "ReservedStageName", "reserved-stage-name",
        "Reserved words should not be used as stage names"),
    (Rule::JsonArgsRecommended, "JSONArgsRecommended", "json-args-recommended",
        "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals"),
    (Rule::MaintainerDeprecated, "MaintainerDeprecated", "maintainer-deprecated",
        "The MAINTAINER instruction is deprecated, use a label instead to define an image author"),
    (Rule::UndefinedArgInFrom, "UndefinedArgInFrom", "undefined-arg-in-from",
        "FROM command must use declared ARGs"),
    (Rule::WorkdirRelativePath, "WorkdirRelativePath", "workdir-relative-path",
        "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes"),
    (Rule::UndefinedVar, "UndefinedVar", "undefined-var",
        "Variables should be defined before their use"),
    (Rule::MultipleInstructionsDisallowed, "MultipleInstructionsDisallowed",
        "multiple-instructions-disallowed",
        "Multiple instructions of the same type should not be used in the same stage"),
    (Rule::LegacyKeyValueFormat, "LegacyKeyValueFormat", "legacy-key-value-format",
        "Legacy key/value format with whitespace separator should not be used"),
    (Rule::RedundantTargetPlatform, "RedundantTargetPlatform", "redundant-target-platform",
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior"),
    (Rule::SecretsUsedInArgOrEnv, "SecretsUsedInArgOrEnv", "secrets-used-in-arg-or-env",
        "Sensitive data should not be used in the ARG or ENV commands"),
    (Rule::InvalidDefaultArgInFrom, "InvalidDefaultArgInFrom", "invalid-default-arg-in-from",
        "Default value for global ARG results in an empty or invalid base image name"),
    (Rule::FromPlatformFlagConstDisallowed, "FromPlatformFlagConstDisallowed",
        "from-platform-flag-const-disallowed",
        "FROM --platform flag should not use a constant value"),
    (Rule::CopyIgnoredFile, "CopyIgnoredFile", "copy-ignored-file",
        "Attempting to Copy file that is excluded by .dockerignore"),
    (Rule::InvalidDefinitionDescription, "InvalidDefinitionDescription",
        "invalid-definition-description",
        "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment."),
    (
        Rule::ExposeProtoCasing,
        "ExposeProtoCasing",
        "expose-proto-casing",
        "Protocol in EXPOSE instruction should be lowercase",
    ),
];

impl Rule {
    /// Every rule, in BuildKit's order.
    pub fn all() -> impl Iterator<Item = Rule> {
        TABLE.iter().map(|row| row.0)
    }

    fn row(self) -> &'static (Rule, &'static str, &'static str, &'static str) {
        // TABLE lists every variant in declaration order (a unit test
        // checks), so the discriminant is the row.
        &TABLE[self as usize]
    }

    /// BuildKit's name, as `# check=skip=` takes it.
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The rule's docs page, relative to the project root.
    pub fn docs(self) -> String {
        format!("docs/lint/{}.md", self.row().2)
    }

    /// What the rule checks, in one line.
    pub fn description(self) -> &'static str {
        self.row().3
    }

    /// Experimental rules run only when `# check=experimental=` names them.
    pub fn experimental(self) -> bool {
        self == Rule::InvalidDefinitionDescription
    }

    /// The rule called `name` (as `# check=skip=` spells it).
    pub fn from_name(name: &str) -> Option<Rule> {
        TABLE.iter().find(|row| row.1 == name).map(|row| row.0)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_follow_the_variants() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.0 as usize, i, "{}", row.1);
            assert_eq!(Rule::from_name(row.1), Some(row.0));
        }
        assert_eq!(Rule::JsonArgsRecommended.name(), "JSONArgsRecommended");
        assert_eq!(
            Rule::JsonArgsRecommended.docs(),
            "docs/lint/json-args-recommended.md"
        );
    }

    /// Every finding links to a page that exists, and the index lists it.
    #[test]
    fn every_rule_has_its_docs_page() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let index = fs_err::read_to_string(root.join("docs/lint/README.md")).unwrap();
        for rule in Rule::all() {
            let page = fs_err::read_to_string(root.join(rule.docs())).unwrap();
            assert!(page.starts_with(&format!("# {}\n", rule.name())), "{rule}");
            let file = rule.docs().trim_start_matches("docs/lint/").to_string();
            assert!(index.contains(&format!("[{rule}]({file})")), "{rule}");
        }
    }
}
