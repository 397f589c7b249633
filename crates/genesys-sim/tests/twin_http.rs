//! The simulator over HTTP: the queue listing (open-loop org and twin), and the closed loop —
//! a proficiency written with `PATCH …/routingskills/bulk` changes what analytics answers
//! for the following days.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use genesys_sim::{MethodMix, SimConfig, Simulator, TwinConfig};
use serde_json::{json, Value};
use skill_tuner_clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 exchange over a fresh connection: `(status, body)`.
async fn exchange(
    sim: &Simulator,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let addr = sim.base_url().trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

async fn token(sim: &Simulator) -> String {
    let config = SimConfig::default();
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", config.client_id, config.client_secret));
    let (status, body) = exchange(
        sim,
        "POST",
        "/oauth/token",
        &[
            ("Authorization", &format!("Basic {basic}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    v["access_token"].as_str().expect("token").to_string()
}

async fn get(sim: &Simulator, token: &str, path: &str) -> Value {
    let auth = format!("Bearer {token}");
    let (status, body) = exchange(sim, "GET", path, &[("Authorization", &auth)], "").await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

async fn post(sim: &Simulator, token: &str, method: &str, path: &str, body: &Value) -> Value {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (status, text) = exchange(sim, method, path, &headers, &body.to_string()).await;
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).expect("json")
}

fn names(listing: &Value) -> Vec<String> {
    listing["entities"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| q["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn start() -> DateTime<Utc> {
    "2027-03-01T06:00:00Z".parse().expect("instant")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_loop_org_lists_its_queues_on_best() {
    let sim = Simulator::start(SimConfig {
        clock: Clock::manual(start()),
        ..SimConfig::default()
    })
    .await
    .expect("start");
    let token = token(&sim).await;
    let all = get(&sim, &token, "/api/v2/routing/queues").await;
    assert_eq!(names(&all), ["Billing", "Sales", "Technical Support"]);
    assert_eq!(all["total"], 3);
    for q in all["entities"].as_array().into_iter().flatten() {
        assert_eq!(q["skillEvaluationMethod"], "BEST");
        let id = q["id"].as_str().unwrap_or_default();
        let members = get(
            &sim,
            &token,
            &format!("/api/v2/routing/queues/{id}/members?pageSize=100"),
        )
        .await;
        let first_page = members["entities"].as_array().map_or(0, Vec::len) as u64;
        let count = q["memberCount"].as_u64().unwrap_or(0);
        assert!(count >= first_page && count > 0, "{q}");
        assert_eq!(q["selfUri"], format!("/api/v2/routing/queues/{id}"));
    }
    let page = get(
        &sim,
        &token,
        "/api/v2/routing/queues?pageSize=2&pageNumber=2",
    )
    .await;
    assert_eq!(names(&page), ["Technical Support"]);
    assert_eq!(page["pageCount"], 2);
    assert!(page.get("nextUri").is_none() && page.get("previousUri").is_some());
    let desc = get(&sim, &token, "/api/v2/routing/queues?sortOrder=desc").await;
    assert_eq!(names(&desc), ["Technical Support", "Sales", "Billing"]);
    let named = get(&sim, &token, "/api/v2/routing/queues?name=tech*").await;
    assert_eq!(names(&named), ["Technical Support"]);
    let peers = get(&sim, &token, "/api/v2/routing/queues?hasPeer=true").await;
    assert_eq!(peers["total"], 0);
    let auth = format!("Bearer {token}");
    let (status, _) = exchange(
        &sim,
        "GET",
        "/api/v2/routing/queues?pageSize=501",
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(status, 400);
}

/// What the conversation aggregates answer per (queue, skill) for the agent, over the
/// twin's first two days.
async fn agent_rows(sim: &Simulator, token: &str, user: &str) -> Value {
    let from = start() - Duration::hours(6);
    let to = from + Duration::days(2);
    let query = json!({
        "interval": format!("{}/{}", from.to_rfc3339(), to.to_rfc3339()),
        "groupBy": ["userId", "requestedRoutingSkillId", "queueId"],
        "filter": {"type": "and", "predicates": [{"dimension": "userId", "value": user}]},
        "metrics": ["tHandle", "nTransferred"],
    });
    post(
        sim,
        token,
        "POST",
        "/api/v2/analytics/conversations/aggregates/query",
        &query,
    )
    .await
}

fn handled(rows: &Value) -> u64 {
    rows["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["data"].as_array().into_iter().flatten())
        .flat_map(|d| d["metrics"].as_array().into_iter().flatten())
        .filter(|m| m["metric"] == "tHandle")
        .map(|m| m["stats"]["count"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proficiency_written_over_http_changes_the_next_days() {
    let config = |clock: &Clock| SimConfig {
        agents: 60,
        skills: 3,
        seed: 21,
        rate_limit_per_minute: 0,
        clock: clock.clone(),
        twin: Some(TwinConfig {
            queues: 2,
            method_mix: MethodMix::all_best(),
            history_days: 0,
            multi_queue_share: 0.0,
            ..TwinConfig::default()
        }),
        ..SimConfig::default()
    };
    let (clock_a, clock_b) = (Clock::manual(start()), Clock::manual(start()));
    let a = Simulator::start(config(&clock_a)).await.expect("start");
    let b = Simulator::start(config(&clock_b)).await.expect("start");
    let (ta, tb) = (token(&a).await, token(&b).await);

    let queues = get(&b, &tb, "/api/v2/routing/queues").await;
    assert!(names(&queues).iter().all(|n| !n.is_empty()));
    let twin = b.twin().expect("twin");
    assert_eq!(twin.queues().len(), 2);
    assert!(twin.queues().iter().all(|q| q.members.len() > 10));

    // In b, a supervisor gives one agent 5 stars on everything before the first shift, and
    // every other agent of the queue 1 star: that agent answers more.
    let queue = &twin.queues()[0];
    let star = queue.members[0].clone();
    for (i, user) in queue.members.iter().enumerate() {
        let value = if i == 0 { 5.0 } else { 1.0 };
        let body: Vec<Value> = queue
            .skills
            .iter()
            .map(|(skill, _)| json!({"id": skill, "proficiency": value}))
            .collect();
        let path = format!("/api/v2/users/{user}/routingskills/bulk");
        post(&b, &tb, "PATCH", &path, &json!(body)).await;
    }
    for clock in [&clock_a, &clock_b] {
        clock.set(start() + Duration::days(2));
    }
    let (rows_a, rows_b) = (
        agent_rows(&a, &ta, &star).await,
        agent_rows(&b, &tb, &star).await,
    );
    assert!(
        handled(&rows_b) > handled(&rows_a) * 11 / 10,
        "{} vs {}",
        handled(&rows_b),
        handled(&rows_a)
    );
    for r in rows_b["results"].as_array().into_iter().flatten() {
        assert_eq!(r["group"]["queueId"], queue.id.as_str());
    }
    // The same interactions arrived in both.
    let (oa, ob) = (
        a.twin().expect("twin").outcomes(),
        b.twin().expect("twin").outcomes(),
    );
    assert_eq!(oa.len(), 2);
    for (x, y) in oa.iter().zip(&ob) {
        assert_eq!(x.total.offered, y.total.offered);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twin_configuration_out_of_range_is_refused() {
    let err = Simulator::start(SimConfig {
        twin: Some(TwinConfig {
            load: 3.0,
            ..TwinConfig::default()
        }),
        ..SimConfig::default()
    })
    .await
    .expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("load"), "{err}");
}
