//! Several cores, the same events: the installed applications are spread
//! over worker threads, every worker sees every packet, and the events are
//! merged back into exactly the order one thread produces.
//!
//! Why applications and not keys: an application's metric layer is shared
//! by all its keys. A count-min row, a Bloom pair of a variation detector
//! (its swap time depends on how many distinct keys were inserted), a
//! global `simple` metric or the LRU of an exact table all depend on the
//! whole op stream of the application, in order. Splitting one
//! application's keys over threads would give each thread a different
//! stream and so, in general, different alerts. An application, on the
//! other hand, shares nothing with the others (its own engine, states,
//! timers, block list), so running it on another thread with the same
//! packets in the same order gives bit-for-bit the same results.
//!
//! Per batch of up to [`BATCH_FRAMES`] frames the caller's thread copies the
//! frames into a recycled buffer and hands one `Arc` of it to every worker
//! (no per-packet allocation, no lock: a bounded channel per batch). Each
//! worker parses the frames itself (parsing is cheap next to the apps, and
//! sharing parsed views across threads would mean copying them) and runs
//! its applications, tagging every event with `(frame, application)`. The
//! caller merges the batches' events by that tag: for each frame, the
//! applications in install order, each application's events in the order it
//! emitted them, which is the order [`crate::Probe::frame`] emits them in.
//! Timers fire inside an application's packet pass, so timer events carry
//! the tag of the packet that made them due, as on one thread.
//!
//! Messages from other probes ([`ParallelProbe::message`], probe
//! chaining) travel in the same batches, between the frames they were
//! handed over between: every worker runs each one for its applications
//! at its place in the stream, as [`crate::Probe::message`] does on one
//! thread, so packets and messages reach every application in the same
//! order at any thread count.
//!
//! The scaling is bounded by the most expensive application (one thread
//! per application at most) and by the reader thread that copies frames.

use std::collections::VecDeque;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use streamon_packet::{parse, FrameMeta, LinkType};

use crate::app::AppRuntime;
use crate::message::Message;
use crate::output::{EventSink, OutputEvent};
use crate::probe::{count_frame, Probe, ProbeStats};

/// Frames and messages per batch handed to the workers.
pub const BATCH_FRAMES: usize = 256;
/// Batches dispatched and not yet merged, at most.
const IN_FLIGHT: usize = 4;

/// One input of a batch, in arrival order.
enum Item {
    /// A frame: its bytes in [`Batch::bytes`], link type, metadata.
    Frame(usize, usize, LinkType, FrameMeta),
    /// A message: its index in [`Batch::messages`].
    Message(usize),
}

/// Frames (copied) and messages (moved in) for the workers.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    messages: Vec<Message>,
    items: Vec<Item>,
}

enum ToWorker {
    Batch(Arc<Batch>),
    Finish,
}

/// A worker's events for one batch: `(item in batch, app index, event)`.
type Tagged = Vec<(u32, u32, OutputEvent)>;

enum FromWorker {
    Events(Tagged),
    Done {
        apps: Vec<(usize, AppRuntime, bool)>,
        stats: Option<ProbeStats>,
        pending: usize,
    },
}

struct Worker {
    to: SyncSender<ToWorker>,
    from: Receiver<FromWorker>,
    handle: Option<JoinHandle<()>>,
}

/// A worker thread died (an application panicked); the events of the
/// batches it had not answered are lost.
#[derive(Debug, thiserror::Error)]
#[error("a probe worker thread stopped unexpectedly (an application panicked)")]
pub struct WorkerLost;

/// A [`Probe`] whose applications run on several threads, with the same
/// events in the same order as on one. The set of applications is fixed
/// while it runs (applications stopped with `Probe::set_running` stay
/// stopped); [`ParallelProbe::finish`] gives the `Probe` back.
pub struct ParallelProbe {
    workers: Vec<Worker>,
    filling: Batch,
    in_flight: VecDeque<Arc<Batch>>,
    spare: Vec<Batch>,
    lost: bool,
    merged: Tagged,
    /// Answers to the oldest batch in flight already taken, per worker
    /// (by [`ParallelProbe::flush`], which does not wait for the rest).
    answers: Vec<Option<Tagged>>,
}

/// Tags each event with its frame and application.
struct TagSink<'a> {
    out: &'a mut Tagged,
    frame: u32,
    app: u32,
}

