//! Unsigned text from files (a TPM's vendor strings, labels, the agent field,
//! host names from a registry) reaches terminals. One sanitiser makes it
//! inert: control characters (C0, DEL, C1) and the Unicode controls that
//! reorder or hide text (bidirectional overrides and isolates, zero-width
//! characters, line and paragraph separators) are written as `\u{..}`
//! escapes, and backslashes are doubled so an escape cannot be faked.
//! Every printer of unsigned strings (text and JSON) goes through [`inert`].

use std::borrow::Cow;

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `s` with every control or text-reordering character escaped, so printing
/// it cannot move the cursor, change colours, start a new line or hide text.
pub fn inert(s: &str) -> Cow<'_, str> {
    // Printable ASCII without a backslash, the common case, needs nothing:
    // one scan of the bytes decides it.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') {
        return Cow::Borrowed(s);
    }
    if !s.chars().any(|c| c == '\\' || needs_escape(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Lower-case hex of `bytes`, for reports: the same text as `hex::encode`,
/// written into one buffer instead of collected character by character (a
/// batch report has about thirty of these per evidence file).
pub fn hex(bytes: impl AsRef<[u8]>) -> String {
    let bytes = bytes.as_ref();
    let mut out = vec![0u8; bytes.len() * 2];
    // The buffer is exactly twice the input: encoding cannot fail.
    let _ = ::hex::encode_to_slice(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{hex, inert};

    #[test]
    fn hex_is_the_hex_crates_text() {
        for bytes in [&b""[..], &b"\x00\x01\xab\xff"[..], &[0x5a; 33][..]] {
            assert_eq!(hex(bytes), ::hex::encode(bytes));
        }
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            inert("IBM SW   TPM"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(inert("Ünïcode ok"), "Ünïcode ok");
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(
            inert("IBM\n  AK-EK link: proven\x1b[2K\r"),
            "IBM\\u{a}  AK-EK link: proven\\u{1b}[2K\\u{d}"
        );
        assert_eq!(inert("a\u{9b}b\u{7f}"), "a\\u{9b}b\\u{7f}");
        assert_eq!(inert("x\u{202e}y\u{2066}"), "x\\u{202e}y\\u{2066}");
        assert_eq!(inert("\u{200b}\u{feff}"), "\\u{200b}\\u{feff}");
        // A literal backslash cannot fake an escape.
        assert_eq!(inert("\\u{a}"), "\\\\u{a}");
        let out = inert("\x07\x08\t\x0b\x0c\x00");
        assert!(!out.chars().any(|c| c.is_control()), "{out}");
    }
}
