//! strata's one tar reader, for pulled and loaded layers and for ADD: a
//! stream of headers in, one [`Entry`] per archive member out, read the way
//! GNU tar lists the same bytes (`tar tvf`), so every path agrees on what an
//! archive holds.
//!
//! Where readers disagree, GNU tar decides:
//! - PAX records: a repeated key takes its **last** value, a second `x`
//!   header before the same member merges into the first, and a PAX `path`
//!   or `linkpath` beats a GNU long name (`L`/`K`) whatever their order;
//!   `g` (global) records apply to every later member, under the local ones.
//! - A PAX `size` replaces the header's; directories and hard links carry
//!   no data whatever their size field says, every other type skips `size`
//!   bytes (a symlink or fifo with data is not a place to hide a header).
//! - A type `\0` member whose name ends in `/` is a directory (old tars).
//! - The archive ends at the first all-zero block.
//!
//! GNU sparse members (type `S`, or PAX `GNU.sparse.*` records) are not
//! read: `S` is listed as [`Kind::Other`] for the consumer to refuse, and a
//! PAX-sparse member is an error, so a sparse map is never unpacked as if
//! it were the file. Docker and buildah never write them.
//!
//! Where GNU tar only warns, this reader refuses (a malformed PAX record, a
//! bad checksum, a non-numeric field), and so it does for extension headers
//! that end the archive with no member after them (GNU tar drops them), so
//! a doubtful archive is an error, never a second reading. One deliberate
//! difference: a numeric header field left blank (all NULs or spaces, as
//! some writers leave uid and gid) reads as 0, as Go's archive/tar reads it
//! for Docker and BuildKit.
//!
//! Extension headers (PAX, GNU long names) are held in memory, so each is
//! capped at [`MAX_EXTENSION`], as Go's archive/tar caps them.

use std::collections::BTreeMap;
use std::io::{self, Read};

/// Size of a tar block.
pub const BLOCK: usize = 512;
/// Largest PAX or GNU long-name header read into memory (Go's limit).
pub const MAX_EXTENSION: u64 = 1 << 20;
/// PAX key prefix of an xattr (the GNU tar / Docker convention).
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// A tar member's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
    /// Any other type flag (GNU sparse `S`, volume label `V`, ...): listed,
    /// so a consumer can refuse it by name.
    Other(u8),
}

impl Kind {
    fn from_flag(flag: u8, name: &[u8]) -> Kind {
        match flag {
            b'\0' if name.ends_with(b"/") => Kind::Dir,
            b'0' | b'\0' | b'7' => Kind::File,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            other => Kind::Other(other),
        }
    }

    /// Whether the member's data blocks are absent whatever its size says.
    fn has_no_data(self) -> bool {
        matches!(self, Kind::Dir | Kind::HardLink)
    }
}

/// One archive member, with every extension header folded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    /// Target of a symlink or hard link (empty otherwise).
    pub link: Vec<u8>,
    pub kind: Kind,
    /// Permission bits and setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch (whole; PAX fractions are dropped).
    pub mtime: i64,
    /// Bytes of data that follow (0 for directories and hard links).
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// `SCHILY.xattr.NAME` records: name -> value, last value wins.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the archive ends inside a member (truncated)")]
    Truncated,
    #[error("corrupt tar header at byte {offset}: {reason}")]
    Header { offset: u64, reason: String },
    #[error("malformed PAX header at byte {offset}: {reason}")]
    Pax { offset: u64, reason: String },
    #[error("{what} header at byte {offset} is {size} bytes, over the {MAX_EXTENSION} byte limit")]
    TooLarge {
        what: &'static str,
        offset: u64,
        size: u64,
    },
    #[error("extension headers at the end of the archive describe no member")]
    DanglingExtension,
}

/// PAX records: key -> value.
type Pax = BTreeMap<Vec<u8>, Vec<u8>>;

/// What extension headers said about the member that follows them.
#[derive(Default)]
struct Pending {
    pax: Pax,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    any: bool,
}

/// Reads members from a tar stream; see the module doc for the rules.
pub struct TarReader<R> {
    inner: R,
    /// Offset of the next unread byte of the archive.
    offset: u64,
    /// Data bytes of the current member not yet read, then its padding.
    left: u64,
    pad: u64,
    global: Pax,
    ended: bool,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> TarReader<R> {
        TarReader {
            inner,
            offset: 0,
            left: 0,
            pad: 0,
            global: Pax::new(),
            ended: false,
        }
    }

