//! Text a peer chose, made safe for a log line or a table cell.
//!
//! Owns one rule, applied to every string that comes off the wire (a HELLO's name, a push
//! acknowledgement's message, a certificate's UUID when no roster vouches for it) before it
//! is written anywhere a person reads: control characters, the backslash, and the Unicode
//! characters that move or hide text (bidirectional overrides, zero-width marks, line and
//! paragraph separators) are written as escapes (`\n`, `\\`, `\u{202e}`), so a peer can neither
//! start a forged line nor make one line read as another. Everything else passes as it is.

use std::borrow::Cow;

/// `s` with every character a peer could use to forge or disguise a line escaped.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(c,
            // zero-width space/joiners, left-to-right and right-to-left marks
            '\u{200b}'..='\u{200f}'
            // line and paragraph separators, bidirectional embeddings and overrides
            | '\u{2028}'..='\u{202e}'
            // bidirectional isolates
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_log_line_stays_on_its_own_line() {
        let forged = "ftd1\nSep 20 04:10:47 FMC SF-IMS[1]: [2] sftunnel:sf_ssl [ERROR] err 10:x";
        let e = escape(forged);
        assert!(!e.contains('\n'));
        assert!(e.starts_with("ftd1\\nSep 20"), "{e}");
        assert_eq!(
            escape("a\\nb"),
            "a\\\\nb",
            "a literal backslash-n is not a newline"
        );
        assert_eq!(escape("x\r\t\u{1b}[31m"), "x\\r\\t\\u{1b}[31m");
        assert_eq!(escape("ftd\u{202e}1dtf"), "ftd\\u{202e}1dtf");
        assert_eq!(escape("bad\u{2028}line"), "bad\\u{2028}line");
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
}
