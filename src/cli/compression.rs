//! `--compression-format`, `--compression-level` and `--force-compression`,
//! shared by `push`, `save` and `build` (podman's and BuildKit's flags).

use anyhow::{bail, Result};
use clap::ValueEnum;

use crate::layer::compress::{Compression, GZIP_LEVELS, ZSTD_LEVELS};
use crate::store::BlobCompression;

/// `--compression-format`, as podman spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayerCompression {
    Gzip,
    Zstd,
}

impl LayerCompression {
    pub fn get(self) -> Compression {
        match self {
            LayerCompression::Gzip => Compression::Gzip,
            LayerCompression::Zstd => Compression::Zstd,
        }
    }
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct CompressionFlags {
    /// Layer compression: gzip or zstd [default: gzip]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub compression_format: Option<LayerCompression>,
    /// Compression level of layers compressed now (gzip 0-9, zstd 1-22)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub compression_level: Option<i32>,
    /// Recompress layers that already have a blob in another format (or
    /// level)
    #[arg(long)]
    pub force_compression: bool,
}

impl CompressionFlags {
    /// The blob choice. `format_forces`: an explicit format alone forces
    /// (podman's push and save); BuildKit's build outputs keep existing
    /// blobs unless `--force-compression`.
    pub fn choice(&self, format_forces: bool) -> Result<BlobCompression> {
        let format = self.compression_format.unwrap_or(LayerCompression::Gzip);
        let force = self.force_compression || (format_forces && self.compression_format.is_some());
        blob_compression(format.get(), self.compression_level, force)
    }
}

/// A checked choice: the level must be one the format has.
pub fn blob_compression(
    format: Compression,
    level: Option<i32>,
    force: bool,
) -> Result<BlobCompression> {
    if let Some(l) = level {
        let range = match format {
            Compression::Zstd => ZSTD_LEVELS,
            _ => GZIP_LEVELS,
        };
        if !range.contains(&l) {
            bail!(
                "--compression-level {l}: {} levels are {} to {}",
                format.name(),
                range.start(),
                range.end()
            );
        }
    }
    Ok(BlobCompression {
        format,
        level,
        force,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices() {
        let f = |format, level, force| CompressionFlags {
            compression_format: format,
            compression_level: level,
            force_compression: force,
        };
        let c = f(None, None, false).choice(true).unwrap();
        assert_eq!((c.format, c.force), (Compression::Gzip, false));
        let c = f(Some(LayerCompression::Zstd), None, false);
        assert!(c.choice(true).unwrap().force, "podman: explicit forces");
        assert!(!c.choice(false).unwrap().force, "BuildKit: it does not");
        assert!(f(None, None, true).choice(false).unwrap().force);
        assert!(f(None, Some(10), false).choice(true).is_err());
        assert!(f(Some(LayerCompression::Zstd), Some(19), false)
            .choice(true)
            .is_ok());
        assert!(f(Some(LayerCompression::Zstd), Some(0), false)
            .choice(true)
            .is_err());
    }
}
