//! Platforms beyond the host's: `--platform` lists, an image config's
//! platform, BuildKit's TARGET*/BUILD* args, and whether this machine can
//! run a platform (natively, or through a binfmt_misc handler: the kernel
//! runs qemu-user for a foreign binary; strata never execs qemu itself).
//!
//! The type is the registry's [`Platform`] (normalised as containerd does).

use std::path::Path;

use crate::store::ImageConfig;

pub use crate::registry::manifest::{ManifestError, Platform};

/// Where the kernel lists its binfmt_misc handlers.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// `linux/amd64,linux/arm64`: each parsed, duplicates refused.
pub fn parse_list(s: &str) -> Result<Vec<Platform>, ManifestError> {
    let mut out: Vec<Platform> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p: Platform = part.parse()?;
        if out.contains(&p) {
            return Err(ManifestError::BadPlatform {
                input: format!("{s} (names {} twice)", show(&p)),
            });
        }
        out.push(p);
    }
    if out.is_empty() {
        return Err(ManifestError::BadPlatform { input: s.into() });
    }
    Ok(out)
}

/// A `--platform A,B` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformList(pub Vec<Platform>);

impl std::str::FromStr for PlatformList {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<PlatformList, ManifestError> {
        parse_list(s).map(PlatformList)
    }
}

/// As Docker and BuildKit print it: `linux/arm64` (arm64's default variant
/// v8 left out), `linux/arm/v7`.
pub fn show(p: &Platform) -> String {
    match variant(p) {
        "" => format!("{}/{}", p.os, p.architecture),
        v => format!("{}/{}/{v}", p.os, p.architecture),
    }
}

/// The variant as BuildKit's TARGETVARIANT holds it (empty for arm64/v8).
fn variant(p: &Platform) -> &str {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm64", Some("v8")) | (_, None) => "",
        (_, Some(v)) => v,
    }
}

/// The platform an image config declares (an empty os is linux, as
/// Docker reads old configs).
pub fn of_config(c: &ImageConfig) -> Platform {
    let os = if c.os.is_empty() { "linux" } else { &c.os };
    Platform::new(os, &c.architecture, c.variant.as_deref())
}

/// Make `c` declare `p`.
pub fn set_config(c: &mut ImageConfig, p: &Platform) {
    c.os.clone_from(&p.os);
    c.architecture.clone_from(&p.architecture);
    c.variant = match variant(p) {
        "" => None,
        v => Some(v.to_string()),
    };
}

/// BuildKit's automatic platform args: TARGETPLATFORM, TARGETOS,
/// TARGETARCH, TARGETVARIANT for `target`, the same BUILD* for `build`.
pub fn build_args(target: &Platform, build: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (side, p) in [("TARGET", target), ("BUILD", build)] {
        out.push((format!("{side}PLATFORM"), show(p)));
        out.push((format!("{side}OS"), p.os.clone()));
        out.push((format!("{side}ARCH"), p.architecture.clone()));
        out.push((format!("{side}VARIANT"), variant(p).to_string()));
    }
    out
}

/// How this machine can run a platform's binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runnable {
    /// The CPU runs them.
    Native,
    /// The kernel hands them to this binfmt_misc handler's interpreter.
    Emulated { interpreter: String },
    /// No way; the sentence says why.
    No { reason: String },
}

/// Whether `p` runs here, reading the handlers under `binfmt_dir`.
pub fn runnable_in(p: &Platform, binfmt_dir: &Path) -> Runnable {
    let host = Platform::host();
    // A config that names no architecture (hand-made, very old) is run
    // as Docker runs it: on the CPU.
    if p.architecture.is_empty() {
        return Runnable::Native;
    }
    if p.os != "linux" {
        return Runnable::No {
            reason: format!("only linux images run on this machine ({})", show(&host)),
        };
    }
    if p.satisfies(&Platform::new("linux", &host.architecture, None)) || native_compat(&host, p) {
        return Runnable::Native;
    }
    let Some(qemu) = qemu_arch(p) else {
        return Runnable::No {
            reason: format!("no emulator is known for {}", show(p)),
        };
    };
    let handler = binfmt_dir.join(format!("qemu-{qemu}"));
    let Ok(text) = fs_err::read_to_string(&handler) else {
        return Runnable::No {
            reason: format!("no binfmt_misc handler {}", handler.display()),
        };
    };
    handler_state(&text, &handler)
}

/// Whether `p` runs on this machine (the kernel's handlers).
pub fn runnable(p: &Platform) -> Runnable {
    runnable_in(p, Path::new(BINFMT_DIR))
}

/// A registered handler: enabled, and with the F (fix-binary) flag, which
/// makes the kernel open the interpreter at registration, so it works in
/// a user and mount namespace where its path does not exist.
fn handler_state(text: &str, handler: &Path) -> Runnable {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    if text.lines().next().map(str::trim) != Some("enabled") {
        return Runnable::No {
            reason: format!("binfmt_misc handler {} is disabled", handler.display()),
        };
    }
    if !field("flags:").unwrap_or("").contains('F') {
        return Runnable::No {
            reason: format!(
                "binfmt_misc handler {} lacks the F (fix-binary) flag, so it cannot run inside a container",
                handler.display()
            ),
        };
    }
    Runnable::Emulated {
        interpreter: field("interpreter").unwrap_or("").to_string(),
    }
}

