//! JSON (exec) form: `["executable", "arg"]`.
//!
//! Docker's rule: text that parses as a JSON array of strings is exec form;
//! valid JSON whose elements are not all strings is an error; anything else
//! (not JSON at all) is shell form. Known difference from Docker: arrays
//! nested more than serde_json's recursion limit (128) deep, and lone UTF-16
//! surrogates in `\u` escapes, count as "not JSON" here (shell form) where Go
//! would report an error or substitute U+FFFD.

use serde_json::Value;

/// How a piece of text reads as a JSON array.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonArray {
    /// A valid array of strings.
    Strings(Vec<String>),
    /// Valid JSON array, but some element is not a string.
    NotStrings,
    /// Not a JSON array: shell form.
    NotJson,
}

/// Reads `text` (leading blanks allowed) as a JSON array of strings.
pub(crate) fn parse_json_array(text: &str) -> JsonArray {
    let text = text.trim_start();
    if !text.starts_with('[') {
        return JsonArray::NotJson;
    }
    let Ok(values) = serde_json::from_str::<Vec<Value>>(text) else {
        return JsonArray::NotJson;
    };
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        match value {
            Value::String(s) => out.push(s),
            _ => return JsonArray::NotStrings,
        }
    }
    JsonArray::Strings(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, JsonArray)] = &[
            ("[]", JsonArray::Strings(vec![])),
            (
                " [ \"a\", \"b\" ] ",
                JsonArray::Strings(vec!["a".into(), "b".into()]),
            ),
            ("[\"\\u0000\"]", JsonArray::Strings(vec!["\0".into()])),
            ("[1]", JsonArray::NotStrings),
            ("[\"a\", [\"b\"]]", JsonArray::NotStrings),
            ("['a']", JsonArray::NotJson),
            ("[\"a\"", JsonArray::NotJson),
            ("[\"a\"] x", JsonArray::NotJson),
            ("echo", JsonArray::NotJson),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_json_array(text), want, "{text}");
        }
    }
}
