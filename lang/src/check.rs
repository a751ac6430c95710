//! The checker: walks the XML tree, parses every attribute in its
//! sub-language, resolves every name and builds the [`Program`].
//!
//! It never stops at the first problem: each element and attribute is
//! checked on its own, and everything found is reported. A program is
//! returned only when no error was found.

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
use crate::template::{RawPart, RawTemplate};

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
    /// A timeout event (no packet bytes to publish).
    is_timeout: bool,
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

    fn render(&self, list: Vec<(usize, String)>, severity: Severity) -> Vec<Diagnostic> {
        let mut out: Vec<Diagnostic> = list
            .into_iter()
            .map(|(at, message)| {
                let (line, col) = self.lines.line_col(at);
                Diagnostic {
                    file: self.file.clone(),
                    line,
                    col,
                    severity,
                    message,
                }
            })
            .collect();
        out.sort_by_key(|d| (d.line, d.col));
        out.dedup();
        out
    }
}

/// Attribute-level helpers.
impl<'t> Checker<'t> {
    fn attr<'a>(&self, node: Node<'a, '_>, name: &str) -> Option<Attr<'a>> {
        let a = node
            .attributes()
            .find(|a| a.name() == name && a.namespace().is_none())?;
        Some(Attr {
            value: a.value(),
            map: ValueMap::new(self.text, a.range_value()),
            name_at: a.range_qname().start,
        })
    }

    /// An attribute that must be there (error at the element otherwise).
    fn required<'a>(&mut self, node: Node<'a, '_>, name: &str) -> Option<Attr<'a>> {
        let a = self.attr(node, name);
        if a.is_none() {
            self.error(
                elem_at(node),
                format!("<{}> needs a `{name}` attribute", tag(node)),
            );
        }
        a
    }

    /// Reports attributes not in `known` (errors) or in `ignored` (warnings).
    fn check_attrs(&mut self, node: Node<'_, '_>, known: &[&str], ignored: &[&str]) {
        for a in node.attributes() {
            let name = a.name();
            if known.contains(&name) {
                continue;
            }
            let at = a.range_qname().start;
            if ignored.contains(&name) {
                self.warn(
                    at,
                    format!("attribute `{name}` of <{}> is ignored", tag(node)),
                );
            } else {
                self.error(at, format!("unknown attribute `{name}` on <{}>", tag(node)));
            }
        }
    }

    /// Child elements; stray text is reported.
    fn children<'a, 'i>(&mut self, node: Node<'a, 'i>) -> Vec<Node<'a, 'i>> {
        let mut out = Vec::new();
        for c in node.children() {
            if c.is_element() {
                out.push(c);
            } else if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
                let raw = self.text.get(c.range()).unwrap_or("");
                let lead = raw.len() - raw.trim_start().len();
                self.warn(
                    c.range().start + lead,
                    format!("text inside <{}> is ignored", tag(node)),
                );
            }
        }
        out
    }

    fn number_attr(&mut self, a: &Attr<'_>) -> Option<f64> {
        match a.value.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                self.error(a.start(), format!("`{}` is not a number", a.value.trim()));
                None
            }
        }
    }

    /// A number of seconds, > 0 (or ≥ 0 when `zero_ok`).
    fn seconds_attr(&mut self, a: &Attr<'_>, what: &str, zero_ok: bool) -> Option<f64> {
        let v = self.number_attr(a)?;
        if v < 0.0 || (!zero_ok && v == 0.0) {
            let bound = if zero_ok { "≥ 0" } else { "> 0" };
            self.error(a.start(), format!("{what} must be {bound} seconds"));
            return None;
        }
        Some(v)
    }

    /// An optional integer attribute in `lo..=hi`, default `def`.
    fn int_attr(
        &mut self,
        node: Node<'_, '_>,
        name: &str,
        def: u32,
        lo: u32,
        hi: u32,
    ) -> Option<u32> {
        let Some(a) = self.attr(node, name) else {
            return Some(def);
        };
        match a.value.trim().parse::<u32>() {
            Ok(v) if (lo..=hi).contains(&v) => Some(v),
            _ => {
                self.error(
                    a.start(),
                    format!("`{name}` must be an integer in {lo}..={hi}"),
                );
                None
            }
        }
    }

    fn bool_attr(&mut self, node: Node<'_, '_>, name: &str, def: bool) -> Option<bool> {
        let Some(a) = self.attr(node, name) else {
            return Some(def);
        };
        match a.value.trim() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            other => {
                self.error(
                    a.start(),
                    format!("`{name}` must be `true` or `false`, not `{other}`"),
                );
                None
            }
        }
    }

    /// `status="on|off"`, default on.
    fn status_attr(&mut self, node: Node<'_, '_>) -> Option<bool> {
        let Some(a) = self.attr(node, "status") else {
            return Some(true);
        };
        match a.value.trim() {
            "on" | "true" => Some(true),
            "off" | "false" => Some(false),
            other => {
                self.error(
                    a.start(),
                    format!("`status` must be `on` or `off`, not `{other}`"),
                );
                None
            }
        }
    }

    /// A name for the metric/feature/table namespace: an identifier that
    /// is no keyword, action word or field, and not yet taken.
    fn declare_name(&mut self, a: &Attr<'_>, kind: NameKind) -> Option<String> {
        let name = a.value.trim();
        let what = &kind.describe()[2..];
        if !is_ident(name) {
            self.error(
                a.start(),
                format!(
                    "`{name}` is not a valid {what} name (letters, digits and `_`, not starting with a digit)"
                ),
            );
            return None;
        }
        if RESERVED.contains(&name) || ACTION_WORDS.contains(&name) {
            self.error(
                a.start(),
                format!("`{name}` is a reserved word and cannot name a {what}"),
            );
            return None;
        }
        if Field::from_name(name).is_some() {
            self.error(
                a.start(),
                format!("`{name}` is a packet field and cannot name a {what}"),
            );
            return None;
        }
        if let Some((other, at)) = self.names.get(name) {
            let (l, c) = self.lines.line_col(*at);
            self.error(
                a.start(),
                format!(
                    "`{name}` is already {} (defined at {l}:{c})",
                    other.describe()
                ),
            );
            return None;
        }
        self.names.insert(name.to_string(), (kind, a.start()));
        Some(name.to_string())
    }

    /// A key attribute (`primary-key`, `vd_update`, `key`, …).
    fn key_attr(&mut self, a: &Attr<'_>) -> Option<Key> {
        match parse_key_attr(a.value) {
            Ok(raw) => self.resolve_key(&raw, a),
            Err(e) => {
                self.syntax(a, e);
                None
            }
        }
    }

    fn resolve_key(&mut self, raw: &RawKey, a: &Attr<'_>) -> Option<Key> {
        let mut fields = Vec::new();
        let mut ok = true;
        for (name, span) in &raw.fields {
            match Field::from_name(name) {
                Some(f) if fields.contains(&f) => {
                    self.error(
                        a.at(span.start),
                        format!("field `{name}` appears twice in the key"),
                    );
                    ok = false;
                }
                Some(f) => fields.push(f),
                None => {
                    self.error(a.at(span.start), format!("unknown field `{name}`"));
                    ok = false;
                }
            }
        }
        if raw.fields.len() > MAX_KEY_FIELDS {
            self.error(
                a.at(raw.span.start),
                format!(
                    "a key has at most {MAX_KEY_FIELDS} fields, this one has {}",
                    raw.fields.len()
                ),
            );
            ok = false;
        }
        ok.then_some(Key { fields })
    }
}