    /// The next member, or `None` at the end of the archive. Unread data
    /// of the previous member is skipped.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        if self.ended {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut pending = Pending::default();
        loop {
            let at = self.offset;
            let Some(block) = self.read_block()? else {
                self.ended = true;
                // The end blocks are missing: GNU tar accepts that too.
                return match pending.any {
                    true => Err(TarError::DanglingExtension),
                    false => Ok(None),
                };
            };
            if block.iter().all(|&b| b == 0) {
                self.ended = true;
                return match pending.any {
                    true => Err(TarError::DanglingExtension),
                    false => Ok(None),
                };
            }
            let header = Header::parse(&block, at)?;
            match header.flag {
                b'x' | b'g' | b'L' | b'K' => {
                    let data = self.read_extension(&header, at)?;
                    self.fold_extension(header.flag, data, &mut pending, at)?;
                }
                _ => return self.member(header, pending, at).map(Some),
            }
        }
    }

    /// A reader of the current member's data.
    pub fn data(&mut self) -> Data<'_, R> {
        Data { reader: self }
    }

    /// Offset in the archive of the next unread byte: right after
    /// [`TarReader::next_entry`], where the member's data starts.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// The underlying stream, positioned after what was read.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn member(&mut self, header: Header, pending: Pending, at: u64) -> Result<Entry, TarError> {
        let mut pax = self.global.clone();
        pax.extend(pending.pax);
        let path = match (pax.remove(b"path".as_slice()), pending.long_name) {
            (Some(p), _) => p,
            (None, Some(long)) => long,
            (None, None) => header.name.clone(),
        };
        let link = match (pax.remove(b"linkpath".as_slice()), pending.long_link) {
            (Some(l), _) => l,
            (None, Some(long)) => long,
            (None, None) => header.link.clone(),
        };
        if pax.keys().any(|k| k.starts_with(b"GNU.sparse.")) {
            // Its data is a sparse map, not the file: refused rather than
            // unpacked as something else than what GNU tar would make.
            return Err(TarError::Header {
                offset: at,
                reason: "GNU sparse members are not supported".into(),
            });
        }
        let kind = Kind::from_flag(header.flag, &path);
        let pax_num = |key: &str| pax_number(&pax, key, at);
        let size = match kind.has_no_data() {
            true => 0,
            false => pax_num("size")?.unwrap_or(header.size),
        };
        let mtime = match pax.get(b"mtime".as_slice()) {
            Some(v) => pax_seconds(v).ok_or_else(|| pax_err(at, "mtime", v))?,
            None => header.mtime,
        };
        let xattrs = pax
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(PAX_XATTR_PREFIX)?.to_vec(), v.clone())))
            .collect();
        self.left = size;
        self.pad = padding(size);
        Ok(Entry {
            path,
            link,
            kind,
            mode: header.mode,
            uid: pax_num("uid")?.unwrap_or(header.uid),
            gid: pax_num("gid")?.unwrap_or(header.gid),
            mtime,
            size,
            dev_major: header.dev_major,
            dev_minor: header.dev_minor,
            xattrs,
        })
    }

    fn read_extension(&mut self, header: &Header, at: u64) -> Result<Vec<u8>, TarError> {
        if header.size > MAX_EXTENSION {
            let what = match header.flag {
                b'L' | b'K' => "GNU long name",
                _ => "PAX",
            };
            return Err(TarError::TooLarge {
                what,
                offset: at,
                size: header.size,
            });
        }
        self.left = header.size;
        self.pad = padding(header.size);
        let mut data = Vec::new();
        self.data().read_to_end(&mut data)?;
        self.skip_rest()?;
        Ok(data)
    }

    fn fold_extension(
        &mut self,
        flag: u8,
        data: Vec<u8>,
        pending: &mut Pending,
        at: u64,
    ) -> Result<(), TarError> {
        let until_nul = |d: Vec<u8>| match d.iter().position(|&b| b == 0) {
            Some(n) => d[..n].to_vec(),
            None => d,
        };
        match flag {
            b'x' => pending.pax.extend(parse_pax(&data, at)?),
            b'g' => self.global.extend(parse_pax(&data, at)?),
            b'L' => pending.long_name = Some(until_nul(data)),
            _ => pending.long_link = Some(until_nul(data)),
        }
        // A global header describes no particular member.
        pending.any |= flag != b'g';
        Ok(())
    }

    /// Skip what is left of the current member's data and padding.
    fn skip_rest(&mut self) -> Result<(), TarError> {
        let n = self.left + self.pad;
        if n > 0 {
            let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
            self.offset += copied;
            self.left = 0;
            self.pad = 0;
            if copied < n {
                return Err(TarError::Truncated);
            }
        }
        Ok(())
    }

    /// One block, `None` at a clean end of stream.
    fn read_block(&mut self) -> Result<Option<[u8; BLOCK]>, TarError> {
        let mut block = [0u8; BLOCK];
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut block[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(TarError::Truncated),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.offset += BLOCK as u64;
        Ok(Some(block))
    }
}

/// The data of the current member; ends where the member ends.
pub struct Data<'a, R> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = &mut *self.reader;
        if r.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(r.left).unwrap_or(usize::MAX).min(buf.len());
        let n = r.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside a member's data (truncated)",
            ));
        }
        r.left -= n as u64;
        r.offset += n as u64;
        Ok(n)
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The fields of one header block.
struct Header {
    name: Vec<u8>,
    link: Vec<u8>,
    flag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    dev_major: u32,
    dev_minor: u32,
}

