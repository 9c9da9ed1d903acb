//! Content digests and the typed ids built on them.
//!
//! A [`Digest`] is `sha256:<64 lowercase hex>` (the only algorithm strata
//! writes; OCI allows others, which are refused with a clear error rather
//! than half-supported). The newtypes say which role a digest plays so they
//! cannot be mixed up: [`DiffId`] (sha256 of an uncompressed layer tar),
//! [`ImageId`] (digest of an image config), [`ChainId`] (the layer-stack id
//! of the OCI spec). [`HashingWriter`] and [`HashingReader`] compute a digest
//! and a byte count while data streams through them, so nothing is read twice.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Length of a sha256 digest in hex characters.
const SHA256_HEX_LEN: usize = 64;

/// How many hex characters Docker shows for a truncated id.
pub const SHORT_ID_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error(
        "invalid digest {input:?}: expected \"sha256:\" followed by 64 lowercase hex characters"
    )]
    Malformed { input: String },
    #[error("unsupported digest algorithm {algorithm:?} in {input:?}: only sha256 is supported")]
    Algorithm { algorithm: String, input: String },
}

/// Bytes that do not have the digest they must: the one error for it, of
/// the store, the registry client and remote caches alike.
#[derive(Debug, thiserror::Error)]
#[error("{what}: digest mismatch: expected {expected}, found {found}")]
pub struct DigestMismatch {
    /// What the bytes are (a blob of a repository, a layer, a file).
    pub what: String,
    pub expected: Digest,
    pub found: Digest,
}

/// Bytes of another length than their descriptor says: the same error in
/// the store and the registry client.
#[derive(Debug, thiserror::Error)]
#[error("{what}: size mismatch: expected {expected} bytes, found {found}")]
pub struct SizeMismatch {
    /// What the bytes are (a blob of a repository, an ingest).
    pub what: String,
    pub expected: u64,
    pub found: u64,
}

/// A sha256 content digest, e.g. `sha256:e3b0c442...`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(data))
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Digest {
        Digest {
            hex: hex::encode(hasher.finalize()),
        }
    }

    /// Build from a bare hex string (as found in a file name).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        if hex.len() == SHA256_HEX_LEN
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            Ok(Digest {
                hex: hex.to_string(),
            })
        } else {
            Err(DigestError::Malformed {
                input: hex.to_string(),
            })
        }
    }

    /// The hex part, without `sha256:`; what file names in the store use.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first [`SHORT_ID_LEN`] hex characters, as Docker shows ids.
    pub fn short(&self) -> &str {
        &self.hex[..SHORT_ID_LEN]
    }

    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestError::Malformed {
                input: s.to_string(),
            });
        };
        if algorithm != "sha256" {
            return Err(DigestError::Algorithm {
                algorithm: algorithm.to_string(),
                input: s.to_string(),
            });
        }
        Digest::from_hex(hex).map_err(|_| DigestError::Malformed {
            input: s.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Declares a newtype over [`Digest`] that serialises as the digest string.
macro_rules! digest_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Digest);

        impl $name {
            pub fn digest(&self) -> &Digest {
                &self.0
            }
            pub fn hex(&self) -> &str {
                self.0.hex()
            }
            pub fn short(&self) -> &str {
                self.0.short()
            }
        }

        impl FromStr for $name {
            type Err = DigestError;
            fn from_str(s: &str) -> Result<$name, DigestError> {
                s.parse().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl From<Digest> for $name {
            fn from(d: Digest) -> $name {
                $name(d)
            }
        }
    };
}

digest_newtype!(
    /// The sha256 of a layer's uncompressed tar stream.
    DiffId
);
digest_newtype!(
    /// An image's identity: the digest of its config blob.
    ImageId
);
digest_newtype!(
    /// The id of a stack of layers (OCI image spec, "ChainID").
    ChainId
);

impl ChainId {
    /// `ChainID(L0) = DiffID(L0)`, `ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))`.
    pub fn of(diff_ids: &[DiffId]) -> Option<ChainId> {
        let (first, rest) = diff_ids.split_first()?;
        let chain = rest.iter().fold(first.0.clone(), |chain, diff| {
            Digest::of(format!("{chain} {diff}").as_bytes())
        });
        Some(ChainId(chain))
    }
}

/// A writer that hashes and counts everything written through it.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Carrying on after `written` bytes whose hash is `hasher` (a
    /// resumed blob).
    pub fn resuming(inner: W, hasher: Sha256, written: u64) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher,
            written,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of what went through so far.
    pub fn digest(&self) -> Digest {
        Digest::from_hasher(self.hasher.clone())
    }

    /// Forget what went through (the inner writer was emptied).
    pub fn reset(&mut self) {
        self.hasher = Sha256::new();
        self.written = 0;
    }

    /// The digest and size of what went through, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (Digest::from_hasher(self.hasher), self.written, self.inner)
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.read
    }

    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.read)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<(), DigestError>)] = &[
            (EMPTY, Ok(())),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                Err(DigestError::Malformed {
                    input:
                        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
                            .into(),
                }),
            ),
            (
                "sha256:abc",
                Err(DigestError::Malformed {
                    input: "sha256:abc".into(),
                }),
            ),
            (
                "e3b0",
                Err(DigestError::Malformed {
                    input: "e3b0".into(),
                }),
            ),
            (
                "sha512:00",
                Err(DigestError::Algorithm {
                    algorithm: "sha512".into(),
                    input: "sha512:00".into(),
                }),
            ),
        ];
        for (input, want) in cases {
            let got = input.parse::<Digest>().map(|_| ());
            assert_eq!(&got, want, "{input}");
        }
    }

    #[test]
    fn of_and_display_round_trip() {
        let d = Digest::of(b"");
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(EMPTY.parse::<Digest>().unwrap(), d);
        let json = serde_json::to_string(&ImageId(d.clone())).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<ImageId>(&json).unwrap(), ImageId(d));
    }

    #[test]
    fn chain_id_follows_the_spec() {
        let a = DiffId(Digest::of(b"a"));
        let b = DiffId(Digest::of(b"b"));
        assert_eq!(ChainId::of(&[]), None);
        assert_eq!(ChainId::of(std::slice::from_ref(&a)).unwrap().0, a.0);
        let want = Digest::of(format!("{} {}", a, b).as_bytes());
        assert_eq!(ChainId::of(&[a, b]).unwrap().0, want);
    }

    #[test]
    fn hashing_writer_and_reader_agree() {
        let data = b"hello world".repeat(1000);
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (dw, nw, out) = w.finish();
        let mut r = HashingReader::new(&out[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let (dr, nr) = r.finish();
        assert_eq!((dw.clone(), nw), (dr, nr));
        assert_eq!(dw, Digest::of(&data));
    }
}
