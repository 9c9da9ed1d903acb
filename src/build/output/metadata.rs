//! `--metadata-file`: what `docker buildx build` writes there, for the
//! keys a CI job reads: `containerimage.config.digest` (the image id),
//! `containerimage.digest` (the manifest an output or a push made) and
//! `image.name` (the names it went out under, comma-separated).

use std::path::Path;

use serde_json::{json, Map, Value};

use super::export::Exported;
use super::OutputError;
use crate::digest::ImageId;
use crate::store::fsutil::write_whole_file;

/// The JSON object (pure).
pub fn metadata(id: &ImageId, exported: &Exported) -> Value {
    let mut m = Map::new();
    m.insert("containerimage.config.digest".into(), json!(id.to_string()));
    if let Some(d) = &exported.manifest {
        m.insert("containerimage.digest".into(), json!(d.to_string()));
    }
    if !exported.names.is_empty() {
        m.insert("image.name".into(), json!(exported.names.join(",")));
    }
    Value::Object(m)
}

pub fn write(path: &Path, id: &ImageId, exported: &Exported) -> Result<(), OutputError> {
    let text =
        serde_json::to_vec_pretty(&metadata(id, exported)).map_err(|source| OutputError::Json {
            what: "the metadata file",
            source,
        })?;
    write_whole_file(path, |mut w| {
        std::io::Write::write_all(&mut w, &text)?;
        Ok::<_, std::io::Error>(w)
    })
    .map_err(OutputError::io("write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn keys_as_buildx_writes_them() {
        let id = ImageId(Digest::of(b"config"));
        let bare = metadata(&id, &Exported::default());
        assert_eq!(
            bare,
            json!({"containerimage.config.digest": id.to_string()})
        );
        let m = Digest::of(b"manifest");
        let full = metadata(
            &id,
            &Exported {
                manifest: Some(m.clone()),
                names: vec!["a:1".into(), "b:2".into()],
            },
        );
        assert_eq!(full["containerimage.digest"], json!(m.to_string()));
        assert_eq!(full["image.name"], json!("a:1,b:2"));
    }
}