/// The program, element by element.
impl<'t> Checker<'t> {
    fn program(&mut self, doc: &Document<'_>) -> Option<Program> {
        let root = doc.root_element();
        let name = tag(root).to_string();
        for a in root.attributes() {
            self.warn(
                a.range_qname().start,
                format!("attribute `{}` of the root element is ignored", a.name()),
            );
        }
        let mut source_nodes = Vec::new();
        let mut publisher_nodes = Vec::new();
        let mut statedefs = Vec::new();
        let mut metric_nodes = Vec::new();
        let mut table_nodes = Vec::new();
        let mut feature_nodes = Vec::new();
        let mut event_nodes = Vec::new();
        for child in self.children(root) {
            match tag(child) {
                "source" => source_nodes.push(child),
                "publisher" => publisher_nodes.push(child),
                "statedef" => statedefs.push(child),
                "metric" => metric_nodes.push(child),
                "table" => table_nodes.push(child),
                "feature" => feature_nodes.push(child),
                "event" => event_nodes.push(child),
                "additional_block" => self.warn(
                    elem_at(child),
                    "<additional_block> (the CEDE forwarder) is not supported and is ignored",
                ),
                other => self.error(elem_at(child), format!("unknown element <{other}>")),
            }
        }
        for extra in source_nodes
            .iter()
            .skip(1)
            .chain(publisher_nodes.iter().skip(1))
        {
            self.error(
                elem_at(*extra),
                format!("only one <{}> is allowed", tag(*extra)),
            );
        }
        let source = source_nodes.first().and_then(|n| self.source(*n));
        let publisher = publisher_nodes.first().and_then(|n| self.publisher(*n));

        if statedefs.is_empty() {
            self.error(
                elem_at(root),
                "a program needs at least one <statedef> (the first is the initial state)",
            );
        }
        self.limit(&statedefs, MAX_STATES, "states");
        self.limit(&metric_nodes, MAX_METRICS, "metrics");
        self.limit(&table_nodes, MAX_TABLES, "tables");
        self.limit(&feature_nodes, MAX_FEATURES, "features");
        self.limit(&event_nodes, MAX_EVENTS, "events");

        self.declare_states(&statedefs);
        for n in &metric_nodes {
            self.metric(*n);
        }
        self.resolve_slaves();
        for n in &table_nodes {
            self.table(*n);
        }
        self.declare_timeout_classes(&event_nodes);
        // Every feature name first, so a forward reference gets a precise error.
        let feature_names: Vec<Option<String>> = feature_nodes
            .iter()
            .take(MAX_FEATURES)
            .enumerate()
            .map(|(i, n)| {
                self.check_attrs(*n, &["name", "body"], &[]);
                self.required(*n, "name")
                    .and_then(|a| self.declare_name(&a, NameKind::Feature(FeatureId(i as u32))))
            })
            .collect();
        for (n, name) in feature_nodes.iter().zip(feature_names) {
            self.feature(*n, name);
        }
        let mut events = Vec::new();
        let mut raw_infos = Vec::new();
        let mut catch_all: Option<usize> = None;
        for n in &event_nodes {
            let idx = events.len();
            if let Some((ev, infos)) = self.event(*n, idx) {
                if let EventKind::Packet { selector, .. } = &ev.kind {
                    if let Some(at) = catch_all {
                        let (l, c) = self.lines.line_col(at);
                        self.warn(
                            elem_at(*n),
                            format!(
                                "this packet event is never reached: the packet event at {l}:{c} matches every packet"
                            ),
                        );
                    } else if *selector == Selector::Always {
                        catch_all = Some(elem_at(*n));
                    }
                }
                raw_infos.extend(infos.into_iter().map(|info| (idx, info)));
                events.push(ev);
            }
        }
        self.final_checks(&metric_nodes);
        if !self.errors.is_empty() || self.xml_pos.is_some() {
            return None;
        }
        self.merge_state_infos(&mut events, raw_infos);
        Some(Program {
            name,
            source,
            publisher,
            states: std::mem::take(&mut self.states),
            metrics: std::mem::take(&mut self.metrics),
            tables: std::mem::take(&mut self.tables),
            features: std::mem::take(&mut self.features),
            timeout_classes: std::mem::take(&mut self.classes),
            events,
        })
    }

    fn limit(&mut self, nodes: &[Node<'_, '_>], max: usize, what: &str) {
        if let Some(n) = nodes.get(max) {
            self.error(
                elem_at(*n),
                format!("too many {what}: at most {max} are allowed"),
            );
        }
    }

    fn source(&mut self, node: Node<'_, '_>) -> Option<SourceSpec> {
        self.check_attrs(node, &["type", "name"], &[]);
        let ty = self.required(node, "type");
        let name = self.required(node, "name");
        let kind = match ty.as_ref().map(|a| (a.value.trim(), a.start())) {
            Some(("live", _)) => SourceKind::Live,
            Some(("trace", _)) => SourceKind::Trace,
            Some((other, at)) => {
                self.error(
                    at,
                    format!("source `type` must be `live` or `trace`, not `{other}`"),
                );
                return None;
            }
            None => return None,
        };
        Some(SourceSpec {
            kind,
            name: name?.value.to_string(),
        })
    }

