//! `exec(...)`: shell commands run off the packet path.
//!
//! Commands go into a bounded queue served by one worker thread; when the
//! queue is full the command is dropped and counted, never waited for. Each
//! command is killed after [`EXEC_TIMEOUT`]. Off unless the operator enables
//! it (`streamon run --allow-exec`): an application must not be able to run
//! commands on the probe by default.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Commands waiting at most.
pub const EXEC_QUEUE: usize = 64;
/// A command running longer is killed.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of the exec worker.
#[derive(Debug, Default)]
pub struct ExecCounters {
    /// Commands that ran and exited 0.
    pub succeeded: AtomicU64,
    /// Commands that failed to start, exited non-zero or were killed.
    pub failed: AtomicU64,
}

/// The exec worker's front end.
pub struct ExecRunner {
    tx: Option<SyncSender<String>>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// Shared counters.
    pub counters: Arc<ExecCounters>,
    /// Commands dropped because the queue was full.
    pub dropped: u64,
}

impl ExecRunner {
    /// Starts the worker.
    pub fn start() -> ExecRunner {
        let (tx, rx) = sync_channel::<String>(EXEC_QUEUE);
        let counters = Arc::new(ExecCounters::default());
        let c = counters.clone();
        let worker = std::thread::Builder::new()
            .name("streamon-exec".into())
            .spawn(move || {
                for cmd in rx {
                    let ok = run_bounded(&cmd);
                    let counter = if ok { &c.succeeded } else { &c.failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
            .expect("spawning the exec worker");
        ExecRunner {
            tx: Some(tx),
            worker: Some(worker),
            counters,
            dropped: 0,
        }
    }

    /// Queues a command; drops (and counts) it when the queue is full.
    pub fn submit(&mut self, cmd: String) {
        if let Some(tx) = &self.tx {
            match tx.try_send(cmd) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped += 1
                }
            }
        }
    }

    /// Waits for queued commands to finish (end of a replay).
    pub fn finish(&mut self) {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for ExecRunner {
    fn drop(&mut self) {
        self.finish();
    }
}

fn run_bounded(cmd: &str) -> bool {
    let Ok(mut child) = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if start.elapsed() < EXEC_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}
