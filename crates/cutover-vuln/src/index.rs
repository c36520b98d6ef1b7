//! The match index: a file next to the database (`vulns.db-index`) that holds, per (ecosystem,
//! normalised name), every live advisory's `affected` entries for that package in a compact binary
//! layout, with the ecosystems' version schemes already resolved and what a finding shows. Matching
//! a BOM reads the key table and then only the blocks of the packages it names: no SQL, no JSON.
//!
//! The file is derived data: it is rebuilt from the database whenever it is missing, of another
//! format, or of another database generation (every import starts a new generation), so a crash
//! between an import and the index write, an old file or a copied database never give stale
//! results. It is written to a temporary name and renamed, so readers see a whole file.
//!
//! It is not synced to disk: after an operating-system crash it can be short or hold zeroed
//! pages. So the key table has a checksum in the header, checked when the file is opened, and
//! every block one in its key's entry, checked when the block is read; a file that fails is
//! rebuilt (matching rebuilds it). A torn index is never read as a smaller one.
//!
//! Layout (little-endian): a 40-byte header (`MAGIC`, format `u32`, key count `u32`, database id
//! `u64`, generation `u64`, key table checksum `u32`, zero `u32`); the key table, sorted by hash, 24 bytes a key (FNV-1a hash `u64` of
//! the key, block offset `u64`, block length `u32`, block checksum `u32`); then the blocks. A block is the
//! ecosystem and normalised name (checked on lookup, so hash collisions are harmless) and its
//! entries sorted by (advisory id, position in the advisory). Strings and counts use LEB128
//! lengths; an entry is: id, the length-prefixed details (summary, aliases, score, level, vector,
//! informational: decoded only for advisories that match), the ecosystem's scheme, the listed
//! versions, and the ranges (scheme or none, events as kind and version).

use crate::osv::{Affected, Event};
use crate::severity::Level;
use crate::version::Scheme;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bumped whenever the layout changes: a file of another format is rebuilt, never misread.
pub const FORMAT: u32 = 2;
const MAGIC: &[u8; 8] = b"CUTOVIDX";
const HEADER: usize = 40;
const SLOT: usize = 24;
/// "No scheme": a GIT range, an unknown range type or an ecosystem this crate cannot order.
const NO_SCHEME: u8 = u8::MAX;

/// Which database and which state of it an index was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Chosen when the database file is created (so a new database never trusts an old index).
    pub db_id: u64,
    /// Incremented by every import.
    pub generation: u64,
}

/// The index file of a database file.
pub fn path_for(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-index");
    PathBuf::from(s)
}

/// A block's checksum: 8 bytes a step (a byte-wise hash would cost more than decoding the block),
/// seeded with the length so that a block cut at a word boundary differs too. Never 0, so that a
/// zeroed key table entry never holds a valid checksum.
pub fn block_check(bytes: &[u8]) -> u32 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 32;
    let c = (h as u32).wrapping_mul(0x85eb_ca6b);
    if c == 0 { 1 } else { c }
}

