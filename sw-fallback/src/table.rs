//! Exact per-key tables: counters (`dleft`), decaying counts (`tewma-fast`)
//! and sliding-window counts.
//!
//! A table is `2^b` buckets of `ways` slots; a key lives in the bucket its
//! hash names, in any way. Identity is the whole key (stored), never a
//! fingerprint: the original's d-left table matched 32-bit fingerprints,
//! could not store a key whose fingerprint was 0, and crashed when full.
//! Here a full bucket evicts its least recently written slot (ties to the
//! lowest way), and every eviction is counted and flagged.
//!
//! Memory is split so that an op touches as few cache lines as it can (at
//! StreaMon's sizes the tables are far larger than any cache, and lines
//! fetched from DRAM are what bounds the engine). A slot's *hot* half,
//! 32 bytes, holds the first key word, `occupied | len << 8`, the value and
//! `tick | aux << 32`; a bucket's hot halves are contiguous, so a 4-way
//! bucket is two adjacent lines and a 2-way bucket one. The *cold* half
//! holds key words 1..5 and is read or written only for keys longer than
//! 8 bytes: such a key's slot compares them after the first word and the
//! length matched. For a key of at most 8 bytes the cold words are all
//! zero by the contract, so they are not stored (a cold half is meaningful
//! only while its slot holds a longer key; dumps read it only then). This
//! is the software's layout; the logical state, and so every result and
//! dump, is the contract's.
//!
//! Tables of the same geometry (buckets and ways) share one [`TableMem`],
//! interleaved bucket by bucket (see [`crate::Lanes`]): a key has the same
//! bucket index in all of them, so a packet that updates several tables
//! with one key touches one contiguous run of lines (one page, one page
//! walk) instead of one random page per table.

use streamon_contract::fixed::{age, count_from_value, decay, later_tick, tick};
use streamon_contract::h3::Positions;
use streamon_contract::{MetricKind, MetricPlan, Op, ResultFlags, KEY_MAX};

use crate::memory::HugeArray;
use crate::Lanes;

/// A slot's hot half: key word 0, `occupied | len << 8`, value,
/// `tick | aux << 32`. Plain words so a table allocates as zeroed pages.
type Hot = [u64; 4];
/// A slot's cold half: key words 1..5 (little-endian).
type Cold = [u64; 4];

const H_KEY: usize = 0;
const H_META: usize = 1;
const H_VALUE: usize = 2;
const H_TIME: usize = 3;

/// Keys longer than this many bytes use their slot's cold half.
const HOT_KEY_BYTES: usize = 8;

/// The slots of one or more tables of one geometry, interleaved by bucket.
pub(crate) struct TableMem {
    hot: HugeArray<Hot>,
    cold: HugeArray<Cold>,
}

impl TableMem {
    /// Zeroed memory for `tables` tables of this plan's geometry.
    pub(crate) fn new(plan: &MetricPlan, tables: usize) -> TableMem {
        let slots = tables * plan.width as usize * (1usize << plan.log2_size);
        TableMem {
            hot: HugeArray::zeroed(slots),
            cold: HugeArray::zeroed(slots),
        }
    }
}

pub(crate) struct ExactTable {
    kind: MetricKind,
    log2_buckets: u32,
    ways: usize,
    tick_shift: u8,
    decay: Vec<u32>,
    window_ticks: u32,
    window_recip: u32,
    /// Where this table's buckets sit in its group's memory.
    pub(crate) lanes: Lanes,
    evictions: u64,
}

/// A key packed the way slots store it.
#[derive(Clone, Copy)]
pub(crate) struct PackedKey {
    words: [u64; 5],
    meta: u64,
}

/// `KEEP[len][j]`: the bytes of key word `j` that a key of `len` bytes uses.
static KEEP: [[u64; 5]; KEY_MAX + 1] = {
    let mut t = [[0u64; 5]; KEY_MAX + 1];
    let mut len = 0;
    while len <= KEY_MAX {
        let mut j = 0;
        while j < 5 {
            let n = len.saturating_sub(8 * j);
            t[len][j] = if n >= 8 {
                u64::MAX
            } else if n == 0 {
                0
            } else {
                u64::MAX >> (64 - 8 * n)
            };
            j += 1;
        }
        len += 1;
    }
    t
};

