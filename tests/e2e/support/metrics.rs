//! A reader of the Prometheus/OpenMetrics text format, enough to check the host's `/metrics`:
//! sample lines `name{label="value",...} number`, comments and `# EOF` skipped.

use std::collections::BTreeMap;

/// Labels of one series, sorted by name.
type Labels = BTreeMap<String, String>;

/// Every sample of one scrape.
#[derive(Debug, Clone)]
pub struct Exposition {
    samples: Vec<(String, Labels, f64)>,
}

impl Exposition {
    /// Parses an exposition; fails the test on a line it cannot read.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("not a sample: {line:?}")))
            .collect();
        Self { samples }
    }

    /// The value of the series `name` with exactly `labels`, or 0 if it does not exist
    /// (a labelled counter appears once it first moves).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: Labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut found = self
            .samples
            .iter()
            .filter(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, value)| *value);
        let value = found.next().unwrap_or(0.0);
        assert!(found.next().is_none(), "{name} {labels:?} appears twice");
        value
    }

    /// Whether any series is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

/// `name{a="x",b="y"} 12` (an optional timestamp after the value is ignored).
fn parse_sample(line: &str) -> Option<(String, Labels, f64)> {
    let (series, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                (&line[..open], parse_labels(&line[open + 1..close])?),
                &line[close + 1..],
            )
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            ((name, Labels::new()), rest)
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some((series.0.to_owned(), series.1, value))
}

/// `a="x",b="y"`, with `\"`, `\\` and `\n` escapes in values.
fn parse_labels(text: &str) -> Option<Labels> {
    let mut labels = Labels::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, other) => value.push(other),
            }
        };
        labels.insert(name.trim().to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',').trim();
    }
    Some(labels)
}

#[test]
fn reads_samples_with_and_without_labels() {
    let text = "# TYPE x counter\nx_total{function=\"a\\\"b\",kind=\"trap\"} 3\nup 1\n# EOF\n";
    let exposition = Exposition::parse(text);
    assert_eq!(
        exposition.value("x_total", &[("function", "a\"b"), ("kind", "trap")]),
        3.0
    );
    assert_eq!(exposition.value("up", &[]), 1.0);
    assert_eq!(exposition.value("x_total", &[("function", "other")]), 0.0);
}
