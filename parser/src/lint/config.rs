//! The `# check=` directive: `skip=RULE,...` (or `skip=all`), `error=true`
//! and `experimental=RULE,...` (or `all`), separated by `;`, as BuildKit
//! reads it. At the top of the file it configures the whole lint; as a
//! comment right above an instruction it adds to that for the instruction
//! (`# check=skip=JSONArgsRecommended`; text after a blank is a remark).

use std::collections::BTreeSet;

use thiserror::Error;

use super::Rule;

/// A `# check=` value that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CheckError {
    /// A part without `=`, or a key other than skip, error, experimental.
    #[error("invalid check option {0:?}")]
    Option(String),
    /// `error=` with something other than a boolean.
    #[error("invalid check option {option:?}: {value:?} is not true or false")]
    NotBool {
        /// The whole option.
        option: String,
        /// The value given.
        value: String,
    },
}

/// Which rules run and whether findings fail the build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    skip_all: bool,
    skip: BTreeSet<String>,
    /// `error=true`: findings make the build (and `--check`) fail.
    pub error: bool,
    experimental_all: bool,
    experimental: BTreeSet<String>,
}

/// Go's `strconv.ParseBool`, which BuildKit uses for `error=`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `all`, or a comma-separated list of rule names.
fn rule_list(value: &str) -> (bool, BTreeSet<String>) {
    let value = value.trim();
    if value == "all" {
        return (true, BTreeSet::new());
    }
    (
        false,
        value.split(',').map(|r| r.trim().to_string()).collect(),
    )
}

impl CheckConfig {
    /// Reads a `# check=` value.
    pub fn parse(text: &str) -> Result<CheckConfig, CheckError> {
        let mut config = CheckConfig::default();
        let text = text.trim();
        if text.is_empty() {
            return Ok(config);
        }
        // BuildKit splits into at most three parts; a fourth `;` stays in
        // the third value.
        for part in text.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(CheckError::Option(part.to_string()));
            };
            match key.trim() {
                "skip" => (config.skip_all, config.skip) = rule_list(value),
                "experimental" => (config.experimental_all, config.experimental) = rule_list(value),
                "error" => {
                    config.error = parse_bool(value.trim()).ok_or_else(|| CheckError::NotBool {
                        option: part.to_string(),
                        value: value.trim().to_string(),
                    })?
                }
                other => return Err(CheckError::Option(other.to_string())),
            }
        }
        Ok(config)
    }

    /// This configuration with `local`'s skips and experiments added (a
    /// comment's `error=` changes nothing, as in BuildKit).
    pub(crate) fn merged(&self, local: &CheckConfig) -> CheckConfig {
        let mut out = self.clone();
        out.skip_all |= local.skip_all;
        out.skip.extend(local.skip.iter().cloned());
        out.experimental_all |= local.experimental_all;
        out.experimental.extend(local.experimental.iter().cloned());
        out
    }

    /// Whether `rule` runs: an experimental rule when asked for (even with
    /// `skip=all`), any other unless skipped.
    pub fn enabled(&self, rule: Rule) -> bool {
        if rule.experimental() {
            self.experimental_all || self.experimental.contains(rule.name())
        } else {
            !(self.skip_all || self.skip.contains(rule.name()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_buildkit_options() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended, FromAsCasing;error=true").unwrap();
        assert!(c.error);
        assert!(!c.enabled(Rule::JsonArgsRecommended));
        assert!(!c.enabled(Rule::FromAsCasing));
        assert!(c.enabled(Rule::UndefinedVar));
        assert!(!c.enabled(Rule::InvalidDefinitionDescription));

        let all = CheckConfig::parse("skip=all;experimental=all").unwrap();
        assert!(Rule::all()
            .filter(|r| !r.experimental())
            .all(|r| !all.enabled(r)));
        assert!(all.enabled(Rule::InvalidDefinitionDescription));
        assert!(!all.error);
        assert_eq!(CheckConfig::parse("  ").unwrap(), CheckConfig::default());
    }

    #[test]
    fn refuses_what_buildkit_refuses() {
        assert_eq!(
            CheckConfig::parse("skip"),
            Err(CheckError::Option("skip".into()))
        );
        assert_eq!(
            CheckConfig::parse("colour=red"),
            Err(CheckError::Option("colour".into()))
        );
        assert!(matches!(
            CheckConfig::parse("error=maybe"),
            Err(CheckError::NotBool { .. })
        ));
    }

    #[test]
    fn comments_add_skips_but_not_error() {
        let top = CheckConfig::parse("skip=UndefinedVar").unwrap();
        let local = CheckConfig::parse("skip=FromAsCasing;error=true").unwrap();
        let both = top.merged(&local);
        assert!(!both.enabled(Rule::UndefinedVar) && !both.enabled(Rule::FromAsCasing));
        assert!(!both.error);
    }
}
