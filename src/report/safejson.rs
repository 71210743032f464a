//! JSON as serde_json writes it, with one difference: every character the one rule
//! ([`crate::sftunnel::is_unsafe`]) names is written as a `\uXXXX` escape. A JSON reader gets
//! the same strings back; a terminal or log viewer that shows the document never meets a raw
//! C1 control or bidirectional override from a certificate, a file name or a peer. Every JSON
//! the reports write goes through here.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

use crate::sftunnel::is_unsafe;

/// `v` as serde_json's pretty layout, made safe.
pub(crate) fn to_writer_pretty<W: Write + ?Sized, T: Serialize + ?Sized>(
    w: &mut W,
    v: &T,
) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, SafeJson(PrettyFormatter::new()));
    v.serialize(&mut ser).map_err(io::Error::from)
}

/// `v` on one line (serde_json's compact layout), made safe.
pub(crate) fn to_writer<W: Write + ?Sized, T: Serialize + ?Sized>(
    w: &mut W,
    v: &T,
) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, SafeJson(CompactFormatter));
    v.serialize(&mut ser).map_err(io::Error::from)
}

/// serde_json's layout `F` (pretty or compact), with every character [`is_unsafe`] names written as a JSON
/// `\uXXXX` escape: the same string to a JSON reader, but no raw C1 or bidirectional
/// character (in a file name, say) reaches a terminal that shows the document. serde_json
/// itself escapes only C0, `"` and `\`.
struct SafeJson<F>(F);

impl<F: Formatter> Formatter for SafeJson<F> {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        text: &str,
    ) -> io::Result<()> {
        let mut rest = text;
        while let Some(i) = rest.find(is_unsafe) {
            w.write_all(&rest.as_bytes()[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            for unit in c.encode_utf16(&mut [0; 2]) {
                write!(w, "\\u{unit:04x}")?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn json_escapes_what_would_reach_a_terminal_raw() {
        let v = json!({"file": "a\u{9b}2J\u{202e}b\n\\é"});
        let mut out = Vec::new();
        to_writer_pretty(&mut out, &v).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""a\u009b2J\u202eb\n\\é""#), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
        let plain = json!({"a": [1, {"b": "c"}]});
        let mut out = Vec::new();
        to_writer_pretty(&mut out, &plain).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string_pretty(&plain).unwrap()
        );
        let mut out = Vec::new();
        to_writer(&mut out, &v).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""a\u009b2J\u202eb\n\\é""#), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
        let mut out = Vec::new();
        to_writer(&mut out, &plain).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), plain.to_string());
    }
}