/// FNV-1a over the ecosystem, a separator and the normalised name.
fn key_hash(eco: &str, norm: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in eco.bytes().chain(std::iter::once(0xff)).chain(norm.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn scheme_code(s: Option<Scheme>) -> u8 {
    s.and_then(|s| Scheme::ALL.iter().position(|x| *x == s))
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(NO_SCHEME)
}

fn scheme_of(code: u8) -> Option<Scheme> {
    Scheme::ALL.get(usize::from(code)).copied()
}

// --- writing ---------------------------------------------------------------------------------

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

/// What a finding shows of an advisory, as stored with each of its entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Details {
    pub summary: Option<String>,
    pub aliases: Vec<String>,
    pub score: Option<f64>,
    pub level: Level,
    pub vector: Option<String>,
    pub informational: Option<String>,
}

/// One live advisory's `affected` entry for one package, as the index stores it.
pub struct IndexEntry {
    pub ecosystem: String,
    pub norm_name: String,
    pub advisory_id: String,
    /// The entry's place in the advisory's `affected` list.
    pub position: i64,
    pub affected: Affected,
    pub details: std::sync::Arc<Details>,
}

fn put_details(out: &mut Vec<u8>, d: &Details) {
    put_opt_str(out, d.summary.as_deref());
    put_len(out, d.aliases.len());
    for a in &d.aliases {
        put_str(out, a);
    }
    match d.score {
        Some(s) => {
            out.push(1);
            out.extend_from_slice(&s.to_le_bytes());
        }
        None => out.push(0),
    }
    put_str(out, d.level.as_str());
    put_opt_str(out, d.vector.as_deref());
    put_opt_str(out, d.informational.as_deref());
}

fn put_entry(out: &mut Vec<u8>, e: &IndexEntry, scratch: &mut Vec<u8>) {
    put_str(out, &e.advisory_id);
    scratch.clear();
    put_details(scratch, &e.details);
    put_len(out, scratch.len());
    out.extend_from_slice(scratch);
    let aff = &e.affected;
    let eco_scheme = aff
        .package
        .as_ref()
        .and_then(|p| Scheme::for_osv_ecosystem(&p.ecosystem));
    out.push(scheme_code(eco_scheme));
    put_len(out, aff.versions.len());
    for v in &aff.versions {
        put_str(out, v);
    }
    put_len(out, aff.ranges.len());
    for r in &aff.ranges {
        out.push(scheme_code(r.range_kind().and_then(|k| aff.scheme_for(k))));
        put_len(out, r.events.len());
        for ev in &r.events {
            out.push(match ev {
                Event::Introduced(_) => 0,
                Event::Fixed(_) => 1,
                Event::LastAffected(_) => 2,
                Event::Limit(_) => 3,
            });
            put_str(out, ev.version());
        }
    }
}

/// The whole index file for `entries` (in any order).
pub fn encode(stamp: Stamp, mut entries: Vec<IndexEntry>) -> Vec<u8> {
    entries.sort_by(|a, b| {
        (&a.ecosystem, &a.norm_name, &a.advisory_id, a.position).cmp(&(
            &b.ecosystem,
            &b.norm_name,
            &b.advisory_id,
            b.position,
        ))
    });
    // Blocks in (ecosystem, name) order; the table sorted by hash points into them.
    let mut blocks: Vec<u8> = Vec::new();
    let mut slots: Vec<(u64, usize, usize, u32)> = Vec::new();
    let mut scratch = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let (eco, norm) = (&entries[i].ecosystem, &entries[i].norm_name);
        let n = entries[i..]
            .iter()
            .take_while(|e| &e.ecosystem == eco && &e.norm_name == norm)
            .count();
        let start = blocks.len();
        put_str(&mut blocks, eco);
        put_str(&mut blocks, norm);
        put_len(&mut blocks, n);
        for e in &entries[i..i + n] {
            put_entry(&mut blocks, e, &mut scratch);
        }
        slots.push((
            key_hash(eco, norm),
            start,
            blocks.len() - start,
            block_check(&blocks[start..]),
        ));
        i += n;
    }
    slots.sort_by_key(|s| s.0);
    let base = HEADER + SLOT * slots.len();
    let mut out = Vec::with_capacity(base + blocks.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&u32::try_from(slots.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&stamp.db_id.to_le_bytes());
    out.extend_from_slice(&stamp.generation.to_le_bytes());
    let table_at = out.len();
    out.extend_from_slice(&[0; 8]);
    for (hash, start, len, check) in slots {
        out.extend_from_slice(&hash.to_le_bytes());
        out.extend_from_slice(&((base + start) as u64).to_le_bytes());
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&check.to_le_bytes());
    }
    let check = block_check(&out[HEADER..]);
    out[table_at..table_at + 4].copy_from_slice(&check.to_le_bytes());
    out.extend_from_slice(&blocks);
    out
}

/// Writes the index file atomically (a temporary file in the same directory, then a rename). Not
/// synced: the checksums find a file torn by a crash (see the module's note), and it is rebuilt.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// --- reading ---------------------------------------------------------------------------------

/// Why a part of the index could not be read (the caller names the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

fn malformed(what: &str) -> Malformed {
    Malformed(format!("index file is truncated or malformed ({what})"))
}

/// A cursor over index bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        let b = *self.buf.get(self.pos).ok_or_else(|| malformed("byte"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn count(&mut self) -> Result<usize, Malformed> {
        let mut n: usize = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift > 56 {
                return Err(malformed("length"));
            }
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
            shift += 7;
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or_else(|| malformed("bytes"))?;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| malformed("bytes"))?;
        self.pos = end;
        Ok(b)
    }

    pub fn str(&mut self) -> Result<&'a str, Malformed> {
        let n = self.count()?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| malformed("text"))
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>, Malformed> {
        Ok(match self.byte()? {
            0 => None,
            _ => Some(self.str()?),
        })
    }

    fn scheme(&mut self) -> Result<Option<Scheme>, Malformed> {
        Ok(scheme_of(self.byte()?))
    }
}

