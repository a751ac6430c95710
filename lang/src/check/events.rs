//! Events and what they do in each state.

use super::*;

impl<'t> Checker<'t> {
    pub(super) fn event(
        &mut self,
        node: Node<'_, '_>,
        idx: usize,
    ) -> Option<(Event, Vec<RawInfo>)> {
        self.check_attrs(
            node,
            &["type", "selector", "primary-key", "class", "topic"],
            &["attack_type", "source"],
        );
        // Without a valid type the event is still walked, for its other errors.
        let ty = self.required(node, "type");
        let mut ok = true;
        let (kind, own_key) = match ty.as_ref().map(|a| a.value.trim()) {
            None => (None, None),
            Some("packet") => {
                if let Some(t) = self.attr(node, "topic") {
                    self.error(t.name_at, "only message events have a `topic`");
                    ok = false;
                }
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
            Some("message") => {
                if let Some(c) = self.attr(node, "class") {
                    self.error(c.name_at, "only timeout events have a `class`");
                    ok = false;
                }
                let topic = match self.required(node, "topic") {
                    Some(t) if !t.value.trim().is_empty() && !t.value.trim().contains(' ') => {
                        Some(t.value.trim().to_string())
                    }
                    Some(t) => {
                        self.error(
                            t.start(),
                            "a message event needs a non-empty `topic` without blanks",
                        );
                        None
                    }
                    None => None,
                };
                let selector = match self.attr(node, "selector") {
                    None => Some(Selector::Always),
                    Some(a) => self.selector_attr(&a),
                };
                let key = match self.attr(node, "primary-key") {
                    Some(a) if !a.value.trim().is_empty() => self.key_attr(&a),
                    Some(a) => {
                        self.error(a.start(), "a message event needs a non-empty `primary-key`");
                        None
                    }
                    None => {
                        self.error(elem_at(node), "a message event needs a `primary-key`");
                        None
                    }
                };
                match (topic, selector, key) {
                    (Some(topic), Some(selector), Some(primary_key)) => (
                        Some(EventKind::Message {
                            topic,
                            selector,
                            primary_key: primary_key.clone(),
                        }),
                        Some(primary_key),
                    ),
                    _ => (None, None),
                }
            }
            Some("timeout") => {
                if let Some(t) = self.attr(node, "topic") {
                    self.error(t.name_at, "only message events have a `topic`");
                    ok = false;
                }
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
                    format!("event `type` must be `packet`, `timeout` or `message`, not `{other}`"),
                );
                (None, None)
            }
        };
        let is_timeout = matches!(kind, Some(EventKind::Timeout { .. }));
        let is_message = matches!(kind, Some(EventKind::Message { .. }));
        let ctx = EventCtx {
            own_key,
            is_timeout,
            is_message,
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

    pub(super) fn selector_attr(&mut self, a: &Attr<'_>) -> Option<Selector> {
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

    pub(super) fn behaviour(
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
    pub(super) fn warn_unused_metrics(&mut self, b: &StateBehaviour, at: usize) {
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

    pub(super) fn metrics_of_action(&self, a: &Action, out: &mut BTreeSet<MetricId>) {
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
            Action::StoreSet { value, .. } => template(value, out),
            Action::StorePublish { text, .. } => template(text, out),
            Action::StoreIncr { by, .. } => self.metrics_of(by, out),
            _ => {}
        }
    }

    pub(super) fn metric_ref(&mut self, a: &Attr<'_>) -> Option<MetricId> {
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

    pub(super) fn use_metric(&mut self, node: Node<'_, '_>) -> Option<UseMetric> {
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

    pub(super) fn all_features(&self) -> Scope {
        Scope {
            visible_features: self.features.len(),
        }
    }

    pub(super) fn condition(&mut self, node: Node<'_, '_>, ctx: &EventCtx) -> Option<Condition> {
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

    pub(super) fn post_actions(
        &mut self,
        node: Node<'_, '_>,
        ctx: &EventCtx,
    ) -> Option<Vec<Action>> {
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

    pub(super) fn class_ref(&mut self, name: &str, at: usize) -> Option<TimeoutClassId> {
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
    pub(super) fn check_timeout_key(
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

    pub(super) fn timeout_set_elem(
        &mut self,
        node: Node<'_, '_>,
        ctx: &EventCtx,
    ) -> Option<Action> {
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
