//! Artifacts in S3-compatible object storage: `keel server --artifacts s3://bucket/prefix` against
//! moto's S3 server on loopback. Clients still talk only to keel's proxied artifact API.

mod support;

use std::io::{BufRead, Read, Write};
use std::process::Command;

/// The byte at `offset` of the generated upload.
fn pattern(offset: u64) -> u8 {
    (offset % (1024 * 1024) % 251) as u8
}

/// Starts moto and a keel server whose artifacts live in `s3://keel-artifacts/team/`.
fn servers(dir: &std::path::Path) -> Option<(support::S3Server, support::Server)> {
    let python = support::python_with_mlflow("keel's S3 artifact tests")?;
    let s3 = support::S3Server::start(&python, "keel-artifacts");
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let keel = support::Server::start_with(dir, 0, "s3://keel-artifacts/team", &env);
    Some((s3, keel))
}

#[test]
fn a_1gib_upload_goes_to_s3_as_multipart_in_flat_memory() {
    const SIZE: u64 = 1024 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let Some((s3, server)) = servers(dir.path()) else {
        return;
    };
    let pid = server.child.id();
    let addr = server.url.trim_start_matches("http://").to_string();
    let before = support::rss_mib(pid);
    let path = "/api/2.0/mlflow-artifacts/artifacts/0/run1/artifacts/data/big.bin";

    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {SIZE}\r\n\r\n"
    )
    .unwrap();
    let chunk: Vec<u8> = (0..1024 * 1024u64).map(pattern).collect();
    let mut peak = before;
    for i in 0..(SIZE / chunk.len() as u64) {
        s.write_all(&chunk).unwrap();
        if i.is_multiple_of(32) {
            peak = peak.max(support::rss_mib(pid));
        }
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(
        &head,
        b"HTTP/1.1 200",
        "upload answered {}",
        String::from_utf8_lossy(&head)
    );

    // The object is in the bucket under the prefix, whole, and was written in parts: S3 gives a
    // multipart object an ETag ending in "-<number of parts>".
    let (status, head, _) = support::http_with_head(
        &s3.addr,
        "HEAD",
        "/keel-artifacts/team/0/run1/artifacts/data/big.bin",
        b"",
    );
    assert_eq!(status, 200, "object missing from the bucket");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("content-length: {SIZE}\r\n")),
        "object size in {head}"
    );
    let etag = lower
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap_or_default()
        .trim_matches('"');
    assert!(
        etag.rsplit_once('-')
            .is_some_and(|(_, parts)| parts.parse::<u32>().is_ok_and(|n| n > 1)),
        "not a multipart object: ETag {etag:?}"
    );

    // Listing through keel shows it with its size.
    let (status, body) = support::http(
        &addr,
        "GET",
        "/api/2.0/mlflow-artifacts/artifacts?path=0/run1/artifacts/data",
        b"",
    );
    let listing = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{listing}");
    assert!(
        listing.contains("\"path\":\"big.bin\"")
            && listing.contains(&format!("\"file_size\":{SIZE}")),
        "unexpected listing {listing}"
    );

    // Download it back through keel and check every byte while watching memory.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let mut got = 0u64;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut reads = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (j, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                pattern(got + j as u64),
                "byte {} differs",
                got + j as u64
            );
        }
        got += n as u64;
        reads += 1;
        if reads.is_multiple_of(256) {
            peak = peak.max(support::rss_mib(pid));
        }
    }
    assert_eq!(got, SIZE);
    println!(
        "server RSS: {before:.1} MiB before, {peak:.1} MiB peak while moving {} MiB through S3",
        SIZE >> 20
    );
    assert!(
        peak - before < 96.0,
        "server memory grew by {:.1} MiB while streaming {} MiB",
        peak - before,
        SIZE >> 20
    );

    // Deleting a folder deletes everything below it.
    let (status, body) = support::http(
        &addr,
        "DELETE",
        "/api/2.0/mlflow-artifacts/artifacts/0/run1/artifacts/data",
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _) = support::http(
        &s3.addr,
        "HEAD",
        "/keel-artifacts/team/0/run1/artifacts/data/big.bin",
        b"",
    );
    assert_eq!(status, 404, "object still in the bucket after delete");
}

#[test]
fn small_artifacts_errors_and_traversal_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let Some((s3, server)) = servers(dir.path()) else {
        return;
    };
    let addr = server.url.trim_start_matches("http://").to_string();
    let base = "/api/2.0/mlflow-artifacts/artifacts";
    for (name, body) in [
        ("a.txt", &b"alpha"[..]),
        ("sub/b.json", b"{\"b\": 1}"),
        ("empty", b""),
    ] {
        let (status, resp) =
            support::http(&addr, "PUT", &format!("{base}/7/r/artifacts/{name}"), body);
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&resp));
        let (status, got) =
            support::http(&addr, "GET", &format!("{base}/7/r/artifacts/{name}"), b"");
        assert_eq!((status, got.as_slice()), (200, body), "{name} read back");
    }
    let (status, body) = support::http(&addr, "GET", &format!("{base}?path=7/r/artifacts"), b"");
    assert_eq!(status, 200);
    let listing: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        listing["files"],
        serde_json::json!([
            {"path": "a.txt", "is_dir": false, "file_size": 5},
            {"path": "empty", "is_dir": false, "file_size": 0},
            {"path": "sub", "is_dir": true},
        ])
    );
    // A missing object answers MLflow's not-found error, not a server error.
    let (status, body) = support::http(&addr, "GET", &format!("{base}/7/r/artifacts/nope"), b"");
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    // Paths that try to leave the root never reach the bucket.
    for bad in ["7/../../etc/passwd", "7/%2e%2e/x", "%2Fabs"] {
        let (status, _) = support::http(&addr, "PUT", &format!("{base}/{bad}"), b"x");
        assert_eq!(status, 400, "{bad} was accepted");
    }
    // Only the prefix holds objects: nothing was written outside it.
    let (status, body) = support::http(&s3.addr, "GET", "/keel-artifacts?list-type=2", b"");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    let keys: Vec<&str> = text
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .collect();
    assert_eq!(
        keys,
        [
            "team/7/r/artifacts/a.txt",
            "team/7/r/artifacts/empty",
            "team/7/r/artifacts/sub/b.json"
        ]
    );
}

