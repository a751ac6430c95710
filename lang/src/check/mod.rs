//! The checker: walks the XML tree, parses every attribute in its
//! sub-language, resolves every name and builds the [`Program`].
//!
//! It never stops at the first problem: each element and attribute is
//! checked on its own, and everything found is reported. A program is
//! returned only when no error was found.
//!
//! * this module: the [`Checker`] state, diagnostics, and the entry point;
//! * `attrs`: attribute access, typed attribute values, names and keys;
//! * `elements`: the top-level elements (states, metrics, tables, features);
//! * `events`: events, their `<state>`s and what those contain;
//! * `resolve`: expressions, actions and texts, from raw syntax to the
//!   resolved [`Program`] types.

mod attrs;
mod elements;
mod events;
mod resolve;

use std::collections::{BTreeSet, HashMap};

use roxmltree::{Document, Node, ParsingOptions};
use streamon_packet::{Field, FieldType};

use crate::action::{parse_actions, RawAction, ACTION_WORDS};
use crate::cursor::{is_ident_continue, is_ident_start, SyntaxError};
use crate::diag::{Diagnostic, Severity};
use crate::expr::{parse_expr, RawExpr, RawKind, RESERVED};
use crate::key::{parse_key_attr, RawKey};
use crate::limits::*;
use crate::program::*;
use crate::selector::{parse_selector, resolve_selector};
use crate::source::{LineIndex, ValueMap};
use crate::store::{RawNamePart, RawStoreName};
use crate::template::{RawPart, RawTemplate};

/// A `<state>`'s own `code`/`level`/`description`, before merging.
type RawInfo = (StateId, [Option<String>; 3]);

/// Parses and checks a program; see [`crate::parse_and_check`].
pub(crate) fn check(
    source: &str,
    file: &str,
) -> Result<(Program, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut ck = Checker::new(source, file);
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
        ..ParsingOptions::default()
    };
    let program = match Document::parse_with_options(source, opts) {
        Ok(doc) => ck.program(&doc),
        Err(e) => {
            ck.xml_error(&e);
            None
        }
    };
    ck.finish(program)
}

/// An attribute value with its position map.
struct Attr<'a> {
    value: &'a str,
    map: ValueMap,
    /// Offset of the attribute name in the text.
    name_at: usize,
}

impl Attr<'_> {
    /// Text offset of byte `off` of the value.
    fn at(&self, off: usize) -> usize {
        self.map.to_text(off)
    }

    /// Text offset of the first non-blank character of the value.
    fn start(&self) -> usize {
        let lead = self.value.len() - self.value.trim_start().len();
        self.at(lead)
    }
}

/// What a name in the shared metric/feature/table namespace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    Metric(MetricId),
    Feature(FeatureId),
    Table(TableId),
}

impl NameKind {
    fn describe(self) -> &'static str {
        match self {
            NameKind::Metric(_) => "a metric",
            NameKind::Feature(_) => "a feature",
            NameKind::Table(_) => "a table",
        }
    }
}

/// Where an expression is: decides which features it may see.
#[derive(Clone, Copy)]
struct Scope {
    /// Features `0..visible` may be used.
    visible_features: usize,
}

/// The event an action list belongs to, for timeout-key checks.
#[derive(Clone)]
struct EventCtx {
    /// The key a `timeout_set` without a key uses, when known.
    own_key: Option<Key>,
    /// A timeout event (its context packet's bytes are what `raw` sends).
    is_timeout: bool,
    /// A message event (no packet bytes at all).
    is_message: bool,
}

struct Checker<'t> {
    file: String,
    text: &'t str,
    lines: LineIndex<'t>,
    errors: Vec<(usize, String)>,
    warnings: Vec<(usize, String)>,
    /// A malformed-XML error: (line, column, message).
    xml_pos: Option<(usize, usize, String)>,

    states: Vec<StateDef>,
    state_names: HashMap<String, (StateId, usize)>,
    metrics: Vec<Metric>,
    /// Slave metric names to resolve once every metric is known.
    slaves: Vec<(MetricId, String, usize)>,
    tables: Vec<Table>,
    features: Vec<Feature>,
    /// Metrics each feature reads, directly or through earlier features.
    feature_metrics: Vec<BTreeSet<MetricId>>,
    names: HashMap<String, (NameKind, usize)>,
    classes: Vec<TimeoutClass>,
    class_names: HashMap<String, (TimeoutClassId, usize)>,
    /// The declared key of each timeout class (its event's `primary-key`).
    class_keys: Vec<Option<Key>>,
    /// Classes some `timeout_set` arms.
    classes_set: BTreeSet<TimeoutClassId>,
    /// Metrics some `<use-metric>` uses.
    metrics_used: BTreeSet<MetricId>,
    /// Message feature names read (`msg.NAME`), interned in first-use order.
    msg_features: Vec<String>,
}

fn elem_at(node: Node<'_, '_>) -> usize {
    node.range().start + 1
}

