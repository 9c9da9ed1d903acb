//! `--flag` validation for typed instructions: each instruction declares the
//! flags it allows and their kind; anything else is an error that names the
//! instruction and lists what it allows.

use std::collections::BTreeMap;

use super::InstructionError;

/// What a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--link` or `--link=true|false`.
    Bool,
    /// `--from=x`, at most once.
    Value,
    /// `--mount=...`, any number of times.
    List,
}

/// A flag an instruction accepts.
pub(crate) type Spec = (&'static str, Kind);

/// The flags given to one instruction, checked against its specs.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: BTreeMap<&'static str, Vec<String>>,
}

fn allowed_list(specs: &[Spec]) -> String {
    if specs.is_empty() {
        return "none".to_string();
    }
    specs
        .iter()
        .map(|(name, _)| format!("--{name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Flags {
    /// Checks `raw` (`--name[=value]` strings) against `specs`.
    pub(crate) fn parse(
        instruction: &str,
        raw: &[String],
        specs: &[Spec],
    ) -> Result<Self, InstructionError> {
        let mut flags = Flags::default();
        for flag in raw {
            let body = flag.strip_prefix("--").unwrap_or(flag);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(spec_name, kind)) = specs.iter().find(|(n, _)| *n == name) else {
                return Err(InstructionError::UnknownFlag {
                    instruction: instruction.to_string(),
                    flag: format!("--{name}"),
                    allowed: allowed_list(specs),
                });
            };
            let slot = flags.values.entry(spec_name).or_default();
            if kind != Kind::List && !slot.is_empty() {
                return Err(InstructionError::DuplicateFlag {
                    instruction: instruction.to_string(),
                    flag: format!("--{name}"),
                });
            }
            let value = match (kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" | "false" => v.to_ascii_lowercase(),
                    _ => {
                        return Err(InstructionError::BadFlagValue {
                            instruction: instruction.to_string(),
                            flag: format!("--{name}"),
                            value: v.to_string(),
                            expected: "true or false".to_string(),
                        })
                    }
                },
                (_, Some(v)) => v.to_string(),
                (_, None) => {
                    return Err(InstructionError::FlagNeedsValue {
                        instruction: instruction.to_string(),
                        flag: format!("--{name}"),
                    })
                }
            };
            slot.push(value);
        }
        Ok(flags)
    }

    /// The value of a `Value` flag.
    pub(crate) fn value(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.first()).cloned()
    }

    /// Every value of a `List` flag, in order.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// A `Bool` flag: `None` when absent.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.value(name).map(|v| v == "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        ("from", Kind::Value),
        ("link", Kind::Bool),
        ("exclude", Kind::List),
    ];

    fn parse(flags: &[&str]) -> Result<Flags, InstructionError> {
        let raw: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        Flags::parse("COPY", &raw, SPECS)
    }

    #[test]
    fn accepted_forms() {
        let f = parse(&["--from=a", "--link", "--exclude=x", "--exclude=y"]).unwrap();
        assert_eq!(f.value("from").as_deref(), Some("a"));
        assert_eq!(f.bool("link"), Some(true));
        assert_eq!(f.list("exclude"), ["x", "y"]);
        assert_eq!(parse(&["--link=FALSE"]).unwrap().bool("link"), Some(false));
        assert_eq!(parse(&[]).unwrap().bool("link"), None);
    }

    #[test]
    fn error_table() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--nope"],
                "COPY: unknown flag --nope (allowed: --from, --link, --exclude)",
            ),
            (
                &["--from=a", "--from=b"],
                "COPY: flag --from given more than once",
            ),
            (&["--from"], "COPY: flag --from needs a value (--from=...)"),
            (
                &["--link=yes"],
                "COPY: invalid value \"yes\" for --link: expected true or false",
            ),
        ];
        for (flags, want) in cases {
            let err = parse(flags).err().map(|e| e.to_string());
            assert_eq!(err.as_deref(), Some(*want));
        }
    }
}
