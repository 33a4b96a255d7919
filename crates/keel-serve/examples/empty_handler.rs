//! The floor of the serving benchmark: an axum server whose `POST /invocations` reads the body
//! and answers a constant, on the same runtime settings as `keel serve` (two worker threads).
//!
//!     cargo run --release -p keel-serve --example empty_handler -- 5058

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

async fn handler(body: Bytes) -> &'static str {
    std::hint::black_box(body);
    "{\"predictions\": []}"
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5058);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            axum::serve(listener, Router::new().route("/invocations", post(handler))).await
        })
}
