//! `names::glob_match` against a real `redis-server`'s `KEYS`, on random
//! keys and metacharacter-heavy patterns (seeded, so failures reproduce).

mod common;

use std::collections::BTreeSet;

use common::RedisProc;
use streamon_microcloud::names::glob_match;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn string(&mut self, alphabet: &[u8], max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

#[test]
fn glob_match_agrees_with_redis_keys() {
    let redis = RedisProc::start();
    let mut c = redis.conn();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let key_alphabet = b"abc:-*?[]\\^Z09\xc3\xa9";
    let pat_alphabet = b"abc:-*?[]\\^Z09\xc3\xa9****??[[]]";
    let mut keys = BTreeSet::new();
    keys.insert(Vec::new());
    while keys.len() < 400 {
        keys.insert(rng.string(key_alphabet, 6));
    }
    let mut mset = redis::cmd("MSET");
    for k in &keys {
        mset.arg(k).arg(1);
    }
    let () = mset.query(&mut c).unwrap();

    let mut patterns: Vec<Vec<u8>> = [
        &b"*"[..],
        b"**",
        b"?",
        b"[",
        b"[^",
        b"[a-",
        b"a[b-",
        b"\\",
        b"[\\]",
        b"[]a]",
        b"*\\",
        b"[c-a]*",
        b"[^a-c]*",
        b"*[",
        b"a*b*c",
    ]
    .iter()
    .map(|p| p.to_vec())
    .collect();
    for _ in 0..600 {
        patterns.push(rng.string(pat_alphabet, 7));
    }
    let mut disagreements = Vec::new();
    // Patterns selecting some keys but not all: the interesting ones.
    let mut selective = 0;
    for p in &patterns {
        let want: BTreeSet<Vec<u8>> = redis::cmd("KEYS")
            .arg(p)
            .query::<Vec<Vec<u8>>>(&mut c)
            .unwrap()
            .into_iter()
            .collect();
        let all = p.as_slice() == b"*";
        let got: BTreeSet<Vec<u8>> = keys
            .iter()
            .filter(|k| all || glob_match(p, k))
            .cloned()
            .collect();
        if !want.is_empty() && want.len() < keys.len() {
            selective += 1;
        }
        if got != want {
            disagreements.push((
                String::from_utf8_lossy(p).into_owned(),
                want.symmetric_difference(&got)
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect::<Vec<_>>(),
            ));
        }
    }
    assert!(selective >= 150, "only {selective} selective patterns");
    assert!(
        disagreements.is_empty(),
        "{} patterns differ: {:?}",
        disagreements.len(),
        &disagreements[..disagreements.len().min(10)]
    );
}
