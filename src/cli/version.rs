//! `strata version`: what this strata is and how it runs here, in the
//! shape of `docker version`'s client block.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::settings::Settings;
use crate::sandbox::probe;

pub fn run(settings: &Settings) -> Result<ExitCode> {
    let report = probe::run_all(settings.storage_driver, None);
    let driver = report.driver.map_or_else(
        || "none works here (see strata info)".into(),
        |d| d.to_string(),
    );
    // The rung of the isolation ladder a build would use (see `strata info`).
    let isolation = report.isolation.map_or_else(
        || "none works here (see strata info)".into(),
        |c| format!("{}: {}", c.isolation, c.isolation.summary()),
    );
    let rows = [
        ("Version", env!("CARGO_PKG_VERSION").to_string()),
        ("Git commit", env!("STRATA_GIT_COMMIT").to_string()),
        ("Rust version", env!("STRATA_RUSTC_VERSION").to_string()),
        (
            "OS/Arch",
            format!(
                "{}/{}",
                std::env::consts::OS,
                go_arch(std::env::consts::ARCH)
            ),
        ),
        ("Storage driver", driver),
        ("Isolation", isolation),
        ("Kernel", probe::kernel_release()),
    ];
    let mut out = std::io::stdout().lock();
    writeln!(out, "Client: strata")?;
    for (key, value) in rows {
        writeln!(out, " {:<19}{value}", format!("{key}:"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Docker's (Go's) name for an architecture.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
