//! Contract tests: every client call against the embedded simulator on loopback, plus the
//! auth, retry and rate-limit behaviour the issue asks for.

use crate::common;

use common::sim::client_config_for;
use genesys_sim::{SimConfig, Simulator};
use secrecy::SecretString;
use skill_tuner::genesys::error::TransportKind;
use skill_tuner::genesys::models::{UserRoutingSkillPost, WorkitemCreate};
use skill_tuner::genesys::{
    AggregateSource, ApiError, ClientConfig, Credentials, Endpoints, GenesysClient, RetryPolicy,
};
use std::time::Duration;

async fn sim(config: SimConfig) -> Simulator {
    Simulator::start(config).await.unwrap()
}

/// A client config for `sim` that retries fast.
fn config_for(sim: &Simulator, secret: &str) -> ClientConfig {
    let mut config = client_config_for(sim, secret);
    config.retry = RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    config
}

fn client_for(sim: &Simulator) -> GenesysClient {
    GenesysClient::new(config_for(sim, &SimConfig::default().client_secret)).unwrap()
}

#[tokio::test]
async fn every_read_call_matches_the_simulator() {
    let sim = sim(SimConfig {
        agents: 1200,
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim);
    let org = sim.org();

    let limits = client.org_limits("platform.api").await.unwrap();
    assert!(limits
        .iter()
        .any(|l| l.key.as_deref() == Some("client.credentials.token.rate.per.minute")));

    // 1200 agents + supervisors: several pages of 500, fetched concurrently after page 1.
    let users = client.list_users("active", true).await.unwrap();
    let agents: Vec<_> = users
        .iter()
        .filter(|u| u.skills.as_ref().is_some_and(|s| !s.is_empty()))
        .collect();
    assert_eq!(agents.len(), org.agent_ids().len());
    let pages = sim.counters().count("GET", "/api/v2/users");
    assert_eq!(pages, (users.len() as u64).div_ceil(500));
    assert!(org
        .inactive_ids()
        .iter()
        .all(|id| users.iter().all(|u| &u.id != id)));

    let first = &org.agent_ids()[0];
    let user = client.get_user(first).await.unwrap();
    assert_eq!(user.manager.map(|m| m.id), org.manager_of(first));

    let skills = client.list_skills().await.unwrap();
    assert_eq!(skills.len(), org.skills().len());

    let held = client.user_skills(first).await.unwrap();
    let mut expected = org.user_skills(first);
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let mut got: Vec<(String, f64)> = held.into_iter().map(|s| (s.id, s.proficiency)).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, expected);

    // Queue members carry no pageCount or total: the pager follows `nextUri` page by page.
    let (queue, name) = &org.queues()[0];
    let skill = common::sim::skill_id(&sim, name);
    let mut members = client.queue_member_ids(queue).await.unwrap();
    let expected = org
        .agent_ids()
        .into_iter()
        .filter(|a| org.user_skills(a).iter().any(|(s, _)| *s == skill))
        .count();
    assert!(expected > 200, "fixture: several pages of members");
    assert_eq!(members.len(), expected);
    members.sort();
    members.dedup();
    assert_eq!(members.len(), expected);
    assert_eq!(
        sim.counters()
            .count("GET", "/api/v2/routing/queues/{id}/members"),
        expected.div_ceil(100) as u64
    );
    // Group individuals: one request, no paging parameters, everyone.
    let (group, _) = &org.groups()[0];
    let individuals = client.group_member_ids(group).await.unwrap();
    assert!(individuals.len() > 500);
    assert_eq!(
        sim.counters()
            .count("GET", "/api/v2/groups/{id}/individuals"),
        1
    );
}

/// A page of a test listing: `(entities, last page?)` for page `n` of 3 pages of 2 (the last
/// one of 1) — five entities in all.
fn test_page(n: u32, entity: fn(u32) -> String) -> (String, bool) {
    let ids: Vec<u32> = match n {
        1 => vec![1, 2],
        2 => vec![3, 4],
        3 => vec![5],
        _ => vec![],
    };
    let entities: Vec<String> = ids.into_iter().map(entity).collect();
    (format!("[{}]", entities.join(",")), n >= 3)
}