impl PackedKey {
    /// A value no op's key packs to (`meta` has the occupied bit clear).
    pub(crate) const NONE: PackedKey = PackedKey {
        words: [0; 5],
        meta: 0,
    };

    /// Packs an op's key straight from its 40 key bytes: five word loads,
    /// bytes at and beyond `key_len` masked to zero (the contract ignores
    /// them). A `key_len` over the maximum packs as the maximum; such ops
    /// are rejected before their key is used.
    #[inline]
    pub(crate) fn from_op(op: &Op) -> PackedKey {
        let len = (op.key_len as usize).min(KEY_MAX);
        let keep = &KEEP[len];
        let word = |j: usize| {
            u64::from_le_bytes(op.key[8 * j..8 * j + 8].try_into().expect("8 bytes")) & keep[j]
        };
        // Most keys (addresses, ports, pairs) fit the first word; the rest
        // are zero and need no loads.
        let words = if len <= HOT_KEY_BYTES {
            [word(0), 0, 0, 0, 0]
        } else {
            [word(0), word(1), word(2), word(3), word(4)]
        };
        PackedKey {
            words,
            meta: 1 | (len as u64) << 8,
        }
    }

    /// Same key (without a `memcmp` call). Equal `meta` means equal
    /// lengths, and keys of at most 8 bytes are all in the first word.
    #[inline]
    pub(crate) fn same(&self, other: &PackedKey) -> bool {
        self.meta == other.meta
            && self.words[0] == other.words[0]
            && (!self.is_long()
                || ((self.words[1] ^ other.words[1])
                    | (self.words[2] ^ other.words[2])
                    | (self.words[3] ^ other.words[3])
                    | (self.words[4] ^ other.words[4]))
                    == 0)
    }

    /// Whether the key is long enough to use a slot's cold half.
    #[inline]
    pub(crate) fn is_long(&self) -> bool {
        self.len() > HOT_KEY_BYTES
    }

    /// Whether a slot's hot half matches this key (first word and length;
    /// the whole key when it is short).
    #[inline]
    fn in_hot(&self, h: &Hot) -> bool {
        h[H_KEY] == self.words[0] && h[H_META] == self.meta
    }

    /// Whether a slot's cold half holds key words 1..5 of this key.
    #[inline]
    fn in_cold(&self, c: &Cold) -> bool {
        ((c[0] ^ self.words[1])
            | (c[1] ^ self.words[2])
            | (c[2] ^ self.words[3])
            | (c[3] ^ self.words[4]))
            == 0
    }

    #[inline]
    fn cold_words(&self) -> Cold {
        [self.words[1], self.words[2], self.words[3], self.words[4]]
    }

    /// The key's length in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        (self.meta >> 8) as usize
    }

    /// Byte `i` of the key.
    #[inline]
    pub(crate) fn byte(&self, i: usize) -> u8 {
        (self.words[i / 8] >> (8 * (i % 8))) as u8
    }
}

impl ExactTable {
    pub(crate) fn new(plan: &MetricPlan, lanes: Lanes) -> Self {
        ExactTable {
            kind: plan.kind,
            log2_buckets: plan.log2_size,
            ways: plan.width as usize,
            tick_shift: plan.tick_shift,
            decay: plan.decay.clone(),
            window_ticks: plan.window_ticks,
            window_recip: plan.window_recip,
            lanes,
            evictions: 0,
        }
    }

    /// Index in the group's memory of the first slot of the key's bucket.
    #[inline]
    pub(crate) fn bucket_start(&self, pos: &Positions) -> usize {
        self.lanes.index(pos.bucket(self.log2_buckets)) * self.ways
    }

