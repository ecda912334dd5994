//! Text within a byte limit. Close reasons, and the fault causes the host passes on, must fit
//! a bound in bytes and stay valid UTF-8, so they are cut at a character boundary.

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate_utf8;

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(truncate_utf8("short", 200), "short");
        assert_eq!(truncate_utf8("abcdef", 3), "abc");
        // "é" is two bytes: cutting inside it keeps the text before it.
        assert_eq!(truncate_utf8("aé", 2), "a");
        assert_eq!(truncate_utf8("", 0), "");
        let text = "é".repeat(62);
        assert_eq!(truncate_utf8(&text, 123), "é".repeat(61));
    }
}
