//! Arbitrary bytes as one TPACKET_V3 ring block (descriptor, then
//! `tpacket3_hdr` records) through the live capture's block walker.
//!
//! The kernel writes these blocks, but a corrupt one must end the block
//! as a counted ring error, never panic nor hand out a frame outside it.
//!
//! ```text
//! cargo +nightly fuzz run capture_block -- -max_total_time=300
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut block = data.to_vec();
    let len = block.len();
    let mut frames = 0usize;
    streamon_capture::walk_block_for_fuzzing(&mut block, |f| {
        assert!(f.data.len() <= len);
        frames += 1;
    });
    // Record offsets strictly grow inside the block.
    assert!(frames <= len);
});
