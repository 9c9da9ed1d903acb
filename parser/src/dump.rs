//! Dumps a raw tree in the conformance format: one `(keyword ["--flags"]
//! "arg" ...)` line per instruction, strings quoted the way Go's
//! `strconv.Quote` quotes them, ONBUILD nesting its instruction.

use crate::raw::{RawInstruction, RawTree};

/// The whole tree, one instruction a line, ending with a newline.
pub fn dump(tree: &RawTree) -> String {
    let mut out = String::new();
    for inst in tree.instructions() {
        out.push('(');
        out.push_str(&dump_instruction(inst));
        out.push_str(")\n");
    }
    out
}

/// One instruction without the outer parentheses.
pub fn dump_instruction(inst: &RawInstruction) -> String {
    let mut out = inst.keyword.to_lowercase();
    if !inst.flags.is_empty() {
        let flags: Vec<String> = inst.flags.iter().map(|f| go_quote(f)).collect();
        out.push_str(&format!(" [{}]", flags.join(" ")));
    }
    if let Some(sub) = &inst.onbuild {
        out.push_str(&format!(" ({})", dump_instruction(sub)));
    }
    for arg in &inst.args {
        out.push(' ');
        out.push_str(&go_quote(arg));
    }
    out
}

/// Quotes `s` like Go's `strconv.Quote`: `\"` and `\\`, C escapes for
/// `\a\b\f\n\r\t\v`, `\xNN` for other ASCII controls, `\uNNNN` /
/// `\UNNNNNNNN` for other non-printable characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_go_printable(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Unicode format characters (category Cf), which Go does not print.
const FORMAT_CHARS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space. Approximated without Unicode tables: controls, other
/// spaces, format characters, private use and noncharacters are not
/// printable; unassigned code points are treated as printable.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let private = (0xE000..=0xF8FF).contains(&u) || u >= 0xF0000;
    let nonchar = (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE;
    let format = FORMAT_CHARS.iter().any(|&(lo, hi)| lo <= u && u <= hi);
    !(private || nonchar || format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_table() {
        let cases = [
            ("a", "\"a\""),
            (
                "\" \\ / \u{8} \u{c} \n \r \t \0",
                r#""\" \\ / \b \f \n \r \t \x00""#,
            ),
            ("♥☃", "\"♥☃\""),
            ("\u{7f}\u{85}\u{a0}", r#""\x7f\u0085\u00a0""#),
            ("\u{200b}\u{feff}", r#""\u200b\ufeff""#),
            ("\u{10ffff}", r#""\U0010ffff""#),
            ("한국어", "\"한국어\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want);
        }
    }
}