    fn publisher(&mut self, node: Node<'_, '_>) -> Option<Publisher> {
        self.check_attrs(node, &["protocol", "ip", "port"], &[]);
        let protocol = self
            .attr(node, "protocol")
            .map_or("tcp".to_string(), |a| a.value.trim().to_string());
        let ip = self
            .attr(node, "ip")
            .map_or("*".to_string(), |a| a.value.trim().to_string());
        let port = match self.attr(node, "port") {
            None => 5560,
            Some(a) => match a.value.trim().parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    self.error(a.start(), "`port` must be a port number (1..=65535)");
                    return None;
                }
            },
        };
        Some(Publisher { protocol, ip, port })
    }

    fn state_ref(&mut self, a: &Attr<'_>) -> Option<StateId> {
        let name = a.value.trim();
        match self.state_names.get(name) {
            Some((id, _)) => Some(*id),
            None => {
                self.error(a.start(), format!("unknown state `{name}`"));
                None
            }
        }
    }

    fn declare_states(&mut self, nodes: &[Node<'_, '_>]) {
        // First every name, so `next_state` may refer forward.
        let mut declared = Vec::new();
        for n in nodes.iter().take(MAX_STATES) {
            self.check_attrs(
                *n,
                &[
                    "id",
                    "timeout",
                    "next_state",
                    "code",
                    "level",
                    "description",
                ],
                &[],
            );
            let Some(a) = self.required(*n, "id") else {
                continue;
            };
            let name = a.value.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                self.error(
                    a.start(),
                    format!("`{name}` is not a valid state name (no blanks)"),
                );
                continue;
            }
            if let Some((_, at)) = self.state_names.get(name) {
                let (l, c) = self.lines.line_col(*at);
                self.error(
                    a.start(),
                    format!("duplicate state `{name}` (first defined at {l}:{c})"),
                );
                continue;
            }
            let id = StateId(self.states.len() as u32);
            self.state_names.insert(name.to_string(), (id, a.start()));
            let info = StateInfo {
                code: self
                    .attr(*n, "code")
                    .map(|a| a.value.to_string())
                    .unwrap_or_default(),
                level: self
                    .attr(*n, "level")
                    .map(|a| a.value.to_string())
                    .unwrap_or_default(),
                description: self
                    .attr(*n, "description")
                    .map(|a| a.value.to_string())
                    .unwrap_or_default(),
            };
            self.states.push(StateDef {
                name: name.to_string(),
                timeout_s: None,
                next_state: Program::INITIAL_STATE,
                info,
                loc: self.loc(elem_at(*n)),
            });
            declared.push((*n, id));
        }
        for (n, id) in declared {
            let timeout = match self.attr(n, "timeout") {
                Some(a) => self.seconds_attr(&a, "`timeout`", true),
                None => None,
            };
            let timeout = timeout.filter(|t| *t > 0.0);
            let next = self.attr(n, "next_state");
            let next_id = match &next {
                Some(a) if !a.value.trim().is_empty() => self.state_ref(a),
                _ => None,
            };
            if let (Some(a), None) = (&next, timeout) {
                if !a.value.trim().is_empty() {
                    self.warn(
                        a.name_at,
                        "`next_state` of a <statedef> without a `timeout` is never used",
                    );
                }
            }
            let def = &mut self.states[id.index()];
            def.timeout_s = timeout;
            def.next_state = next_id.unwrap_or(Program::INITIAL_STATE);
        }
    }

    fn metric(&mut self, node: Node<'_, '_>) {
        self.check_attrs(node, &["name"], &["config", "life"]);
        for a in ["source", "hw_id"] {
            if let Some(attr) = self.attr(node, a) {
                self.error(
                    attr.name_at,
                    "hardware-provided metrics (`source`, `hw_id`) are not supported in programs; the probe decides what runs in hardware",
                );
            }
        }
        if self.metrics.len() >= MAX_METRICS {
            return;
        }
        let id = MetricId(self.metrics.len() as u32);
        let name = self
            .required(node, "name")
            .and_then(|a| self.declare_name(&a, NameKind::Metric(id)));
        let mut vd_nodes = Vec::new();
        let mut vm_nodes = Vec::new();
        for c in self.children(node) {
            match tag(c) {
                "variation_detector" => vd_nodes.push(c),
                "variation_monitor" => vm_nodes.push(c),
                other => self.error(elem_at(c), format!("unknown element <{other}> in <metric>")),
            }
        }
        for extra in vd_nodes.iter().skip(1).chain(vm_nodes.iter().skip(1)) {
            self.error(
                elem_at(*extra),
                format!("only one <{}> per metric", tag(*extra)),
            );
        }
        let detector = vd_nodes.first().map(|n| self.detector(*n, id));
        let monitor = vm_nodes.first().map(|n| self.monitor(*n));
        let (Some(name), Some(detector), Some(monitor)) = (
            name,
            detector.unwrap_or(Some(None)),
            monitor.unwrap_or(Some(None)),
        ) else {
            // Keep the id sequence: push a placeholder the program never sees.
            self.metrics.push(Metric {
                name: String::new(),
                detector: None,
                monitor: None,
                loc: self.loc(elem_at(node)),
            });
            return;
        };
        if detector.is_none() && monitor.is_none() {
            self.error(
                elem_at(node),
                format!(
                    "metric `{name}` has neither a variation detector nor a variation monitor switched on (to read a packet field, use the field's name in expressions)"
                ),
            );
        }
        self.metrics.push(Metric {
            name,
            detector,
            monitor,
            loc: self.loc(elem_at(node)),
        });
    }

    /// `Some(None)`: switched off; `None`: in error.
    fn detector(&mut self, node: Node<'_, '_>, id: MetricId) -> Option<Option<VariationDetector>> {
        self.check_attrs(
            node,
            &["status", "reset_after", "size", "nhash", "slave"],
            &[],
        );
        if !self.status_attr(node)? {
            return Some(None);
        }
        let size = self.int_attr(node, "size", 20, 9, 30);
        let nhash = self.int_attr(node, "nhash", 8, 1, 16);
        // `reset_after="0"` (the original's "never") is accepted.
        let reset_after = match self.attr(node, "reset_after") {
            Some(a) => Some(self.seconds_attr(&a, "`reset_after`", true)?).filter(|s| *s > 0.0),
            None => None,
        };
        if let Some(a) = self.attr(node, "slave") {
            self.slaves
                .push((id, a.value.trim().to_string(), a.start()));
        }
        Some(Some(VariationDetector {
            size_log2: size? as u8,
            nhash: nhash? as u8,
            reset_after_s: reset_after,
            slave: None,
        }))
    }

    fn resolve_slaves(&mut self) {
        for (id, name, at) in std::mem::take(&mut self.slaves) {
            let target = match self.names.get(&name) {
                Some((NameKind::Metric(m), _)) => *m,
                _ => {
                    self.error(at, format!("unknown metric `{name}`"));
                    continue;
                }
            };
            if target == id {
                self.error(at, "a metric cannot be its own slave");
                continue;
            }
            if self.metrics[target.index()].detector.is_none()
                && !self.metrics[target.index()].name.is_empty()
            {
                self.error(
                    at,
                    format!("slave metric `{name}` has no variation detector"),
                );
                continue;
            }
            if let Some(vd) = self.metrics[id.index()].detector.as_mut() {
                vd.slave = Some(target);
            }
        }
    }

    /// `Some(None)`: switched off; `None`: in error.
    fn monitor(&mut self, node: Node<'_, '_>) -> Option<Option<VariationMonitor>> {
        const ALL: &[&str] = &[
            "status",
            "type",
            "window",
            "legacy_window",
            "insert_value",
            "size",
            "nhash",
            "ways",
            "conservative",
            "buckets",
        ];
        self.check_attrs(node, ALL, &["life"]);
        if !self.status_attr(node)? {
            return Some(None);
        }
        let ty_attr = self.required(node, "type")?;
        let ty = ty_attr.value.trim();
        let applicable: &[&str] = match ty {
            "tewma" => &["window", "legacy_window", "size", "nhash", "insert_value"],
            "tewma-fast" => &["window", "legacy_window", "size", "ways", "insert_value"],
            "dleft" => &["size", "ways", "insert_value"],
            "simple" => &["insert_value"],
            "sliding" => &["window", "buckets", "size", "ways", "insert_value"],
            "countmin" => &["size", "nhash", "conservative", "insert_value"],
            "hll" => &["size"],
            other => {
                self.error(
                    ty_attr.start(),
                    format!(
                        "unknown variation monitor type `{other}` (expected tewma, tewma-fast, dleft, simple, sliding, countmin or hll)"
                    ),
                );
                return None;
            }
        };
        for a in node.attributes() {
            let n = a.name();
            if n != "status" && n != "type" && ALL.contains(&n) && !applicable.contains(&n) {
                self.warn(
                    a.range_qname().start,
                    format!("`{n}` does not apply to a `{ty}` monitor and is ignored"),
                );
            }
        }
        let insert_value = self.insert_value(node)?;
        let decay = |ck: &mut Self| -> Option<Decay> {
            let legacy = ck.bool_attr(node, "legacy_window", false)?;
            let window_s = match ck.attr(node, "window") {
                Some(a) => {
                    let w = ck.seconds_attr(&a, "`window`", false)?;
                    if legacy && w <= 6.0 {
                        ck.error(
                            a.start(),
                            "with `legacy_window=\"true\"` the window must be > 6 seconds (β = 1 − 2/(window/6 + 1))",
                        );
                        return None;
                    }
                    w
                }
                None => 60.0,
            };
            Some(Decay { window_s, legacy })
        };
        let table = |ck: &mut Self| -> Option<TableGeometry> {
            let size = ck.int_attr(node, "size", 16, 4, 24);
            let ways = ck.int_attr(node, "ways", 4, 1, 16);
            Some(TableGeometry {
                size_log2: size? as u8,
                ways: ways? as u8,
            })
        };
        let kind = match ty {
            "tewma" => {
                let d = decay(self);
                let size = self.int_attr(node, "size", 17, 9, 30);
                let nhash = self.int_attr(node, "nhash", 4, 1, 16);
                MonitorKind::Tewma {
                    decay: d?,
                    size_log2: size? as u8,
                    nhash: nhash? as u8,
                }
            }
            "tewma-fast" => {
                let d = decay(self);
                let t = table(self);
                MonitorKind::TewmaFast {
                    decay: d?,
                    table: t?,
                }
            }
            "dleft" => MonitorKind::DLeft {
                table: table(self)?,
            },
            "simple" => MonitorKind::Simple,
            "sliding" => {
                let window = match self.attr(node, "window") {
                    Some(a) => self.seconds_attr(&a, "`window`", false),
                    None => Some(60.0),
                };
                let buckets = self.int_attr(node, "buckets", 10, 1, 1024);
                let t = table(self);
                MonitorKind::Sliding {
                    window_s: window?,
                    buckets: buckets? as u16,
                    table: t?,
                }
            }
            "countmin" => {
                let size = self.int_attr(node, "size", 16, 4, 24);
                let nhash = self.int_attr(node, "nhash", 4, 1, 16);
                let conservative = self.bool_attr(node, "conservative", false);
                MonitorKind::CountMin {
                    size_log2: size? as u8,
                    nhash: nhash? as u8,
                    conservative: conservative?,
                }
            }
            _ => MonitorKind::Hll {
                precision: self.int_attr(node, "size", 12, 4, 14)? as u8,
            },
        };
        Some(Some(VariationMonitor { kind, insert_value }))
    }

    fn insert_value(&mut self, node: Node<'_, '_>) -> Option<InsertValue> {
        let Some(a) = self.attr(node, "insert_value") else {
            return Some(InsertValue::Const(1));
        };
        let v = a.value.trim();
        if let Ok(n) = v.parse::<u64>() {
            if n > 0 {
                return Some(InsertValue::Const(n));
            }
        }
        match Field::from_name(v) {
            Some(f) if matches!(f.field_type(), FieldType::UInt { .. }) => {
                Some(InsertValue::Field(f))
            }
            Some(f) => {
                self.error(
                    a.start(),
                    format!("`insert_value` field `{}` is not numeric", f.name()),
                );
                None
            }
            None if is_ident(v) => {
                self.error(a.start(), format!("unknown field `{v}`"));
                None
            }
            None => {
                self.error(
                    a.start(),
                    "`insert_value` must be a positive integer or a numeric field name",
                );
                None
            }
        }
    }

    fn table(&mut self, node: Node<'_, '_>) {
        self.check_attrs(
            node,
            &[
                "name",
                "type",
                "value_type",
                "size",
                "ways",
                "shash",
                "nhash",
            ],
            &["key_type"],
        );
        for c in self.children(node) {
            if tag(c) == "entry" {
                self.warn(
                    elem_at(c),
                    "<entry> pre-population is not supported and is ignored",
                );
            } else {
                self.error(
                    elem_at(c),
                    format!("unknown element <{}> in <table>", tag(c)),
                );
            }
        }
        if self.tables.len() >= MAX_TABLES {
            return;
        }
        let id = TableId(self.tables.len() as u32);
        let name = self
            .required(node, "name")
            .and_then(|a| self.declare_name(&a, NameKind::Table(id)));
        let kind = match self.attr(node, "type") {
            None => Some(TableKind::DLeft),
            Some(a) => match a.value.trim() {
                "DLeft" | "dleft" => Some(TableKind::DLeft),
                "Map" | "map" => Some(TableKind::Map),
                other => {
                    self.error(
                        a.start(),
                        format!("table `type` must be `DLeft` or `Map`, not `{other}`"),
                    );
                    None
                }
            },
        };
        let value_type = match self.attr(node, "value_type") {
            None => Some(ValueType::Double),
            Some(a) => match a.value.trim() {
                "int" | "int8_t" | "int16_t" | "int32_t" | "int64_t" | "long" | "short"
                | "long long" => Some(ValueType::Int),
                "unsigned" | "unsigned int" | "uint" | "uint8_t" | "uint16_t" | "uint32_t"
                | "uint64_t" | "size_t" | "bool" => Some(ValueType::UInt),
                "double" | "float" => Some(ValueType::Double),
                other => {
                    self.error(
                        a.start(),
                        format!("unknown table `value_type` `{other}` (int, uint32_t, double, …)"),
                    );
                    None
                }
            },
        };
        let size_name = self.alias(node, "size", "shash");
        let ways_name = self.alias(node, "ways", "nhash");
        let size = self.int_attr(node, size_name, 16, 4, 24);
        let ways = self.int_attr(node, ways_name, 4, 1, 16);
        let loc = self.loc(elem_at(node));
        let table = match (name, kind, value_type, size, ways) {
            (Some(name), Some(kind), Some(value_type), Some(size), Some(ways)) => Table {
                name,
                kind,
                value_type,
                geometry: TableGeometry {
                    size_log2: size as u8,
                    ways: ways as u8,
                },
                loc,
            },
            _ => Table {
                name: String::new(),
                kind: TableKind::DLeft,
                value_type: ValueType::Double,
                geometry: TableGeometry {
                    size_log2: 16,
                    ways: 4,
                },
                loc,
            },
        };
        self.tables.push(table);
    }

    /// Which of an attribute and its legacy alias to read; both → error.
    fn alias(
        &mut self,
        node: Node<'_, '_>,
        name: &'static str,
        legacy: &'static str,
    ) -> &'static str {
        match (self.attr(node, name), self.attr(node, legacy)) {
            (Some(_), Some(l)) => {
                self.error(
                    l.name_at,
                    format!("give `{name}` or its legacy spelling `{legacy}`, not both"),
                );
                name
            }
            (None, Some(_)) => legacy,
            _ => name,
        }
    }

    fn declare_timeout_classes(&mut self, events: &[Node<'_, '_>]) {
        for n in events {
            if self.attr(*n, "type").map(|a| a.value.trim() == "timeout") != Some(true) {
                continue;
            }
            let Some(a) = self.attr(*n, "class") else {
                continue; // reported with the event
            };
            let name = a.value.trim();
            if !is_ident(name) {
                self.error(
                    a.start(),
                    format!("`{name}` is not a valid timeout class name"),
                );
                continue;
            }
            if let Some((_, at)) = self.class_names.get(name) {
                let (l, c) = self.lines.line_col(*at);
                self.error(
                    a.start(),
                    format!("duplicate timeout class `{name}` (first declared at {l}:{c})"),
                );
                continue;
            }
            if self.classes.len() >= MAX_TIMEOUT_CLASSES {
                self.error(
                    a.start(),
                    format!("too many timeout classes: at most {MAX_TIMEOUT_CLASSES} are allowed"),
                );
                continue;
            }
            let id = TimeoutClassId(self.classes.len() as u32);
            self.class_names.insert(name.to_string(), (id, a.start()));
            // The event index is filled in when the event is checked.
            self.classes.push(TimeoutClass {
                name: name.to_string(),
                event: usize::MAX,
            });
            let key = match self.attr(*n, "primary-key") {
                Some(k) if !k.value.trim().is_empty() => self.key_attr(&k),
                _ => None,
            };
            self.class_keys.push(key);
        }
    }

    fn feature(&mut self, node: Node<'_, '_>, name: Option<String>) {
        let id = FeatureId(self.features.len() as u32);
        let body_attr = self.required(node, "body");
        let scope = Scope {
            visible_features: id.index(),
        };
        let body = body_attr.as_ref().and_then(|a| self.expr_attr(a, scope));
        let loc = body_attr.map_or(self.loc(elem_at(node)), |a| self.loc(a.start()));
        let mut metrics = BTreeSet::new();
        if let Some(b) = &body {
            self.metrics_of(b, &mut metrics);
        }
        self.feature_metrics.push(metrics);
        self.features.push(Feature {
            name: name.unwrap_or_default(),
            body: body.unwrap_or(Expr::Const(0.0)),
            loc,
        });
    }

    /// Metrics an expression reads, directly or through features.
    fn metrics_of(&self, e: &Expr, out: &mut BTreeSet<MetricId>) {
        e.visit(&mut |e| match e {
            Expr::Metric(m) => {
                out.insert(*m);
            }
            Expr::Feature(f) => {
                if let Some(ms) = self.feature_metrics.get(f.index()) {
                    out.extend(ms.iter().copied());
                }
            }
            _ => {}
        });
    }
}

