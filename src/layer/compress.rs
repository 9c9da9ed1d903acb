//! Layer compression: gzip (flate2) and zstd (multi-threaded), streamed
//! through sha256 on both sides in the same pass, and the one sniffer and
//! decompressor of incoming streams (layers and ADDed archives alike):
//! gzip, bzip2, xz and zstd, told by their magic bytes, never by a name.
//!
//! gzip is compressed on every core in independent chunks ([`super::pargzip`]),
//! zstd by zstd's own workers; [`tar_compressed`] also writes the layer's
//! tar (and hashes it into the diff id) on its own thread. Output is deterministic: the gzip header
//! carries no name, mtime 0 and the OS byte 255 ("unknown", as Go writes
//! it), so the same tar gives the same blob on any machine; zstd frames
//! depend on the level only, not on the number of workers (zstd's
//! multi-threaded mode is deterministic for any count of one or more,
//! checked by a test), so two machines with different core counts agree.
//! Only gzip, zstd and none are ever written; bzip2 and xz are read, as
//! Docker reads them in `load` and ADD.
//!
//! Every decompressed stream is capped ([`super::limits`]): a bomb stops
//! at the cap with an error instead of filling the disk.

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use serde::{Deserialize, Serialize};

use super::diff::{write_tar, DiffStats};
use super::limits::{self, Capped};
use super::pargzip::ParGzip;
use super::LayerError;
use crate::digest::{Digest, HashingReader, HashingWriter};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const BZIP2_MAGIC: [u8; 3] = *b"BZh";
const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
/// Bytes enough to tell every supported compression (xz's magic is 6).
pub const MAGIC_LEN: usize = 6;
/// zstd's default level: a good ratio at several hundred MB/s.
const ZSTD_LEVEL: i32 = 3;
/// The input of one zstd job (each worker compresses one at a time, with
/// its input and output buffered). zstd's own default at level 3 is 8 MiB,
/// which held about 40 MB per layer compressed; frames depend on it, not
/// on the number of workers.
const ZSTD_JOB: u32 = 1 << 20;
/// Levels `--compression-level` accepts per format (gzip 0-9, zstd 1-22
/// as their tools do).
pub const GZIP_LEVELS: std::ops::RangeInclusive<i32> = 0..=9;
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=22;
/// Size of the chunks passed between the tar thread and the compressor.
const PIPE_CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads: bounded, so memory stays
/// constant whatever the layer size.
const PIPE_DEPTH: usize = 2;

/// How a layer blob or an archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    /// Sniff a stream's first bytes (at least [`MAGIC_LEN`], fewer at end
    /// of stream).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else if head.starts_with(&BZIP2_MAGIC) {
            Compression::Bzip2
        } else if head.starts_with(&XZ_MAGIC) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// bzip2 and xz have no registered layer type; strata never writes a
    /// layer so compressed (a blob of them is kept only under its digest),
    /// so these names only ever appear in messages.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::Bzip2 => "application/vnd.oci.image.layer.v1.tar+bzip2",
            Compression::Xz => "application/vnd.oci.image.layer.v1.tar+xz",
        }
    }

    /// Docker schema 2 has no zstd type; the OCI one is what Docker uses.
    pub fn docker_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            other => other.oci_media_type(),
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
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
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
            if limits::is_limit_error(&e) {
                return e;
            }
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

/// Counts the compressed bytes a decoder consumes, for the ratio cap.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        self.inner.consume(n)
    }
}

/// Sniff `input`'s compression and run `f` on the uncompressed stream,
/// capped by the expansion limits in force. A callback rather than a
/// returned reader because xz is decoded on a thread that must not outlive
/// the borrowed input.
pub fn with_decompressed<R, T>(
    input: R,
    f: impl FnOnce(Compression, &mut dyn Read) -> T,
) -> io::Result<T>
where
    R: BufRead + Send,
{
    with_decompressed_limited(input, limits::get(), f)
}

