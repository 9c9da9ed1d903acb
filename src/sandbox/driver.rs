//! The storage drivers a container's root file system can be made with.

use serde::Serialize;

/// Overlay drivers in the order strata tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriverKind {
    /// Kernel overlayfs inside the user namespace (`userxattr`, Linux 5.11+)
    Overlay,
    /// The fuse-overlayfs program
    FuseOverlayfs,
    /// A copy of the lower layers: slow, works everywhere
    Vfs,
}

impl DriverKind {
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Overlay => "overlay",
            DriverKind::FuseOverlayfs => "fuse-overlayfs",
            DriverKind::Vfs => "vfs",
        }
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