/// Events and what they do in each state.
type RawInfo = (StateId, [Option<String>; 3]);

impl<'t> Checker<'t> {
    fn event(&mut self, node: Node<'_, '_>, idx: usize) -> Option<(Event, Vec<RawInfo>)> {
        self.check_attrs(
            node,
            &["type", "selector", "primary-key", "class"],
            &["attack_type", "source"],
        );
        // Without a valid type the event is still walked, for its other errors.
        let ty = self.required(node, "type");
        let mut ok = true;
        let (kind, own_key) = match ty.as_ref().map(|a| a.value.trim()) {
            None => (None, None),
            Some("packet") => {
                if let Some(c) = self.attr(node, "class") {
                    self.error(c.name_at, "only timeout events have a `class`");
                    ok = false;
                }
                let selector = match self.attr(node, "selector") {
                    None => Some(Selector::Always),
                    Some(a) => self.selector_attr(&a),
                };
                let key = match self.attr(node, "primary-key") {
                    Some(a) if !a.value.trim().is_empty() => self.key_attr(&a),
                    Some(a) => {
                        self.error(a.start(), "a packet event needs a non-empty `primary-key`");
                        None
                    }
                    None => {
                        self.error(
                            elem_at(node),
                            "a packet event needs a `primary-key` (only timeout events may omit it)",
                        );
                        None
                    }
                };
                match (selector, key) {
                    (Some(selector), Some(primary_key)) => (
                        Some(EventKind::Packet {
                            selector,
                            primary_key: primary_key.clone(),
                        }),
                        Some(primary_key),
                    ),
                    _ => (None, None),
                }
            }
            Some("timeout") => {
                if let Some(s) = self.attr(node, "selector") {
                    if !s.value.trim().is_empty() {
                        self.error(s.start(), "a timeout event has no `selector`");
                        ok = false;
                    }
                }
                let class = self.required(node, "class").and_then(|a| {
                    let (id, at) = *self.class_names.get(a.value.trim())?;
                    // Only the event that declared the class handles it
                    // (a duplicate was reported already).
                    (at == a.start()).then_some(id)
                });
                match class {
                    Some(class) => {
                        self.classes[class.index()].event = idx;
                        let primary_key = self.class_keys[class.index()].clone();
                        (
                            Some(EventKind::Timeout {
                                class,
                                primary_key: primary_key.clone(),
                            }),
                            primary_key,
                        )
                    }
                    None => (None, None),
                }
            }
            Some(other) => {
                let at = ty.as_ref().map_or(elem_at(node), Attr::start);
                self.error(
                    at,
                    format!("event `type` must be `packet` or `timeout`, not `{other}`"),
                );
                (None, None)
            }
        };
        let is_timeout = matches!(kind, Some(EventKind::Timeout { .. }));
        let ctx = EventCtx {
            own_key,
            is_timeout,
        };
        let mut behaviours: Vec<Option<StateBehaviour>> = vec![None; self.states.len()];
        let mut infos = Vec::new();
        let mut seen: HashMap<StateId, usize> = HashMap::new();
        let children = self.children(node);
        if children.is_empty() {
            self.warn(
                elem_at(node),
                "this event has no <state>, so it does nothing",
            );
        }
        for c in children {
            if tag(c) != "state" {
                self.error(
                    elem_at(c),
                    format!("unknown element <{}> in <event>", tag(c)),
                );
                ok = false;
                continue;
            }
            let Some((b, info)) = self.behaviour(c, &ctx) else {
                ok = false;
                continue;
            };
            if let Some(at) = seen.get(&b.state) {
                let (l, col) = self.lines.line_col(*at);
                self.error(
                    elem_at(c),
                    format!(
                        "state `{}` already has a <state> in this event (at {l}:{col})",
                        self.states[b.state.index()].name
                    ),
                );
                ok = false;
                continue;
            }
            seen.insert(b.state, elem_at(c));
            infos.push((b.state, info));
            let slot = b.state.index();
            behaviours[slot] = Some(b);
        }
        let kind = kind?;
        ok.then(|| {
            (
                Event {
                    kind,
                    behaviours,
                    loc: self.loc(elem_at(node)),
                },
                infos,
            )
        })
    }