/// The kind of a range event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Introduced,
    Fixed,
    LastAffected,
    Limit,
}

/// One range of an entry, borrowed from the index bytes.
#[derive(Debug, Clone, Copy)]
pub struct RangeView {
    /// `None` for ranges that are not evaluated (GIT, unknown type or ecosystem).
    pub scheme: Option<Scheme>,
    /// Into [`Entries::events`].
    pub events: (usize, usize),
}

/// One `affected` entry, borrowed from the index bytes.
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    pub advisory_id: &'a str,
    pub details: &'a [u8],
    pub eco_scheme: Option<Scheme>,
    /// Into [`Entries::versions`].
    pub versions: (usize, usize),
    /// Into [`Entries::ranges`]; all ranges, evaluated or not.
    pub ranges: (usize, usize),
}

/// The entries of several blocks, in flat arrays (few allocations however many entries).
#[derive(Default)]
pub struct Entries<'a> {
    pub entries: Vec<EntryView<'a>>,
    pub versions: Vec<&'a str>,
    pub ranges: Vec<RangeView>,
    pub events: Vec<(EventKind, &'a str)>,
}

impl<'a> Entries<'a> {
    /// Decodes one block if it is the block of (`eco`, `norm`); returns the range of its entries
    /// in `self.entries`, or `None` for another key with the same hash.
    pub fn decode_block(
        &mut self,
        block: &'a [u8],
        eco: &str,
        norm: &str,
    ) -> Result<Option<(usize, usize)>, Malformed> {
        let mut r = Reader::new(block);
        if r.str()? != eco || r.str()? != norm {
            return Ok(None);
        }
        let n = r.count()?;
        let start = self.entries.len();
        for _ in 0..n {
            let advisory_id = r.str()?;
            let dlen = r.count()?;
            let details = r.bytes(dlen)?;
            let eco_scheme = r.scheme()?;
            let nv = r.count()?;
            let v0 = self.versions.len();
            for _ in 0..nv {
                self.versions.push(r.str()?);
            }
            let nr = r.count()?;
            let r0 = self.ranges.len();
            for _ in 0..nr {
                let scheme = r.scheme()?;
                let ne = r.count()?;
                let e0 = self.events.len();
                for _ in 0..ne {
                    let kind = match r.byte()? {
                        0 => EventKind::Introduced,
                        1 => EventKind::Fixed,
                        2 => EventKind::LastAffected,
                        3 => EventKind::Limit,
                        _ => return Err(malformed("event kind")),
                    };
                    self.events.push((kind, r.str()?));
                }
                self.ranges.push(RangeView {
                    scheme,
                    events: (e0, self.events.len()),
                });
            }
            self.entries.push(EntryView {
                advisory_id,
                details,
                eco_scheme,
                versions: (v0, self.versions.len()),
                ranges: (r0, self.ranges.len()),
            });
        }
        Ok(Some((start, self.entries.len())))
    }
}

/// Decodes an entry's details.
pub fn decode_details(bytes: &[u8]) -> Result<Details, Malformed> {
    let mut r = Reader::new(bytes);
    let summary = r.opt_str()?.map(str::to_string);
    let n = r.count()?;
    let mut aliases = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        aliases.push(r.str()?.to_string());
    }
    let score = match r.byte()? {
        0 => None,
        _ => Some(f64::from_le_bytes(
            r.bytes(8)?.try_into().map_err(|_| malformed("score"))?,
        )),
    };
    let level = r.str()?.parse().map_err(|e: String| Malformed(e))?;
    Ok(Details {
        summary,
        aliases,
        score,
        level,
        vector: r.opt_str()?.map(str::to_string),
        informational: r.opt_str()?.map(str::to_string),
    })
}

/// Blocks read in one buffer, with each one's (start, end) in it.
pub type Blocks = (Vec<u8>, Vec<(usize, usize)>);

/// An open index file: its stamp and key table; blocks are read on demand.
pub struct IndexFile {
    file: File,
    pub stamp: Stamp,
    table: Vec<u8>,
}

