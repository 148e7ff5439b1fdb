//! `ferry serve`: the API answers, `/metrics` parses and its counters rise during a live
//! sync, pause and resume stop and restart apply without loss, a token is enforced when
//! set, and a non-loopback address without one is refused.

#[path = "support/cli.rs"]
mod cli;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use cli::*;

const MINUTE: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request; the status code and the body.
fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn wait_http(port: u16, path: &str, token: Option<&str>, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + MINUTE;
    loop {
        if let Some((200, body)) = http(port, "GET", path, token) {
            if pred(&body) {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "GET {path} never matched");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of `ferry_changes_applied_total` for the default pipeline.
fn changes(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("ferry_changes_applied_total{pipeline=\"default\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn serve_exposes_metrics_and_pauses_and_resumes_without_loss() {
    let run = Pipeline::new("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t SELECT generate_series(1, 100);", "mode = \"full+incremental\"");
    let (source, target, cfg) = (&run.source, &run.target, run.cfg.as_str());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let serve = spawn(&["serve", "-c", cfg, "--listen", &listen]);
    wait_http(port, "/healthz", None, |b| b.contains("ok"));
    wait_equal(source, target, "public.t", MINUTE);

    source
        .psql("INSERT INTO public.t SELECT generate_series(101, 150)")
        .unwrap();
    let first = wait_http(port, "/metrics", None, |m| changes(m) >= 50);
    // Every sample line is `name{labels} value`, after HELP and TYPE lines.
    for line in first
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(
            name.starts_with("ferry_") && name.contains("pipeline=\"default\""),
            "{line}"
        );
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
    }
    assert!(
        first.contains("# TYPE ferry_batch_changes histogram"),
        "{first}"
    );
    let before = changes(&first);
    source
        .psql("UPDATE public.t SET id = id + 1000 WHERE id <= 10")
        .unwrap();
    wait_http(port, "/metrics", None, |m| changes(m) > before);

    // Paused: changes wait on the source; resumed: they all arrive.
    let (status, _) = http(port, "POST", "/api/pipelines/default/pause", None).unwrap();
    assert_eq!(status, 202);
    wait_http(port, "/api/pipelines/default", None, |b| {
        b.contains("\"phase\":\"paused\"")
    });
    source
        .psql("INSERT INTO public.t SELECT generate_series(200, 299)")
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        target
            .psql("SELECT count(*) FROM public.t WHERE id >= 200 AND id < 300")
            .unwrap()
            .trim(),
        "0"
    );
    let (status, _) = http(port, "POST", "/api/pipelines/default/resume", None).unwrap();
    assert_eq!(status, 202);
    wait_equal(source, target, "public.t", MINUTE);
    let (status, _) = http(port, "GET", "/api/pipelines/nope", None).unwrap();
    assert_eq!(status, 404);

    signal(serve.id(), "TERM");
    let out = serve.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn serve_requires_its_token_when_one_is_set_and_refuses_open_addresses_without_one() {
    let run = Pipeline::new(
        "CREATE TABLE public.t (id int PRIMARY KEY)",
        "mode = \"full+incremental\"",
    );
    let cfg = run.cfg.as_str();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "-c", cfg, "--listen", "0.0.0.0:0"])
        .env_remove("FERRY_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FERRY_API_TOKEN"),
        "{}",
        text(&out)
    );

    let port = free_port();
    let serve = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "-c", cfg, "--listen", &format!("127.0.0.1:{port}")])
        .env("FERRY_API_TOKEN", "s3cret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_http(port, "/healthz", None, |b| b.contains("ok"));
    assert_eq!(http(port, "GET", "/api/pipelines", None).unwrap().0, 401);
    assert_eq!(http(port, "GET", "/metrics", Some("wrong")).unwrap().0, 401);
    let (status, body) = http(port, "GET", "/api/pipelines", Some("s3cret")).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\":\"default\""), "{body}");
    signal(serve.id(), "TERM");
    let out = serve.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
