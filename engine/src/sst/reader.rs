//! Reading SSTs: whole objects (WAL replay) or by ranged reads (point reads
//! and scans fetch only the blocks they need).

use std::ops::{Bound, RangeBounds};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use super::block::{decode_block, BlockCursor};
use crate::cache::BlockCache;
use super::{bloom, codec, unseal, BlockHandle, SeqEntry, FOOTER_LEN, FORMAT_VERSION, MAGIC, OLDEST_FORMAT_VERSION};
use crate::error::{Error, Result};
use crate::sync::StdArc;
use crate::value::Value;

/// The parsed footer: where the sections are.
struct Footer {
    version: u16,
    /// The codec the writer was set to (format 3; 0 before).
    codec: u8,
    index_off: u64,
    index_len: u64,
    filter_len: u64,
    meta_len: u64,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_footer(raw: &[u8], size: u64) -> Result<Footer, String> {
    let body = unseal(raw, "footer")?;
    if body.len() != FOOTER_LEN - 4 {
        return Err("footer has the wrong length".into());
    }
    if le_u32(body, 0) != MAGIC {
        return Err("not a tidemark SST (bad magic)".into());
    }
    let version = u16::from_le_bytes([body[4], body[5]]);
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!(
            "unsupported SST format version {version} (this build reads {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})"
        ));
    }
    // Format 2 wrote zero here; format 3 the writer's codec, which must be
    // one this build knows (named in the error otherwise).
    let codec = u16::from_le_bytes([body[6], body[7]]);
    let codec = u8::try_from(codec).map_err(|_| format!("unknown compression codec {codec}"))?;
    if version < 3 && codec != 0 {
        return Err(format!("format {version} SST records codec {codec}; that format has none"));
    }
    codec::name(codec)?;
    let index_off = u64::from_le_bytes([body[8], body[9], body[10], body[11], body[12], body[13], body[14], body[15]]);
    let f = Footer {
        version,
        codec,
        index_off,
        index_len: u64::from(le_u32(body, 16)),
        filter_len: u64::from(le_u32(body, 20)),
        meta_len: u64::from(le_u32(body, 24)),
    };
    let end = f.index_off.checked_add(f.index_len + f.filter_len + f.meta_len + FOOTER_LEN as u64);
    if end != Some(size) {
        return Err("section lengths do not add up to the object size".into());
    }
    Ok(f)
}

/// An open SST: footer, index, bloom filter and meta in memory; blocks on
/// demand. Scans check every block they read against the filter, point
/// reads trust its negative answers, so both see one answer.
pub struct SstReader {
    store: Option<StdArc<dyn ObjectStore>>,
    path: Path,
    index: Vec<BlockHandle>,
    filter: Bytes,
    meta: Bytes,
    /// The whole object, when it was read whole.
    whole: Option<Bytes>,
    /// Where data blocks read from the store are kept, under this SST's id.
    cache: BlockCache,
    sst_id: u128,
    version: u16,
    codec: u8,
}

impl std::fmt::Debug for SstReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SstReader({}, {} blocks)", self.path, self.index.len())
    }
}