/// [`with_decompressed`] under explicit limits.
pub fn with_decompressed_limited<R, T>(
    mut input: R,
    limits: limits::Limits,
    f: impl FnOnce(Compression, &mut dyn Read) -> T,
) -> io::Result<T>
where
    R: BufRead + Send,
{
    let head = input.fill_buf()?;
    let compression = Compression::detect(head);
    let count = Arc::new(AtomicU64::new(0));
    let counted = Counting {
        inner: input,
        count: Arc::clone(&count),
    };
    Ok(match compression {
        Compression::None => {
            let mut plain = counted.inner;
            f(compression, &mut plain)
        }
        Compression::Gzip => {
            let dec = flate2::bufread::MultiGzDecoder::new(counted);
            let mut r = label(Box::new(dec), &count, compression, limits);
            f(compression, &mut r)
        }
        Compression::Bzip2 => {
            let dec = bzip2::bufread::MultiBzDecoder::new(counted);
            let mut r = label(Box::new(dec), &count, compression, limits);
            f(compression, &mut r)
        }
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::with_buffer(counted)?;
            f(
                compression,
                &mut label(Box::new(dec), &count, compression, limits),
            )
        }
        Compression::Xz => std::thread::scope(|scope| -> io::Result<T> {
            let (rx, mut tx) = pipe()?;
            let mut counted = counted;
            let decoder = scope.spawn(move || {
                lzma_rs::xz_decompress(&mut counted, &mut tx).map_err(|e| match e {
                    lzma_rs::error::Error::IoError(e) => e,
                    other => io::Error::new(io::ErrorKind::InvalidData, format!("xz: {other}")),
                })
            });
            let pipe = XzPipe {
                pipe: Some(rx),
                decoder: Some(decoder),
            };
            let mut r = label(Box::new(pipe), &count, compression, limits);
            let out = f(compression, &mut r);
            // Closing our end first makes a still-running decoder fail
            // with EPIPE and stop, so the scope's join cannot hang.
            drop(r);
            Ok(out)
        })?,
    })
}

/// A decoder's output, capped and named in its errors.
fn label<'a>(
    inner: Box<dyn Read + 'a>,
    count: &Arc<AtomicU64>,
    compression: Compression,
    limits: limits::Limits,
) -> Labelled<Capped<Box<dyn Read + 'a>>> {
    Labelled {
        inner: Capped::new(inner, Arc::clone(count), limits),
        what: compression.name(),
    }
}

fn pipe() -> io::Result<(File, File)> {
    let (rx, tx) = nix::unistd::pipe().map_err(io::Error::from)?;
    Ok((File::from(rx), File::from(tx)))
}

/// The read end of the xz decoder's pipe; the decoder's error surfaces at
/// end of stream.
struct XzPipe<'scope> {
    pipe: Option<File>,
    decoder: Option<std::thread::ScopedJoinHandle<'scope, io::Result<()>>>,
}

impl Read for XzPipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(0);
        };
        let n = pipe.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(t) = self.decoder.take() {
                t.join()
                    .map_err(|_| io::Error::other("xz decoder thread panicked"))??;
            }
        }
        Ok(n)
    }
}

impl Drop for XzPipe<'_> {
    fn drop(&mut self) {
        drop(self.pipe.take());
    }
}

/// A compressing writer of either kind.
enum Encoder<W: Write> {
    None(W),
    Gzip(ParGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(out: W, compression: Compression, level: Option<i32>) -> io::Result<Encoder<W>> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Encoder::with_workers(out, compression, level, workers)
    }

    fn with_workers(
        out: W,
        compression: Compression,
        level: Option<i32>,
        workers: usize,
    ) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::None(out),
            Compression::Gzip => {
                let level = match level {
                    Some(l) => flate2::Compression::new(u32::try_from(l).unwrap_or(0)),
                    None => flate2::Compression::default(),
                };
                Encoder::Gzip(ParGzip::new(out, level, workers)?)
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_LEVEL))?;
                enc.multithread(u32::try_from(workers.max(1)).unwrap_or(1))?;
                enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB))?;
                Encoder::Zstd(enc)
            }
            Compression::Bzip2 | Compression::Xz => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("strata writes no {} layers", compression.name()),
                ))
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

/// Compress `input` into `out` at the format's default level; returns
/// (uncompressed, compressed) hashes.
pub fn compress<R: Read, W: Write>(
    input: R,
    compression: Compression,
    out: W,
) -> io::Result<(Hashed, Hashed, W)> {
    compress_level(input, compression, None, out)
}

