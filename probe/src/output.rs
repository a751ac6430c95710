//! What the probe emits: one [`OutputEvent`] per `Publish`, `print` and
//! mitigation, handed to an [`EventSink`].

use std::io::Write;

/// One emitted event.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct OutputEvent {
    /// Packet (trace) time of the pass that emitted it, ns since the epoch.
    pub ts: u64,
    /// Application name.
    pub app: String,
    /// Topic (`alert`, `log`, …; `print` for `print(...)`, `block` and
    /// `unblock` for mitigation).
    pub topic: String,
    /// The key's state before the pass.
    pub state_from: String,
    /// The key's state after the pass.
    pub state_to: String,
    /// `%state.code` of the state before the pass.
    pub code: String,
    /// `%state.level` of the state before the pass.
    pub level: String,
    /// The event's key, rendered (`10.0.0.1-192.0.2.7`).
    pub key: String,
    /// The key's fields, each by name and rendered (`[("ip_src",
    /// "10.0.0.1"), ("ip_dst", "192.0.2.7")]`): what a chained probe reads
    /// as the message's key fields. Not in this crate's JSON Lines.
    #[serde(skip)]
    pub key_fields: Vec<(String, String)>,
    /// The rendered text.
    pub text: String,
    /// The features the state's conditions and actions use, by name.
    pub features: Vec<(String, f64)>,
    /// Which event ran: `packet:<index>` or `timeout:<class>`.
    pub event: String,
    /// Packet number of the packet (or of the packet that armed the timeout).
    pub packet_no: u64,
    /// For the `raw` topic: the packet bytes, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// Where events go.
pub trait EventSink {
    /// Takes one event. Sinks must not block the packet path for long.
    fn emit(&mut self, ev: &OutputEvent);
}

/// Collects events in memory (tests, controllers).
#[derive(Debug, Default)]
pub struct VecSink(pub Vec<OutputEvent>);

impl EventSink for VecSink {
    fn emit(&mut self, ev: &OutputEvent) {
        self.0.push(ev.clone());
    }
}

/// Output format of [`WriterSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// `ts app topic [code level] key: text`.
    Text,
}

/// Writes events to any writer; counts write errors instead of panicking.
pub struct WriterSink<W: Write> {
    out: W,
    format: Format,
    /// Events that could not be written (e.g. closed pipe).
    pub write_errors: u64,
    /// Events written.
    pub written: u64,
}

impl<W: Write> WriterSink<W> {
    /// A sink writing `format` to `out`.
    pub fn new(out: W, format: Format) -> Self {
        WriterSink {
            out,
            format,
            write_errors: 0,
            written: 0,
        }
    }

    /// Flushes the writer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> EventSink for WriterSink<W> {
    fn emit(&mut self, ev: &OutputEvent) {
        let r = match self.format {
            Format::JsonLines => serde_json::to_writer(&mut self.out, &JsonEvent(ev))
                .map_err(std::io::Error::from)
                .and_then(|()| self.out.write_all(b"\n")),
            Format::Text => writeln!(
                self.out,
                "{}.{:09} {} {} [{} {}] {}: {}",
                ev.ts / 1_000_000_000,
                ev.ts % 1_000_000_000,
                ev.app,
                ev.topic,
                ev.code,
                ev.level,
                ev.key,
                ev.text
            ),
        };
        match r {
            Ok(()) => self.written += 1,
            Err(_) => self.write_errors += 1,
        }
    }
}

/// JSON shape: features as an object, not a list of pairs.
struct JsonEvent<'a>(&'a OutputEvent);

impl serde::Serialize for JsonEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ts", &e.ts)?;
        m.serialize_entry("app", &e.app)?;
        m.serialize_entry("topic", &e.topic)?;
        m.serialize_entry("state_from", &e.state_from)?;
        m.serialize_entry("state_to", &e.state_to)?;
        m.serialize_entry("code", &e.code)?;
        m.serialize_entry("level", &e.level)?;
        m.serialize_entry("key", &e.key)?;
        m.serialize_entry("text", &e.text)?;
        m.serialize_entry("event", &e.event)?;
        m.serialize_entry("packet_no", &e.packet_no)?;
        let features: serde_json::Map<String, serde_json::Value> = e
            .features
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        m.serialize_entry("features", &features)?;
        if let Some(raw) = &e.raw {
            m.serialize_entry("raw", raw)?;
        }
        m.end()
    }
}