impl EventSink for TagSink<'_> {
    fn emit(&mut self, ev: &OutputEvent) {
        self.out.push((self.frame, self.app, ev.clone()));
    }
}

fn worker_loop(
    mut apps: Vec<(usize, AppRuntime, bool)>,
    mut stats: Option<ProbeStats>,
    rx: Receiver<ToWorker>,
    tx: Sender<FromWorker>,
) {
    while let Ok(msg) = rx.recv() {
        match msg {
            ToWorker::Batch(batch) => {
                let mut out = Tagged::new();
                for (i, item) in batch.items.iter().enumerate() {
                    match *item {
                        Item::Frame(start, end, linktype, meta) => {
                            let parsed = parse(&batch.bytes[start..end], linktype, meta);
                            if let Some(s) = &mut stats {
                                count_frame(s, &parsed);
                            }
                            let Ok(p) = parsed else { continue };
                            for (index, app, _) in apps.iter_mut().filter(|a| a.2) {
                                let mut sink = TagSink {
                                    out: &mut out,
                                    frame: i as u32,
                                    app: *index as u32,
                                };
                                app.packet(&p, &mut sink);
                            }
                        }
                        Item::Message(m) => {
                            let m = &batch.messages[m];
                            if let Some(s) = &mut stats {
                                s.messages += 1;
                            }
                            // Every application sees every message, as on
                            // one thread (unmatched ones are counted there).
                            for (index, app, _) in apps.iter_mut().filter(|a| a.2) {
                                let mut sink = TagSink {
                                    out: &mut out,
                                    frame: i as u32,
                                    app: *index as u32,
                                };
                                app.message(m, &mut sink);
                            }
                        }
                    }
                }
                // Drop the batch before answering, so the caller can reuse
                // its buffer as soon as every answer is in.
                drop(batch);
                if tx.send(FromWorker::Events(out)).is_err() {
                    return;
                }
            }
            ToWorker::Finish => {
                let pending = apps.iter_mut().map(|(_, a, _)| a.finish()).sum();
                let _ = tx.send(FromWorker::Done {
                    apps,
                    stats,
                    pending,
                });
                return;
            }
        }
    }
}

impl ParallelProbe {
    /// Spreads the applications of `probe` over `threads` workers
    /// (round-robin in install order; never more workers than
    /// applications, at least one).
    pub fn start(probe: Probe, threads: usize) -> ParallelProbe {
        let (apps, stats) = probe.into_parts();
        let n = threads.clamp(1, apps.len().max(1));
        let mut shares: Vec<Vec<(usize, AppRuntime, bool)>> = (0..n).map(|_| Vec::new()).collect();
        for (i, (app, running)) in apps.into_iter().enumerate() {
            shares[i % n].push((i, app, running));
        }
        let mut stats = Some(stats);
        let workers = shares
            .into_iter()
            .enumerate()
            .map(|(w, share)| {
                let (to, rx) = sync_channel(IN_FLIGHT);
                let (tx, from) = channel();
                // Worker 0 counts the probe-wide parse counters.
                let stats = if w == 0 { stats.take() } else { None };
                let handle = std::thread::Builder::new()
                    .name(format!("probe-worker-{w}"))
                    .spawn(move || worker_loop(share, stats, rx, tx))
                    .expect("spawning a probe worker thread");
                Worker {
                    to,
                    from,
                    handle: Some(handle),
                }
            })
            .collect();
        let answers = (0..n).map(|_| None).collect();
        ParallelProbe {
            workers,
            filling: Batch::default(),
            in_flight: VecDeque::new(),
            spare: Vec::new(),
            lost: false,
            merged: Tagged::new(),
            answers,
        }
    }

    /// Worker threads running.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Queues one frame (copied). Events come out in order, a few batches
    /// later, through `sink`.
    pub fn frame(
        &mut self,
        frame: &[u8],
        linktype: LinkType,
        meta: FrameMeta,
        sink: &mut dyn EventSink,
    ) {
        let start = self.filling.bytes.len();
        self.filling.bytes.extend_from_slice(frame);
        self.filling
            .items
            .push(Item::Frame(start, self.filling.bytes.len(), linktype, meta));
        if self.filling.items.len() == BATCH_FRAMES {
            self.dispatch(sink);
        }
    }