impl SstReader {
    fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
        Error::corrupt(path.to_string(), reason)
    }

    /// Parses the sections (index, filter, meta, footer) from `tail`, the
    /// object's bytes from `tail_start` to its end.
    fn from_tail(store: Option<StdArc<dyn ObjectStore>>, path: Path, size: u64, tail_start: u64, tail: &Bytes) -> Result<Self> {
        let c = |r: String| Self::corrupt(&path, r);
        if size < FOOTER_LEN as u64 {
            return Err(c(format!("object of {size} bytes is shorter than a footer")));
        }
        let footer = {
            let footer_at = size - FOOTER_LEN as u64 - tail_start;
            let raw = usize::try_from(footer_at).ok().and_then(|at| tail.get(at..));
            parse_footer(raw.ok_or_else(|| c("footer outside the tail read".into()))?, size).map_err(c)?
        };
        let idx = footer.index_off.checked_sub(tail_start).ok_or_else(|| c("index outside the tail read".into()))? as usize;
        let filter_at = idx + footer.index_len as usize;
        let meta_at = filter_at + footer.filter_len as usize;
        let footer_at = meta_at + footer.meta_len as usize;
        let section = |r: std::ops::Range<usize>, what: &str| {
            tail.get(r).ok_or_else(|| c(format!("{what} outside the tail read")))
        };
        let index_raw = unseal(section(idx..filter_at, "index")?, "index").map_err(c)?;
        let index: Vec<BlockHandle> =
            postcard::from_bytes(index_raw).map_err(|e| c(format!("index does not decode: {e}")))?;
        let mut expected = 0u64;
        let mut prev_last: Option<&[u8]> = None;
        for h in &index {
            if h.offset != expected || h.first_key > h.last_key {
                return Err(c("block index is inconsistent".into()));
            }
            // Reads binary-search the index: its key spans must be strictly
            // increasing, else a read would silently miss keys.
            if prev_last.is_some_and(|p| p >= h.first_key.as_slice()) {
                return Err(c("block index keys are out of order".into()));
            }
            prev_last = Some(h.last_key.as_slice());
            expected = h.offset.checked_add(u64::from(h.len)).ok_or_else(|| c("block offset overflows".into()))?;
        }
        if expected != footer.index_off {
            return Err(c("blocks do not end where the index begins".into()));
        }
        let filter_raw = unseal(section(filter_at..meta_at, "filter")?, "filter").map_err(c)?;
        // Point reads trust a negative answer of the filter: it must at
        // least be one this build could have written (the keys it lacks
        // are found when a block is read, see `check_block`).
        bloom::check(filter_raw).map_err(c)?;
        // And it must hold every key the index names (each block's first
        // and last): a filter built over no keys, or without one of those,
        // is refused here rather than trusted by a point read.
        let named = index.iter().flat_map(|h| [&h.first_key, &h.last_key]);
        if let Some(k) = named.into_iter().find(|k| !bloom::may_contain(filter_raw, k)) {
            return Err(c(format!("the bloom filter lacks key {:?}, which the block index names", Bytes::copy_from_slice(k))));
        }
        // Copies, so the tail buffer (raw index included) is freed.
        let filter = Bytes::copy_from_slice(filter_raw);
        let meta = Bytes::copy_from_slice(unseal(section(meta_at..footer_at, "meta")?, "meta").map_err(c)?);
        Ok(Self {
            store,
            path,
            index,
            filter,
            meta,
            whole: None,
            cache: BlockCache::default(),
            sst_id: 0,
            version: footer.version,
            codec: footer.codec,
        })
    }

    /// Decodes an object read whole.
    pub fn from_bytes(path: Path, bytes: Bytes) -> Result<Self> {
        let size = bytes.len() as u64;
        let mut r = Self::from_tail(None, path, size, 0, &bytes)?;
        r.whole = Some(bytes);
        Ok(r)
    }

    /// Opens an SST by reading its tail only (footer, index, filter, meta).
    pub async fn open(store: StdArc<dyn ObjectStore>, path: Path, size: Option<u64>) -> Result<Self> {
        let (size, tail_start, tail) = Self::read_tail(store.as_ref(), &path, size).await?;
        Self::from_tail(Some(store), path, size, tail_start, &tail)
    }

    /// As [`SstReader::open`], on a borrowed store: the reader keeps no
    /// store, so its blocks are fetched by the caller
    /// ([`SstReader::block_span`], then [`SstReader::decode_block`]).
    pub async fn open_detached(store: &dyn ObjectStore, path: Path, size: Option<u64>) -> Result<Self> {
        let (size, tail_start, tail) = Self::read_tail(store, &path, size).await?;
        Self::from_tail(None, path, size, tail_start, &tail)
    }

    /// The object's size and its tail: from the start of the index to the end.
    async fn read_tail(store: &dyn ObjectStore, path: &Path, size: Option<u64>) -> Result<(u64, u64, Bytes)> {
        let size = match size {
            Some(s) => s,
            None => store.head(path).await?.size,
        };
        if size < FOOTER_LEN as u64 {
            return Err(Self::corrupt(path, format!("object of {size} bytes is shorter than a footer")));
        }
        // One read usually covers index, filter and meta; else a second one.
        // It asks for a suffix, not for a range ending at `size`: the store's
        // answer carries the object's real size, so a handle that misstates
        // it is `Corrupt` at once. A range starting past the end of a shorter
        // object is an error the store reports as `Generic` (S3: 416), which
        // was retried as transient on every read (found by fuzzing).
        let guess = size.min(16 * 1024);
        let opts = GetOptions { range: Some(GetRange::Suffix(guess)), ..Default::default() };
        let got = store.get_opts(path, opts).await?;
        let actual = got.meta.size;
        if actual != size {
            return Err(Self::corrupt(path, format!("object is {actual} bytes, its handle records size {size}")));
        }
        let tail = got.bytes().await?;
        if tail.len() as u64 != guess {
            return Err(Self::corrupt(path, "the store returned a short range"));
        }
        let footer_raw = tail.slice(tail.len() - FOOTER_LEN..);
        let footer = parse_footer(&footer_raw, size).map_err(|r| Self::corrupt(path, r))?;
        if footer.index_off >= size - guess {
            return Ok((size, size - guess, tail));
        }
        drop(tail);
        let tail = store.get_range(path, footer.index_off..size).await?;
        if tail.len() as u64 != size - footer.index_off {
            return Err(Self::corrupt(path, "the store returned a short range"));
        }
        Ok((size, footer.index_off, tail))
    }

    /// The bytes the consecutive data blocks `blocks` span, to fetch them
    /// with one ranged read.
    pub fn block_span(&self, blocks: std::ops::Range<usize>) -> Option<std::ops::Range<u64>> {
        let first = self.index.get(blocks.start)?;
        let last = self.index.get(blocks.end.checked_sub(1)?)?;
        Some(first.offset..last.offset.checked_add(u64::from(last.len))?)
    }

    /// Keeps the data blocks this reader fetches in `cache`, under `sst_id`
    /// (the SST's ULID: unique, so no two objects share a cache key).
    pub fn with_block_cache(mut self, cache: BlockCache, sst_id: u128) -> Self {
        self.cache = cache;
        self.sst_id = sst_id;
        self
    }

    /// Bytes held in memory for as long as the reader is open: the index
    /// (its handles and their keys' heap), the filter and the meta (outside
    /// the block cache's budget).
    pub fn resident_bytes(&self) -> u64 {
        let handle = std::mem::size_of::<BlockHandle>();
        let index: usize = self.index.iter().map(|h| h.first_key.capacity() + h.last_key.capacity() + handle).sum();
        (index + self.filter.len() + self.meta.len()) as u64
    }

    /// The object this reader reads (errors name it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The codec its writer was set to (`none`, `lz4`, `zstd`); each block
    /// may still be stored plain.
    pub fn compression(&self) -> &'static str {
        codec::name(self.codec).unwrap_or("unknown")
    }

    /// The entries' bytes of a sealed data block: checksum verified, and
    /// decompressed (format 3) within the bounds `codec::decode` states.
    fn plain_block(&self, raw: &Bytes) -> Result<Bytes, String> {
        let body = raw.slice_ref(unseal(raw, "block")?);
        if self.version < 3 {
            return Ok(body);
        }
        codec::decode(&body)
    }

    /// The caller's meta bytes (the WAL header, for WAL objects).
    pub fn meta(&self) -> &Bytes {
        &self.meta
    }

    async fn block(&self, h: &BlockHandle) -> Result<Vec<SeqEntry>> {
        let raw = self.fetch_blocks(std::slice::from_ref(h), true).await?;
        match raw.first() {
            Some(raw) => self.verify_block(h, raw),
            None => Err(Self::corrupt(&self.path, "no source for block")),
        }
    }

    /// The bytes of the consecutive data blocks `handles`: from the whole
    /// object, else from the block cache, else with one ranged read from the
    /// first block the cache lacks to the last (read-ahead stays one request).
    /// Blocks read from the store whose checksum holds are cached if
    /// `fill_cache` (a scan of cold data may choose not to evict the hot set).
    async fn fetch_blocks(&self, handles: &[BlockHandle], fill_cache: bool) -> Result<Vec<Bytes>> {
        // The index was checked at open: offsets contiguous and below the
        // index, so this cannot overflow; checked all the same.
        let end_of = |h: &BlockHandle| {
            h.offset.checked_add(u64::from(h.len)).ok_or_else(|| Self::corrupt(&self.path, "block offset overflows"))
        };
        let store = match (&self.whole, &self.store) {
            (Some(whole), _) => {
                return handles
                    .iter()
                    .map(|h| {
                        let end = end_of(h)?;
                        whole
                            .get(h.offset as usize..end as usize)
                            .map(|r| whole.slice_ref(r))
                            .ok_or_else(|| Self::corrupt(&self.path, "block beyond the object"))
                    })
                    .collect();
            }
            (None, Some(store)) => store,
            (None, None) => return Err(Self::corrupt(&self.path, "no source for block")),
        };
        let mut blocks: Vec<Option<Bytes>> = handles.iter().map(|h| self.cache.get(self.sst_id, h.offset)).collect();
        let missing = (blocks.iter().position(Option::is_none), blocks.iter().rposition(Option::is_none));
        let (Some(first), Some(last)) = missing else {
            // Served from memory: no await below would yield, so a loop of
            // warm reads (a scan loop) would hold its worker thread forever
            // and starve the flushers. Yield when tokio's budget says so,
            // as its own resources do.
            tokio::task::consume_budget().await;
            return Ok(blocks.into_iter().flatten().collect());
        };
        {
            let start = handles[first].offset;
            let end = end_of(&handles[last])?;
            let raw = store.get_range(&self.path, start..end).await?;
            if raw.len() as u64 != end - start {
                return Err(Self::corrupt(&self.path, "the store returned a short range"));
            }
            for (slot, h) in blocks[first..=last].iter_mut().zip(&handles[first..=last]) {
                let at = h.offset.checked_sub(start).ok_or_else(|| Self::corrupt(&self.path, "block index out of order"))?;
                let block = raw.slice(at as usize..at as usize + h.len as usize);
                if fill_cache && slot.is_none() && unseal(&block, "block").is_ok() {
                    self.cache.insert(self.sst_id, h.offset, &block);
                }
                slot.get_or_insert(block);
            }
        }
        Ok(blocks.into_iter().flatten().collect())
    }

    /// [`SstReader::check_block`] as `Corrupt` naming this SST.
    fn verify_block(&self, h: &BlockHandle, raw: &Bytes) -> Result<Vec<SeqEntry>> {
        self.check_block(h, raw).map_err(|r| Self::corrupt(&self.path, r))
    }

    /// Decodes a data block and checks everything a read relies on: its
    /// checksum, its keys strictly increasing, its first and last key equal
    /// to the index entry's (the index's key spans are what reads
    /// binary-search), and every key passing the bloom filter. A point read
    /// trusts the filter's "no"; a key the filter lacks would make `get` say
    /// `None` while `scan` returns the value, so it is an error instead
    ///.
    fn check_block(&self, h: &BlockHandle, raw: &Bytes) -> Result<Vec<SeqEntry>, String> {
        if raw.len() as u64 != u64::from(h.len) {
            return Err("the store returned a short block".into());
        }
        let entries = decode_block(&self.plain_block(raw)?)?;
        let in_bounds = entries.first().is_some_and(|(k, _, _)| k.as_ref() == h.first_key.as_slice())
            && entries.last().is_some_and(|(k, _, _)| k.as_ref() == h.last_key.as_slice());
        if !in_bounds {
            return Err(format!("block at offset {} keys disagree with the index", h.offset));
        }
        if let Some((k, _, _)) = entries.iter().find(|(k, _, _)| !bloom::may_contain(&self.filter, k)) {
            return Err(format!("the bloom filter lacks key {:?} of the block at offset {}", k, h.offset));
        }
        Ok(entries)
    }

    /// The entries of the consecutive data blocks `blocks`, fetched with one
    /// ranged read (scans and compaction read ahead this way instead of one
    /// request per block).
    pub async fn read_blocks(&self, blocks: std::ops::Range<usize>) -> Result<Vec<SeqEntry>> {
        let raw = self.fetch_raw_blocks(blocks.clone(), true).await?;
        let mut out = Vec::new();
        for (i, raw) in blocks.zip(&raw) {
            out.extend(self.decode_block(i, raw)?);
        }
        Ok(out)
    }

    /// The undecoded bytes of the consecutive data blocks `blocks`, fetched
    /// with one ranged read for those the cache lacks; each is checked when
    /// decoded ([`SstReader::decode_block`]), so a scan holds the raw
    /// read-ahead and one decoded block, not a decoded batch.
    pub async fn fetch_raw_blocks(&self, blocks: std::ops::Range<usize>, fill_cache: bool) -> Result<Vec<Bytes>> {
        let handles = self.index.get(blocks).ok_or_else(|| Self::corrupt(&self.path, "blocks beyond the index"))?;
        self.fetch_blocks(handles, fill_cache).await
    }

    /// Checks data block `i` from its bytes `raw` as [`SstReader::decode_block`]
    /// does, and returns it to be read an entry at a time (scans).
    pub fn block_cursor(&self, i: usize, raw: &Bytes) -> Result<BlockCursor> {
        let c = |r: String| Self::corrupt(&self.path, r);
        let h = self.index.get(i).ok_or_else(|| c(format!("block {i} is not in the index")))?;
        if raw.len() as u64 != u64::from(h.len) {
            return Err(c("the store returned a short block".into()));
        }
        let cursor = BlockCursor::new(self.plain_block(raw).map_err(c)?).map_err(c)?;
        let in_bounds = cursor.first().is_some_and(|(k, _, _)| k.as_ref() == h.first_key.as_slice())
            && cursor.last().is_some_and(|(k, _, _)| k.as_ref() == h.last_key.as_slice());
        if !in_bounds {
            return Err(c(format!("block at offset {} keys disagree with the index", h.offset)));
        }
        if let Some((k, _, _)) = cursor.all().find(|(k, _, _)| !bloom::may_contain(&self.filter, k)) {
            return Err(c(format!("the bloom filter lacks key {:?} of the block at offset {}", k, h.offset)));
        }
        Ok(cursor)
    }

    /// Checks and decodes data block `i` from its bytes `raw`.
    pub fn decode_block(&self, i: usize, raw: &Bytes) -> Result<Vec<SeqEntry>> {
        match self.index.get(i) {
            Some(h) => self.verify_block(h, raw),
            None => Err(Self::corrupt(&self.path, format!("block {i} is not in the index"))),
        }
    }

    /// How many consecutive blocks from `first` fit in `bytes` (at least one).
    pub fn blocks_within(&self, first: usize, last: usize, bytes: u64) -> usize {
        let mut total = 0u64;
        let mut n = 0;
        for h in self.index.get(first..last).unwrap_or_default() {
            total += u64::from(h.len);
            if n > 0 && total > bytes {
                break;
            }
            n += 1;
        }
        n.max(1)
    }

    /// How many consecutive blocks ending at `last` (exclusive) and not
    /// before `first` fit in `bytes` (at least one): read-ahead for reverse scans.
    pub fn blocks_within_back(&self, first: usize, last: usize, bytes: u64) -> usize {
        let mut total = 0u64;
        let mut n = 0;
        for h in self.index.get(first..last).unwrap_or_default().iter().rev() {
            total += u64::from(h.len);
            if n > 0 && total > bytes {
                break;
            }
            n += 1;
        }
        n.max(1)
    }

    /// Point read: `None` if the key is not in this SST, else its version.
    /// Reads one block, or the two around the gap a key the
    /// filter may hold falls in; trusts the filter's "no" and, for blocks it
    /// does not read, that their keys lie within their index entries.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let (Some(first), Some(last)) = (self.index.first(), self.index.last()) else { return Ok(None) };
        if key < first.first_key.as_slice() || key > last.last_key.as_slice() || !bloom::may_contain(&self.filter, key) {
            return Ok(None);
        }
        let i = self.index.partition_point(|h| h.last_key.as_slice() < key);
        let Some(h) = self.index.get(i).filter(|h| h.first_key.as_slice() <= key) else {
            // The filter says maybe, the index says the key falls between
            // two blocks: that "no" rests on those two blocks' entries, so
            // both are read (one request) and checked against them. Only
            // for filter positives between blocks.
            let around = i.saturating_sub(1)..(i + 1).min(self.index.len());
            let raw = self.fetch_blocks(&self.index[around.clone()], true).await?;
            for (h, raw) in self.index[around].iter().zip(&raw) {
                let entries = self.verify_block(h, raw)?;
                if let Ok(j) = entries.binary_search_by(|(k, _, _)| k.as_ref().cmp(key)) {
                    return Ok(Some(entries[j].2.clone()));
                }
            }
            return Ok(None);
        };
        let entries = self.block(h).await?;
        Ok(entries.binary_search_by(|(k, _, _)| k.as_ref().cmp(key)).ok().map(|j| entries[j].2.clone()))
    }

    /// Entries whose keys fall in `range`, reading only overlapping blocks.
    pub async fn scan(&self, range: &(Bound<Bytes>, Bound<Bytes>)) -> Result<Vec<(Bytes, Value)>> {
        let mut out = Vec::new();
        for i in self.blocks_in(range) {
            out.extend(self.read_block(i).await?.into_iter().filter(|(k, _, _)| range.contains(k)).map(|(k, _, v)| (k, v)));
        }
        Ok(out)
    }

    /// Indexes of the data blocks whose key span overlaps `range`, in key order.
    pub fn blocks_in(&self, range: &(Bound<Bytes>, Bound<Bytes>)) -> std::ops::Range<usize> {
        let start = match &range.0 {
            Bound::Included(k) => self.index.partition_point(|h| h.last_key.as_slice() < k.as_ref()),
            Bound::Excluded(k) => self.index.partition_point(|h| h.last_key.as_slice() <= k.as_ref()),
            Bound::Unbounded => 0,
        };
        let end = match &range.1 {
            Bound::Included(k) => self.index.partition_point(|h| h.first_key.as_slice() <= k.as_ref()),
            Bound::Excluded(k) => self.index.partition_point(|h| h.first_key.as_slice() < k.as_ref()),
            Bound::Unbounded => self.index.len(),
        };
        start..end.max(start)
    }

    /// The entries of data block `i` (verified against the index).
    pub async fn read_block(&self, i: usize) -> Result<Vec<SeqEntry>> {
        match self.index.get(i) {
            Some(h) => self.block(h).await,
            None => Err(Self::corrupt(&self.path, format!("block {i} is not in the index"))),
        }
    }

    /// The number of data blocks.
    pub fn block_count(&self) -> usize {
        self.index.len()
    }

    /// The smallest and the largest key, `None` for an SST without entries.
    pub fn key_range(&self) -> Option<(Bytes, Bytes)> {
        let first = self.index.first()?;
        let last = self.index.last()?;
        Some((Bytes::copy_from_slice(&first.first_key), Bytes::copy_from_slice(&last.last_key)))
    }

    /// Every entry, in key order.
    pub async fn all(&self) -> Result<Vec<(Bytes, Value)>> {
        self.scan(&(Bound::Unbounded, Bound::Unbounded)).await
    }
}

/// Decodes a whole object: its meta and every entry (WAL replay, fsck).
///
/// Checks everything a read of the object relies on (`SstReader::check_block`
/// for each block), and that the entries are strictly increasing across
/// blocks, so the result is sorted and has each key once.
pub fn decode_all(path: &Path, bytes: Bytes) -> Result<(Bytes, Vec<SeqEntry>)> {
    let c = |r: String| Error::corrupt(path.to_string(), r);
    let reader = SstReader::from_bytes(path.clone(), bytes.clone())?;
    let mut entries: Vec<SeqEntry> = Vec::new();
    for h in &reader.index {
        let end = h.offset.checked_add(u64::from(h.len)).ok_or_else(|| c("block offset overflows".into()))?;
        let raw = bytes.get(h.offset as usize..end as usize).ok_or_else(|| c("block beyond the object".into()))?;
        let block = reader.check_block(h, &bytes.slice_ref(raw)).map_err(c)?;
        if let (Some((prev, _, _)), Some((first, _, _))) = (entries.last(), block.first()) {
            if prev >= first {
                return Err(c(format!("keys out of order across blocks: {prev:?} then {first:?}")));
            }
        }
        entries.extend(block);
    }
    Ok((reader.meta.clone(), entries))
}
