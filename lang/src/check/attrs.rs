//! Attribute access: typed values, names, keys.

use super::*;

/// Attribute-level helpers.
impl<'t> Checker<'t> {
    pub(super) fn attr<'a>(&self, node: Node<'a, '_>, name: &str) -> Option<Attr<'a>> {
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
    pub(super) fn required<'a>(&mut self, node: Node<'a, '_>, name: &str) -> Option<Attr<'a>> {
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
    pub(super) fn check_attrs(&mut self, node: Node<'_, '_>, known: &[&str], ignored: &[&str]) {
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
    pub(super) fn children<'a, 'i>(&mut self, node: Node<'a, 'i>) -> Vec<Node<'a, 'i>> {
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

    pub(super) fn number_attr(&mut self, a: &Attr<'_>) -> Option<f64> {
        match a.value.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                self.error(a.start(), format!("`{}` is not a number", a.value.trim()));
                None
            }
        }
    }

    /// A number of seconds, > 0 (or ≥ 0 when `zero_ok`).
    pub(super) fn seconds_attr(&mut self, a: &Attr<'_>, what: &str, zero_ok: bool) -> Option<f64> {
        let v = self.number_attr(a)?;
        if v < 0.0 || (!zero_ok && v == 0.0) {
            let bound = if zero_ok { "≥ 0" } else { "> 0" };
            self.error(a.start(), format!("{what} must be {bound} seconds"));
            return None;
        }
        Some(v)
    }

    /// An optional integer attribute in `lo..=hi`, default `def`.
    pub(super) fn int_attr(
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

    pub(super) fn bool_attr(&mut self, node: Node<'_, '_>, name: &str, def: bool) -> Option<bool> {
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
    pub(super) fn status_attr(&mut self, node: Node<'_, '_>) -> Option<bool> {
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
    pub(super) fn declare_name(&mut self, a: &Attr<'_>, kind: NameKind) -> Option<String> {
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
    pub(super) fn key_attr(&mut self, a: &Attr<'_>) -> Option<Key> {
        match parse_key_attr(a.value) {
            Ok(raw) => self.resolve_key(&raw, a),
            Err(e) => {
                self.syntax(a, e);
                None
            }
        }
    }

    pub(super) fn resolve_key(&mut self, raw: &RawKey, a: &Attr<'_>) -> Option<Key> {
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
