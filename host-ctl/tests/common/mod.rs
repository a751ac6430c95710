//! Helpers shared by the tests that drive a `streamon` child process
//! (live capture, subscriptions): wait for a line on its stderr, interrupt
//! it, collect what it says at exit.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command};

/// Reads the child's stderr until a line starting with `prefix`; fails
/// (naming `what`) if the child exits first.
pub fn wait_for_line(err: &mut BufReader<ChildStderr>, prefix: &str, what: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        let n = err.read_line(&mut line).expect("stderr reads");
        assert!(n > 0, "streamon exited before {what}");
        if line.starts_with(prefix) {
            return;
        }
    }
}

/// Sends SIGINT to the child with the shell's builtin `kill` (no procps
/// needed).
pub fn interrupt(child: &Child) {
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "SIGINT delivered");
}

/// The rest of the child's stderr once it has exited successfully.
pub fn finish(child: &mut Child, err: &mut BufReader<ChildStderr>) -> String {
    let mut rest = String::new();
    err.read_to_string(&mut rest).expect("stderr reads");
    let status = child.wait().expect("streamon exits");
    assert!(status.success(), "streamon failed: {rest}");
    rest
}
