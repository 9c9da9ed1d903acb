//! Layer compression: gzip (flate2) and zstd (multi-threaded), streamed
//! through sha256 on both sides in the same pass, and sniffing of incoming
//! streams by their magic bytes.
//!
//! [`tar_compressed`] uses both cores for gzip too: one thread writes the
//! layer's tar (and hashes it into the diff id) while the calling thread
//! compresses and hashes the blob. Output is deterministic: the gzip header
//! carries no name and mtime 0; zstd uses a fixed level and worker count.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use super::diff::{write_tar, DiffStats};
use super::LayerError;
use crate::digest::{Digest, HashingReader, HashingWriter};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// zstd's default level: a good ratio at several hundred MB/s.
const ZSTD_LEVEL: i32 = 3;
/// Size of the chunks passed between the tar thread and the compressor.
const PIPE_CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads: bounded, so memory stays
/// constant whatever the layer size.
const PIPE_DEPTH: usize = 4;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Sniff a stream's first bytes (at least 4, fewer at end of stream).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Docker schema 2 has no zstd type; the OCI one is what Docker uses.
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// The compression a layer media type declares, if it is a layer type.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        [Compression::None, Compression::Gzip, Compression::Zstd]
            .into_iter()
            .find(|c| media_type == c.oci_media_type() || media_type == c.docker_media_type())
            .or(match media_type {
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
                | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                    Some(Compression::Gzip)
                }
                _ => None,
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A reader that names the compression in its errors, so a corrupt stream
/// reads as "gzip stream is corrupt or truncated: ..." wherever it surfaces.
struct Labelled<R> {
    inner: R,
    what: &'static str,
}

impl<R: Read> Read for Labelled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = match e.kind() {
                io::ErrorKind::UnexpectedEof => io::ErrorKind::UnexpectedEof,
                _ => io::ErrorKind::InvalidData,
            };
            io::Error::new(
                kind,
                format!("{} stream is corrupt or truncated: {e}", self.what),
            )
        })
    }
}

/// Sniff `input`'s compression and return the uncompressed stream.
pub fn decompressed<'a, R: BufRead + 'a>(
    mut input: R,
) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let head = input.fill_buf()?;
    let compression = Compression::detect(head);
    let reader: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(Labelled {
            inner: flate2::bufread::MultiGzDecoder::new(input),
            what: "gzip",
        }),
        Compression::Zstd => Box::new(Labelled {
            inner: zstd::stream::read::Decoder::with_buffer(input)?,
            what: "zstd",
        }),
    };
    Ok((compression, reader))
}

/// A compressing writer of either kind.
enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(out: W, compression: Compression) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::None(out),
            Compression::Gzip => Encoder::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .write(out, flate2::Compression::default()),
            ),
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
                enc.multithread(u32::try_from(workers).unwrap_or(1))?;
                Encoder::Zstd(enc)
            }
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// Digest and length of one side of a compression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub digest: Digest,
    pub size: u64,
}

/// Compress `input` into `out`; returns (uncompressed, compressed) hashes.
pub fn compress<R: Read, W: Write>(
    input: R,
    compression: Compression,
    out: W,
) -> io::Result<(Hashed, Hashed, W)> {
    let mut reader = HashingReader::new(input);
    let mut enc = Encoder::new(HashingWriter::new(out), compression)?;
    io::copy(&mut reader, &mut enc)?;
    let hashing = enc.finish()?;
    let (digest, size, out) = hashing.finish();
    let (in_digest, in_size) = reader.finish();
    Ok((
        Hashed {
            digest: in_digest,
            size: in_size,
        },
        Hashed { digest, size },
        out,
    ))
}

/// Write `dir`'s deterministic tar, compressed, to `out`: the tar is made
/// on a second thread while this one compresses. Returns the tar's stats
/// and the compressed blob's digest and size.
pub fn tar_compressed<W: Write>(
    dir: &Path,
    compression: Compression,
    out: W,
) -> Result<(DiffStats, Hashed, W), LayerError> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(PIPE_DEPTH);
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            write_tar(
                dir,
                ChanWriter {
                    tx,
                    buf: Vec::new(),
                },
            )
        });
        let compressed = compress(
            ChanReader {
                rx,
                buf: Vec::new(),
                pos: 0,
            },
            compression,
            out,
        );
        let stats = producer.join().map_err(|_| LayerError::Io {
            op: "write tar of",
            path: dir.to_path_buf(),
            source: io::Error::other("tar thread panicked"),
        })?;
        // A compressor error (e.g. disk full) explains a producer's broken
        // pipe, so it is reported first.
        let (_, blob, out) = compressed.map_err(LayerError::io("compress layer", dir))?;
        Ok((stats?, blob, out))
    })
}

struct ChanWriter {
    tx: mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChanWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(PIPE_CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "compressor stopped"))
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIPE_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= PIPE_CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

struct ChanReader {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                // The producer is done (or failed, which its join reports).
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_table() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(Compression::detect(&ZSTD_MAGIC), Compression::Zstd);
        assert_eq!(Compression::detect(b"ustar"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(Compression::from_media_type(c.oci_media_type()), Some(c));
            assert_eq!(Compression::from_media_type(c.docker_media_type()), Some(c));
        }
        assert_eq!(Compression::from_media_type("application/json"), None);
    }

    #[test]
    fn round_trip_and_determinism() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (raw, blob, out) = compress(&data[..], c, Vec::new()).unwrap();
            let (_, blob2, out2) = compress(&data[..], c, Vec::new()).unwrap();
            assert_eq!((&blob, &out), (&blob2, &out2), "{c:?} not deterministic");
            assert_eq!(raw.digest, Digest::of(&data));
            assert_eq!(blob.digest, Digest::of(&out));
            let (detected, mut r) = decompressed(&out[..]).unwrap();
            assert_eq!(detected, c);
            let mut back = Vec::new();
            r.read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn corrupt_and_truncated_streams_fail() {
        let data = vec![7u8; 100_000];
        for c in [Compression::Gzip, Compression::Zstd] {
            let (_, _, out) = compress(&data[..], c, Vec::new()).unwrap();
            let truncated = &out[..out.len() / 2];
            let mut corrupt = out.clone();
            let mid = corrupt.len() / 2;
            corrupt[mid] ^= 0xff;
            corrupt[mid + 1] ^= 0x55;
            for bad in [truncated, &corrupt[..]] {
                let (_, mut r) = decompressed(bad).unwrap();
                let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
                assert!(
                    err.to_string()
                        .contains(&format!("{} stream is corrupt or truncated", c.name())),
                    "{c:?}: {err}"
                );
            }
        }
    }
}
