//! Message text with the redundancy of real chat lines (words, spaces, repeated short words),
//! so compression ratios mean something: a payload of one repeated byte would compress a
//! hundredfold and flatter deflate.

/// Words of everyday chat, short ones repeating as in speech.
const WORDS: &[&str] = &[
    "the",
    "meeting",
    "is",
    "moved",
    "to",
    "three",
    "see",
    "you",
    "there",
    "thanks",
    "for",
    "update",
    "can",
    "we",
    "talk",
    "about",
    "release",
    "tomorrow",
    "morning",
    "I",
    "will",
    "bring",
    "coffee",
    "and",
    "notes",
    "from",
    "yesterday",
    "sounds",
    "good",
    "let",
    "me",
    "know",
    "when",
    "build",
    "is",
    "green",
    "a",
    "of",
    "it",
    "on",
    "in",
    "ok",
    "great",
    "sure",
];

/// A line of exactly `len` bytes (ASCII) drawn from `random`.
pub fn line(len: usize, random: &mut fastrand::Rng) -> String {
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(WORDS[random.usize(..WORDS.len())]);
    }
    out.truncate(len);
    out
}

/// `count` different lines of `len` bytes, the same for every run.
pub fn lines(count: usize, len: usize) -> Vec<String> {
    let mut random = fastrand::Rng::with_seed(0x5eed);
    (0..count.max(1)).map(|_| line(len, &mut random)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_asked_length_and_vary() {
        let lines = lines(4, 200);
        assert!(
            lines
                .iter()
                .all(|line| line.len() == 200 && line.is_ascii())
        );
        assert_ne!(lines[0], lines[1]);
        assert_eq!(super::lines(4, 200), lines, "the same every run");
        assert_eq!(line(0, &mut fastrand::Rng::new()), "");
    }
}
