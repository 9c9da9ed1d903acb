//! `search`: Docker Hub's search API for Docker Hub, the `/v2/_catalog`
//! of any other registry filtered by the term (the v2 API has no search).

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::client::{read_capped, url_without_query, Registry};
use super::endpoint::{canonical_registry, DOCKER_HUB_SEARCH_URL};
use super::flags::RegistryFlags;
use super::manifest::SMALL_BODY_MAX_BYTES;
use super::RegistryError;
use crate::reference::DEFAULT_DOMAIN;

/// How many repositories of a catalog are looked at: registries page the
/// catalog, and a search is not meant to walk a huge one.
const CATALOG_SCAN: usize = 1000;
/// Docker shows this much of a description unless `--no-trunc`.
const DESCRIPTION_WIDTH: usize = 45;

/// One row of `search`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SearchResult {
    #[serde(alias = "repo_name")]
    pub name: String,
    #[serde(default, alias = "short_description")]
    pub description: String,
    #[serde(default, alias = "star_count")]
    pub stars: u64,
    #[serde(default, alias = "is_official")]
    pub official: bool,
    #[serde(default, alias = "is_automated")]
    pub automated: bool,
}

#[derive(Deserialize)]
struct HubAnswer {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// `registry/term` searches that registry; a bare term searches Docker Hub
/// (the first component is a registry when it has `.` or `:` or is
/// `localhost`, as in references).
pub fn split_term(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (canonical_registry(first).to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), term.to_string()),
    }
}

/// Search for `term`, at most `limit` results.
pub fn search(
    term: &str,
    limit: usize,
    flags: &RegistryFlags,
) -> Result<Vec<SearchResult>, RegistryError> {
    let (registry, term) = split_term(term);
    if registry == DEFAULT_DOMAIN {
        return search_hub(&term, limit);
    }
    let client = Registry::connect(&registry, flags.credential(&registry)?, &flags.options()?)?;
    let repos = client.catalog(CATALOG_SCAN)?;
    Ok(filter_catalog(&registry, &repos, &term, limit))
}

/// Catalog names containing `term`, as search results.
pub fn filter_catalog(
    registry: &str,
    repos: &[String],
    term: &str,
    limit: usize,
) -> Vec<SearchResult> {
    repos
        .iter()
        .filter(|r| r.contains(term))
        .take(limit)
        .map(|r| SearchResult {
            name: format!("{registry}/{r}"),
            description: String::new(),
            stars: 0,
            official: false,
            automated: false,
        })
        .collect()
}

fn search_hub(term: &str, limit: usize) -> Result<Vec<SearchResult>, RegistryError> {
    let mut url = Url::parse(DOCKER_HUB_SEARCH_URL).map_err(|e| RegistryError::BadUrl {
        url: DOCKER_HUB_SEARCH_URL.into(),
        reason: e.to_string(),
    })?;
    url.query_pairs_mut()
        .append_pair("q", term)
        .append_pair("n", &limit.to_string());
    let transport = |source| RegistryError::Transport {
        method: "GET".into(),
        url: url_without_query(&url).to_string(),
        source,
    };
    let client = super::http::client_builder(super::client::DEFAULT_READ_TIMEOUT)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(transport)?;
    let resp = client.get(url.clone()).send().map_err(transport)?;
    if !resp.status().is_success() {
        return Err(RegistryError::Status {
            method: "GET".into(),
            url: url_without_query(&url).to_string(),
            status: resp.status().as_u16(),
            message: resp.status().to_string(),
        });
    }
    let body = read_capped(resp, SMALL_BODY_MAX_BYTES * 4, &url)?;
    let answer: HubAnswer =
        serde_json::from_slice(&body).map_err(|source| RegistryError::Json {
            reference: DOCKER_HUB_SEARCH_URL.into(),
            what: "search answer",
            source,
        })?;
    Ok(answer.results.into_iter().take(limit).collect())
}

/// The table `search` prints: NAME DESCRIPTION STARS OFFICIAL AUTOMATED.
pub fn format_table(results: &[SearchResult], truncate: bool) -> String {
    let desc = |r: &SearchResult| {
        let d = r.description.replace(['\n', '\r'], " ");
        if truncate && d.chars().count() > DESCRIPTION_WIDTH {
            let cut: String = d.chars().take(DESCRIPTION_WIDTH - 1).collect();
            format!("{cut}…")
        } else {
            d
        }
    };
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                desc(r),
                r.stars.to_string(),
                if r.official {
                    "[OK]".into()
                } else {
                    String::new()
                },
                if r.automated {
                    "[OK]".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let header = ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_table() {
        for (input, reg, term) in [
            ("busybox", "docker.io", "busybox"),
            ("user/app", "docker.io", "user/app"),
            ("localhost:5000/app", "localhost:5000", "app"),
            ("quay.io/prom", "quay.io", "prom"),
            ("localhost/x", "localhost", "x"),
            ("index.docker.io/nginx", "docker.io", "nginx"),
        ] {
            assert_eq!(
                split_term(input),
                (reg.to_string(), term.to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn catalog_filter() {
        let repos: Vec<String> = ["a/app", "b/web", "app2", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let got = filter_catalog("r:5000", &repos, "app", 10);
        let names: Vec<&str> = got.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["r:5000/a/app", "r:5000/app2"]);
        assert_eq!(filter_catalog("r", &repos, "", 2).len(), 2);
    }

    #[test]
    fn hub_answer_parses() {
        let a: HubAnswer = serde_json::from_str(
            r#"{"num_results":1,"results":[{"name":"busybox","description":"Busybox base image.","star_count":3000,"is_official":true,"is_automated":false}]}"#,
        )
        .unwrap();
        assert_eq!(a.results[0].stars, 3000);
        assert!(a.results[0].official);
    }

    #[test]
    fn table_shape() {
        let rows = vec![
            SearchResult {
                name: "busybox".into(),
                description: "Busybox base image, with a very long description that goes on".into(),
                stars: 3000,
                official: true,
                automated: false,
            },
            SearchResult {
                name: "r:5000/a/app".into(),
                description: String::new(),
                stars: 0,
                official: false,
                automated: false,
            },
        ];
        let t = format_table(&rows, true);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME           DESCRIPTION                                     STARS   OFFICIAL   AUTOMATED"
        );
        assert!(
            lines[1].starts_with("busybox        Busybox base image, with a very long descrip… ")
        );
        assert!(lines[1].contains("3000    [OK]"));
        assert_eq!(
            lines[2],
            "r:5000/a/app                                                   0"
        );
    }
}