/// 32-bit x86 on amd64 and arm on arm64 run on the CPU itself.
fn native_compat(host: &Platform, p: &Platform) -> bool {
    matches!(
        (host.architecture.as_str(), p.architecture.as_str()),
        ("amd64", "386")
    )
}

/// qemu-user's name for an architecture (Debian's handler names).
fn qemu_arch(p: &Platform) -> Option<&'static str> {
    Some(match p.architecture.as_str() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "arm",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// How to make `p` runnable here, as commands.
pub fn fix(p: &Platform) -> String {
    let handler = qemu_arch(p).map_or_else(String::new, |q| format!(" qemu-{q}"));
    format!(
        "as root: apt-get install qemu-user-static binfmt-support && update-binfmts --enable{handler} \
         (Debian's handlers carry the F flag; elsewhere register them with it, e.g. \
         `docker run --privileged --rm tonistiigi/binfmt --install all`)"
    )
}

/// The platforms `strata info` reports: the host's and those qemu-user
/// commonly emulates.
pub fn known() -> Vec<Platform> {
    [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// One platform as `strata info` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Support {
    pub platform: String,
    /// `native`, `emulated (INTERPRETER)`, or `no: REASON`.
    pub runs: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Whether each of [`known`] runs here, and the fix for those that do not.
pub fn support() -> Vec<Support> {
    known()
        .iter()
        .map(|p| {
            let (runs, fix) = match runnable(p) {
                Runnable::Native => ("native".to_string(), None),
                Runnable::Emulated { interpreter } => (format!("emulated ({interpreter})"), None),
                Runnable::No { reason } => (format!("no: {reason}"), Some(self::fix(p))),
            };
            Support {
                platform: show(p),
                runs,
                fix,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn lists_and_docker_spelling() {
        let list = parse_list("linux/amd64, linux/arm64").unwrap();
        assert_eq!(list, [p("linux/amd64"), p("linux/arm64")]);
        assert!(parse_list("linux/amd64,linux/x86_64").is_err());
        assert!(parse_list("").is_err());
        assert!(parse_list("linux").is_err());
        assert_eq!(show(&p("linux/aarch64")), "linux/arm64");
        assert_eq!(show(&p("linux/arm")), "linux/arm/v7");
    }

    #[test]
    fn buildkit_args() {
        let args = build_args(&p("linux/arm/v7"), &p("linux/amd64"));
        let get = |k: &str| args.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("TARGETPLATFORM"), "linux/arm/v7");
        assert_eq!(get("TARGETARCH"), "arm");
        assert_eq!(get("TARGETVARIANT"), "v7");
        assert_eq!(get("BUILDARCH"), "amd64");
        assert_eq!(get("BUILDVARIANT"), "");
        let arm64 = build_args(&p("linux/arm64"), &p("linux/arm64"));
        assert!(arm64.contains(&("TARGETVARIANT".into(), String::new())));
        assert!(arm64.contains(&("TARGETPLATFORM".into(), "linux/arm64".into())));
    }

    #[test]
    fn binfmt_handlers() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = if Platform::host().architecture == "arm64" {
            ("linux/amd64", "qemu-x86_64")
        } else {
            ("linux/arm64", "qemu-aarch64")
        };
        let target = p(foreign.0);
        assert!(matches!(
            runnable_in(&target, dir.path()),
            Runnable::No { .. }
        ));
        let handler = dir.path().join(foreign.1);
        fs_err::write(&handler, "enabled\ninterpreter /usr/bin/q\nflags: P\n").unwrap();
        let Runnable::No { reason } = runnable_in(&target, dir.path()) else {
            panic!("no F flag must not count")
        };
        assert!(reason.contains("fix-binary"), "{reason}");
        fs_err::write(&handler, "disabled\ninterpreter /usr/bin/q\nflags: PF\n").unwrap();
        assert!(matches!(
            runnable_in(&target, dir.path()),
            Runnable::No { .. }
        ));
        fs_err::write(&handler, "enabled\ninterpreter /usr/bin/q\nflags: PF\n").unwrap();
        assert_eq!(
            runnable_in(&target, dir.path()),
            Runnable::Emulated {
                interpreter: "/usr/bin/q".into()
            }
        );
        assert_eq!(runnable_in(&Platform::host(), dir.path()), Runnable::Native);
        let unnamed = Platform::new("linux", "", None);
        assert_eq!(runnable_in(&unnamed, dir.path()), Runnable::Native);
    }

    #[test]
    fn config_platform_round_trip() {
        let mut c = ImageConfig::new("2024-01-01T00:00:00Z".into());
        set_config(&mut c, &p("linux/arm64"));
        assert_eq!(
            (c.architecture.as_str(), c.variant.as_deref()),
            ("arm64", None)
        );
        assert_eq!(of_config(&c), p("linux/arm64"));
        set_config(&mut c, &p("linux/arm/v7"));
        assert_eq!(c.variant.as_deref(), Some("v7"));
    }
}
