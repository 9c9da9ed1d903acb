//! `--cache-to type=inline`: the cache record (mode=min) rides in the
//! final image's config under [`INLINE_KEY`], as BuildKit's inline cache
//! does, so pushing the image pushes its cache, and `--cache-from
//! type=registry,ref=IMAGE` reads it back. The key changes the config, so
//! the image id differs from the same build without it.

use super::format::CacheRecord;
use super::RemoteError;
use crate::build::commit;
use crate::digest::ImageId;
use crate::store::config::ImageConfig;
use crate::store::Store;

/// The config key of the inline record.
pub const INLINE_KEY: &str = "strata.cache.v1";

/// The record inside an image config.
pub fn record_of_image(config: &[u8]) -> Result<CacheRecord, RemoteError> {
    let config: ImageConfig = serde_json::from_slice(config).map_err(|e| RemoteError::Invalid {
        what: "image config",
        reason: e.to_string(),
    })?;
    let value = config
        .extra
        .get(INLINE_KEY)
        .ok_or_else(|| RemoteError::NoCache {
            at: "the image (its config has no inline cache)".into(),
        })?;
    let bytes = serde_json::to_vec(value).map_err(|e| RemoteError::Invalid {
        what: "inline cache",
        reason: e.to_string(),
    })?;
    Ok(CacheRecord::from_bytes(&bytes)?)
}

/// Image `id` with `record` in its config: a new image on the same layers.
pub fn with_record(
    store: &Store,
    id: &ImageId,
    record: &CacheRecord,
) -> Result<ImageId, RemoteError> {
    let mut config = store.config(id)?;
    let value = serde_json::to_value(record).map_err(|e| RemoteError::Invalid {
        what: "inline cache",
        reason: e.to_string(),
    })?;
    config.extra.insert(INLINE_KEY.into(), value);
    commit::commit_config(store, &config, Some(id.clone()))
        .map_err(|e| RemoteError::Commit(Box::new(e)))
}
