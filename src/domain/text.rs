//! Text that came from outside (receivers' and BSPs' answers, their error titles) made fit to
//! store and to show: valid UTF-8, no NUL (PostgreSQL `text` refuses it, failing the whole
//! statement and every row batched with it), no other control characters (they garble logs and
//! terminals), and bounded.

/// `bytes` as lossy UTF-8, cleaned by [`clean`].
pub fn from_bytes(bytes: &[u8], max_chars: usize) -> String {
    clean(&String::from_utf8_lossy(bytes), max_chars)
}

/// At most `max_chars` characters of `s`, each control character but tab, newline and carriage
/// return replaced by U+FFFD, so a reader sees that something was there.
pub fn clean(s: &str, max_chars: usize) -> String {
    s.chars()
        .take(max_chars)
        .map(|c| {
            if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

/// Whether [`clean`] would change `s` (beyond its length): lets a hot path skip the copy.
pub fn is_clean(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_controls_are_replaced_newlines_kept() {
        assert_eq!(clean("200 ok\0", 100), "200 ok\u{FFFD}");
        assert_eq!(clean("a\x1b[31mb\x7f", 100), "a\u{FFFD}[31mb\u{FFFD}");
        assert_eq!(clean("line 1\r\nline\t2", 100), "line 1\r\nline\t2");
        assert!(!is_clean("x\0"));
        assert!(is_clean("plain\ttext\n"));
    }

    #[test]
    fn invalid_utf8_is_replaced_and_length_bounded_by_characters() {
        assert_eq!(from_bytes(b"ok\xff\xfe", 100), "ok\u{FFFD}\u{FFFD}");
        assert_eq!(clean("ééé", 2), "éé");
        assert_eq!(from_bytes(&[0u8; 10], 3), "\u{FFFD}".repeat(3));
    }
}
