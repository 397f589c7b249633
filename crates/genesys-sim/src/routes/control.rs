//! The simulator's own endpoints: the webhook sink and fault control over HTTP (for curl).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::AppState;

/// `POST /_sim/webhook`: records a Slack-compatible JSON body and answers 200 "ok"
/// (non-JSON gets 400 "invalid_payload", as Slack does).
pub(crate) async fn webhook(State(app): State<AppState>, body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            app.world
                .webhook
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(v);
            (StatusCode::OK, "ok").into_response()
        }
        Err(_) => (StatusCode::BAD_REQUEST, "invalid_payload").into_response(),
    }
}

/// One fault command, e.g. `{"action":"fail_next","n":3,"status":503,"path":"/users"}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum FaultCommand {
    FailNext {
        n: u32,
        status: u16,
        #[serde(default)]
        path: String,
    },
    Latency {
        ms: u64,
        path: Option<String>,
    },
    #[serde(rename = "storm_429")]
    Storm429 {
        n: u32,
        retry_after_secs: u64,
    },
    RevokeTokens,
    LoginDown {
        down: bool,
    },
    MalformedNext {
        n: u32,
        #[serde(default)]
        path: String,
    },
    EditOnNextRead {
        user_id: String,
        skill_id: String,
        value: f64,
    },
    EditAfterNextRead {
        user_id: String,
        skill_id: String,
        value: f64,
    },
    ConflictNextPatch {
        user_id: String,
        n: u32,
    },
    Clear,
}

/// `POST /_sim/faults`: applies one fault command.
pub(crate) async fn faults(State(app): State<AppState>, body: Bytes) -> Response {
    let cmd: FaultCommand = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": e.to_string() })),
            )
                .into_response()
        }
    };
    let f = &app.faults;
    match cmd {
        FaultCommand::FailNext { n, status, path } => f.fail_next(n, status, &path),
        FaultCommand::Latency { ms, path: None } => f.latency(Duration::from_millis(ms)),
        FaultCommand::Latency { ms, path: Some(p) } => f.latency_for(&p, Duration::from_millis(ms)),
        FaultCommand::Storm429 {
            n,
            retry_after_secs,
        } => f.storm_429(n, retry_after_secs),
        FaultCommand::RevokeTokens => f.revoke_tokens(),
        FaultCommand::LoginDown { down } => f.login_down(down),
        FaultCommand::MalformedNext { n, path } => f.malformed_next(n, &path),
        FaultCommand::EditOnNextRead {
            user_id,
            skill_id,
            value,
        } => f.edit_on_next_read(&user_id, &skill_id, value),
        FaultCommand::EditAfterNextRead {
            user_id,
            skill_id,
            value,
        } => f.edit_after_next_read(&user_id, &skill_id, value),
        FaultCommand::ConflictNextPatch { user_id, n } => f.conflict_next_patch(&user_id, n),
        FaultCommand::Clear => f.clear(),
    }
    (StatusCode::OK, Json(json!({ "ok": true }))).into_response()
}