impl Header {
    fn parse(b: &[u8; BLOCK], at: u64) -> Result<Header, TarError> {
        check_sum(b, at)?;
        let field = |name: &'static str, r: std::ops::Range<usize>| {
            number(&b[r]).ok_or_else(|| TarError::Header {
                offset: at,
                reason: format!("the {name} field is not a number"),
            })
        };
        let small = |name: &'static str, v: u64| {
            u32::try_from(v).map_err(|_| TarError::Header {
                offset: at,
                reason: format!("the {name} field is out of range"),
            })
        };
        let mut name = cstr(&b[0..100]).to_vec();
        // POSIX ustar ("ustar\0" "00") has a name prefix; GNU's "ustar  \0"
        // keeps access times there instead.
        if &b[257..263] == b"ustar\0" && b[345] != 0 {
            let mut full = cstr(&b[345..500]).to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
        let mode = field("mode", 100..108)?;
        Ok(Header {
            name,
            link: cstr(&b[157..257]).to_vec(),
            flag: b[156],
            mode: small("mode", mode)? & 0o7777,
            uid: field("uid", 108..116)?,
            gid: field("gid", 116..124)?,
            size: field("size", 124..136)?,
            mtime: i64::try_from(field("mtime", 136..148)?).unwrap_or(i64::MAX),
            dev_major: small("device major", field("device major", 329..337)?)?,
            dev_minor: small("device minor", field("device minor", 337..345)?)?,
        })
    }
}

/// Does this block look like a tar header (ustar magic, or an old-style
/// header whose checksum adds up)? How ADD tells an archive from a file.
pub fn is_header(block: &[u8]) -> bool {
    let Ok(block) = <&[u8; BLOCK]>::try_from(block) else {
        return false;
    };
    if &block[257..262] == b"ustar" {
        return true;
    }
    // An all-zero block sums to 256 (the spaces), which is not a header.
    check_sum(block, 0).is_ok() && block[..100].iter().any(|&b| b != 0)
}

/// Bytes up to the first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// Accept the unsigned or the signed sum of the block (with the checksum
/// field as spaces), as GNU tar does.
fn check_sum(b: &[u8; BLOCK], at: u64) -> Result<(), TarError> {
    let stored = number(&b[148..156]);
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &c) in b.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += u64::from(c);
        signed += i64::from(c as i8);
    }
    let ok = stored.is_some_and(|s| s == unsigned || i64::try_from(s) == Ok(signed));
    match ok {
        true => Ok(()),
        false => Err(TarError::Header {
            offset: at,
            reason: "checksum mismatch (the stream is damaged or not a tar)".into(),
        }),
    }
}

/// A numeric header field: octal (leading spaces, ended by NUL or space),
/// GNU base-256 when the top bit of the first byte is set (non-negative
/// values only), and 0 when blank.
pub(crate) fn number(field: &[u8]) -> Option<u64> {
    if let Some((&first, rest)) = field.split_first() {
        if first & 0x80 != 0 {
            if first != 0x80 {
                return None;
            }
            return rest.iter().try_fold(0u64, |acc, &b| {
                acc.checked_mul(256).map(|v| v | u64::from(b))
            });
        }
    }
    let digits: &[u8] = {
        let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
        let f = &field[start..];
        let end = f
            .iter()
            .position(|&b| b == 0 || b == b' ')
            .unwrap_or(f.len());
        if f[end..].iter().any(|&b| b != 0 && b != b' ') {
            return None;
        }
        &f[..end]
    };
    digits.iter().try_fold(0u64, |acc, &b| match b {
        b'0'..=b'7' => acc.checked_mul(8).map(|v| v + u64::from(b - b'0')),
        _ => None,
    })
}

/// Parse PAX records (`LEN key=value\n`); a later record of a key wins.
fn parse_pax(mut data: &[u8], at: u64) -> Result<Pax, TarError> {
    let bad = |reason: &str| TarError::Pax {
        offset: at,
        reason: reason.to_string(),
    };
    let mut out = Pax::new();
    // GNU tar pads the last record with NULs in some writers; stop there.
    while !data.is_empty() && data[0] != 0 {
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("missing length"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("missing length"))?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("record length does not match its text"));
        }
        let record = &data[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("missing equal sign"))?;
        if eq == 0 {
            return Err(bad("empty key"));
        }
        out.insert(record[..eq].to_vec(), record[eq + 1..].to_vec());
        data = &data[len..];
    }
    Ok(out)
}

fn pax_err(at: u64, key: &str, value: &[u8]) -> TarError {
    TarError::Pax {
        offset: at,
        reason: format!("invalid {key}={}", String::from_utf8_lossy(value)),
    }
}

fn pax_number(pax: &Pax, key: &str, at: u64) -> Result<Option<u64>, TarError> {
    match pax.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v)
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| pax_err(at, key, v)),
    }
}

/// PAX time: decimal seconds, an optional sign and fraction.
fn pax_seconds(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = whole.strip_prefix('-').unwrap_or(whole);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    whole.parse().ok()
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
