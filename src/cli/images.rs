//! `strata images`: REPOSITORY TAG IMAGE ID CREATED SIZE, as Docker prints
//! it, or `--format`; also the display helpers the other image commands
//! share (sizes like `844kB`, times like `2 hours ago`).

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::format::{write_table, Format};
use super::settings::Settings;
use crate::digest::ImageId;
use crate::reference::Reference;
use crate::store::{ImageSummary, Store};

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Show all images (by default intermediate images are hidden)
    #[arg(short, long)]
    all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Output: table, json, or a Go template (`table ` first for a header)
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Only images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    filter: Option<String>,
}

/// Open the store of these settings, naming it in the error.
pub(super) fn open_store(settings: &Settings) -> Result<Store> {
    Store::open(&settings.root)
        .with_context(|| format!("opening the store at {}", settings.root.display()))
}

/// One printed row.
struct Row {
    repository: String,
    tag: String,
    digest: String,
    id: String,
    created_since: String,
    created_at: String,
    size: String,
    platform: String,
}

impl Row {
    /// The row as `--format` sees it: Docker's field names.
    fn fields(&self) -> serde_json::Value {
        serde_json::json!({
            "Containers": "N/A",
            "CreatedAt": self.created_at,
            "CreatedSince": self.created_since,
            "Digest": self.digest,
            "ID": self.id,
            "Platform": self.platform,
            "Repository": self.repository,
            "SharedSize": "N/A",
            "Size": self.size,
            "Tag": self.tag,
            "UniqueSize": "N/A",
            "VirtualSize": self.size,
        })
    }
}