    fn selector_attr(&mut self, a: &Attr<'_>) -> Option<Selector> {
        let raw = match parse_selector(a.value) {
            Ok(raw) => raw,
            Err(e) => {
                self.syntax(a, e);
                return None;
            }
        };
        match resolve_selector(&raw) {
            Ok(s) => Some(s),
            Err(errors) => {
                for e in errors {
                    self.syntax(a, e);
                }
                None
            }
        }
    }

    fn behaviour(
        &mut self,
        node: Node<'_, '_>,
        ctx: &EventCtx,
    ) -> Option<(StateBehaviour, [Option<String>; 3])> {
        self.check_attrs(node, &["id", "level", "code", "description"], &[]);
        let state = self.required(node, "id").and_then(|a| self.state_ref(&a));
        let info = ["code", "level", "description"]
            .map(|n| self.attr(node, n).map(|a| a.value.to_string()));
        let mut ok = true;
        let mut use_metrics = Vec::new();
        let mut conditions = Vec::new();
        let mut post_actions = Vec::new();
        for c in self.children(node) {
            match tag(c) {
                "use-metric" => {
                    if use_metrics.len() == MAX_USE_METRICS_PER_STATE {
                        self.error(
                            elem_at(c),
                            format!("at most {MAX_USE_METRICS_PER_STATE} <use-metric> per state"),
                        );
                        ok = false;
                    }
                    match self.use_metric(c) {
                        Some(u) => {
                            if use_metrics.iter().any(|o: &UseMetric| o.metric == u.metric) {
                                self.warn(
                                    elem_at(c),
                                    format!(
                                        "metric `{}` is used twice in this state; its value is the last use's",
                                        self.metrics[u.metric.index()].name
                                    ),
                                );
                            }
                            use_metrics.push(u)
                        }
                        None => ok = false,
                    }
                }
                "condition" => {
                    if conditions.len() == MAX_CONDITIONS_PER_STATE {
                        self.error(
                            elem_at(c),
                            format!("at most {MAX_CONDITIONS_PER_STATE} <condition> per state"),
                        );
                        ok = false;
                    }
                    match self.condition(c, ctx) {
                        Some(cond) => conditions.push(cond),
                        None => ok = false,
                    }
                }
                "post-condition-action" => match self.post_actions(c, ctx) {
                    Some(mut a) => post_actions.append(&mut a),
                    None => ok = false,
                },
                other => {
                    self.error(elem_at(c), format!("unknown element <{other}> in <state>"));
                    ok = false;
                }
            }
        }
        let state = state?;
        if !ok {
            return None;
        }
        let b = StateBehaviour {
            state,
            info: StateInfo::default(),
            use_metrics,
            conditions,
            post_actions,
            loc: self.loc(elem_at(node)),
        };
        self.warn_unused_metrics(&b, elem_at(node));
        Some((b, info))
    }

