//! `strata info`: what strata sees on this machine, probe by probe.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::ValueEnum;

use super::settings::Settings;
use crate::sandbox::probe;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Show what this rung of the isolation ladder would do (as build and
    /// run --isolation) instead of choosing the best one
    #[arg(long, value_enum, env = "STRATA_ISOLATION")]
    isolation: Option<crate::sandbox::ladder::IsolationFlag>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(settings: &Settings, args: &InfoArgs) -> Result<ExitCode> {
    let report = probe::run_all(
        settings.storage_driver,
        args.isolation.and_then(|f| f.forced()),
    );
    let kernel = probe::kernel_release();
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let json = serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "storeRoot": settings.root,
                "user": report.caller,
                "rootUser": report.root_user,
                "kernel": kernel,
                "environment": report.environment,
                "isolation": report.isolation,
                "storageDriver": report.driver,
                "checks": report.checks,
                "platforms": crate::platform::support(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        Format::Text => {
            let user = &report.caller;
            let mut rows = vec![
                (
                    "strata version".to_string(),
                    env!("CARGO_PKG_VERSION").to_string(),
                ),
                (
                    "store root".to_string(),
                    settings.root.display().to_string(),
                ),
                (
                    "user".to_string(),
                    format!(
                        "{} (uid {}, gid {})",
                        user.display_name(),
                        user.uid,
                        user.gid
                    ),
                ),
                ("kernel".to_string(), kernel),
            ];
            let mut fixes = Vec::new();
            for check in &report.checks {
                let mark = if check.ok { "" } else { "FAILED: " };
                rows.push((check.name.to_string(), format!("{mark}{}", check.detail)));
                fixes.push((rows.len() - 1, check.fix.clone()));
            }
            for p in crate::platform::support() {
                rows.push((format!("platform {}", p.platform), p.runs));
                fixes.push((rows.len() - 1, p.fix));
            }
            let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
            for (i, (key, value)) in rows.iter().enumerate() {
                writeln!(out, "{:<width$} {value}", format!("{key}:"), width = width)?;
                if let Some((_, Some(fix))) = fixes.iter().find(|(row, _)| *row == i) {
                    writeln!(out, "{:<width$}   fix: {fix}", "", width = width)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
