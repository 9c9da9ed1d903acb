//! GitHub Actions annotations: under `GITHUB_ACTIONS=true`, errors and lint
//! warnings are also written as workflow commands
//! (`::warning file=F,line=L,col=C::message`), which the runner shows on
//! the file's line in the pull request. On stderr, so `build -q`'s stdout
//! stays the image id alone; the runner reads commands from both.

use crate::build::error::Location;

/// The annotation levels strata writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

/// Whether this process runs in a GitHub Actions job.
pub fn enabled() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// The workflow command for `message`, at `place` when it has one.
pub fn annotation(level: Level, place: Option<&Location>, message: &str) -> String {
    let name = match level {
        Level::Error => "error",
        Level::Warning => "warning",
    };
    let props = place.map_or_else(String::new, |p| {
        format!(
            " file={},line={},col={}",
            escape_property(&p.file),
            p.line,
            p.col
        )
    });
    format!("::{name}{props}::{}", escape_data(message))
}

/// GitHub's escaping of a command's message: `%`, CR and LF.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property value also escapes the `:` and `,` that delimit properties.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_escape_as_github_documents() {
        let at = Location {
            file: "dir,a:b/Dockerfile".into(),
            line: 3,
            col: 5,
        };
        assert_eq!(
            annotation(Level::Warning, Some(&at), "50% done\r\nnext: a,b"),
            "::warning file=dir%2Ca%3Ab/Dockerfile,line=3,col=5::50%25 done%0D%0Anext: a,b"
        );
        assert_eq!(annotation(Level::Error, None, "failed"), "::error::failed");
    }
}