    /// Warns about metrics a state reads without a `<use-metric>`: they
    /// read 0 there.
    fn warn_unused_metrics(&mut self, b: &StateBehaviour, at: usize) {
        let mut read = BTreeSet::new();
        for c in &b.conditions {
            self.metrics_of(&c.expr, &mut read);
            for a in &c.actions {
                self.metrics_of_action(a, &mut read);
            }
        }
        for a in &b.post_actions {
            self.metrics_of_action(a, &mut read);
        }
        for m in read {
            if !b.use_metrics.iter().any(|u| u.metric == m) {
                let name = self.metrics[m.index()].name.clone();
                self.warn(
                    at,
                    format!(
                        "state `{}` reads metric `{name}` without a <use-metric> for it, so it reads 0 here",
                        self.states[b.state.index()].name
                    ),
                );
            }
        }
    }

    fn metrics_of_action(&self, a: &Action, out: &mut BTreeSet<MetricId>) {
        let template = |t: &Template, out: &mut BTreeSet<MetricId>| {
            for p in &t.parts {
                match p {
                    TemplatePart::Subst(Subst::Metric(m)) => {
                        out.insert(*m);
                    }
                    TemplatePart::Subst(Subst::Feature(f)) => {
                        if let Some(ms) = self.feature_metrics.get(f.index()) {
                            out.extend(ms.iter().copied());
                        }
                    }
                    _ => {}
                }
            }
        };
        match a {
            Action::Publish { text, .. } => template(text, out),
            Action::Print(t) | Action::Exec(t) => template(t, out),
            Action::TableUpdate { value, .. } => self.metrics_of(value, out),
            _ => {}
        }
    }

    fn metric_ref(&mut self, a: &Attr<'_>) -> Option<MetricId> {
        let name = a.value.trim();
        match self.names.get(name) {
            Some((NameKind::Metric(m), _)) => Some(*m),
            Some((other, _)) => {
                self.error(
                    a.start(),
                    format!("`{name}` is {}, not a metric", other.describe()),
                );
                None
            }
            None => {
                self.error(a.start(), format!("unknown metric `{name}`"));
                None
            }
        }
    }

    fn use_metric(&mut self, node: Node<'_, '_>) -> Option<UseMetric> {
        const KEYS: [&str; 6] = [
            "vd_get",
            "vd_set",
            "vm_get",
            "vm_set",
            "vd_update",
            "vm_update",
        ];
        let mut known = vec!["id"];
        known.extend(KEYS);
        self.check_attrs(node, &known, &[]);
        let metric = self.required(node, "id").and_then(|a| self.metric_ref(&a));
        let mut ok = true;
        let mut keys: [Option<Key>; 4] = Default::default();
        let mut first_at: [Option<usize>; 2] = [None, None];
        for (slot, name) in KEYS[..4].iter().enumerate() {
            if let Some(a) = self.attr(node, name) {
                first_at[slot / 2].get_or_insert(a.name_at);
                match self.key_attr(&a) {
                    Some(k) => keys[slot] = Some(k),
                    None => ok = false,
                }
            }
        }
        for (pair, name) in [(0, "vd_update"), (1, "vm_update")] {
            let Some(a) = self.attr(node, name) else {
                continue;
            };
            if keys[2 * pair].is_some() || keys[2 * pair + 1].is_some() {
                let prefix = &name[..2];
                self.error(
                    a.name_at,
                    format!("`{name}` sets both `{prefix}_get` and `{prefix}_set`; do not give them too"),
                );
                ok = false;
                continue;
            }
            first_at[pair].get_or_insert(a.name_at);
            match self.key_attr(&a) {
                Some(k) => {
                    keys[2 * pair] = Some(k.clone());
                    keys[2 * pair + 1] = Some(k);
                }
                None => ok = false,
            }
        }
        let metric = metric?;
        self.metrics_used.insert(metric);
        let m = &self.metrics[metric.index()];
        if m.name.is_empty() {
            return None; // the metric itself is in error
        }
        let name = m.name.clone();
        let (has_vd, has_vm) = (m.detector.is_some(), m.monitor.is_some());
        if let (false, Some(at)) = (has_vd, first_at[0]) {
            self.error(
                at,
                format!("metric `{name}` has no variation detector switched on, so it has no `vd_*` operations"),
            );
            ok = false;
        }
        if let (false, Some(at)) = (has_vm, first_at[1]) {
            self.error(
                at,
                format!("metric `{name}` has no variation monitor switched on, so it has no `vm_*` operations"),
            );
            ok = false;
        }
        if ok && keys.iter().all(Option::is_none) {
            self.warn(
                elem_at(node),
                format!("<use-metric> of `{name}` neither reads nor updates it"),
            );
        }
        let [vd_get, vd_set, vm_get, vm_set] = keys;
        ok.then_some(UseMetric {
            metric,
            vd_get,
            vd_set,
            vm_get,
            vm_set,
        })
    }

    fn all_features(&self) -> Scope {
        Scope {
            visible_features: self.features.len(),
        }
    }

    fn condition(&mut self, node: Node<'_, '_>, ctx: &EventCtx) -> Option<Condition> {
        self.check_attrs(node, &["expression", "action", "next_state"], &[]);
        let scope = self.all_features();
        let expr_attr = self.required(node, "expression");
        let expr = expr_attr.as_ref().and_then(|a| self.expr_attr(a, scope));
        let mut actions = match self.attr(node, "action") {
            Some(a) => self.actions_attr(&a, ctx),
            None => Some(Vec::new()),
        };
        let next_state = match self.attr(node, "next_state") {
            Some(a) if !a.value.trim().is_empty() => self.state_ref(&a).map(Some),
            _ => Some(None),
        };
        for c in self.children(node) {
            if tag(c) == "timeout_set" {
                let t = self.timeout_set_elem(c, ctx);
                match (&mut actions, t) {
                    (Some(list), Some(t)) => list.push(t),
                    _ => actions = None,
                }
            } else {
                self.error(
                    elem_at(c),
                    format!("unknown element <{}> in <condition>", tag(c)),
                );
                actions = None;
            }
        }
        Some(Condition {
            expr: expr?,
            actions: actions?,
            next_state: next_state?,
            loc: self.loc(expr_attr?.start()),
        })
    }

    fn post_actions(&mut self, node: Node<'_, '_>, ctx: &EventCtx) -> Option<Vec<Action>> {
        self.check_attrs(node, &["do"], &[]);
        let mut actions = match self.attr(node, "do") {
            Some(a) => self.actions_attr(&a, ctx),
            None => Some(Vec::new()),
        };
        for c in self.children(node) {
            if tag(c) == "timeout_set" {
                let t = self.timeout_set_elem(c, ctx);
                match (&mut actions, t) {
                    (Some(list), Some(t)) => list.push(t),
                    _ => actions = None,
                }
            } else {
                self.error(
                    elem_at(c),
                    format!("unknown element <{}> in <post-condition-action>", tag(c)),
                );
                actions = None;
            }
        }
        actions
    }

