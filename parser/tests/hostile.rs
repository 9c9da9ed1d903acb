//! Hostile inputs finish in bounded time and memory with an error or a
//! result, never a panic. Time limits are generous (debug builds, a busy
//! 2-core machine) but catch anything quadratic on these sizes.

// Tests report what they checked on stderr.
#![allow(clippy::disallowed_macros)]

use std::time::{Duration, Instant};

use strata_parser::{
    expand_word, parse, parse_bytes, parse_raw, EmptyEnv, ExpandErrorKind, ParseErrorKind,
};

const ONE_MIB: usize = 1 << 20;
const LIMIT: Duration = Duration::from_secs(60);

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    eprintln!("{what}: {took:?}");
    assert!(took < LIMIT, "{what} took {took:?}");
    out
}

#[test]
fn hundred_thousand_lines() {
    let mut text = String::from("FROM a\n");
    for i in 0..100_000 {
        text.push_str(&format!("ENV K{i}=v{i}\n"));
    }
    let parsed = timed("100k ENV lines", || parse(&text)).unwrap();
    assert_eq!(parsed.stages[0].steps.len(), 100_000);

    let continued = format!("FROM a\nRUN x{}", " \\\n y".repeat(100_000));
    let parsed = timed("100k continuation lines", || parse(&continued)).unwrap();
    assert_eq!(parsed.stages[0].steps[0].span().end_line, 100_002);

    let stages: String = (0..100_000)
        .map(|i| format!("FROM a AS s{i}\nCOPY --from=s{} x y\n", i / 2))
        .collect();
    let result = timed("100k stages", || parse(&stages));
    assert!(result.is_err(), "stage 0 refers to itself");
    let stages: String = (0..100_000)
        .map(|i| format!("FROM s{} AS s{}\n", i / 2, i + 1))
        .collect();
    assert_eq!(
        timed("100k stage names", || parse(&stages))
            .unwrap()
            .stages
            .len(),
        100_000
    );

    let blank = "\n".repeat(100_000) + "FROM a";
    assert!(timed("100k blank lines", || parse(&blank)).is_ok());
}

