//! Positions: from byte offsets in the program text to line and column,
//! and from offsets inside an (unescaped) attribute value back to the text.

use std::ops::Range;

/// Line starts of a text, to turn byte offsets into 1-based line/column.
#[derive(Debug)]
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the first byte of every line.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                starts.push(i + 1);
            }
        }
        LineIndex { text, starts }
    }

    /// 1-based (line, column in characters) of a byte offset; offsets past
    /// the end or inside a character are clamped.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.starts[line];
        let col = self.text[start..offset].chars().count() + 1;
        (line + 1, col)
    }
}

/// Turns increasing offsets into line/column in one pass over the text.
pub(crate) struct Sweep<'i, 'a> {
    index: &'i LineIndex<'a>,
    /// (offset, 0-based line, 1-based column) of the previous answer.
    last: Option<(usize, usize, usize)>,
}

impl<'a> LineIndex<'a> {
    /// A sweep for offsets given in increasing order (others still work,
    /// just without the speed-up).
    pub(crate) fn sweep(&self) -> Sweep<'_, 'a> {
        Sweep {
            index: self,
            last: None,
        }
    }
}

impl Sweep<'_, '_> {
    pub(crate) fn line_col(&mut self, offset: usize) -> (usize, usize) {
        let text = self.index.text;
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = match self.index.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let col = match self.last {
            Some((prev, prev_line, prev_col)) if prev_line == line && prev <= offset => {
                prev_col + text[prev..offset].chars().count()
            }
            _ => text[self.index.starts[line]..offset].chars().count() + 1,
        };
        self.last = Some((offset, line, col));
        (line + 1, col)
    }
}

/// Maps byte offsets in an attribute value, as the XML parser hands it out
/// (entities decoded, white space normalised), back to byte offsets in the
/// program text.
#[derive(Debug, Clone)]
pub(crate) struct ValueMap {
    /// Byte offset in the text of the first character of the raw value.
    raw_start: usize,
    /// (value offset, raw offset relative to `raw_start`, 1:1 run?) checkpoints,
    /// sorted by value offset.
    marks: Vec<(usize, usize, bool)>,
}

impl ValueMap {
    /// A map for a value whose raw text is `text[raw]`.
    pub(crate) fn new(text: &str, raw: Range<usize>) -> Self {
        let raw_text = text.get(raw.clone()).unwrap_or("");
        let mut marks = Vec::new();
        let bytes = raw_text.as_bytes();
        let mut r = 0; // offset in raw
        let mut v = 0; // offset in value
        let mut in_run = false;
        while r < bytes.len() {
            let b = bytes[r];
            if b == b'&' {
                in_run = false;
                let end = raw_text[r..].find(';').map(|e| r + e);
                match end {
                    Some(end) => {
                        let name = &raw_text[r + 1..end];
                        let produced = decode_reference(name);
                        marks.push((v, r, false));
                        match produced {
                            Some(len) => {
                                v += len;
                                r = end + 1;
                            }
                            None => {
                                // A DTD entity of unknown length: map the
                                // rest of the value to this reference.
                                return ValueMap {
                                    raw_start: raw.start,
                                    marks,
                                };
                            }
                        }
                    }
                    None => break,
                }
            } else if b == b'\r' && bytes.get(r + 1) == Some(&b'\n') {
                // "\r\n" is one normalised space.
                in_run = false;
                marks.push((v, r, false));
                v += 1;
                r += 2;
            } else {
                if !in_run {
                    marks.push((v, r, true));
                    in_run = true;
                }
                r += 1;
                v += 1;
            }
        }
        ValueMap {
            raw_start: raw.start,
            marks,
        }
    }

    /// Byte offset in the program text of byte `offset` of the value.
    pub(crate) fn to_text(&self, offset: usize) -> usize {
        let i = self.marks.partition_point(|m| m.0 <= offset);
        if i == 0 {
            return self.raw_start;
        }
        let (v, r, linear) = self.marks[i - 1];
        if linear {
            self.raw_start + r + (offset - v)
        } else {
            self.raw_start + r
        }
    }
}

/// Length in bytes of what a character or predefined entity reference
/// (`name` is the text between `&` and `;`) decodes to; `None` for other
/// (DTD-defined) entities.
fn decode_reference(name: &str) -> Option<usize> {
    let ch = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()?
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse().ok()?
            } else {
                return None;
            };
            char::from_u32(code)?
        }
    };
    Some(ch.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let t = "ab\ncé d\n";
        let li = LineIndex::new(t);
        assert_eq!(li.line_col(0), (1, 1));
        assert_eq!(li.line_col(3), (2, 1));
        assert_eq!(li.line_col(t.find('d').unwrap()), (2, 4));
        assert_eq!(li.line_col(999), (3, 1));
        let mut sw = li.sweep();
        for off in [0, 1, 3, 4, 6, 7, 999] {
            assert_eq!(sw.line_col(off), li.line_col(off), "{off}");
        }
    }

    #[test]
    fn value_map_skips_entities() {
        let t = r#"<a x="a &gt; b &amp;&amp; c"/>"#;
        let start = t.find('"').unwrap() + 1;
        let end = t.rfind('"').unwrap();
        let m = ValueMap::new(t, start..end);
        let value = "a > b && c";
        let c = value.find('c').unwrap();
        assert_eq!(&t[m.to_text(c)..m.to_text(c) + 1], "c");
        let gt = value.find('>').unwrap();
        assert_eq!(&t[m.to_text(gt)..m.to_text(gt) + 4], "&gt;");
        let b = value.find('b').unwrap();
        assert_eq!(&t[m.to_text(b)..m.to_text(b) + 1], "b");
    }
}