    fn class_ref(&mut self, name: &str, at: usize) -> Option<TimeoutClassId> {
        match self.class_names.get(name) {
            Some((id, _)) => Some(*id),
            None => {
                self.error(
                    at,
                    format!(
                        "unknown timeout class `{name}` (declare it with <event type=\"timeout\" class=\"{name}\">)"
                    ),
                );
                None
            }
        }
    }

    /// Checks a `timeout_set`'s key against the key its class declares.
    fn check_timeout_key(
        &mut self,
        class: TimeoutClassId,
        key: Option<&Key>,
        ctx: &EventCtx,
        at: usize,
    ) -> bool {
        let effective = key.or(ctx.own_key.as_ref());
        if let (Some(declared), Some(k)) = (&self.class_keys[class.index()], effective) {
            if !declared.same_shape(k) {
                let msg = format!(
                    "timeout class `{}` is keyed by `{declared}` (its event's `primary-key`), and `{k}` is not a key of the same field types",
                    self.classes[class.index()].name
                );
                self.error(at, msg);
                return false;
            }
        }
        self.classes_set.insert(class);
        true
    }

    fn timeout_set_elem(&mut self, node: Node<'_, '_>, ctx: &EventCtx) -> Option<Action> {
        // The original wrote `primarykey=""` everywhere; only a real value is worth a warning.
        let legacy: &[&str] = match self.attr(node, "primarykey") {
            Some(a) if a.value.trim().is_empty() => &[],
            _ => &["primarykey"],
        };
        let known: &[&str] = if legacy.is_empty() {
            &["class", "key", "value", "primarykey"]
        } else {
            &["class", "key", "value"]
        };
        self.check_attrs(node, known, legacy);
        let class = self
            .required(node, "class")
            .and_then(|a| self.class_ref(a.value.trim(), a.start()));
        let key_attr = self.attr(node, "key");
        let key = match &key_attr {
            Some(a) if !a.value.trim().is_empty() => Some(self.key_attr(a)),
            _ => None,
        };
        let seconds = self
            .required(node, "value")
            .and_then(|a| self.seconds_attr(&a, "a timeout", true));
        let class = class?;
        let key = match key {
            Some(k) => Some(k?),
            None => None,
        };
        let at = key_attr.map_or(elem_at(node), |a| a.start());
        if !self.check_timeout_key(class, key.as_ref(), ctx, at) {
            return None;
        }
        Some(Action::TimeoutSet {
            class,
            key,
            seconds: seconds?,
        })
    }
}

/// Expressions, actions and texts.
impl<'t> Checker<'t> {
    fn expr_attr(&mut self, a: &Attr<'_>, scope: Scope) -> Option<Expr> {
        match parse_expr(a.value) {
            Ok(raw) => self.resolve_expr(&raw, a, scope),
            Err(e) => {
                self.syntax(a, e);
                None
            }
        }
    }

    /// A bare name in an expression or a `%name` in a text.
    fn resolve_value_name(
        &mut self,
        name: &str,
        at: usize,
        scope: Scope,
        in_text: bool,
    ) -> Option<Expr> {
        match self.names.get(name).map(|(k, _)| *k) {
            Some(NameKind::Feature(f)) => {
                if f.index() < scope.visible_features {
                    return Some(Expr::Feature(f));
                }
                let msg = if f.index() == scope.visible_features {
                    format!("feature `{name}` cannot use itself")
                } else {
                    format!("feature `{name}` is defined later; a feature may only use earlier features")
                };
                self.error(at, msg);
                return None;
            }
            Some(NameKind::Metric(m)) => return Some(Expr::Metric(m)),
            Some(NameKind::Table(_)) => {
                self.error(at, format!("table `{name}` needs a key: `{name}(key)`"));
                return None;
            }
            None => {}
        }
        if let Some(field) = Field::from_name(name) {
            if in_text || matches!(field.field_type(), FieldType::UInt { .. }) {
                return Some(Expr::Field(field));
            }
            let what = match field.field_type() {
                FieldType::Addr => "an address",
                _ => "a string",
            };
            self.error(
                at,
                format!("field `{name}` is {what}; only numeric fields can be used in expressions"),
            );
            return None;
        }
        // The original's spelling of a metric's value: `<metric>_f`.
        if let Some(stem) = name.strip_suffix("_f") {
            if let Some((NameKind::Metric(m), _)) = self.names.get(stem) {
                return Some(Expr::Metric(*m));
            }
        }
        let msg = if in_text {
            format!("unknown name `%{name}` in text (a field, feature, metric, `%ts`, `%key`, `%state.*` or `%next_state.*`)")
        } else {
            format!("unknown name `{name}` (not a feature, metric or field)")
        };
        self.error(at, msg);
        None
    }

    fn resolve_expr(&mut self, raw: &RawExpr, a: &Attr<'_>, scope: Scope) -> Option<Expr> {
        match &raw.kind {
            RawKind::Num(v) => Some(Expr::Const(*v)),
            RawKind::Name(name) => {
                self.resolve_value_name(name, a.at(raw.span.start), scope, false)
            }
            RawKind::TableRead {
                table,
                table_span,
                key,
            } => {
                let t = self.table_ref(table, a.at(table_span.start));
                let k = self.resolve_key(key, a);
                Some(Expr::Table(t?, k?))
            }
            RawKind::Unary(op, e) => {
                let e = self.resolve_expr(e, a, scope)?;
                Some(Expr::Unary(*op, Box::new(e)))
            }
            RawKind::Binary(op, l, r) => {
                let l = self.resolve_expr(l, a, scope);
                let r = self.resolve_expr(r, a, scope);
                Some(Expr::Binary(*op, Box::new(l?), Box::new(r?)))
            }
            RawKind::Call { func, args } => {
                let resolved: Vec<Option<Expr>> = args
                    .iter()
                    .map(|e| self.resolve_expr(e, a, scope))
                    .collect();
                let arity_ok = match func {
                    Func::Min | Func::Max => args.len() >= 2,
                    _ => args.len() == 1,
                };
                if !arity_ok {
                    let want = match func {
                        Func::Min | Func::Max => "2 or more arguments",
                        _ => "1 argument",
                    };
                    self.error(
                        a.at(raw.span.start),
                        format!("`{}` takes {want}, not {}", func.name(), args.len()),
                    );
                    return None;
                }
                let args: Option<Vec<Expr>> = resolved.into_iter().collect();
                Some(Expr::Call(*func, args?))
            }
        }
    }

    fn table_ref(&mut self, name: &str, at: usize) -> Option<TableId> {
        match self.names.get(name) {
            Some((NameKind::Table(t), _)) => Some(*t),
            Some((other, _)) => {
                self.error(at, format!("`{name}` is {}, not a table", other.describe()));
                None
            }
            None => {
                self.error(at, format!("unknown table `{name}`"));
                None
            }
        }
    }

