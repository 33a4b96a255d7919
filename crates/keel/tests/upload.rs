//! Artifacts stream: a large upload and its download run in flat server memory.

mod support;

use std::io::{Read, Write};

#[test]
fn a_large_upload_streams_in_flat_memory() {
    const SIZE: u64 = 512 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let server = support::Server::start(dir.path(), 0);
    let pid = server.child.id();
    let addr = server.url.trim_start_matches("http://").to_string();
    let before = support::rss_mib(pid);

    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(s, "PUT /api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/big.bin HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {SIZE}\r\n\r\n").unwrap();
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut peak = before;
    for i in 0..(SIZE / chunk.len() as u64) {
        s.write_all(&chunk).unwrap();
        if i.is_multiple_of(64) {
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
    let stored = dir.path().join("artifacts/0/run/artifacts/big.bin");
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), SIZE);

    // Download it back and check every byte while watching memory.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(s, "GET /api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/big.bin HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut reader = std::io::BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let mut got = 0u64;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut n_reads = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (j, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                ((got + j as u64) % (1024 * 1024) % 251) as u8,
                "byte {} differs",
                got + j as u64
            );
        }
        got += n as u64;
        n_reads += 1;
        if n_reads.is_multiple_of(256) {
            peak = peak.max(support::rss_mib(pid));
        }
    }
    assert_eq!(got, SIZE);
    println!(
        "server RSS: {before:.1} MiB before, {peak:.1} MiB peak while moving {} MiB",
        SIZE >> 20
    );
    assert!(
        peak - before < 64.0,
        "server memory grew by {:.1} MiB while streaming {} MiB",
        peak - before,
        SIZE >> 20
    );
}
