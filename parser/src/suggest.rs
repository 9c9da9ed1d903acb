//! "Did you mean COPY?": the keyword closest to a misspelt one, and the
//! variable closest to an undefined one (the lint's UndefinedVar).

use crate::instructions::KEYWORDS;

/// Longest word worth comparing; keywords are at most 11 characters, so
/// anything much longer is no typo of one (and costs nothing to skip).
const MAX_WORD: usize = 32;

/// Longest variable name compared: edit distance costs the product of the
/// lengths, and a name this long is no typo worth a suggestion.
const MAX_NAME: usize = 128;

/// Edit distance (insert, delete, substitute, swap of neighbours).
fn distance(a: &[char], b: &[char]) -> usize {
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The keyword within a third of its length (at least 1, at most 2 edits) of
/// `word`, ignoring case.
pub(crate) fn suggest(word: &str) -> Option<String> {
    if word.is_empty() || word.chars().count() > MAX_WORD {
        return None;
    }
    let upper: Vec<char> = word.to_uppercase().chars().collect();
    KEYWORDS
        .iter()
        .map(|k| {
            let kc: Vec<char> = k.chars().collect();
            (distance(&upper, &kc), *k)
        })
        .filter(|(d, k)| *d <= (k.len() / 3).clamp(1, 2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

/// The option closest to `word`, as BuildKit suggests a variable: fewer
/// than 3 edits, case counts, the first of equally close options; none when
/// `word` is itself an option (the problem is elsewhere).
pub(crate) fn closest<'a>(
    word: &str,
    options: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    if word.chars().count() > MAX_NAME {
        return None;
    }
    let w: Vec<char> = word.chars().collect();
    let mut best: Option<(usize, &str)> = None;
    for option in options {
        if option == word {
            return None;
        }
        if option.chars().count() > MAX_NAME {
            continue;
        }
        let d = distance(&w, &option.chars().collect::<Vec<_>>());
        if d < 3 && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, option));
        }
    }
    best.map(|(_, o)| o.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            ("COPPY", Some("COPY")),
            ("cpoy", Some("COPY")),
            ("RUNN", Some("RUN")),
            ("ENTRYPIONT", Some("ENTRYPOINT")),
            ("WORKDR", Some("WORKDIR")),
            ("FORM", Some("FROM")),
            ("XYZZY", None),
            ("", None),
        ];
        for (word, want) in cases {
            assert_eq!(suggest(word).as_deref(), want, "{word}");
        }
    }

    #[test]
    fn closest_variable() {
        let opts = ["DIR_ASSETS", "DIR_BINARIES", "PATH"];
        assert_eq!(closest("DIR_ASSET", opts).as_deref(), Some("DIR_ASSETS"));
        assert_eq!(closest("PAHT", opts).as_deref(), Some("PATH"));
        assert_eq!(closest("path", opts), None);
        assert_eq!(closest("PATH", opts), None);
        assert_eq!(closest("HOME", opts), None);
    }
}
