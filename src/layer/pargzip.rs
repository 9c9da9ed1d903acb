//! gzip on every core, joined as pgzip does: the input is cut into fixed
//! chunks of [`CHUNK`] bytes, each deflated on its own thread into a raw
//! deflate segment ended by a sync flush (byte-aligned, not final), the last
//! one by a final block; the segments in order make one deflate stream,
//! wrapped in one gzip member whose CRC is combined from the chunks' CRCs.
//!
//! Deterministic: chunk boundaries depend only on byte offsets and each
//! chunk is compressed with no shared state, so the same input and level
//! give the same bytes whatever the core count or the caller's write sizes.
//! The cost is a little ratio (each chunk starts with an empty window).
//! Memory is bounded: at most one chunk per worker is being compressed.
//!
//! A chunk that does not compress (random or already compressed data) is
//! stored, not deflated: deflate costs about 20 ms of CPU per MiB of such
//! data at every level for no gain, while four small samples tell it
//! apart for a sixteenth of that. The choice depends only on the chunk's
//! bytes, so the output stays deterministic.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

use crate::sync::lock;

/// Bytes per independently compressed chunk (pgzip's default block size).
const CHUNK: usize = 1 << 20;
/// gzip's OS header byte: 255, "unknown", as Go's compress/gzip writes it,
/// so the blob does not say which system made it.
pub const OS_UNKNOWN: u8 = 255;

type Segment = io::Result<(Vec<u8>, Crc)>;

/// A chunk for a worker, and where its segment goes.
struct Job {
    data: Vec<u8>,
    last: bool,
    done: SyncSender<Segment>,
}

/// Threads that live as long as the encoder: a thread per chunk left each
/// chunk's memory in a malloc arena of its own, and a push of three layers
/// at once peaked about 45 MB higher.
struct Workers {
    /// `None` once they are told to stop.
    jobs: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    fn start(count: usize, level: flate2::Compression) -> Workers {
        let (jobs, queue) = sync_channel::<Job>(count);
        let queue = Arc::new(Mutex::new(queue));
        let threads = (0..count)
            .map(|_| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || work(&queue, level))
            })
            .collect();
        Workers {
            jobs: Some(jobs),
            threads,
        }
    }

    /// Queue `data`; its segment comes out of the receiver returned.
    fn deflate(&self, data: Vec<u8>, last: bool) -> io::Result<Receiver<Segment>> {
        let (done, segment) = sync_channel(1);
        let stopped = || io::Error::other("gzip workers stopped");
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(Job { data, last, done }).map_err(|_| stopped())?;
        Ok(segment)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            // A worker that panicked has said so through its job's segment.
            let _ = t.join();
        }
    }
}

/// A worker: deflates the chunks it takes from `queue` until it closes.
fn work(queue: &Mutex<Receiver<Job>>, level: flate2::Compression) {
    loop {
        let job = lock(queue).recv();
        let Ok(job) = job else { return };
        // The encoder may be gone (an error): nobody wants the segment.
        let _ = job.done.send(deflate(&job.data, level, job.last));
    }
}

pub struct ParGzip<W: Write> {
    out: W,
    workers: Workers,
    buf: Vec<u8>,
    /// The segments to come, in input order.
    running: VecDeque<Receiver<Segment>>,
    crc: Crc,
}

