//! `strata export [-o FILE] CONTAINER`: the container's whole root file
//! system as one tar.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::images::open_store;
use super::settings::Settings;
use crate::container;
use crate::sandbox::driver::{self, Layout};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<std::path::PathBuf>,
    /// The container (name, id or id prefix)
    container: String,
}

pub fn run(settings: &Settings, args: &ExportArgs) -> Result<ExitCode> {
    let store = open_store(settings)?;
    let c = container::find(&store, &args.container)?;
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            fs_err::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None if std::io::stdout().is_terminal() => {
            bail!("cowardly refusing to write a tar to a terminal: use -o FILE or redirect stdout")
        }
        None => Box::new(std::io::stdout().lock()),
    };
    if c.state.driver == crate::sandbox::driver::DriverKind::Vfs {
        let mut out = std::io::BufWriter::new(out);
        crate::layer::diff::write_tar(&c.rootfs(), &mut out).context("writing the tar")?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let lowers = store.lowerdirs(&c.state.image)?;
    let (upper, work, empty, merged) = (c.upper(), c.work(), c.empty(), c.merged());
    let mounted = driver::mount(
        c.state.driver,
        &Layout {
            lowers: &lowers,
            upper: &upper,
            work: &work,
            empty: &empty,
            target: &merged,
            volatile: false,
        },
    )?;
    let mut out = std::io::BufWriter::new(out);
    crate::layer::diff::write_tar(mounted.path(), &mut out).context("writing the tar")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
