//! What a build looked up and recorded, step by step with its stage: what
//! an export writes.

use crate::build::cache::Entry;
use crate::build::key::CacheKey;

#[derive(Debug, Default, Clone)]
pub struct Journal {
    /// (stage, key, what it made), in the order seen.
    pub steps: Vec<(usize, CacheKey, Entry)>,
    /// (stage, site) of COPY steps seen or recorded.
    pub sites: Vec<(usize, CacheKey)>,
    /// The store keys of the cache mounts RUN steps use.
    pub mounts: std::collections::BTreeSet<String>,
    /// The platforms built (`linux/arm64`): a `--platform A,B` build's
    /// journals are merged into one export.
    pub platforms: std::collections::BTreeSet<String>,
}

impl Journal {
    /// Adds what another build of the same Dockerfile (another platform)
    /// saw.
    pub fn merge(&mut self, other: Journal) {
        self.steps.extend(other.steps);
        self.sites.extend(other.sites);
        self.mounts.extend(other.mounts);
        self.platforms.extend(other.platforms);
    }
}
