//! File data copied through one reused buffer per thread, big enough that
//! a large file takes few read and write calls: `std::io::copy` between
//! wrapped readers and writers goes 8 KiB at a time (four reads for a
//! 25 KB file, 131,072 for 1 GB), and a cold COPY is mostly such calls.

use std::cell::RefCell;
use std::io::{self, Read, Write};

/// Large enough to amortize a syscall, small enough to stay in L2.
const CHUNK: usize = 256 << 10;

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `std::io::copy` with a [`CHUNK`]-sized buffer.
pub(crate) fn copy<R: Read + ?Sized, W: Write + ?Sized>(r: &mut R, w: &mut W) -> io::Result<u64> {
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => copy_with(&mut buf, r, w),
        // A reader that itself copies: it gets a buffer of its own.
        Err(_) => copy_with(&mut Vec::new(), r, w),
    })
}

fn copy_with<R: Read + ?Sized, W: Write + ?Sized>(
    buf: &mut Vec<u8>,
    r: &mut R,
    w: &mut W,
) -> io::Result<u64> {
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    let mut total = 0;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_byte_across_chunks() {
        let data: Vec<u8> = (0..CHUNK * 2 + 123).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        let n = copy(&mut data.as_slice(), &mut out).expect("copy");
        assert_eq!(n, data.len() as u64);
        assert_eq!(out, data);
    }

    #[test]
    fn an_empty_reader_copies_nothing() {
        let mut out = Vec::new();
        assert_eq!(copy(&mut io::empty(), &mut out).expect("copy"), 0);
        assert!(out.is_empty());
    }
}