/// Column titles of `--format 'table ...'`, by field.
const HEADERS: &[(&str, &str)] = &[
    ("Containers", "CONTAINERS"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedSince", "CREATED"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("Platform", "PLATFORM"),
    ("Repository", "REPOSITORY"),
    ("SharedSize", "SHARED SIZE"),
    ("Size", "SIZE"),
    ("Tag", "TAG"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
];

pub fn run(settings: &Settings, args: &ImagesArgs) -> Result<ExitCode> {
    let format = Format::parse(args.format.as_deref())?;
    let store = open_store(settings)?;
    let rows = rows(&store, args)?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for r in &rows {
            if seen.insert(r.id.clone()) {
                writeln!(out, "{}", r.id)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Format::Template { .. } = format {
        let fields: Vec<serde_json::Value> = rows.iter().map(Row::fields).collect();
        format.write_rows(&mut out, &fields, HEADERS)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    // Docker's columns, and the platform once an image is not the host's.
    let host = crate::platform::show(&crate::platform::Platform::host());
    let platforms = rows.iter().any(|r| r.platform != host);
    if platforms {
        header.push("PLATFORM");
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            let mut v = vec![r.repository, r.tag];
            if args.digests {
                v.push(r.digest);
            }
            v.extend([r.id, r.created_since, r.size]);
            if platforms {
                v.push(r.platform);
            }
            v
        })
        .collect();
    write_table(&mut out, &header, &table)?;
    Ok(ExitCode::SUCCESS)
}

/// The rows `args` select, newest image first.
fn rows(store: &Store, args: &ImagesArgs) -> Result<Vec<Row>> {
    let images = store.list_images()?;
    let parents = store.parents()?;
    let filter = args
        .filter
        .as_deref()
        .map(Reference::parse_name)
        .transpose()?;
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for img in &images {
        let untagged = img.tags.is_empty();
        if untagged && !args.all && parents.contains(&img.id) {
            continue;
        }
        for (repository, tag) in names(img) {
            if let Some(f) = &filter {
                let repo_ok = repository == f.familiar_repository();
                if !repo_ok || f.tag().is_some_and(|t| t != tag) {
                    continue;
                }
            }
            let digest = img
                .repo_digests
                .iter()
                .filter_map(|d| Reference::parse(d).ok())
                .find(|r| r.familiar_repository() == repository)
                .and_then(|r| r.digest().map(|d| d.to_string()))
                .unwrap_or_else(|| "<none>".into());
            rows.push(Row {
                repository,
                tag,
                digest,
                id: show_id(&img.id, args.no_trunc),
                created_since: img.created.as_deref().map_or("N/A".into(), |c| ago(c, now)),
                created_at: img.created.as_deref().map(docker_time).unwrap_or_default(),
                size: match img.remote_layers {
                    0 => human_size(img.size),
                    // Not fetched yet: their size is known when they are.
                    n => format!("{} (+{n} remote)", human_size(img.size)),
                },
                platform: img.platform.clone(),
            });
        }
    }
    Ok(rows)
}

/// (repository, tag) pairs of an image: its tags; the repositories of its
/// digests with tag `<none>` when it has only those; `<none> <none>` for a
/// dangling one.
fn names(img: &ImageSummary) -> Vec<(String, String)> {
    if img.tags.is_empty() {
        let mut repos: Vec<(String, String)> = img
            .repo_digests
            .iter()
            .filter_map(|d| Reference::parse(d).ok())
            .map(|r| (r.familiar_repository(), "<none>".to_string()))
            .collect();
        repos.dedup();
        if repos.is_empty() {
            repos.push(("<none>".into(), "<none>".into()));
        }
        return repos;
    }
    img.tags
        .iter()
        .map(|t| {
            (
                t.familiar_repository(),
                t.tag().unwrap_or("<none>").to_string(),
            )
        })
        .collect()
}

/// `sha256:<hex>` with `--no-trunc`, else the first 12 hex digits.
pub(super) fn show_id(id: &ImageId, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.short().to_string()
    }
}

/// Docker's size format: decimal units, three significant digits
/// (`0B`, `844kB`, `4.26MB`, `1.23GB`).
pub(super) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let decimals = if size >= 100.0 {
        0
    } else if size >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{size:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[unit])
}

/// `2 hours ago` for an RFC 3339 time, as Docker's CREATED column.
pub(super) fn ago(rfc3339: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339_weak(
        rfc3339
            .trim_end_matches('Z')
            .split('.')
            .next()
            .unwrap_or(""),
    )
    .ok()
    .or_else(|| humantime::parse_rfc3339(rfc3339).ok())
    {
        Some(t) => format!(
            "{} ago",
            human_duration(now.duration_since(t).unwrap_or_default())
        ),
        None => "N/A".into(),
    }
}

/// Docker's CreatedAt: `2024-01-01 00:00:00 +0000 UTC` for a UTC RFC 3339
/// time; anything else is shown as it is.
pub(super) fn docker_time(rfc3339: &str) -> String {
    match rfc3339
        .strip_suffix('Z')
        .map(|t| t.split('.').next().unwrap_or(t))
    {
        Some(t) if t.len() == 19 && t.as_bytes()[10] == b'T' => {
            format!("{} {} +0000 UTC", &t[..10], &t[11..])
        }
        _ => rfc3339.to_string(),
    }
}

/// go-units' HumanDuration.
pub(super) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    let minutes = secs / 60;
    match () {
        _ if secs < 1 => "Less than a second".into(),
        _ if secs == 1 => "1 second".into(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        for (n, want) in [
            (0, "0B"),
            (5, "5B"),
            (999, "999B"),
            (1000, "1kB"),
            (844_000, "844kB"),
            (4_260_000, "4.26MB"),
            (12_340_000, "12.3MB"),
            (237_000_000, "237MB"),
            (1_230_000_000, "1.23GB"),
        ] {
            assert_eq!(human_size(n), want, "{n}");
        }
    }

    #[test]
    fn durations_like_docker() {
        for (s, want) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (30, "30 seconds"),
            (60, "About a minute"),
            (600, "10 minutes"),
            (3600, "About an hour"),
            (7200, "2 hours"),
            (3 * 86400, "3 days"),
            (21 * 86400, "3 weeks"),
            (90 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(s)), want, "{s}");
        }
    }

    #[test]
    fn ago_parses_config_times() {
        let now = humantime::parse_rfc3339("2024-01-01T02:00:00Z").unwrap();
        assert_eq!(ago("2024-01-01T00:00:00Z", now), "2 hours ago");
        assert_eq!(ago("2024-01-01T00:00:00.123456789Z", now), "2 hours ago");
        assert_eq!(ago("garbage", now), "N/A");
    }

    #[test]
    fn created_at_like_docker() {
        assert_eq!(
            docker_time("2024-01-02T03:04:05Z"),
            "2024-01-02 03:04:05 +0000 UTC"
        );
        assert_eq!(
            docker_time("2024-01-02T03:04:05.123Z"),
            "2024-01-02 03:04:05 +0000 UTC"
        );
        assert_eq!(
            docker_time("2024-01-02T03:04:05+02:00"),
            "2024-01-02T03:04:05+02:00"
        );
    }
}