/// [`compress`] at `level` (`None`: the format's default).
pub fn compress_level<R: Read, W: Write>(
    input: R,
    compression: Compression,
    level: Option<i32>,
    out: W,
) -> io::Result<(Hashed, Hashed, W)> {
    let mut reader = HashingReader::new(input);
    let hashing = encode(&mut reader, compression, level, HashingWriter::new(out))?;
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

/// Compress `input` into `out` at `level`, hashing nothing: for a caller
/// whose reader or writer hashes already (a layer's tar is hashed as it
/// is made, a blob by the store's writer), so no byte is hashed twice.
pub fn encode<R: Read, W: Write>(
    mut input: R,
    compression: Compression,
    level: Option<i32>,
    out: W,
) -> io::Result<W> {
    let mut enc = Encoder::new(out, compression, level)?;
    crate::layer::chunked::copy(&mut input, &mut enc)?;
    enc.finish()
}

/// Write `dir`'s deterministic tar, compressed, to `out`: the tar is made
/// on a second thread while this one compresses. Returns the tar's stats
/// (its digest is the diff id); `out` hashes the blob if it needs to.
pub fn tar_compressed<W: Write>(
    dir: &Path,
    compression: Compression,
    level: Option<i32>,
    out: W,
) -> Result<(DiffStats, W), LayerError> {
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
        let compressed = encode(
            ChanReader {
                rx,
                buf: Vec::new(),
                pos: 0,
            },
            compression,
            level,
            out,
        );
        let stats = producer.join().map_err(|_| LayerError::Io {
            op: "write tar of",
            path: dir.to_path_buf(),
            source: io::Error::other("tar thread panicked"),
        })?;
        // A compressor error (e.g. disk full) explains a producer's broken
        // pipe, so it is reported first.
        let out = compressed.map_err(LayerError::io("compress layer", dir))?;
        Ok((stats?, out))
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
            let (detected, back) = read_all(&out).unwrap();
            assert_eq!(detected, c);
            assert_eq!(back, data);
        }
    }

    #[test]
    fn gzip_header_says_nothing_of_the_machine() {
        let (_, _, out) = compress(&b"x"[..], Compression::Gzip, Vec::new()).unwrap();
        // mtime (bytes 4..8) zero, no FNAME flag, OS byte "unknown".
        assert_eq!(&out[3..8], &[0, 0, 0, 0, 0]);
        assert_eq!(out[9], super::super::pargzip::OS_UNKNOWN);
    }

    #[test]
    fn zstd_frames_do_not_depend_on_the_worker_count() {
        // Many zstd jobs (ZSTD_JOB each), so several workers really
        // split it.
        let data: Vec<u8> = (0..24u32 << 20).map(|i| (i * 7 % 253) as u8).collect();
        let mut outs = Vec::new();
        for workers in [1, 2, 4] {
            let mut enc =
                Encoder::with_workers(Vec::new(), Compression::Zstd, None, workers).unwrap();
            enc.write_all(&data).unwrap();
            outs.push(enc.finish().unwrap());
        }
        assert_eq!(outs[0], outs[1]);
        assert_eq!(outs[0], outs[2]);
    }

    #[test]
    fn levels_change_the_blob_and_read_back() {
        let data = b"level test ".repeat(10_000);
        for (c, lo, hi) in [(Compression::Gzip, 1, 9), (Compression::Zstd, 1, 19)] {
            let (_, a, out) = compress_level(&data[..], c, Some(lo), Vec::new()).unwrap();
            let (_, b, _) = compress_level(&data[..], c, Some(hi), Vec::new()).unwrap();
            assert_ne!(a.digest, b.digest, "{c:?}");
            assert_eq!(read_all(&out).unwrap(), (c, data.clone()));
        }
    }

    fn read_all(input: &[u8]) -> io::Result<(Compression, Vec<u8>)> {
        with_decompressed(input, |c, r| {
            let mut back = Vec::new();
            r.read_to_end(&mut back).map(|_| (c, back))
        })?
    }

    #[test]
    fn bzip2_and_xz_are_read() {
        let data = b"hello archive".repeat(1000);
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(&data).unwrap();
        let bz = bz.finish().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &data[..], &mut xz).unwrap();
        for (blob, c) in [(bz, Compression::Bzip2), (xz, Compression::Xz)] {
            assert_eq!(read_all(&blob).unwrap(), (c, data.clone()));
            let half = &blob[..blob.len() / 2];
            let err = read_all(half).unwrap_err();
            assert!(err.to_string().contains(c.name()), "{err}");
        }
    }

    #[test]
    fn bombs_stop_at_the_caps() {
        let zeros = vec![0u8; 8 << 20];
        let small = limits::Limits {
            max_size: 1 << 20,
            max_ratio: u64::MAX,
        };
        for c in [Compression::Gzip, Compression::Zstd] {
            let (_, _, blob) = compress(&zeros[..], c, Vec::new()).unwrap();
            let err =
                with_decompressed_limited(&blob[..], small, |_, r| io::copy(r, &mut io::sink()))
                    .unwrap()
                    .unwrap_err();
            assert!(limits::is_limit_error(&err), "{c:?}: {err}");
            assert!(err.to_string().contains("exceeds 1048576 bytes"), "{err}");
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
                let err = read_all(bad).unwrap_err();
                assert!(
                    err.to_string()
                        .contains(&format!("{} stream is corrupt or truncated", c.name())),
                    "{c:?}: {err}"
                );
            }
        }
    }
}