    /// Queues one message from another probe, after the frames queued so
    /// far: every application runs it at that place in its input, as
    /// [`crate::Probe::message`] does on one thread.
    pub fn message(&mut self, m: Message, sink: &mut dyn EventSink) {
        self.filling
            .items
            .push(Item::Message(self.filling.messages.len()));
        self.filling.messages.push(m);
        if self.filling.items.len() == BATCH_FRAMES {
            self.dispatch(sink);
        }
    }

    /// Hands the partly filled batch to the workers and emits the events
    /// of every batch whose answers are all in, without waiting for the
    /// others: a live or chained probe calls this when its input pauses,
    /// so events do not wait for a batch to fill. Batch boundaries do not
    /// change any result.
    pub fn flush(&mut self, sink: &mut dyn EventSink) {
        self.dispatch(sink);
        while !self.in_flight.is_empty() {
            let mut all = true;
            for (w, slot) in self.workers.iter().zip(self.answers.iter_mut()) {
                if slot.is_some() {
                    continue;
                }
                match w.from.try_recv() {
                    Ok(FromWorker::Events(evs)) => *slot = Some(evs),
                    Err(std::sync::mpsc::TryRecvError::Empty) => all = false,
                    _ => {
                        // A lost worker: `merge_oldest` records it.
                        self.lost = true;
                        all = false;
                    }
                }
            }
            if !all || self.lost {
                return;
            }
            self.merge_oldest(sink);
        }
    }

    fn dispatch(&mut self, sink: &mut dyn EventSink) {
        if self.filling.items.is_empty() {
            return;
        }
        let next = self.spare.pop().unwrap_or_default();
        let batch = Arc::new(std::mem::replace(&mut self.filling, next));
        if self.in_flight.len() == IN_FLIGHT {
            self.merge_oldest(sink);
        }
        for w in &self.workers {
            if w.to.send(ToWorker::Batch(batch.clone())).is_err() {
                self.lost = true;
            }
        }
        self.in_flight.push_back(batch);
    }

    /// Waits for every worker's answer to the oldest batch and emits its
    /// events in single-thread order.
    fn merge_oldest(&mut self, sink: &mut dyn EventSink) {
        let Some(batch) = self.in_flight.pop_front() else {
            return;
        };
        self.merged.clear();
        for (w, slot) in self.workers.iter().zip(self.answers.iter_mut()) {
            let answer = match slot.take() {
                Some(evs) => Ok(FromWorker::Events(evs)),
                None => w.from.recv(),
            };
            match answer {
                Ok(FromWorker::Events(mut evs)) => self.merged.append(&mut evs),
                _ => self.lost = true,
            }
        }
        // Each worker's list is in (frame, app) order already; a stable
        // sort interleaves them and keeps each app's own order.
        self.merged.sort_by_key(|&(f, a, _)| (f, a));
        for (_, _, ev) in &self.merged {
            sink.emit(ev);
        }
        if let Ok(mut b) = Arc::try_unwrap(batch) {
            b.bytes.clear();
            b.messages.clear();
            b.items.clear();
            self.spare.push(b);
        }
    }

    /// End of input: runs what is queued, stops the workers, and returns
    /// the probe (applications in install order, with their state and
    /// counters) and the timeouts still armed.
    pub fn finish(mut self, sink: &mut dyn EventSink) -> Result<(Probe, usize), WorkerLost> {
        self.dispatch(sink);
        while !self.in_flight.is_empty() {
            self.merge_oldest(sink);
        }
        let mut apps = Vec::new();
        let mut stats = None;
        let mut pending = 0;
        for w in &mut self.workers {
            let _ = w.to.send(ToWorker::Finish);
            match w.from.recv() {
                Ok(FromWorker::Done {
                    apps: a,
                    stats: s,
                    pending: p,
                }) => {
                    apps.extend(a);
                    stats = stats.or(s);
                    pending += p;
                }
                _ => self.lost = true,
            }
            if let Some(h) = w.handle.take() {
                if h.join().is_err() {
                    self.lost = true;
                }
            }
        }
        if self.lost {
            return Err(WorkerLost);
        }
        apps.sort_by_key(|(i, _, _)| *i);
        let probe = Probe::from_parts(
            apps.into_iter().map(|(_, a, r)| (a, r)).collect(),
            stats.unwrap_or_default(),
        );
        Ok((probe, pending))
    }
}

impl Drop for ParallelProbe {
    fn drop(&mut self) {
        // Dropping the senders ends the worker loops.
        for w in &mut self.workers {
            let (dead, _) = sync_channel(0);
            w.to = dead;
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}