    fn actions_attr(&mut self, a: &Attr<'_>, ctx: &EventCtx) -> Option<Vec<Action>> {
        let parsed = match parse_actions(a.value) {
            Ok(p) => p,
            Err(e) => {
                self.syntax(a, e);
                return None;
            }
        };
        for comma in &parsed.legacy_commas {
            self.warn(
                a.at(*comma),
                "`,` between actions is the legacy separator; use `;`",
            );
        }
        let mut ok = true;
        let mut out = Vec::new();
        for act in &parsed.actions {
            match self.resolve_action(&act.action, a, ctx, act.span.start) {
                Some(x) => out.push(x),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn resolve_action(
        &mut self,
        raw: &RawAction,
        a: &Attr<'_>,
        ctx: &EventCtx,
        start: usize,
    ) -> Option<Action> {
        let scope = self.all_features();
        match raw {
            RawAction::Publish {
                topic,
                topic_span,
                text,
            } => Some(Action::Publish {
                topic: topic.clone(),
                text: {
                    if topic == "raw" && ctx.is_timeout {
                        self.warn(
                            a.at(topic_span.start),
                            "a timeout event has no packet bytes: `Publish(raw, …)` sends its text",
                        );
                    }
                    self.resolve_template(text, a)?
                },
            }),
            RawAction::Print(t) => Some(Action::Print(self.resolve_template(t, a)?)),
            RawAction::Exec(t) => Some(Action::Exec(self.resolve_template(t, a)?)),
            RawAction::TableUpdate {
                table,
                table_span,
                key,
                op,
                value,
            } => {
                let t = self.table_ref(table, a.at(table_span.start));
                let k = self.resolve_key(key, a);
                let v = self.resolve_expr(value, a, scope);
                Some(Action::TableUpdate {
                    table: t?,
                    key: k?,
                    op: *op,
                    value: v?,
                })
            }
            RawAction::Reset {
                target,
                target_span,
                key,
            } => {
                let at = a.at(target_span.start);
                match self.names.get(target).map(|(k, _)| *k) {
                    Some(NameKind::Table(t)) => {
                        if let Some(k) = key {
                            self.error(
                                a.at(k.span.start),
                                format!(
                                    "`{target}.reset()` empties the whole table and takes no key"
                                ),
                            );
                            return None;
                        }
                        Some(Action::TableReset(t))
                    }
                    Some(NameKind::Metric(m)) => {
                        let key = match key {
                            Some(k) => Some(self.resolve_key(k, a)?),
                            None => None,
                        };
                        Some(Action::MetricReset { metric: m, key })
                    }
                    Some(NameKind::Feature(_)) => {
                        self.error(
                            at,
                            format!("feature `{target}` cannot be reset (only metrics and tables)"),
                        );
                        None
                    }
                    None => {
                        self.error(at, format!("unknown metric or table `{target}`"));
                        None
                    }
                }
            }
            RawAction::Block {
                key,
                seconds,
                seconds_span,
            } => {
                let k = self.resolve_key(key, a);
                if *seconds <= 0.0 {
                    self.error(a.at(seconds_span.start), "a block lasts > 0 seconds");
                    return None;
                }
                Some(Action::Block {
                    key: k?,
                    seconds: *seconds,
                })
            }
            RawAction::Unblock { key } => Some(Action::Unblock {
                key: self.resolve_key(key, a)?,
            }),
            RawAction::TimeoutSet {
                class,
                class_span,
                key,
                seconds,
                ..
            } => {
                let c = self.class_ref(class, a.at(class_span.start));
                let k = self.resolve_key(key, a);
                let (c, k) = (c?, k?);
                if !self.check_timeout_key(c, Some(&k), ctx, a.at(key.span.start)) {
                    return None;
                }
                Some(Action::TimeoutSet {
                    class: c,
                    key: Some(k),
                    seconds: *seconds,
                })
            }
            RawAction::Legacy(l) => {
                self.warn(
                    a.at(start),
                    format!("`{l:?}` is a legacy action and does nothing"),
                );
                Some(Action::NoOp(*l))
            }
        }
    }

    fn resolve_template(&mut self, raw: &RawTemplate, a: &Attr<'_>) -> Option<Template> {
        let mut parts = Vec::new();
        let mut ok = true;
        for p in &raw.parts {
            match p {
                RawPart::Lit(s) => parts.push(TemplatePart::Literal(s.clone())),
                RawPart::Subst(name, span) => {
                    let at = a.at(span.start);
                    match self.resolve_subst(name, at) {
                        Some(s) => parts.push(TemplatePart::Subst(s)),
                        None => ok = false,
                    }
                }
            }
        }
        ok.then_some(Template { parts })
    }

    fn resolve_subst(&mut self, name: &str, at: usize) -> Option<Subst> {
        let state_attr = |s: &str| match s {
            "code" => Some(StateAttr::Code),
            "level" => Some(StateAttr::Level),
            "description" => Some(StateAttr::Description),
            _ => None,
        };
        match name {
            "ts" => return Some(Subst::Timestamp),
            "key" => return Some(Subst::Key),
            "client.id" => return Some(Subst::ProbeId),
            "state" | "next_state" | "client" => {
                let what = if name == "client" {
                    "`%client.id`".to_string()
                } else {
                    format!("`%{name}.code`, `%{name}.level` or `%{name}.description`")
                };
                self.error(at, format!("`%{name}` alone means nothing; use {what}"));
                return None;
            }
            _ => {}
        }
        if let Some((base, attr)) = name.split_once('.') {
            let sa = state_attr(attr);
            return match (base, sa) {
                ("state", Some(sa)) => Some(Subst::State(sa)),
                ("next_state", Some(sa)) => Some(Subst::NextState(sa)),
                _ => {
                    self.error(at, format!("unknown substitution `%{name}`"));
                    None
                }
            };
        }
        let scope = self.all_features();
        match self.resolve_value_name(name, at, scope, true)? {
            Expr::Feature(f) => Some(Subst::Feature(f)),
            Expr::Metric(m) => Some(Subst::Metric(m)),
            Expr::Field(f) => Some(Subst::Field(f)),
            _ => None,
        }
    }

    fn final_checks(&mut self, metric_nodes: &[Node<'_, '_>]) {
        for (i, m) in self.metrics.iter().enumerate() {
            if !m.name.is_empty() && !self.metrics_used.contains(&MetricId(i as u32)) {
                if let Some(n) = metric_nodes.get(i) {
                    self.warnings.push((
                        elem_at(*n),
                        format!("metric `{}` is never used by a <use-metric>", m.name),
                    ));
                }
            }
        }
        for (i, c) in self.classes.iter().enumerate() {
            if !self.classes_set.contains(&TimeoutClassId(i as u32)) {
                if let Some((_, at)) = self.class_names.get(&c.name) {
                    self.warnings.push((
                        *at,
                        format!("timeout class `{}` is never set by a timeout_set", c.name),
                    ));
                }
            }
        }
    }

    /// Fills [`StateDef::info`] and [`StateBehaviour::info`]: a statedef's
    /// own attributes, else the first `<state>` that gives each one; a
    /// `<state>`'s own attributes, else its statedef's.
    fn merge_state_infos(&mut self, events: &mut [Event], raw: Vec<(usize, RawInfo)>) {
        for (_, (state, attrs)) in &raw {
            let info = &mut self.states[state.index()].info;
            let slots = [&mut info.code, &mut info.level, &mut info.description];
            for (slot, value) in slots.into_iter().zip(attrs) {
                if slot.is_empty() {
                    if let Some(v) = value {
                        *slot = v.clone();
                    }
                }
            }
        }
        for (event, (state, attrs)) in raw {
            let def = self.states[state.index()].info.clone();
            if let Some(Some(b)) = events[event].behaviours.get_mut(state.index()) {
                let [code, level, description] = attrs;
                b.info = StateInfo {
                    code: code.unwrap_or(def.code),
                    level: level.unwrap_or(def.level),
                    description: description.unwrap_or(def.description),
                };
            }
        }
    }
}
