//! `strata history [--no-trunc] [-q] [--format F] IMAGE`: IMAGE CREATED
//! CREATED BY SIZE COMMENT, newest first, `<missing>` for steps not built
//! here.

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;

use super::format::{write_table, Format};
use super::images::{ago, human_size, open_store, show_id};
use super::settings::Settings;
use crate::digest::ImageId;
use crate::store::Store;

/// Docker truncates CREATED BY to this many characters.
const CREATED_BY_WIDTH: usize = 45;

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Output: table, json, or a Go template (`table ` first for a header)
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Image (name, id or id prefix)
    #[arg(value_name = "IMAGE")]
    image: String,
}

pub fn run(settings: &Settings, args: &HistoryArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let id = store.resolve(&args.image)?;
    let config = store.config(&id)?;
    let ids = step_ids(&store, &id, config.history.len())?;
    // Sizes: each non-empty history entry owns the next layer.
    let mut sizes = Vec::new();
    let mut layers = config.rootfs.diff_ids.iter();
    for h in &config.history {
        // Only an entry that made a layer takes one from the list.
        let layer = if h.empty_layer { None } else { layers.next() };
        let size = match layer {
            Some(d) => store.layer_record(d)?.map_or(0, |r| r.size),
            None => 0,
        };
        sizes.push(size);
    }
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for (i, h) in config.history.iter().enumerate().rev() {
        let image = ids[i]
            .as_ref()
            .map_or("<missing>".into(), |id| show_id(id, args.no_trunc));
        let created_by = h.created_by.clone().unwrap_or_default();
        rows.push(Row {
            id: image,
            created_since: h.created.as_deref().map_or("N/A".into(), |c| ago(c, now)),
            created_at: h.created.clone().unwrap_or_default(),
            created_by: if args.no_trunc {
                created_by
            } else {
                truncate(&created_by, CREATED_BY_WIDTH)
            },
            size: human_size(sizes[i]),
            comment: h.comment.clone().unwrap_or_default(),
        });
    }
    print(&rows, args)
}

struct Row {
    id: String,
    created_since: String,
    created_at: String,
    created_by: String,
    size: String,
    comment: String,
}

/// Column titles of `--format 'table ...'`, by field.
const HEADERS: &[(&str, &str)] = &[
    ("Comment", "COMMENT"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("CreatedSince", "CREATED"),
    ("ID", "IMAGE"),
    ("Size", "SIZE"),
];

fn print(rows: &[Row], args: &HistoryArgs) -> Result<ExitCode> {
    let format = Format::parse(args.format.as_deref())?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for r in rows {
            writeln!(out, "{}", r.id)?;
        }
    } else if let Format::Template { .. } = format {
        let fields: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "Comment": r.comment, "CreatedAt": r.created_at, "CreatedBy": r.created_by,
                    "CreatedSince": r.created_since, "ID": r.id, "Size": r.size,
                })
            })
            .collect();
        format.write_rows(&mut out, &fields, HEADERS)?;
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let cells = [&r.id, &r.created_since, &r.created_by, &r.size, &r.comment];
                cells.into_iter().cloned().collect()
            })
            .collect();
        write_table(
            &mut out,
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &table,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The image id of each history entry that is the top of an image in this
/// store: the image itself, then its recorded parents.
fn step_ids(store: &Store, id: &ImageId, len: usize) -> Result<Vec<Option<ImageId>>> {
    let mut ids = vec![None; len];
    let index = store.index()?;
    let mut cur = Some(id.clone());
    let mut guard = 0;
    while let Some(img) = cur {
        let n = store.config(&img)?.history.len();
        if n == 0 || n > len || guard > len {
            break;
        }
        ids[n - 1] = Some(img.clone());
        cur = index.images.get(&img).and_then(|r| r.parent.clone());
        guard += 1;
    }
    if len > 0 && ids[len - 1].is_none() {
        ids[len - 1] = Some(id.clone());
    }
    Ok(ids)
}

/// Cut to `width` characters with an ellipsis, as Docker's table does.
fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut t: String = s.chars().take(width - 1).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncate_table() {
        assert_eq!(super::truncate("abc", 5), "abc");
        assert_eq!(super::truncate("abcdef", 5), "abcd…");
    }
}
