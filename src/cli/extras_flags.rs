//! `--add-host`, `--shm-size`, `--ulimit`: Docker's flags for what a
//! process gets beyond its image, taken by `build` (for every RUN) and
//! `run` alike.

use anyhow::{anyhow, Result};

use crate::sandbox::extras::{parse_host, Extras, Ulimit};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExtrasFlags {
    /// Add a line to /etc/hosts: HOST:IP (or HOST=IP)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    add_host: Vec<String>,
    /// Size of /dev/shm: bytes, or a number with k, m or g [default: 64m]
    #[arg(long = "shm-size", value_name = "SIZE")]
    shm_size: Option<String>,
    /// Set a resource limit: NAME=SOFT[:HARD] (e.g. nofile=1024:2048)
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    ulimit: Vec<String>,
}

impl ExtrasFlags {
    pub fn resolve(&self) -> Result<Extras> {
        let shm_size = match self.shm_size.as_deref() {
            None => None,
            Some(text) => {
                let size = strata_parser::instructions::parse_size(text)
                    .map_err(|e| anyhow!("--shm-size: {e}"))?;
                // Docker: 0 is the default.
                (size > 0).then_some(size)
            }
        };
        Ok(Extras {
            hosts: self
                .add_host
                .iter()
                .map(|h| parse_host(h))
                .collect::<Result<_, _>>()?,
            shm_size,
            ulimits: self
                .ulimit
                .iter()
                .map(|u| Ulimit::parse(u))
                .collect::<Result<_, _>>()?,
        })
    }
}