impl IndexFile {
    /// Opens the index file; `Ok(None)` when it is missing, of another format, or its key table is
    /// torn or cut (to be rebuilt).
    pub fn open(path: &Path) -> std::io::Result<Option<IndexFile>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut header = [0u8; HEADER];
        if file.read_exact_at(&mut header, 0).is_err() {
            return Ok(None);
        }
        let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        if &header[..8] != MAGIC || u32_at(8) != FORMAT {
            return Ok(None);
        }
        let keys = u32_at(12) as usize;
        let stamp = Stamp {
            db_id: u64_at(16),
            generation: u64_at(24),
        };
        let size = file.metadata()?.len();
        let Some(table_len) = keys.checked_mul(SLOT) else {
            return Ok(None);
        };
        if (HEADER + table_len) as u64 > size {
            return Ok(None);
        }
        let mut table = vec![0u8; table_len];
        if file.read_exact_at(&mut table, HEADER as u64).is_err() {
            return Ok(None);
        }
        // A torn table would hide keys, not fail.
        if block_check(&table) != u32_at(32) {
            return Ok(None);
        }
        let f = IndexFile { file, stamp, table };
        let base = (HEADER + table_len) as u64;
        let mut last = 0;
        for i in 0..keys {
            let (hash, off, len, check) = f.slot(i);
            if hash < last || off < base || off + len as u64 > size || check == 0 {
                return Ok(None);
            }
            last = hash;
        }
        Ok(Some(f))
    }

    fn slot(&self, i: usize) -> (u64, u64, usize, u32) {
        let s = &self.table[i * SLOT..(i + 1) * SLOT];
        let u64_at = |o: usize| u64::from_le_bytes(s[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_le_bytes(s[o..o + 4].try_into().expect("4 bytes"));
        (u64_at(0), u64_at(8), u32_at(16) as usize, u32_at(20))
    }

    /// The blocks whose hash is the key's: usually none or one.
    pub fn lookup(&self, eco: &str, norm: &str) -> impl Iterator<Item = BlockRef> + '_ {
        let h = key_hash(eco, norm);
        let n = self.table.len() / SLOT;
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.slot(mid).0 < h {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo..n)
            .map(|i| self.slot(i))
            .take_while(move |s| s.0 == h)
            .map(|(_, offset, len, check)| BlockRef { offset, len, check })
    }

    /// Reads the given blocks into one buffer; returns it with each block's place in it. A block
    /// whose checksum fails is [`BlockReadError::Malformed`].
    pub fn read_blocks(&self, blocks: &[BlockRef]) -> Result<Blocks, BlockReadError> {
        let total: usize = blocks.iter().map(|b| b.len).sum();
        let mut buf = vec![0u8; total];
        let mut places = vec![(0, 0); blocks.len()];
        // In file order: neighbouring blocks are read in one call.
        let mut order: Vec<usize> = (0..blocks.len()).collect();
        order.sort_by_key(|&i| blocks[i].offset);
        let mut at = 0;
        let mut i = 0;
        while i < order.len() {
            let start = blocks[order[i]].offset;
            let mut end = start;
            let run_start = at;
            let mut j = i;
            while j < order.len() && blocks[order[j]].offset == end {
                let b = blocks[order[j]];
                places[order[j]] = (at, at + b.len);
                at += b.len;
                end = b.offset + b.len as u64;
                j += 1;
            }
            self.file
                .read_exact_at(&mut buf[run_start..at], start)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        BlockReadError::Malformed(malformed("block beyond the end"))
                    }
                    _ => BlockReadError::Io(e),
                })?;
            i = j;
        }
        for (b, &(s, e)) in blocks.iter().zip(&places) {
            if block_check(&buf[s..e]) != b.check {
                return Err(BlockReadError::Malformed(Malformed(format!(
                    "index file is torn (checksum of the block at offset {} fails)",
                    b.offset
                ))));
            }
        }
        Ok((buf, places))
    }
}

/// Where a key's block is in the index file, and its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub offset: u64,
    pub len: usize,
    pub check: u32,
}

/// Why blocks could not be read.
#[derive(Debug)]
pub enum BlockReadError {
    Io(std::io::Error),
    /// Torn or cut: the file is to be rebuilt.
    Malformed(Malformed),
}