    /// First slot of every bucket of this table, in bucket order.
    fn bucket_starts(&self) -> impl Iterator<Item = usize> + '_ {
        (0..1usize << self.log2_buckets).map(|b| self.lanes.index(b) * self.ways)
    }

    /// Prefetches the bucket's hot lines, and its cold halves only for a
    /// key that will read them.
    #[inline]
    pub(crate) fn prefetch(&self, mem: &TableMem, start: usize, key: &PackedKey) {
        let hot = &mem.hot[start..start + self.ways];
        // A 64-byte line holds two 32-byte halves, so every other half names
        // each line of the bucket once, aligned or not.
        for h in hot.iter().step_by(2) {
            crate::prefetch::prefetch(h);
        }
        if key.is_long() {
            for c in mem.cold[start..start + self.ways].iter().step_by(2) {
                crate::prefetch::prefetch(c);
            }
        }
    }

    #[inline]
    fn find(&self, mem: &TableMem, start: usize, key: &PackedKey) -> Option<usize> {
        let hot = &mem.hot[start..start + self.ways];
        if key.is_long() {
            let cold = &mem.cold[start..start + self.ways];
            (0..self.ways)
                .find(|&i| key.in_hot(&hot[i]) && key.in_cold(&cold[i]))
                .map(|i| start + i)
        } else {
            hot.iter().position(|h| key.in_hot(h)).map(|i| start + i)
        }
    }

    /// Finds the key's slot or makes one: the first free way, else the way
    /// written longest ago (evicted).
    ///
    /// One pass over the bucket finds the key, the first free way and the
    /// least recently written way together; it is unrolled for 2 and 4
    /// ways (a constant trip count).
    #[inline]
    fn find_or_insert(
        &mut self,
        mem: &mut TableMem,
        start: usize,
        key: &PackedKey,
        now: u32,
        flags: &mut u8,
    ) -> usize {
        match self.ways {
            2 => self.find_or_insert_ways(mem, start, key, now, flags, 2),
            4 => self.find_or_insert_ways(mem, start, key, now, flags, 4),
            ways => self.find_or_insert_ways(mem, start, key, now, flags, ways),
        }
    }

    #[inline(always)]
    fn find_or_insert_ways(
        &mut self,
        mem: &mut TableMem,
        start: usize,
        key: &PackedKey,
        now: u32,
        flags: &mut u8,
        ways: usize,
    ) -> usize {
        let long = key.is_long();
        let hot = &mut mem.hot[start..start + ways];
        let mut free = usize::MAX;
        let (mut victim, mut oldest) = (0, 0);
        for (i, h) in hot.iter().enumerate() {
            if key.in_hot(h) && (!long || key.in_cold(&mem.cold[start + i])) {
                return start + i;
            }
            if h[H_META] & 1 == 0 {
                free = free.min(i);
            }
            let a = age(now, h[H_TIME] as u32);
            if a > oldest {
                oldest = a;
                victim = i;
            }
        }
        let way = if free != usize::MAX {
            free
        } else {
            self.evictions += 1;
            *flags |= ResultFlags::EVICTED;
            victim
        };
        *flags |= ResultFlags::INSERTED;
        // A new sliding-window slot starts its window now (aux = start).
        hot[way] = [key.words[0], key.meta, 0, now as u64 | (now as u64) << 32];
        if long {
            mem.cold[start + way] = key.cold_words();
        }
        start + way
    }

    /// Adds to the key's slot; `start` is [`Self::bucket_start`] of the
    /// key's positions, here and below.
    #[inline(always)]
    pub(crate) fn add(
        &mut self,
        mem: &mut TableMem,
        start: usize,
        key: &PackedKey,
        value: u32,
        ts_ns: u64,
        flags: &mut u8,
    ) -> u64 {
        let now = tick(ts_ns, self.tick_shift);
        let i = self.find_or_insert(mem, start, key, now, flags);
        let (window_ticks, recip) = (self.window_ticks, self.window_recip);
        let kind = self.kind;
        let decay_table = &self.decay;
        let s = &mut mem.hot[i];
        let then = s[H_TIME] as u32;
        let result = match kind {
            MetricKind::ExactCounter => {
                s[H_VALUE] = s[H_VALUE].saturating_add(value as u64);
                s[H_VALUE]
            }
            MetricKind::ExactEwma => {
                s[H_VALUE] = decay(s[H_VALUE], age(now, then), decay_table)
                    .saturating_add(count_from_value(value));
                s[H_VALUE]
            }
            _ => {
                let (cur, prev, start_tick) =
                    roll(s[H_VALUE], (s[H_TIME] >> 32) as u32, now, window_ticks);
                let cur = cur.saturating_add(value);
                s[H_VALUE] = cur as u64 | (prev as u64) << 32;
                s[H_TIME] = (s[H_TIME] & 0xFFFF_FFFF) | (start_tick as u64) << 32;
                estimate(cur, prev, age(now, start_tick), window_ticks, recip)
            }
        };
        s[H_TIME] = (s[H_TIME] & !0xFFFF_FFFF) | later_tick(now, then) as u64;
        result
    }

    pub(crate) fn get(&self, mem: &TableMem, start: usize, key: &PackedKey, ts_ns: u64) -> u64 {
        let now = tick(ts_ns, self.tick_shift);
        let Some(i) = self.find(mem, start, key) else {
            return 0;
        };
        let s = &mem.hot[i];
        match self.kind {
            MetricKind::ExactCounter => s[H_VALUE],
            MetricKind::ExactEwma => decay(s[H_VALUE], age(now, s[H_TIME] as u32), &self.decay),
            _ => {
                let (cur, prev, start) =
                    roll(s[H_VALUE], (s[H_TIME] >> 32) as u32, now, self.window_ticks);
                estimate(
                    cur,
                    prev,
                    age(now, start),
                    self.window_ticks,
                    self.window_recip,
                )
            }
        }
    }

    /// Removes the key; no other slot changes.
    pub(crate) fn reset(&mut self, mem: &mut TableMem, start: usize, key: &PackedKey) {
        if let Some(i) = self.find(mem, start, key) {
            mem.hot[i] = [0; 4];
        }
    }

    pub(crate) fn clear(&mut self, mem: &mut TableMem) {
        let ways = self.ways;
        for start in self.bucket_starts() {
            mem.hot[start..start + ways].fill([0; 4]);
        }
        self.evictions = 0;
    }

    pub(crate) fn event_count(&self) -> u64 {
        self.evictions
    }

    pub(crate) fn dump(&self, mem: &TableMem, out: &mut Vec<u64>) {
        let slots = self
            .bucket_starts()
            .flat_map(|start| start..start + self.ways);
        for (h, c) in slots.map(|i| (&mem.hot[i], &mem.cold[i])) {
            let len = (h[H_META] >> 8) as usize;
            let rest = if h[H_META] & 1 == 1 && len > HOT_KEY_BYTES {
                *c
            } else {
                [0; 4]
            };
            out.push(h[H_KEY]);
            out.extend_from_slice(&rest);
            out.extend([
                h[H_META],
                h[H_VALUE],
                h[H_TIME] & 0xFFFF_FFFF,
                h[H_TIME] >> 32,
            ]);
        }
    }
}

/// Moves a sliding-window slot to the window that contains `now`:
/// returns `(current count, previous window's count, window start)`.
/// One window later the current count becomes the previous one; two or
/// more windows later both are zero and the window restarts at `now`.
#[inline]
fn roll(value: u64, start: u32, now: u32, window: u32) -> (u32, u32, u32) {
    let (cur, prev) = (value as u32, (value >> 32) as u32);
    let elapsed = age(now, start);
    if elapsed < window {
        (cur, prev, start)
    } else if elapsed < 2 * window {
        (0, cur, start.wrapping_add(window))
    } else {
        (0, 0, now)
    }
}

/// Sliding estimate: the current window's count plus the share of the
/// previous window still inside the sliding window,
/// `cur + (prev · (((W − elapsed) · recip) >> 16)) >> 16`.
#[inline]
fn estimate(cur: u32, prev: u32, elapsed: u32, window: u32, recip: u32) -> u64 {
    let remaining = window.saturating_sub(elapsed) as u64;
    let frac = (remaining * recip as u64) >> 16;
    cur as u64 + ((prev as u64 * frac) >> 16)
}