fn tag<'a>(node: Node<'a, '_>) -> &'a str {
    node.tag_name().name()
}

fn is_ident(s: &str) -> bool {
    let mut it = s.chars();
    it.next().is_some_and(is_ident_start) && it.all(is_ident_continue)
}

impl<'t> Checker<'t> {
    fn new(text: &'t str, file: &str) -> Self {
        Checker {
            file: file.to_string(),
            text,
            lines: LineIndex::new(text),
            errors: Vec::new(),
            warnings: Vec::new(),
            xml_pos: None,
            states: Vec::new(),
            state_names: HashMap::new(),
            metrics: Vec::new(),
            slaves: Vec::new(),
            tables: Vec::new(),
            features: Vec::new(),
            feature_metrics: Vec::new(),
            names: HashMap::new(),
            classes: Vec::new(),
            class_names: HashMap::new(),
            class_keys: Vec::new(),
            classes_set: BTreeSet::new(),
            metrics_used: BTreeSet::new(),
            msg_features: Vec::new(),
        }
    }

    // ----- diagnostics -------------------------------------------------

    fn error(&mut self, at: usize, msg: impl Into<String>) {
        self.errors.push((at, msg.into()));
    }

    fn warn(&mut self, at: usize, msg: impl Into<String>) {
        self.warnings.push((at, msg.into()));
    }

    fn syntax(&mut self, attr: &Attr<'_>, e: SyntaxError) {
        self.error(attr.at(e.offset), e.message);
    }

    fn loc(&self, at: usize) -> Loc {
        let (line, col) = self.lines.line_col(at);
        Loc { line, col }
    }

    fn xml_error(&mut self, e: &roxmltree::Error) {
        let pos = e.pos();
        let mut msg = e.to_string();
        let suffix = format!(" at {pos}");
        if let Some(stripped) = msg.strip_suffix(&suffix) {
            msg = stripped.to_string();
        }
        if msg.ends_with("not '<'") {
            msg = "`<` is not allowed in an attribute value".to_string();
        } else if matches!(e, roxmltree::Error::MalformedEntityReference(_)) {
            msg = "malformed entity reference (a lone `&`)".to_string();
        }
        let in_attr = matches!(
            e,
            roxmltree::Error::InvalidAttributeValue(_)
                | roxmltree::Error::MalformedEntityReference(_)
                | roxmltree::Error::UnknownEntityReference(..)
        ) || msg.starts_with("`<`");
        let hint = if in_attr {
            " (write `<` as `&lt;` or use `lt`, and `&` as `&amp;` or use `and`)"
        } else {
            ""
        };
        // roxmltree gives line and column (in characters) itself.
        self.xml_pos = Some((
            pos.row as usize,
            pos.col as usize,
            format!("malformed XML: {msg}{hint}"),
        ));
    }

    fn finish(
        mut self,
        program: Option<Program>,
    ) -> Result<(Program, Vec<Diagnostic>), Vec<Diagnostic>> {
        let list = std::mem::take(&mut self.errors);
        let mut errors = self.render(list, Severity::Error);
        if let Some((line, col, message)) = self.xml_pos.take() {
            errors.insert(
                0,
                Diagnostic {
                    file: self.file.clone(),
                    line,
                    col,
                    severity: Severity::Error,
                    message,
                },
            );
        }
        let list = std::mem::take(&mut self.warnings);
        let warnings = self.render(list, Severity::Warning);
        match program {
            Some(p) if errors.is_empty() => Ok((p, warnings)),
            _ => {
                if errors.is_empty() {
                    // Cannot happen: every `None` comes with an error. Keep
                    // the promise "no program, at least one error" anyway.
                    errors.push(Diagnostic {
                        file: self.file.clone(),
                        line: 1,
                        col: 1,
                        severity: Severity::Error,
                        message: "program rejected".into(),
                    });
                }
                Err(errors)
            }
        }
    }

    /// Sorts by position, drops duplicates, caps the count at
    /// [`MAX_DIAGNOSTICS`] and computes line/column in one sweep.
    fn render(&self, mut list: Vec<(usize, String)>, severity: Severity) -> Vec<Diagnostic> {
        list.sort_by_key(|(at, _)| *at);
        list.dedup();
        let total = list.len();
        let overflow_at = list.get(MAX_DIAGNOSTICS).map(|(at, _)| *at);
        list.truncate(MAX_DIAGNOSTICS);
        let mut sweep = self.lines.sweep();
        let mut diag = |at: usize, message: String| {
            let (line, col) = sweep.line_col(at);
            Diagnostic {
                file: self.file.clone(),
                line,
                col,
                severity,
                message,
            }
        };
        let mut out: Vec<Diagnostic> = list.into_iter().map(|(at, m)| diag(at, m)).collect();
        if let Some(at) = overflow_at {
            out.push(diag(
                at,
                format!(
                    "too many {severity}s: {} more not shown",
                    total - MAX_DIAGNOSTICS
                ),
            ));
        }
        out
    }
}
