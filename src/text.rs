//! Text from a store, made safe to print.
//!
//! Writer names, band descriptions, metadata and lock files are written by whoever wrote
//! the store, which may be someone else's program. Printed raw, a control character in
//! them could move the cursor, recolour or rewrite the terminal, or forge lines of output;
//! bidirectional overrides could make text read differently from what it is. Everything
//! quoted from a store goes through [`printable`] before it reaches a terminal or a message.

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with control characters and bidirectional overrides written as escapes: `\n`, `\r`,
/// `\t`, `\x1b` for the other ASCII and Latin-1 controls, `\u{202e}` beyond. Text without
/// any is returned as is, without copying.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Marks and overrides that change the direction text is shown in.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_not_copied() {
        assert!(matches!(
            printable("GDAL CreateCopy of a.tif (ü, 東京)"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(
            printable("a\u{1b}[31mred\nnext\r\tx\u{7f}\u{9b}\0"),
            "a\\x1b[31mred\\nnext\\r\\tx\\x7f\\x9b\\x00"
        );
        assert_eq!(printable("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        for s in ["\u{1b}]0;title\u{7}", "line\u{85}", "\u{2066}x\u{2069}"] {
            let shown = printable(s);
            assert!(!shown.chars().any(needs_escape), "{shown:?}");
        }
    }
}
