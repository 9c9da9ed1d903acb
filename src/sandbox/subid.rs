//! Subordinate id ranges from /etc/subuid and /etc/subgid.
//!
//! Parsing is pure; only [`read_ranges`] touches the file system.

use std::path::Path;

/// The files shadow-utils reads (and newuidmap/newgidmap check against).
pub const SUBUID_FILE: &str = "/etc/subuid";
pub const SUBGID_FILE: &str = "/etc/subgid";

/// One `name:start:count` line that applies to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SubidRange {
    pub start: u32,
    pub count: u32,
}

impl std::fmt::Display for SubidRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.start, self.count)
    }
}

/// The ranges in `content` whose owner field is `user` or the numeric `id`,
/// in file order. Malformed lines are skipped, as shadow-utils does.
pub fn parse_ranges(content: &str, user: Option<&str>, id: u32) -> Vec<SubidRange> {
    let id = id.to_string();
    content
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let mut fields = line.split(':');
            let owner = fields.next()?;
            let start = fields.next()?.trim().parse().ok()?;
            let count: u32 = fields.next()?.trim().parse().ok()?;
            if fields.next().is_some() || count == 0 {
                return None;
            }
            (Some(owner) == user || owner == id).then_some(SubidRange { start, count })
        })
        .collect()
}

/// The ranges of `user`/`id` in `file`; a missing file means no ranges.
pub fn read_ranges(
    file: &Path,
    user: Option<&str>,
    id: u32,
) -> Result<Vec<SubidRange>, std::io::Error> {
    match fs_err::read_to_string(file) {
        Ok(content) => Ok(parse_ranges(&content, user, id)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_users_lines_by_name_or_id() {
        let file = "alice:100000:65536\n# comment\nbob:165536:65536\n1000:300000:10\n";
        type Case<'a> = (Option<&'a str>, u32, &'a [(u32, u32)]);
        let cases: &[Case] = &[
            (Some("alice"), 1001, &[(100000, 65536)]),
            (Some("bob"), 1000, &[(165536, 65536), (300000, 10)]),
            (None, 1000, &[(300000, 10)]),
            (Some("carol"), 1002, &[]),
        ];
        for (user, id, want) in cases {
            let got: Vec<(u32, u32)> = parse_ranges(file, *user, *id)
                .iter()
                .map(|r| (r.start, r.count))
                .collect();
            assert_eq!(&got, want, "user {user:?} id {id}");
        }
    }

    #[test]
    fn skips_malformed_lines() {
        let file = "alice:x:65536\nalice:1\nalice:5:0\nalice:1:2:3\n alice:7:8 \n";
        assert_eq!(
            parse_ranges(file, Some("alice"), 1),
            vec![SubidRange { start: 7, count: 8 }]
        );
    }
}
