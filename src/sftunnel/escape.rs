//! Text a peer or a capture chose, made safe for a log line or a table cell: the one rule.
//!
//! A character is unsafe when it could start a forged line or make one line read as another:
//! control characters (C0, DEL, C1: a newline or carriage return starts a line, an ESC
//! drives a terminal; C1 holds the 8-bit CSI U+009B) and the Unicode characters that move or
//! hide text (zero-width marks, the left-to-right, right-to-left and Arabic letter marks, line
//! and paragraph separators, bidirectional embeddings, overrides and isolates, the BOM).
//! Each is written as `\xNN` (below U+0100, as OpenSSL writes control bytes in one-line names)
//! or `\u{NNNN}`. Everything else, other Unicode included, passes as it was sent.
//!
//! Two entry points, one rule:
//! - [`escape`] for a string that came off the wire and is kept (a HELLO's name, a push
//!   acknowledgement, a claimed UUID): it also writes a backslash as `\\`, so an escape seen
//!   later is known to be ours, never the peer's lookalike;
//! - [`write_line_safe`], the last pass of every messages-log line ([`super::Line`]): only
//!   the unsafe characters, so text already escaped above goes through unchanged and nothing
//!   is escaped twice.
//!
//! The CLI prints file names through [`escape`] too. Formats with an escape syntax of their
//! own use [`is_unsafe`] as the rule and their own syntax: RFC 4514 names (`cert::name`,
//! `\C2\9B`), `check`'s JSON (`\u009b`), the plugin status line (`_`).

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether `c` may not appear in a line as it is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            // zero-width space/joiners, left-to-right and right-to-left marks
            '\u{200b}'..='\u{200f}'
            // Arabic letter mark (a bidirectional mark like U+200F)
            | '\u{061c}'
            // line and paragraph separators, bidirectional embeddings and overrides
            | '\u{2028}'..='\u{202e}'
            // bidirectional isolates
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}')
}

fn write_one(w: &mut impl Write, c: char) -> fmt::Result {
    match u32::from(c) {
        n if n < 0x100 => write!(w, "\\x{n:02X}"),
        n => write!(w, "\\u{{{n:04X}}}"),
    }
}

/// `s` with every unsafe character, and the backslash, escaped.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if is_unsafe(c) => {
                let _ = write_one(&mut out, c);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `text` with its unsafe characters escaped and its backslashes kept: for a line built of
/// parts some of which went through [`escape`] already (an error chain naming an escaped path),
/// so nothing is escaped twice and nothing unsafe is left.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let _ = write_line_safe(&mut out, text);
    Cow::Owned(out)
}

/// Writes `text` with its unsafe characters escaped (backslashes kept: an escape cannot end a
/// line, and text [`escape`]d before passes through unchanged).
pub(crate) fn write_line_safe(w: &mut impl Write, text: &str) -> fmt::Result {
    let mut rest = text;
    while let Some(i) = rest.find(is_unsafe) {
        w.write_str(&rest[..i])?;
        let c = rest[i..].chars().next().unwrap_or_default();
        write_one(w, c)?;
        rest = &rest[i + c.len_utf8()..];
    }
    w.write_str(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_log_line_stays_on_its_own_line() {
        let forged = "ftd1\nSep 20 04:10:47 FMC SF-IMS[1]: [2] sftunnel:sf_ssl [ERROR] err 10:x";
        let e = escape(forged);
        assert!(!e.contains('\n'));
        assert!(e.starts_with("ftd1\\x0ASep 20"), "{e}");
        assert_eq!(
            escape("a\\x0Ab"),
            "a\\\\x0Ab",
            "a literal backslash-x0a is not a newline"
        );
        assert_eq!(escape("x\r\t\u{1b}[31m"), "x\\x0D\\x09\\x1B[31m");
        assert_eq!(escape("ftd\u{202e}1dtf"), "ftd\\u{202E}1dtf");
        assert_eq!(escape("bad\u{2028}line"), "bad\\u{2028}line");
        // C1's 8-bit CSI, the marks and the isolates
        assert_eq!(escape("a\u{9b}2Jb"), "a\\x9B2Jb");
        for c in [
            '\u{200e}', '\u{200f}', '\u{061c}', '\u{202a}', '\u{2066}', '\u{2069}',
        ] {
            assert!(is_unsafe(c), "{c:?}");
            assert!(!escape(&format!("x{c}y")).contains(c), "{c:?}");
        }
    }

    #[test]
    fn ordinary_names_pass_untouched() {
        for s in [
            "ftd1",
            "FTD-hostname.example",
            "Zürich-fw",
            "ファイアウォール",
            "",
        ] {
            assert!(matches!(escape(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn the_line_pass_leaves_escaped_text_alone() {
        let once = escape("a\\b\nc\u{85}").into_owned();
        let mut twice = String::new();
        write_line_safe(&mut twice, &once).unwrap();
        assert_eq!(once, twice);
        let mut raw = String::new();
        write_line_safe(&mut raw, "a\\b\nc").unwrap();
        assert_eq!(raw, "a\\b\\x0Ac");
    }
}
