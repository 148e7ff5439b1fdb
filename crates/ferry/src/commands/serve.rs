//! `ferry serve`: every streaming pipeline of the configuration at once, as a long-running
//! service with an HTTP API.
//!
//! Each pipeline runs `ferry sync`'s loop (retries, safe mode) in a task of its own, and its
//! progress events feed a shared state that the API reads:
//!
//! ```text
//!  GET  /healthz                      200 while no pipeline has failed, else 503
//!  GET  /api/pipelines                every pipeline's state (JSON)
//!  GET  /api/pipelines/{name}         one pipeline's state
//!  POST /api/pipelines/{name}/pause   commit what is in hand, stop applying (slot kept)
//!  POST /api/pipelines/{name}/resume  continue from the stored position
//!  GET  /metrics                      Prometheus text format
//! ```
//!
//! The API listens on 127.0.0.1 by default. Listening on any other address requires a
//! bearer token (`FERRY_API_TOKEN`); with a token set, every request but `/healthz` must
//! carry `Authorization: Bearer <token>`. SIGINT or SIGTERM stops every pipeline cleanly,
//! then the server.

mod state;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::watch;

use crate::config::{Config, PipelineConfig, SyncMode};
use state::{PipelineState, Shared};

/// The environment variable holding the API's bearer token.
pub const TOKEN_ENV: &str = "FERRY_API_TOKEN";

/// Serves the pipelines of `config` and the API on `listen` until SIGINT or SIGTERM.
pub async fn run(config: &Config, listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    if !listen.ip().is_loopback() && token.is_none() {
        bail!(
            "ferry serve would listen on {listen}, which other machines can reach, without a \
             token: set {TOKEN_ENV} (requests then need Authorization: Bearer <token>), or \
             listen on 127.0.0.1"
        );
    }
    let streaming: Vec<&PipelineConfig> = config
        .pipelines
        .iter()
        .filter(|p| {
            matches!(
                p.sync.mode,
                SyncMode::Incremental | SyncMode::FullAndIncremental
            )
        })
        .collect();
    if streaming.is_empty() {
        bail!("ferry serve runs pipelines with mode = \"full+incremental\" or \"incremental\"; the config has none");
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared::new(token));
    let mut tasks = Vec::new();
    for pipeline in streaming {
        let (pipeline_state, pause_rx) = shared.add(pipeline);
        tasks.push(tokio::spawn(state::run_pipeline(
            pipeline.clone(),
            pipeline_state,
            pause_rx,
            shutdown_rx.clone(),
        )));
    }
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/api/pipelines", get(list))
        .route("/api/pipelines/{name}", get(one))
        .route("/api/pipelines/{name}/pause", post(pause))
        .route("/api/pipelines/{name}/resume", post(resume))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(shared.clone(), authorize))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(%listen, pipelines = tasks.len(), "serving");
    let mut server_shutdown = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });
    super::sync::shutdown_signal().await;
    tracing::info!("stopping every pipeline, then the server");
    let _ = shutdown_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let _ = server.await;
    Ok(if shared.any_failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Compares a presented token with the configured one in time independent of where they
/// differ, so response timing does not reveal the token a byte at a time.
fn same_token(given: &str, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

async fn authorize(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let open = request.uri().path() == "/healthz";
    let allowed = match shared.token() {
        None => true,
        Some(token) => {
            open || request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| same_token(given, token))
        }
    };
    if allowed {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "a bearer token is required: Authorization: Bearer <FERRY_API_TOKEN>\n",
        )
            .into_response()
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.any_failed() {
        (StatusCode::SERVICE_UNAVAILABLE, "a pipeline has failed\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn list(State(shared): State<Arc<Shared>>) -> Json<Vec<PipelineState>> {
    Json(shared.snapshot())
}

async fn one(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match shared.snapshot().into_iter().find(|p| p.name == name) {
        Some(state) => Json(state).into_response(),
        None => not_found(&name),
    }
}

async fn pause(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    set_paused(&shared, &name, true)
}

async fn resume(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    set_paused(&shared, &name, false)
}

fn set_paused(shared: &Shared, name: &str, paused: bool) -> Response {
    if shared.set_paused(name, paused) {
        let word = if paused { "pausing" } else { "resuming" };
        (StatusCode::ACCEPTED, format!("{word} {name}\n")).into_response()
    } else {
        not_found(name)
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics(),
    )
        .into_response()
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no pipeline named {name:?}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn the_api_token_matches_only_itself() {
        assert!(same_token("s3cret-token", "s3cret-token"));
        assert!(!same_token("s3cret-tokeN", "s3cret-token"));
        assert!(!same_token("s3cret", "s3cret-token"));
        assert!(!same_token("s3cret-token-and-more", "s3cret-token"));
        assert!(!same_token("", "s3cret-token"));
    }
}