impl<W: Write> ParGzip<W> {
    pub fn new(mut out: W, level: flate2::Compression, workers: usize) -> io::Result<ParGzip<W>> {
        // XFL as zlib and flate2 set it: 2 for the best level, 4 the fastest.
        let xfl = match level.level() {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, OS_UNKNOWN])?;
        let workers = workers.max(1);
        Ok(ParGzip {
            out,
            workers: Workers::start(workers, level),
            buf: Vec::with_capacity(CHUNK),
            running: VecDeque::new(),
            crc: Crc::new(),
        })
    }

    fn spawn(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.running.push_back(self.workers.deflate(data, last)?);
        // One chunk per worker: a second one ready for each, so no core
        // idles while this thread reads the next chunk, made a push of two
        // layers at once peak 15 MB higher for no gain.
        while self.running.len() >= self.workers.threads.len() {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(segment) = self.running.pop_front() else {
            return Ok(());
        };
        let (segment, crc) = segment
            .recv()
            .map_err(|_| io::Error::other("gzip worker panicked"))??;
        self.crc.combine(&crc);
        self.out.write_all(&segment)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.spawn(true)?;
        while !self.running.is_empty() {
            self.write_oldest()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.spawn(false)?;
        }
        Ok(n)
    }

    /// Flushes only what is already compressed: a chunk boundary forced by
    /// a flush would make the bytes depend on when the caller flushed.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Bytes of each of [`SAMPLES`] samples a chunk is judged by.
const SAMPLE: usize = 16 << 10;
const SAMPLES: usize = 4;

/// Whether deflate would save next to nothing on `data`: each of four
/// samples spread over it shrinks by under 2% at the fastest level.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < SAMPLE * SAMPLES {
        return false;
    }
    let step = data.len() / SAMPLES;
    (0..SAMPLES).all(|i| {
        let sample = &data[i * step..i * step + SAMPLE];
        let mut c = Compress::new(flate2::Compression::fast(), false);
        let mut out = Vec::with_capacity(SAMPLE + 1024);
        match c.compress_vec(sample, &mut out, FlushCompress::Sync) {
            Ok(_) => c.total_in() == SAMPLE as u64 && out.len() * 100 >= SAMPLE * 98,
            Err(_) => false,
        }
    })
}

/// One chunk as a raw deflate segment: sync-flushed, or final if `last`;
/// stored blocks if it does not compress.
fn deflate(data: &[u8], level: flate2::Compression, last: bool) -> Segment {
    let level = if level.level() > 0 && incompressible(data) {
        flate2::Compression::none()
    } else {
        level
    };
    let mut c = Compress::new(level, false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let done = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
        let status = c
            .compress_vec(&data[done..], &mut out, flush)
            .map_err(io::Error::other)?;
        let consumed = c.total_in() == data.len() as u64;
        // A flush is complete once the output did not fill the space given.
        let flushed = if last {
            status == Status::StreamEnd
        } else {
            consumed && out.len() < out.capacity()
        };
        if flushed {
            break;
        }
        out.reserve(out.capacity().max(64 << 10));
    }
    let mut crc = Crc::new();
    crc.update(data);
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip(data: &[u8], workers: usize, piece: usize) -> Vec<u8> {
        let mut enc = ParGzip::new(Vec::new(), flate2::Compression::default(), workers).unwrap();
        for part in data.chunks(piece.max(1)) {
            enc.write_all(part).unwrap();
        }
        enc.finish().unwrap()
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    #[test]
    fn round_trips_at_every_size_around_the_chunk() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            assert_eq!(gunzip(&gzip(&data, 2, 4096)), data, "len {len}");
        }
    }

    #[test]
    fn bytes_do_not_depend_on_workers_or_write_sizes() {
        let data: Vec<u8> = (0..5 * CHUNK + 333).map(|i| (i * 7 % 253) as u8).collect();
        let one = gzip(&data, 1, CHUNK);
        assert_eq!(one, gzip(&data, 2, 1000));
        assert_eq!(one, gzip(&data, 8, 3 * CHUNK));
    }

    #[test]
    fn random_chunks_are_stored_and_text_chunks_deflated() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..CHUNK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(incompressible(&random));
        let text: Vec<u8> = (0..200_000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        assert!(!incompressible(&text[..CHUNK]));
        // Random then text: each chunk judged on its own, the whole reads back.
        let data = [&random[..], &text[..]].concat();
        let blob = gzip(&data, 2, 7000);
        assert_eq!(gunzip(&blob), data);
        let stored = gzip(&random, 1, CHUNK).len();
        assert!(stored < CHUNK + 200, "{stored}");
        assert!(blob.len() < CHUNK + text.len() / 2, "{}", blob.len());
    }

    #[test]
    fn levels_zero_and_nine_read_back() {
        let data = b"level ".repeat(400_000);
        for level in [0, 1, 9] {
            let mut enc = ParGzip::new(Vec::new(), flate2::Compression::new(level), 2).unwrap();
            enc.write_all(&data).unwrap();
            assert_eq!(gunzip(&enc.finish().unwrap()), data, "level {level}");
        }
    }
}