#[test]
fn mlflow_client_runs_unchanged_with_s3_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_s3, server)) = servers(dir.path()) else {
        return;
    };
    let python =
        support::python_with_mlflow("keel's S3 artifact tests").expect("checked by servers()");
    let script = support::workspace().join("tests/compat/mlflow_client_compat.py");
    let out = Command::new(python)
        .arg(&script)
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("PYTHONWARNINGS", "ignore")
        .current_dir(dir.path())
        .output()
        .expect("run the compatibility script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "compatibility script failed with S3 artifacts\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("checks passed"),
        "no summary line\n{stdout}"
    );
}

/// `keel ARGS` in `dir` with `env`: the exit status, standard output and standard error.
fn keel_env(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEEL_DB")
        .env_remove("KEEL_ARTIFACTS")
        .envs(env.iter().copied())
        .output()
        .expect("run keel");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn replicas_log_to_one_s3_prefix_and_are_monitored_as_one_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(python) = support::python_with_mlflow("replicas_log_to_one_s3_prefix") else {
        return;
    };
    let s3 = support::S3Server::start(&python, "keel-logs");
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    support::price_model(d, &[]);
    // The shop table's rows as requests of 50: the first half to one replica, the rest to
    // another, each writing its own spool and shipping to the same prefix.
    let rows: Vec<String> = support::shop()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("[{}, {}, \"{}\"]", f[0], f[1], f[2])
        })
        .collect();
    let bodies: Vec<String> = rows
        .chunks(50)
        .map(|c| {
            format!(
                r#"{{"dataframe_split": {{"columns": ["x1", "x2", "colour"], "data": [{}]}}}}"#,
                c.join(", ")
            )
        })
        .collect();
    let (first, second) = bodies.split_at(bodies.len() / 2);
    for (spool, part) in [("spool-a", first), ("spool-b", second)] {
        let args = [
            "price",
            "--log-dir",
            "s3://keel-logs/log",
            "--log-spool",
            spool,
        ];
        let serving = support::Serving::start_with_env(d, &args, &env);
        for body in part {
            let (status, _, answer) =
                support::post_json(&serving.addr, "/invocations", body.as_bytes());
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        }
        // And one request each replica refuses (text for a number): logged under errors/.
        let bad = br#"{"dataframe_split": {"columns": ["x1", "x2", "colour"], "data": [["oops", 0.5, "red"]]}}"#;
        assert_eq!(
            support::post_json(&serving.addr, "/invocations", bad).0,
            400
        );
        // A graceful stop finishes the files and ships them.
        assert_eq!(serving.stop(), 0);
        let left: Vec<_> = support::walk(&d.join(spool))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        assert!(left.is_empty(), "not shipped: {left:?}");
    }
    let (status, listing) = support::http(
        &s3.addr,
        "GET",
        "/keel-logs?list-type=2&prefix=log/predictions/model=price/",
        b"",
    );
    let listing = String::from_utf8_lossy(&listing);
    assert_eq!(status, 200, "{listing}");
    assert!(listing.matches(".parquet</Key>").count() >= 2, "{listing}");

    // Both replicas' rows, read from the bucket, as one model's log.
    let read = |extra: &[&str]| -> serde_json::Value {
        let args = [
            &[
                "monitor",
                "report",
                "price/1",
                "--log-dir",
                "s3://keel-logs/log",
            ][..],
            extra,
            &["--json", "--no-record"],
        ]
        .concat();
        let (code, out, err) = keel_env(d, &args, &env);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(out.trim()).unwrap()
    };
    let report = read(&[]);
    assert_eq!(report["drift"]["current_rows"], 600, "{report}");
    assert!(report["log_files"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["reference"], "shop@1");
    assert_eq!(report["drift"]["dataset_drifted"], false);
    // Both replicas' refused requests were shipped too.
    assert_eq!(report["performance"]["latency"]["errors"], 2, "{report}");

    // The replicas' hourly sketches, one per replica, read from the bucket and merged: they
    // hold every row here (600 of at most 1,024 an hour), so the answer is the rows' own.
    let sketched = read(&["--sketches"]);
    assert_eq!(sketched["sampled_rows"], 600, "{sketched}");
    assert!(sketched["log_files"].as_u64().unwrap() >= 2, "{sketched}");
    let scores = |r: &serde_json::Value| -> Vec<(String, f64)> {
        r["drift"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["column"].as_str().unwrap().to_string(),
                    c["drift"]["score"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    for ((column, exact), (_, from_sketches)) in scores(&report).into_iter().zip(scores(&sketched))
    {
        assert!(
            (exact - from_sketches).abs() < 1e-9,
            "{column}: {exact} {from_sketches}"
        );
    }
}
