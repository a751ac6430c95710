//! End-to-end tests of the shipped applications (`apps/*.xml`).
//!
//! Everything is in `tests/`: `apps_on_traces.rs` runs each application
//! on the real captures of `shared/traces` (and, where no capture holds
//! the attack at the right size, on a seeded trace from
//! `streamon_host_ctl::tracegen`) and checks which key reaches which state
//! and when, and that benign captures raise nothing. The CLI tests are in
//! `host-ctl/tests/cli.rs`, where the `streamon` binary is built.
