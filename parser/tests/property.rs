//! Property: no input makes the parser, the expander or the lint panic. Thousands of
//! random token soups and mutated real-looking Dockerfiles go through every
//! public entry point; errors are fine, panics fail the test.

use proptest::prelude::*;
use strata_parser::{dump, expand_word, expand_words, parse, parse_bytes, parse_raw};

/// Pieces that reach the interesting parser paths when glued at random.
const TOKENS: &[&str] = &[
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "ARG ",
    "LABEL ",
    "CMD ",
    "ENTRYPOINT ",
    "SHELL ",
    "EXPOSE ",
    "# check=skip=all;error=true;experimental=all\n",
    "# check=skip=JSONArgsRecommended\n",
    "--platform=$TARGETPLATFORM ",
    " AS Build\n",
    "VOLUME ",
    "USER ",
    "WORKDIR ",
    "ONBUILD ",
    "STOPSIGNAL ",
    "HEALTHCHECK ",
    "MAINTAINER ",
    "AS ",
    "NONE",
    "CMD",
    "--from=",
    "--chown=",
    "--chmod=",
    "--mount=",
    "type=cache,target=/x",
    "type=secret,id=s",
    "--network=",
    "--link",
    "--",
    "--interval=",
    "5s",
    "--retries=",
    "<<EOF",
    "<<-EOF",
    "<<'EOF'",
    "EOF",
    "\tEOF",
    "\n",
    "\r\n",
    "\\\n",
    "`\n",
    "\\",
    "`",
    "# escape=`\n",
    "# syntax=x\n",
    "# check=y\n",
    "#",
    "\"",
    "'",
    "[",
    "]",
    "\", \"",
    ",",
    "=",
    " ",
    "\t",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    ":?",
    "#",
    "##",
    "%",
    "%%",
    "/",
    "//",
    "*",
    "?",
    "a",
    "b",
    "0",
    "1",
    "80/tcp",
    "8000-8001",
    "x:y",
    "\0",
    "é",
    "한",
    "\u{feff}",
    "\u{200b}",
    "0755",
    "stage",
    "[\"a\"]",
    "[1]",
];

const SEEDS: &[&str] = &[
    "# syntax=docker/dockerfile:1\nARG BASE=alpine\nFROM ${BASE} AS build\nRUN --mount=type=cache,target=/root/.cache \\\n    make -j$(nproc)\nFROM scratch\nCOPY --from=build --chown=app:app --chmod=0755 /out /bin/\n",
    "FROM a\nRUN <<EOF\nset -e\necho \"$HOME\"\nEOF\nCOPY <<-'A' <<B /dst/\n\tx\n\tA\ny\nB\n",
    "FROM a\nENV A=1 B=\"2 3\" C=${A:-x}\nLABEL \"k\"='v' m=\"${B%% *}\"\nEXPOSE 80 53/udp 8000-8010\nHEALTHCHECK --interval=5s CMD [\"curl\", \"-f\", \"x\"]\nONBUILD RUN echo hi\nUSER 1000:1000\nWORKDIR /w\nVOLUME [\"/v\"]\nSTOPSIGNAL SIGTERM\nSHELL [\"/bin/sh\", \"-c\"]\nCMD [\"x\"]\nENTRYPOINT y z\n",
    "# escape=`\nFROM windows\nRUN dir `\n  c:\\\nCOPY a b\n",
];

/// Inputs that know one base image and ignore one path, so every lint
/// rule has something to chew on.
struct Inputs;

impl strata_parser::Ignore for Inputs {
    fn excludes(&self, path: &str) -> bool {
        path == "a"
    }
    fn has_exceptions(&self) -> bool {
        false
    }
    fn patterns(&self) -> Vec<String> {
        vec!["*".into()]
    }
}

impl strata_parser::Inputs for Inputs {
    fn platform_args(&self) -> Vec<(String, String)> {
        vec![("TARGETPLATFORM".into(), "linux/amd64".into())]
    }
    fn base_image(&self, _name: &str) -> Option<strata_parser::BaseImage> {
        Some(strata_parser::BaseImage::default())
    }
    fn valid_reference(&self, name: &str) -> bool {
        !name.is_empty()
    }
    fn dockerignore(&self) -> Option<&dyn strata_parser::Ignore> {
        Some(self)
    }
}

fn exercise(text: &str) {
    if let Ok(report) = strata_parser::lint(text, &Inputs) {
        let _ = report.violation();
    }
    let env = [("A", "a b"), ("EMPTY", ""), ("HOME", "/root")];
    match parse(text) {
        Ok(parsed) => {
            for stage in &parsed.stages {
                for step in std::iter::once(&stage.from).chain(&stage.steps) {
                    let _ = step.expanded(&env, parsed.escape());
                    for doc in &step.raw.heredocs {
                        let _ = doc.expanded_body(&env, parsed.escape());
                    }
                    let _ = step.instruction.takes_expansion();
                }
                let _ = parsed.resolve_copy_from("0", stage.index);
            }
            for w in &parsed.warnings {
                let _ = w.render(text);
            }
        }
        Err(e) => {
            let _ = e.render(text);
        }
    }
    if let Ok(tree) = parse_raw(text) {
        let _ = dump(&tree);
    }
    for escape in ['\\', '`'] {
        let _ = expand_word(text, &env, escape);
        let _ = expand_words(text, &env, escape);
    }
}

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|t| t.concat())
}

/// A seed with random edits: insert a token, delete a span, or duplicate a
/// span, at random places.
fn mutated() -> impl Strategy<Value = String> {
    let edit = (
        0usize..3,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::sample::select(TOKENS),
    );
    (
        prop::sample::select(SEEDS),
        prop::collection::vec(edit, 1..12),
    )
        .prop_map(|(seed, edits)| {
            let mut chars: Vec<char> = seed.chars().collect();
            for (op, at, len, token) in edits {
                let at = at.index(chars.len() + 1);
                match op {
                    0 => {
                        chars.splice(at..at, token.chars());
                    }
                    1 => {
                        let end = (at + len.index(8) + 1).min(chars.len());
                        chars.drain(at.min(end)..end);
                    }
                    _ => {
                        let end = (at + len.index(16) + 1).min(chars.len());
                        let span: Vec<char> = chars[at.min(end)..end].to_vec();
                        chars.splice(at..at, span);
                    }
                }
            }
            chars.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(text in token_soup()) {
        exercise(&text);
    }

    #[test]
    fn mutated_dockerfiles_never_panic(text in mutated()) {
        exercise(&text);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_bytes(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            exercise(text);
        }
    }
}

#[test]
fn seeds_parse() {
    for seed in SEEDS {
        parse(seed).unwrap_or_else(|e| panic!("{}", e.render(seed)));
    }
}
