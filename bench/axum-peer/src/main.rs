//! The health endpoint as a Rust user would write it with axum: tokio's multi-thread runtime (one
//! worker thread per CPU), keep-alive, and the same JSON body as heavy-api's `/heavy/health/`.
//! Usage: axum-peer 127.0.0.1:PORT
use std::time::{SystemTime, UNIX_EPOCH};

use axum::{routing::get, Json, Router};
use serde_json::{json, Value};

async fn health() -> Json<Value> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    Json(json!({"status": "healthy", "timestamp": now}))
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8300".to_string());
    let app = Router::new().route("/heavy/health/", get(health));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
