//! The capability set of a container process: Docker's default, nothing more.

use caps::{CapSet, Capability, CapsHashSet};

/// Docker's default capabilities (moby's oci/caps/defaults.go).
pub const DOCKER_DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

#[derive(Debug, thiserror::Error)]
#[error("dropping capabilities: {0}")]
pub struct CapsError(#[from] caps::errors::CapsError);

/// Drops every capability outside Docker's default set from the bounding,
/// inheritable, effective and permitted sets of this process. Root keeps the
/// default set across exec; any other uid loses them all at exec, as in Docker.
pub fn restrict_to_default() -> Result<(), CapsError> {
    let keep: CapsHashSet = DOCKER_DEFAULT.into_iter().collect();
    for cap in caps::all() {
        // Capabilities this kernel does not know cannot be dropped, and are
        // not held either.
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)?;
        }
    }
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())?;
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    Ok(())
}

/// The default set as the hex mask /proc/PID/status shows in CapEff.
pub fn default_mask() -> u64 {
    DOCKER_DEFAULT.iter().fold(0, |m, c| m | c.bitmask())
}

#[cfg(test)]
mod tests {
    #[test]
    fn mask_matches_dockers_capeff() {
        // What `grep CapEff /proc/self/status` prints in a default Docker container.
        assert_eq!(super::default_mask(), 0x00000000a80425fb);
    }
}