#[test]
fn one_mebibyte_lines() {
    let cases = [
        format!("FROM a\nRUN {}", "x".repeat(ONE_MIB)),
        format!("FROM a\nENV {}", "a=b ".repeat(ONE_MIB / 4)),
        format!("FROM a\nCOPY {} /", "--x ".repeat(ONE_MIB / 4)),
        format!("FROM a\nCMD [{}\"x\"]", "\"x\",".repeat(ONE_MIB / 4)),
        format!("FROM a\nCMD {}", "[".repeat(ONE_MIB)),
        format!("FROM a\nRUN {}", "<<A ".repeat(ONE_MIB / 4)),
        format!("FROM a\nRUN --mount={} x", "k,".repeat(ONE_MIB / 2)),
        format!(
            "FROM a\nRUN --mount=type=cache,target=/x,{} x",
            (0..100_000)
                .map(|i| format!("k{i}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        format!("FROM a\nEXPOSE {}", "1 ".repeat(ONE_MIB / 2)),
        format!(
            "FROM a\nHEALTHCHECK --interval={}s CMD x",
            "1s".repeat(ONE_MIB / 2)
        ),
        "\"'".repeat(ONE_MIB / 2),
        format!("FROM a\nLABEL {}", "\"".repeat(ONE_MIB)),
        format!("FROM a\nRUN {}", "\\\\".repeat(ONE_MIB / 2)),
        format!("FROM a\nCOPPY{}", "Y".repeat(ONE_MIB)),
        format!("# escape={}\nFROM a", "`".repeat(ONE_MIB)),
    ];
    for (i, text) in cases.iter().enumerate() {
        let result = timed(&format!("1 MiB case {i}"), || parse(text));
        if let Err(e) = result {
            let rendered = e.render(text);
            // Rendering cuts long lines instead of repeating a MiB.
            assert!(
                rendered.len() < 4096,
                "case {i}: rendered {} bytes",
                rendered.len()
            );
        }
    }
}

#[test]
fn one_mebibyte_words_expand_in_bounded_time() {
    let env = [("A", "a b"), ("BIG", "x")];
    let cases = [
        "$A".repeat(ONE_MIB / 2),
        "${".repeat(ONE_MIB / 2),
        "\"".repeat(ONE_MIB),
        "${A//?/${A}}".repeat(ONE_MIB / 12),
        format!("${{A//{}b/x}}", "*a".repeat(ONE_MIB / 4)),
        "'x".repeat(ONE_MIB / 2),
    ];
    for (i, word) in cases.iter().enumerate() {
        let _ = timed(&format!("expansion case {i}"), || {
            expand_word(word, &env, '\\')
        });
    }
    let big = "y".repeat(ONE_MIB);
    let env = [("BIG", big.as_str())];
    let err = timed("multiplying expansion", || {
        expand_word(&"$BIG".repeat(100), &env, '\\')
    })
    .unwrap_err();
    assert_eq!(
        err.kind,
        ExpandErrorKind::TooLong {
            limit: strata_parser::expand::MAX_EXPANDED_LEN
        }
    );
}

#[test]
fn ten_thousand_nested_defaults() {
    let nested = format!("{}x{}", "${a:-".repeat(10_000), "}".repeat(10_000));
    let err = expand_word(&nested, &EmptyEnv, '\\').unwrap_err();
    assert!(matches!(err.kind, ExpandErrorKind::TooDeep { .. }));

    // In a Dockerfile: parsing keeps it as written; expanding the step fails.
    let text = format!("FROM a\nWORKDIR {nested}\nRUN <<EOF {nested}\nEOF\n");
    let parsed = timed("nested in Dockerfile", || parse(&text)).unwrap();
    let err = parsed.stages[0].steps[0]
        .expanded(&EmptyEnv, '\\')
        .unwrap_err();
    assert!(err.to_string().contains("nested deeper than"), "{err}");
}

#[test]
fn unterminated_heredoc() {
    let text = format!("FROM a\nRUN <<EOF\n{}", "line\n".repeat(100_000));
    let err = timed("unterminated heredoc", || parse(&text)).unwrap_err();
    assert_eq!((err.line, err.col), (2, 1));
    assert!(err.to_string().contains("unterminated heredoc"));
}

#[test]
fn nul_bytes() {
    let inputs = [
        "\0".repeat(1000),
        "FROM a\0\nRUN \0\0\n".to_string(),
        "FROM a\nENV \0=\0\nCOPY --from=\0 \0 \0\n".to_string(),
        "\0FROM a".to_string(),
    ];
    for text in &inputs {
        match parse(text) {
            Ok(parsed) => assert!(!parsed.stages.is_empty()),
            Err(e) => {
                let _ = e.render(text);
            }
        }
        let _ = parse_raw(text);
        let _ = expand_word(text, &EmptyEnv, '\\');
    }
}

#[test]
fn a_nul_byte_in_a_file_is_an_error_where_it_is() {
    let cases: [(&[u8], usize, usize, usize); 3] = [
        (b"\0FROM a", 0, 1, 1),
        (b"FROM a\nRUN echo \xe2\x82\xac\0x\n", 19, 2, 11),
        (b"FROM a\nCOPY a b\n# \0\n", 18, 3, 3),
    ];
    for (bytes, offset, line, col) in cases {
        let err = parse_bytes(bytes).unwrap_err();
        assert_eq!(err.kind, ParseErrorKind::NulByte { offset }, "{bytes:?}");
        assert_eq!((err.line, err.col), (line, col), "{bytes:?}");
    }
}

#[test]
fn invalid_utf8_is_an_error() {
    let cases: [(&[u8], usize); 4] = [
        (b"\xff", 0),
        (b"FROM a\n\xc3", 7),
        (b"FROM \xe2\x82\xac\nRUN \xed\xa0\x80\n", 13),
        (b"FROM a\nRUN \xc0\xaf", 11),
    ];
    for (bytes, offset) in cases {
        let err = parse_bytes(bytes).unwrap_err();
        assert_eq!(
            err.kind,
            ParseErrorKind::InvalidUtf8 { offset },
            "{bytes:?}"
        );
    }
}