fn page_number(path: &str) -> u32 {
    path.split(['?', '&'])
        .find_map(|p| p.strip_prefix("pageNumber="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Every listing shape the client meets: `pageCount` and `total` (users, skills, a user's
/// skills), neither (queue members: follow `nextUri`), `total` and `pageSize` without
/// `pageCount`, `entities` alone (org limits, statuses), and group individuals in one
/// request without paging parameters. A server that always says "more" but sends an empty
/// page does not loop the client.
#[tokio::test]
async fn the_pager_follows_every_listing_shape() {
    let (base, server) = hostile_server(|method, path| {
        let ok = |body: String| ("200 OK".to_string(), body);
        let n = page_number(path);
        let skill = |i| format!(r#"{{"id":"s{i}","name":"Skill {i}"}}"#);
        let member = |i| format!(r#"{{"id":"m{i}","user":{{"id":"u{i}"}}}}"#);
        let own = |i| format!(r#"{{"id":"s{i}","proficiency":{i}.0}}"#);
        if path.starts_with("/oauth/token") {
            ok(r#"{"access_token":"tok","token_type":"bearer","expires_in":86400}"#.into())
        } else if path.starts_with("/api/v2/routing/skills") {
            let (entities, _) = test_page(n, skill);
            ok(format!(
                r#"{{"entities":{entities},"pageSize":2,"pageNumber":{n},"total":5,"pageCount":3}}"#
            ))
        } else if path.starts_with("/api/v2/routing/queues/by-next-uri/members") {
            let (entities, last) = test_page(n, member);
            let next = if last {
                String::new()
            } else {
                format!(r#","nextUri":"/api/v2/routing/queues/by-next-uri/members?pageSize=100&pageNumber={}""#, n + 1)
            };
            ok(format!(r#"{{"entities":{entities},"pageSize":2,"pageNumber":{n}{next}}}"#))
        } else if path.starts_with("/api/v2/routing/queues/by-total/members") {
            let (entities, _) = test_page(n, member);
            ok(format!(
                r#"{{"entities":{entities},"pageSize":2,"pageNumber":{n},"total":5}}"#
            ))
        } else if path.starts_with("/api/v2/routing/queues/always-more/members") {
            let (entities, _) = test_page(n, member);
            ok(format!(
                r#"{{"entities":{entities},"nextUri":"/api/v2/routing/queues/always-more/members?pageNumber={}"}}"#,
                n + 1
            ))
        } else if path.starts_with("/api/v2/users/u1/routingskills") {
            let (entities, _) = test_page(1, own);
            ok(format!(r#"{{"entities":{entities}}}"#))
        } else if method == "GET" && path == "/api/v2/groups/g1/individuals" {
            ok(r#"{"entities":[{"id":"u1","version":1},{"id":"u2","version":3}],"total":2}"#.into())
        } else if path.starts_with("/api/v2/organizations/limits/namespaces/platform.api") {
            ok(r#"{"entities":[{"key":"client.credentials.token.rate.per.minute","value":300}]}"#.into())
        } else {
            (
                "400 Bad Request".into(),
                format!(r#"{{"message":"unexpected {method} {path}","status":400}}"#),
            )
        }
    })
    .await;
    let endpoints = Endpoints::resolve("us-east-1", Some(&base), Some(&base), false).unwrap();
    let mut config = ClientConfig::new(
        endpoints,
        Credentials {
            client_id: "id".into(),
            client_secret: SecretString::from("s".to_string()),
        },
    );
    config.rate_limit_per_minute = 0;
    let client = GenesysClient::new(config).unwrap();
    let ids = |v: Vec<String>| v.join(",");

    let skills = client.list_skills().await.unwrap();
    assert_eq!(skills.len(), 5);
    assert_eq!(
        ids(client.queue_member_ids("by-next-uri").await.unwrap()),
        "u1,u2,u3,u4,u5"
    );
    assert_eq!(
        ids(client.queue_member_ids("by-total").await.unwrap()),
        "u1,u2,u3,u4,u5"
    );
    assert_eq!(
        ids(client.queue_member_ids("always-more").await.unwrap()),
        "u1,u2,u3,u4,u5"
    );
    assert_eq!(client.user_skills("u1").await.unwrap().len(), 2);
    assert_eq!(ids(client.group_member_ids("g1").await.unwrap()), "u1,u2");
    assert_eq!(client.org_limits("platform.api").await.unwrap().len(), 1);

    let stats = client.stats();
    assert_eq!(stats.calls_to("GET /api/v2/routing/skills"), 3);
    // 3 pages each by nextUri and by total; the endless one stops at its first empty page.
    assert_eq!(
        stats.calls_to("GET /api/v2/routing/queues/{id}/members"),
        3 + 3 + 4
    );
    assert_eq!(stats.calls_to("GET /api/v2/users/{id}/routingskills"), 1);
    assert_eq!(stats.calls_to("GET /api/v2/groups/{id}/individuals"), 1);
    server.abort();
}

#[tokio::test]
async fn analytics_queries_use_documented_shapes_and_absent_means_no_data() {
    let sim = sim(SimConfig {
        clock: skill_tuner::clock::Clock::manual(common::sim::test_now()),
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim);
    let ids: Vec<String> = sim.org().agent_ids().into_iter().take(100).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let now = sim.clock().now();
    let (start, end) = skill_tuner::cycle::collect::window(&Default::default(), now);
    let interval = skill_tuner::cycle::collect::interval_string(start, end);
    let query = skill_tuner::cycle::collect::batch_query(
        &refs,
        &interval,
        &["userId", "requestedRoutingSkillId"],
        &["tHandle", "nTransferred"],
        &[],
    );
    let response = client
        .aggregates(AggregateSource::Conversations, &query)
        .await
        .unwrap();
    assert!(!response.results.is_empty());
    for result in &response.results {
        let user = &result.group["userId"];
        let skill = &result.group["requestedRoutingSkillId"];
        let truth = sim.org().metrics_truth(user, skill, start, end).unwrap();
        let handle = result
            .data
            .iter()
            .flat_map(|d| &d.metrics)
            .find(|m| m.metric == "tHandle")
            .unwrap();
        assert_eq!(handle.stats.count, Some(truth.t_handle_count as f64));
        assert_eq!(handle.stats.sum, Some(truth.t_handle_sum_ms as f64));
        for metric in result.data.iter().flat_map(|d| &d.metrics) {
            assert!(
                metric.stats.count.unwrap_or(0.0) > 0.0,
                "zero counts must be absent"
            );
        }
    }
    let q = skill_tuner::cycle::collect::batch_query(
        &refs,
        &interval,
        &["userId"],
        &["oTotalScore"],
        &[],
    );
    client
        .aggregates(AggregateSource::Evaluations, &q)
        .await
        .unwrap();
    let q = skill_tuner::cycle::collect::batch_query(
        &refs,
        &interval,
        &["userId"],
        &["oSurveyTotalScore"],
        &[],
    );
    client
        .aggregates(AggregateSource::Surveys, &q)
        .await
        .unwrap();

    // 101 userId predicates: the simulator refuses, as the documented limit says, and a 400
    // is not retried.
    let too_many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let q =
        skill_tuner::cycle::collect::batch_query(&refs, &interval, &["userId"], &["tHandle"], &[]);
    sim.reset_counters();
    let err = client
        .aggregates(AggregateSource::Conversations, &q)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(
        sim.counters()
            .count("POST", "/api/v2/analytics/conversations/aggregates/query"),
        1
    );
}

#[tokio::test]
async fn bulk_writes_upsert_and_bad_writes_are_not_retried() {
    let sim = sim(SimConfig::default()).await;
    let client = client_for(&sim);
    let org = sim.org();
    let agent = org.agent_ids()[3].clone();
    let (skill, _) = org.user_skills(&agent)[0].clone();
    let others_before: Vec<(String, f64)> = org
        .user_skills(&agent)
        .into_iter()
        .filter(|(s, _)| s != &skill)
        .collect();

    let body = [UserRoutingSkillPost {
        id: skill.clone(),
        proficiency: 3.75,
    }];
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        serde_json::json!([{ "id": skill, "proficiency": 3.75 }])
    );
    let (after, correlation) = client.patch_user_skills(&agent, &body).await.unwrap();
    assert!(
        correlation.is_some(),
        "the correlation id is kept for the ledger"
    );
    assert!(after.iter().any(|s| s.id == skill && s.proficiency == 3.75));
    assert_eq!(org.proficiency(&agent, &skill), Some(3.75));
    let others_after: Vec<(String, f64)> = org
        .user_skills(&agent)
        .into_iter()
        .filter(|(s, _)| s != &skill)
        .collect();
    assert_eq!(
        others_before, others_after,
        "PATCH bulk is an upsert: other skills untouched"
    );

    sim.reset_counters();
    let unknown = [UserRoutingSkillPost {
        id: "no-such-skill".into(),
        proficiency: 1.0,
    }];
    let err = client
        .patch_user_skills(&agent, &unknown)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.correlation_id().is_some());
    assert_eq!(
        sim.counters()
            .count("PATCH", "/api/v2/users/{id}/routingskills/bulk"),
        1
    );

    // Out-of-range values are refused before sending anything.
    let bad = [UserRoutingSkillPost {
        id: skill.clone(),
        proficiency: 5.5,
    }];
    assert!(matches!(
        client.patch_user_skills(&agent, &bad).await,
        Err(ApiError::Invalid { .. })
    ));
    assert_eq!(
        sim.counters()
            .count("PATCH", "/api/v2/users/{id}/routingskills/bulk"),
        1
    );
    assert_eq!(
        sim.counters()
            .count("PUT", "/api/v2/users/{id}/routingskills/bulk"),
        0
    );
}

#[tokio::test]
async fn workitems_are_created_and_found_by_external_tag() {
    let sim = sim(SimConfig::default()).await;
    let client = client_for(&sim);
    let org = sim.org();
    let body = WorkitemCreate {
        name: "Review skill change: test".into(),
        type_id: org.worktype_id(),
        description: Some("why".into()),
        assignee_id: org.supervisor_ids().first().cloned(),
        queue_id: None,
        priority: Some(5),
        date_due: None,
        external_tag: Some("st-0001".into()),
        custom_fields: None,
    };
    let created = client.create_workitem(&body).await.unwrap();
    let found = client
        .workitems_by_external_tag(&org.worktype_id(), &["st-0001".into(), "st-none".into()])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, created.id);
    assert!(org.close_workitem(&created.id, true));
    let closed = client.workitem(&created.id).await.unwrap();
    assert_eq!(closed.status_category.as_deref(), Some("Closed"));
    let statuses = client.worktype_statuses(&org.worktype_id()).await.unwrap();
    assert!(statuses.iter().any(|s| s.name == "Approved"));
}

#[tokio::test]
async fn fifty_concurrent_callers_share_one_token_request() {
    let sim = sim(SimConfig::default()).await;
    let client = client_for(&sim);
    let calls = (0..50).map(|_| {
        let c = client.clone();
        tokio::spawn(async move { c.list_skills().await.map(|s| s.len()) })
    });
    for call in calls {
        assert!(call.await.unwrap().unwrap() > 0);
    }
    assert_eq!(client.stats().token_requests, 1);
    assert_eq!(sim.counters().count("POST", "/oauth/token"), 1);
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_once_and_the_call_repeated_once() {
    let sim = sim(SimConfig::default()).await;
    let client = client_for(&sim);
    client.list_skills().await.unwrap();
    sim.faults().revoke_tokens();
    client.list_skills().await.unwrap();
    let stats = client.stats();
    assert_eq!(stats.token_requests, 2);
    assert_eq!(stats.unauthorized_refreshes, 1);
    assert_eq!(stats.calls_to("GET /api/v2/routing/skills"), 3);
}

#[tokio::test]
async fn the_token_is_refreshed_before_it_expires() {
    // Tokens live 4 s; with a 300 s margin the refresher renews at half-life (2 s).
    let sim = sim(SimConfig {
        token_ttl_secs: 4,
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim);
    client.login().await.unwrap();
    client.start_token_refresher();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client.stats().token_requests < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refresh happened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Calls keep working across the refresh, and never saw a 401.
    client.list_skills().await.unwrap();
    assert_eq!(client.stats().unauthorized_refreshes, 0);
}

#[tokio::test]
async fn a_failed_login_names_the_client_and_the_reason_but_never_the_secret() {
    let sim = sim(SimConfig::default()).await;
    let client = GenesysClient::new(config_for(&sim, "wrong-secret-0123")).unwrap();
    let err = client.list_skills().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ApiError::Login { .. }), "{text}");
    assert!(
        text.contains("skill-tuner-demo") && text.contains("invalid_client"),
        "{text}"
    );
    assert!(!text.contains("wrong-secret-0123"), "{text}");
    assert!(!format!("{err:?} {client:?}").contains("wrong-secret-0123"));
    // No API call was made without a token.
    assert_eq!(sim.counters().count("GET", "/api/v2/routing/skills"), 0);
}

#[tokio::test]
async fn server_errors_and_429s_are_retried_and_counted() {
    let sim = sim(SimConfig::default()).await;
    let client = client_for(&sim);
    sim.faults().fail_next(2, 503, "/routing/skills");
    client.list_skills().await.unwrap();
    assert_eq!(client.stats().retries_server_error, 2);

    sim.faults().storm_429(2, 1);
    let started = std::time::Instant::now();
    client.list_skills().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited Retry-After twice"
    );
    assert_eq!(client.stats().retries_rate_limited, 2);
}

#[tokio::test]
async fn timeouts_are_retried_and_bounded() {
    let sim = sim(SimConfig::default()).await;
    let mut config = config_for(&sim, &SimConfig::default().client_secret);
    config.request_timeout = Duration::from_millis(200);
    config.retry.max_attempts = 3;
    let client = GenesysClient::new(config).unwrap();
    client.login().await.unwrap();
    sim.faults()
        .latency_for("/routing/skills", Duration::from_secs(2));
    let err = client.list_skills().await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(client.stats().retries_timeout, 2);
}

#[tokio::test]
async fn a_truncated_body_is_fetched_once_more() {
    let sim = sim(SimConfig::default()).await;
    let client = client_for(&sim);
    sim.faults().malformed_next(1, "/routing/skills");
    assert!(!client.list_skills().await.unwrap().is_empty());
    sim.faults().malformed_next(2, "/routing/skills");
    assert!(matches!(
        client.list_skills().await,
        Err(ApiError::Decode { .. })
    ));
}

#[tokio::test]
async fn pacing_keeps_under_the_limit_without_429s() {
    // 60/min with a burst of 5: 12 calls take at least ~7 s of pacing … too slow for a test;
    // use 600/min: 30 calls past the burst need ≈ 3 s and must never see a 429.
    let sim = sim(SimConfig {
        rate_limit_per_minute: 600,
        ..SimConfig::default()
    })
    .await;
    let mut config = config_for(&sim, &SimConfig::default().client_secret);
    config.rate_limit_per_minute = 600;
    let client = GenesysClient::new(config).unwrap();
    let agent = sim.org().agent_ids()[0].clone();
    let calls = (0..35).map(|_| {
        let c = client.clone();
        let a = agent.clone();
        tokio::spawn(async move { c.user_skills(&a).await.map(|_| ()) })
    });
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sim.counters().rate_limited(), 0);
    assert_eq!(client.stats().with_status("429"), 0);
}

/// A write whose 2xx answer is truncated landed: it is reported as done (with its
/// correlation id) and never sent again — a resend would skip the re-read that protects a
/// person's edit, and would count as a second write. Found by the fault suite.
#[tokio::test]
async fn a_write_with_a_truncated_answer_is_not_sent_again() {
    let sim = sim(SimConfig::default()).await;
    let client = client_for(&sim);
    let org = sim.org();
    let agent = org.agent_ids()[0].clone();
    let (skill, before) = org.user_skills(&agent)[0].clone();
    let value = if before < 2.5 { 4.0 } else { 1.0 };
    sim.faults()
        .malformed_next(1, &format!("{agent}/routingskills/bulk"));
    let writes = org.write_count();
    let (_, correlation) = client
        .patch_user_skills(
            &agent,
            &[UserRoutingSkillPost {
                id: skill.clone(),
                proficiency: value,
            }],
        )
        .await
        .unwrap();
    assert!(correlation.is_some());
    assert_eq!(org.write_count(), writes + 1);
    assert_eq!(org.proficiency(&agent, &skill), Some(value));
    let stats = client.stats();
    assert_eq!(stats.decode_errors, 1);
    assert_eq!(
        stats.calls_to("PATCH /api/v2/users/{id}/routingskills/bulk"),
        1
    );
}

/// A server that answers every request with what `answer(method, path)` returns (status line
/// and headers after `HTTP/1.1 `, then the body): for answers the simulator would never give.
async fn hostile_server(
    answer: fn(&str, &str) -> (String, String),
) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then as much body as Content-Length says.
                let head_end = loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let mut first = head.split_whitespace();
                let method = first.next().unwrap_or_default().to_string();
                let path = first.next().unwrap_or_default().to_string();
                let (status_and_headers, body) = answer(&method, &path);
                let response = format!(
                    "HTTP/1.1 {status_and_headers}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, task)
}

/// Numbers from the network that overflow `Instant` arithmetic (`expires_in`,
/// `inin-ratelimit-reset`, `Retry-After` on a 503, all u64::MAX) are capped or end the
/// retries: the client never panics on what a server says. Found by fuzzing the parsers.
#[tokio::test(start_paused = true)]
async fn absurd_numbers_from_the_server_do_not_panic_the_client() {
    const MAX: &str = "18446744073709551615";
    let (base, server) = hostile_server(|method, path| {
        if path.starts_with("/oauth/token") {
            (
                "200 OK".into(),
                format!(r#"{{"access_token":"tok","token_type":"bearer","expires_in":{MAX}}}"#),
            )
        } else if method == "GET" && path.starts_with("/api/v2/routing/skills") {
            (
                format!("200 OK\r\ninin-ratelimit-allowed: 300\r\ninin-ratelimit-count: 300\r\ninin-ratelimit-reset: {MAX}"),
                r#"{"entities":[{"id":"s1","name":"Billing"}],"pageCount":1}"#.into(),
            )
        } else {
            (
                format!("503 Service Unavailable\r\nretry-after: {MAX}"),
                r#"{"message":"down","status":503}"#.into(),
            )
        }
    })
    .await;
    let endpoints = Endpoints::resolve("us-east-1", Some(&base), Some(&base), false).unwrap();
    let mut config = ClientConfig::new(
        endpoints,
        Credentials {
            client_id: "id".into(),
            client_secret: SecretString::from("s".to_string()),
        },
    );
    config.rate_limit_per_minute = 300;
    let client = GenesysClient::new(config).unwrap();
    client.login().await.unwrap();
    assert_eq!(client.list_skills().await.unwrap().len(), 1);
    // The exhausted window holds the next call (capped), it does not panic.
    let err = client.user_skills("u1").await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    server.abort();
}

/// `genesys.bulk_skills_per_call` splits one agent's write into that many skills a call.
#[tokio::test]
async fn bulk_writes_are_split_by_the_configured_batch_size() {
    let sim = sim(SimConfig::default()).await;
    let mut config = config_for(&sim, &SimConfig::default().client_secret);
    config.bulk_skills_per_call = 2;
    let client = GenesysClient::new(config).unwrap();
    let org = sim.org();
    let agent = org
        .agent_ids()
        .into_iter()
        .find(|a| org.user_skills(a).len() >= 3)
        .expect("an agent with three skills");
    let skills = org.user_skills(&agent);
    let body: Vec<UserRoutingSkillPost> = skills
        .iter()
        .map(|(id, _)| UserRoutingSkillPost {
            id: id.clone(),
            proficiency: 2.5,
        })
        .collect();
    sim.reset_counters();
    client.patch_user_skills(&agent, &body).await.unwrap();
    let calls = sim
        .counters()
        .count("PATCH", "/api/v2/users/{id}/routingskills/bulk");
    assert_eq!(calls as usize, skills.len().div_ceil(2));
    assert!(skills
        .iter()
        .all(|(id, _)| org.proficiency(&agent, id) == Some(2.5)));
}
