//! The program's top-level elements: source, publisher, states, metrics,
//! tables, timeout classes and features.

use super::*;

/// The program, element by element.
impl<'t> Checker<'t> {
    pub(super) fn program(&mut self, doc: &Document<'_>) -> Option<Program> {
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
            msg_features: std::mem::take(&mut self.msg_features),
        })
    }

    pub(super) fn limit(&mut self, nodes: &[Node<'_, '_>], max: usize, what: &str) {
        if let Some(n) = nodes.get(max) {
            self.error(
                elem_at(*n),
                format!("too many {what}: at most {max} are allowed"),
            );
        }
    }

    pub(super) fn source(&mut self, node: Node<'_, '_>) -> Option<SourceSpec> {
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

    pub(super) fn publisher(&mut self, node: Node<'_, '_>) -> Option<Publisher> {
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

    pub(super) fn state_ref(&mut self, a: &Attr<'_>) -> Option<StateId> {
        let name = a.value.trim();
        match self.state_names.get(name) {
            Some((id, _)) => Some(*id),
            None => {
                self.error(a.start(), format!("unknown state `{name}`"));
                None
            }
        }
    }

    pub(super) fn declare_states(&mut self, nodes: &[Node<'_, '_>]) {
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

    pub(super) fn metric(&mut self, node: Node<'_, '_>) {
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
            // Keep the metric ids in sequence with an empty entry: an error was
            // reported on this path, so no Program is ever returned with it.
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
    pub(super) fn detector(
        &mut self,
        node: Node<'_, '_>,
        id: MetricId,
    ) -> Option<Option<VariationDetector>> {
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

    pub(super) fn resolve_slaves(&mut self) {
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
    pub(super) fn monitor(&mut self, node: Node<'_, '_>) -> Option<Option<VariationMonitor>> {
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
            "sliding" => &["window", "size", "ways", "insert_value"],
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
            let ways = ck.int_attr(node, "ways", 4, 1, 8);
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
                let t = table(self);
                MonitorKind::Sliding {
                    window_s: window?,
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

    pub(super) fn insert_value(&mut self, node: Node<'_, '_>) -> Option<InsertValue> {
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

    pub(super) fn table(&mut self, node: Node<'_, '_>) {
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
    pub(super) fn alias(
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

    pub(super) fn declare_timeout_classes(&mut self, events: &[Node<'_, '_>]) {
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

    pub(super) fn feature(&mut self, node: Node<'_, '_>, name: Option<String>) {
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
    pub(super) fn metrics_of(&self, e: &Expr, out: &mut BTreeSet<MetricId>) {
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
