use super::*;

fn rows_out(format: &str, rows: &[serde_json::Value], headers: &[(&str, &str)]) -> String {
    let mut out = Vec::new();
    Format::parse(Some(format))
        .expect("parse")
        .write_rows(&mut out, rows, headers)
        .expect("render");
    String::from_utf8(out).expect("utf-8")
}

/// The inspect object of an image Docker BuildKit built (docker.io 20.10),
/// cut to what the templates below read.
fn inspected() -> serde_json::Value {
    serde_json::json!({
        "Id": "sha256:355384772470582cfc2d4a0d7f483e02affd7d914666f9e1aa6d7f3c61a7d800",
        "RepoTags": ["jsontest:latest"],
        "Config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["echo", "hi"],
            "Volumes": {"/v": {}},
            "Entrypoint": null,
            "Labels": null,
            "Tty": false,
        },
        "Size": 1986192,
    })
}

/// Expected strings printed by `docker inspect -f` for that image.
#[test]
fn inspect_templates_print_as_docker() {
    let v = inspected();
    let cases = [
        (
            "{{.Id}} {{.Config.Env}}",
            "sha256:355384772470582cfc2d4a0d7f483e02affd7d914666f9e1aa6d7f3c61a7d800 [PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]",
        ),
        (
            "{{.Config.Cmd}}|{{.Config.Labels}}|{{.Config.Entrypoint}}|{{.Config.Volumes}}|{{.Size}}|{{.Config.Tty}}",
            "[echo hi]|map[]|[]|map[/v:{}]|1986192|false",
        ),
        (
            "{{json .Config.Env}}",
            "[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"]",
        ),
        ("{{range .Config.Cmd}}<{{.}}>{{end}}", "<echo><hi>"),
        ("{{index .RepoTags 0}}", "jsontest:latest"),
        ("{{join .Config.Cmd \",\"}}", "echo,hi"),
        ("{{if .Config.Entrypoint}}y{{else}}n{{end}}", "n"),
        ("{{- $t := .Config.Tty -}} {{ $t }}", "false"),
        ("{{upper (index .Config.Cmd 0)}}", "ECHO"),
        ("{{.Config.Labels.missing}}", "<no value>"),
        ("{{printf \"%s}}\" \"x\"}}", "x}}"),
    ];
    for (t, want) in cases {
        assert_eq!(render_one(t, &v).expect(t), want, "{t}");
    }
    // Docker: `map has no entry for key "Nope"`, exit 1.
    assert!(render_one("{{.Nope}}", &v).is_err());
    assert!(render_one("{{.Id", &v).is_err());
}

/// `docker images --format ...` on a store holding jsontest:latest.
#[test]
fn listing_templates_and_tables_as_docker() {
    let rows = [serde_json::json!({
        "Containers": "N/A", "CreatedAt": "2026-12-04 04:42:05 +0000 UTC",
        "CreatedSince": "13 minutes ago", "Digest": "<none>", "ID": "355384772470",
        "Repository": "jsontest", "SharedSize": "N/A", "Size": "1.99MB", "Tag": "latest",
        "UniqueSize": "N/A", "VirtualSize": "1.99MB",
    })];
    let headers = [
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("ID", "IMAGE ID"),
        ("Size", "SIZE"),
    ];
    assert_eq!(
        rows_out("{{.Repository}}:{{.Tag}} {{.ID}}", &rows, &headers),
        "jsontest:latest 355384772470\n"
    );
    assert_eq!(
        rows_out(
            "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.Size}}",
            &rows,
            &headers
        ),
        "REPOSITORY   TAG       IMAGE ID       SIZE\njsontest     latest    355384772470   1.99MB\n"
    );
    assert_eq!(
        rows_out("{{json .}}", &rows, &headers),
        "{\"Containers\":\"N/A\",\"CreatedAt\":\"2026-12-04 04:42:05 +0000 UTC\",\"CreatedSince\":\"13 minutes ago\",\"Digest\":\"\\u003cnone\\u003e\",\"ID\":\"355384772470\",\"Repository\":\"jsontest\",\"SharedSize\":\"N/A\",\"Size\":\"1.99MB\",\"Tag\":\"latest\",\"UniqueSize\":\"N/A\",\"VirtualSize\":\"1.99MB\"}\n"
    );
    assert_eq!(
        rows_out("json", &rows, &headers),
        rows_out("{{json .}}", &rows, &headers)
    );
    assert!(matches!(Format::parse(Some("table")), Ok(Format::Default)));
    assert!(matches!(Format::parse(None), Ok(Format::Default)));
}

/// Docker's `docker images` and `docker system df` lines.
#[test]
fn tables_pad_like_gos_tabwriter() {
    let mut out = Vec::new();
    write_table(
        &mut out,
        &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        &[vec![
            "<none>".into(),
            "<none>".into(),
            "92499aee7267".into(),
            "7 minutes ago".into(),
            "1.99MB".into(),
        ]],
    )
    .expect("write");
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        "REPOSITORY   TAG       IMAGE ID       CREATED         SIZE\n<none>       <none>    92499aee7267   7 minutes ago   1.99MB\n"
    );
}

#[test]
fn only_printing_actions_are_wrapped() {
    assert_eq!(wrap_prints("{{.A}}"), "{{.A | _go }}");
    assert_eq!(wrap_prints("{{- .A -}}"), "{{- .A  | _go -}}");
    assert_eq!(wrap_prints("{{if .A}}x{{end}}"), "{{if .A}}x{{end}}");
    assert_eq!(wrap_prints("{{/* c */}}"), "{{/* c */}}");
    assert_eq!(wrap_prints("{{$x := .A}}"), "{{$x := .A}}");
    assert_eq!(wrap_prints("a {{$x}} b"), "a {{$x | _go }} b");
}
