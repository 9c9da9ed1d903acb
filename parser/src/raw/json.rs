//! JSON (exec) form: `["executable", "arg"]`.
//!
//! Docker's rule: text that starts with a JSON array of strings is exec form;
//! valid JSON whose elements are not all strings is an error; anything else
//! (not JSON at all) is shell form. BuildKit decodes the first JSON value with
//! a stream decoder and never looks at what follows it, so
//! `["echo", "hi"] # comment` is the exec form `echo hi`. Known difference from Docker: arrays
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
    // A stream reads the first value only, as Go's `json.Decoder.Decode`
    // does: trailing text is never looked at.
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Vec<Value>>();
    let Some(Ok(values)) = stream.next() else {
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
            // Trailing text after the array: exec form, as BuildKit
            // (docker.io 20.10 builds `RUN ["echo", "x"] # c` as exec form).
            ("[\"a\"] x", JsonArray::Strings(vec!["a".into()])),
            ("[\"a\"] # c", JsonArray::Strings(vec!["a".into()])),
            ("[\"a\"]]", JsonArray::Strings(vec!["a".into()])),
            ("[\"a\"][1]", JsonArray::Strings(vec!["a".into()])),
            ("[1] x", JsonArray::NotStrings),
            ("echo", JsonArray::NotJson),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_json_array(text), want, "{text}");
        }
    }
}
