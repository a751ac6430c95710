//! Exact per-key tables: counters (`dleft`), decaying counts (`tewma-fast`)
//! and sliding-window counts.
//!
//! A table is `2^b` buckets of `ways` 64-byte slots; a key lives in the
//! bucket its hash names, in any way. Identity is the whole key (stored),
//! never a fingerprint: the original's d-left table matched 32-bit
//! fingerprints, could not store a key whose fingerprint was 0, and crashed
//! when full. Here a full bucket evicts its least recently written slot
//! (ties to the lowest way), and every eviction is counted and flagged.
//!
//! A bucket's slots are contiguous, so one op touches `ways` adjacent cache
//! lines of one page (in hardware: one wide word).

use streamon_contract::fixed::{age, count_from_value, decay, later_tick, tick};
use streamon_contract::h3::Positions;
use streamon_contract::{MetricKind, MetricPlan, Op, ResultFlags, KEY_MAX};

use crate::memory::HugeArray;

/// One slot as 8 words: key (5 words, little-endian), `occupied | len << 8`,
/// value, `tick | aux << 32`. Plain words so a table allocates as zeroed
/// pages.
type Slot = [u64; 8];

const W_META: usize = 5;
const W_VALUE: usize = 6;
const W_TIME: usize = 7;

pub(crate) struct ExactTable {
    kind: MetricKind,
    log2_buckets: u32,
    ways: usize,
    tick_shift: u8,
    decay: Vec<u32>,
    window_ticks: u32,
    window_recip: u32,
    slots: HugeArray<Slot>,
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
        let mut words = [0u64; 5];
        for (j, w) in words.iter_mut().enumerate() {
            let raw = u64::from_le_bytes(op.key[8 * j..8 * j + 8].try_into().expect("8 bytes"));
            *w = raw & keep[j];
        }
        PackedKey {
            words,
            meta: 1 | (len as u64) << 8,
        }
    }

    /// Same key (without a `memcmp` call).
    #[inline]
    pub(crate) fn same(&self, other: &PackedKey) -> bool {
        ((self.meta ^ other.meta)
            | (self.words[0] ^ other.words[0])
            | (self.words[1] ^ other.words[1])
            | (self.words[2] ^ other.words[2])
            | (self.words[3] ^ other.words[3])
            | (self.words[4] ^ other.words[4]))
            == 0
    }

    /// Whether a stored slot holds this key. The first word decides most
    /// mismatches, so it is tested alone first.
    #[inline]
    fn in_slot(&self, s: &Slot) -> bool {
        s[0] == self.words[0]
            && ((s[W_META] ^ self.meta)
                | (s[1] ^ self.words[1])
                | (s[2] ^ self.words[2])
                | (s[3] ^ self.words[3])
                | (s[4] ^ self.words[4]))
                == 0
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
    pub(crate) fn new(plan: &MetricPlan) -> Self {
        ExactTable {
            kind: plan.kind,
            log2_buckets: plan.log2_size,
            ways: plan.width as usize,
            tick_shift: plan.tick_shift,
            decay: plan.decay.clone(),
            window_ticks: plan.window_ticks,
            window_recip: plan.window_recip,
            slots: HugeArray::zeroed(plan.width as usize * (1usize << plan.log2_size)),
            evictions: 0,
        }
    }

    #[inline]
    fn bucket_start(&self, pos: &Positions) -> usize {
        pos.bucket(self.log2_buckets) * self.ways
    }

    #[inline]
    pub(crate) fn prefetch(&self, pos: &Positions) {
        let start = self.bucket_start(pos);
        for s in &self.slots[start..start + self.ways] {
            crate::prefetch::prefetch(s);
        }
    }

    #[inline]
    fn find(&self, start: usize, key: &PackedKey) -> Option<usize> {
        let bucket = &self.slots[start..start + self.ways];
        bucket
            .iter()
            .position(|s| key.in_slot(s))
            .map(|i| start + i)
    }

    /// Finds the key's slot or makes one: the first free way, else the way
    /// written longest ago (evicted).
    ///
    /// One pass over the bucket finds the key, the first free way and the
    /// least recently written way together.
    #[inline]
    fn find_or_insert(&mut self, start: usize, key: &PackedKey, now: u32, flags: &mut u8) -> usize {
        let bucket = &mut self.slots[start..start + self.ways];
        let mut free = usize::MAX;
        let (mut victim, mut oldest) = (0, 0);
        for (i, s) in bucket.iter().enumerate() {
            if key.in_slot(s) {
                return start + i;
            }
            if s[W_META] & 1 == 0 {
                free = free.min(i);
            }
            let a = age(now, s[W_TIME] as u32);
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
        let w = &key.words;
        bucket[way] = [
            w[0],
            w[1],
            w[2],
            w[3],
            w[4],
            key.meta,
            0,
            now as u64 | (now as u64) << 32,
        ];
        start + way
    }

    pub(crate) fn add(
        &mut self,
        pos: &Positions,
        key: &PackedKey,
        value: u32,
        ts_ns: u64,
        flags: &mut u8,
    ) -> u64 {
        let now = tick(ts_ns, self.tick_shift);
        let start = self.bucket_start(pos);
        let i = self.find_or_insert(start, key, now, flags);
        let (window_ticks, recip) = (self.window_ticks, self.window_recip);
        let kind = self.kind;
        let decay_table = &self.decay;
        let s = &mut self.slots[i];
        let then = s[W_TIME] as u32;
        let result = match kind {
            MetricKind::ExactCounter => {
                s[W_VALUE] = s[W_VALUE].saturating_add(value as u64);
                s[W_VALUE]
            }
            MetricKind::ExactEwma => {
                s[W_VALUE] = decay(s[W_VALUE], age(now, then), decay_table)
                    .saturating_add(count_from_value(value));
                s[W_VALUE]
            }
            _ => {
                let (cur, prev, start_tick) =
                    roll(s[W_VALUE], (s[W_TIME] >> 32) as u32, now, window_ticks);
                let cur = cur.saturating_add(value);
                s[W_VALUE] = cur as u64 | (prev as u64) << 32;
                s[W_TIME] = (s[W_TIME] & 0xFFFF_FFFF) | (start_tick as u64) << 32;
                estimate(cur, prev, age(now, start_tick), window_ticks, recip)
            }
        };
        s[W_TIME] = (s[W_TIME] & !0xFFFF_FFFF) | later_tick(now, then) as u64;
        result
    }

    pub(crate) fn get(&self, pos: &Positions, key: &PackedKey, ts_ns: u64) -> u64 {
        let now = tick(ts_ns, self.tick_shift);
        let Some(i) = self.find(self.bucket_start(pos), key) else {
            return 0;
        };
        let s = &self.slots[i];
        match self.kind {
            MetricKind::ExactCounter => s[W_VALUE],
            MetricKind::ExactEwma => decay(s[W_VALUE], age(now, s[W_TIME] as u32), &self.decay),
            _ => {
                let (cur, prev, start) =
                    roll(s[W_VALUE], (s[W_TIME] >> 32) as u32, now, self.window_ticks);
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
    pub(crate) fn reset(&mut self, pos: &Positions, key: &PackedKey) {
        if let Some(i) = self.find(self.bucket_start(pos), key) {
            self.slots[i] = [0; 8];
        }
    }

    pub(crate) fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = [0; 8]);
        self.evictions = 0;
    }

    pub(crate) fn event_count(&self) -> u64 {
        self.evictions
    }

    pub(crate) fn dump(&self, out: &mut Vec<u64>) {
        for s in self.slots.iter() {
            out.extend_from_slice(&s[..W_META]);
            out.extend([
                s[W_META],
                s[W_VALUE],
                s[W_TIME] & 0xFFFF_FFFF,
                s[W_TIME] >> 32,
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
