//! Expressions, actions and texts: from raw syntax to resolved types.

use super::*;

/// Expressions, actions and texts.
impl<'t> Checker<'t> {
    pub(super) fn expr_attr(&mut self, a: &Attr<'_>, scope: Scope) -> Option<Expr> {
        match parse_expr(a.value) {
            Ok(raw) => self.resolve_expr(&raw, a, scope),
            Err(e) => {
                self.syntax(a, e);
                None
            }
        }
    }

    /// A bare name in an expression or a `%name` in a text.
    pub(super) fn resolve_value_name(
        &mut self,
        name: &str,
        at: usize,
        scope: Scope,
        in_text: bool,
    ) -> Option<Expr> {
        if let Some(feature) = name.strip_prefix("msg.") {
            return Some(Expr::MsgFeature(self.msg_feature(feature)));
        }
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

    pub(super) fn resolve_expr(
        &mut self,
        raw: &RawExpr,
        a: &Attr<'_>,
        scope: Scope,
    ) -> Option<Expr> {
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
            RawKind::StoreRead { read, name } => {
                Some(Expr::Store(*read, self.resolve_store_name(name, a)?))
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

    pub(super) fn table_ref(&mut self, name: &str, at: usize) -> Option<TableId> {
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

    pub(super) fn actions_attr(&mut self, a: &Attr<'_>, ctx: &EventCtx) -> Option<Vec<Action>> {
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

    pub(super) fn resolve_action(
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
                    if topic == "raw" && ctx.is_message {
                        self.warn(
                            a.at(topic_span.start),
                            "a message event has no packet bytes: `Publish(raw, …)` carries only its text, which a publisher cannot send as `raw`",
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
            RawAction::StoreSet { name, ttl, value } => {
                let n = self.resolve_store_name(name, a);
                let t = self.ttl(ttl, a);
                let v = self.resolve_template(value, a);
                Some(Action::StoreSet {
                    name: n?,
                    ttl_s: t?,
                    value: v?,
                })
            }
            RawAction::StoreIncr { name, ttl, by } => {
                let n = self.resolve_store_name(name, a);
                let t = self.ttl(ttl, a);
                let b = match by {
                    Some(e) => self.resolve_expr(e, a, scope),
                    None => Some(Expr::Const(1.0)),
                };
                Some(Action::StoreIncr {
                    name: n?,
                    ttl_s: t?,
                    by: b?,
                })
            }
            RawAction::StoreDel { name } => Some(Action::StoreDel {
                name: self.resolve_store_name(name, a)?,
            }),
            RawAction::StoreExpire {
                name,
                seconds,
                seconds_span,
            } => {
                let n = self.resolve_store_name(name, a);
                if *seconds <= 0.0 || seconds.is_nan() {
                    self.error(
                        a.at(seconds_span.start),
                        "a deferred deletion needs > 0 seconds (use `kv_del` to delete now)",
                    );
                    return None;
                }
                Some(Action::StoreExpire {
                    name: n?,
                    seconds: *seconds,
                })
            }
            RawAction::StorePublish { channel, text } => {
                let c = self.resolve_store_name(channel, a);
                let t = self.resolve_template(text, a);
                Some(Action::StorePublish {
                    channel: c?,
                    text: t?,
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

    /// A volatile key's `ttl=seconds`: `Some(None)` when persistent.
    fn ttl(
        &mut self,
        ttl: &Option<(f64, std::ops::Range<usize>)>,
        a: &Attr<'_>,
    ) -> Option<Option<f64>> {
        match ttl {
            None => Some(None),
            Some((s, _)) if *s > 0.0 => Some(Some(*s)),
            Some((_, span)) => {
                self.error(
                    a.at(span.start),
                    "a volatile key's ttl is > 0 seconds (leave `ttl=` out for a persistent key)",
                );
                None
            }
        }
    }

    /// A knowledge-store key name: substitutions resolved, and the `ip`
    /// tree keyed by an address.
    pub(super) fn resolve_store_name(
        &mut self,
        raw: &RawStoreName,
        a: &Attr<'_>,
    ) -> Option<StoreName> {
        let mut ok = true;
        let mut segments = Vec::with_capacity(raw.segments.len());
        for seg in &raw.segments {
            let mut parts = Vec::with_capacity(seg.len());
            for p in seg {
                match p {
                    RawNamePart::Lit(s) => parts.push(NamePart::Literal(s.clone())),
                    RawNamePart::Subst(name, span) => match name.as_str() {
                        "key" => parts.push(NamePart::Key),
                        "app" => parts.push(NamePart::App),
                        _ => match Field::from_name(name) {
                            Some(f) => parts.push(NamePart::Field(f)),
                            None => {
                                self.error(
                                    a.at(span.start),
                                    format!("unknown name `%{name}` in a store key (a field, `%key` or `%app`)"),
                                );
                                ok = false;
                            }
                        },
                    },
                }
            }
            segments.push(parts);
        }
        if !ok {
            return None;
        }
        // The `ip` tree (docs/microcloud.md) is keyed by a host address.
        if let (Some([NamePart::Literal(tree)]), Some(host)) =
            (segments.first().map(|s| s.as_slice()), segments.get(1))
        {
            if tree == "ip" {
                let bad = host.iter().find_map(|p| match p {
                    NamePart::Field(f) if f.field_type() != FieldType::Addr => Some(*f),
                    _ => None,
                });
                if let Some(f) = bad {
                    let at = raw.segments[1]
                        .iter()
                        .find_map(|p| match p {
                            RawNamePart::Subst(n, span) if n == f.name() => Some(span.start),
                            _ => None,
                        })
                        .unwrap_or(raw.span.start);
                    self.error(
                        a.at(at),
                        format!(
                            "the `ip` tree of the store is keyed by a host address; `%{}` is not an address",
                            f.name()
                        ),
                    );
                    return None;
                }
            }
        }
        Some(StoreName {
            probe: raw.probe.as_ref().map(|(p, _)| p.clone()),
            segments,
        })
    }

    pub(super) fn resolve_template(&mut self, raw: &RawTemplate, a: &Attr<'_>) -> Option<Template> {
        let mut parts = Vec::new();
        let mut ok = true;
        for p in &raw.parts {
            match p {
                RawPart::Lit(s) => parts.push(TemplatePart::Literal(s.clone())),
                RawPart::Store(name, _) => match self.resolve_store_name(name, a) {
                    Some(n) => parts.push(TemplatePart::Store(n)),
                    None => ok = false,
                },
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

    /// Interns a message feature name (`msg.NAME`).
    fn msg_feature(&mut self, name: &str) -> u32 {
        match self.msg_features.iter().position(|n| n == name) {
            Some(i) => i as u32,
            None => {
                self.msg_features.push(name.to_string());
                (self.msg_features.len() - 1) as u32
            }
        }
    }

    pub(super) fn resolve_subst(&mut self, name: &str, at: usize) -> Option<Subst> {
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
            "state" | "next_state" | "client" | "msg" => {
                let what = if name == "client" {
                    "`%client.id`".to_string()
                } else if name == "msg" {
                    "`%msg.FEATURE` (a feature of the message)".to_string()
                } else {
                    format!("`%{name}.code`, `%{name}.level` or `%{name}.description`")
                };
                self.error(at, format!("`%{name}` alone means nothing; use {what}"));
                return None;
            }
            _ => {}
        }
        if let Some(feature) = name.strip_prefix("msg.") {
            return Some(Subst::MsgFeature(self.msg_feature(feature)));
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

    pub(super) fn final_checks(&mut self, metric_nodes: &[Node<'_, '_>]) {
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
    pub(super) fn merge_state_infos(&mut self, events: &mut [Event], raw: Vec<(usize, RawInfo)>) {
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
