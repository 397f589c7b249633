//! Alert: tell supervisors about big changes through the channels that exist (the SDKs have
//! no "create alert" operation; workitems: .NET SDK 270.0.0, `build/docs/TaskManagementApi.md`):
//! - a Task Management workitem per over-threshold change, assigned to the agent's manager
//!   (or a queue), carrying our change id in `externalTag`: we query that tag first, so a
//!   retry or a restart never files it twice;
//! - a webhook digest per cycle (Slack-compatible `{"text": …}` by default, or JSON);
//! - always the log.
//!
//! Alert failures are retried and reported, and never undo the writes.

use super::report::{CycleReport, WEBHOOK_OK};
use super::rows::{over_threshold, PlannedChange};
use super::{CycleError, ThisRun};
use crate::config::{AlertSettings, WebhookFormat, WebhookSettings};
use crate::genesys::models::WorkitemCreate;
use crate::genesys::GenesysClient;
use crate::history::ChangeStatus;
use crate::text::{clip, redact_after_host, Printable};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Files workitems for over-threshold changes (applied or held), for changes held for
/// review, and for applied changes that move an agent into or out of a skill group; logs
/// every one.
pub(super) async fn alert_supervisors(
    run: &ThisRun<'_>,
    alerts: &AlertSettings,
    managers: &HashMap<String, Arc<str>>,
    rows: &[PlannedChange],
    report: &mut CycleReport,
) -> Result<(), CycleError> {
    let items: Vec<AlertItem> = rows
        .iter()
        .filter(|r| matches!(r.record.status, ChangeStatus::Applied | ChangeStatus::Held))
        .filter(|r| {
            r.record.status == ChangeStatus::Held
                || r.crossing.is_some()
                || over_threshold(alerts, r.record.before, r.record.target)
        })
        .map(|row| (row, &row.record))
        .map(|(row, r)| AlertItem {
            change_id: r.change_id.clone(),
            agent_id: r.agent_id.clone(),
            agent_name: r.agent_name.clone(),
            manager_id: managers.get(&r.agent_id).map(|m| m.to_string()),
            skill_name: r.skill_name.clone(),
            current: r.before,
            target: r.target.unwrap_or(r.after),
            proposed: r.after,
            held_for_review: r.status == ChangeStatus::Held,
            explanation: r.reason.clone(),
            crossing: row.crossing.clone(),
        })
        .collect();
    let over = |r: &AlertItem| over_threshold(alerts, r.current, Some(r.target));
    report.alerts.over_threshold = items.iter().filter(|i| over(i)).count();
    report.alerts.skill_group_crossings = items.iter().filter(|i| !over(i)).count();
    for item in &items {
        match &item.crossing {
            Some(crossing) => {
                tracing::warn!(agent = %Printable(&item.agent_name), skill = %Printable(&item.skill_name), current = item.current, proposed = item.proposed, held = item.held_for_review, crossing = %Printable(crossing), "skill-group crossing")
            }
            None => {
                tracing::info!(agent = %Printable(&item.agent_name), skill = %Printable(&item.skill_name), current = item.current, target = item.target, proposed = item.proposed, held = item.held_for_review, "over-threshold change")
            }
        }
    }
    if !alerts.workitem.enabled {
        return Ok(());
    }
    let mut recorded = Vec::with_capacity(items.len());
    for (change_id, filed) in file_workitems(run.client, alerts, &items, run.now).await {
        let workitem = match filed {
            Filed::Created(id) => {
                report.alerts.workitems_created += 1;
                id
            }
            Filed::AlreadyThere(id) => {
                report.alerts.workitems_existing += 1;
                id
            }
            Filed::Failed(_) => {
                report.alerts.workitems_failed += 1;
                continue;
            }
        };
        recorded.push((change_id, workitem));
    }
    run.ledger.set_workitems(run.run_id, &recorded)?;
    Ok(())
}

/// Posts the webhook digest through the API client's HTTP client: the same proxy and trust.
pub(super) async fn send_digest(
    client: &GenesysClient,
    hook: &WebhookSettings,
    report: &mut CycleReport,
) {
    if !hook.enabled {
        return;
    }
    let body = digest_body(hook.format, report);
    report.alerts.webhook = Some(match post_webhook(client.http(), &hook.url, &body).await {
        Ok(()) => WEBHOOK_OK.into(),
        Err(e) => {
            tracing::warn!(error = %e, "webhook digest failed");
            e.to_string()
        }
    });
}

/// One over-threshold change to tell a supervisor about.
#[derive(Debug, Clone, Serialize)]
pub struct AlertItem {
    pub change_id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub manager_id: Option<String>,
    pub skill_name: String,
    pub current: f64,
    pub target: f64,
    /// What was (or, held for review, would be) written.
    pub proposed: f64,
    pub held_for_review: bool,
    pub explanation: String,
    /// The skill-group crossings the change is part of (it moves the agent into or out of a
    /// group, and so its queues).
    pub crossing: Option<String>,
}

/// What filing one workitem came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Filed {
    Created(String),
    /// Found by `externalTag`: filed by an earlier attempt or run.
    AlreadyThere(String),
    Failed(String),
}

fn workitem_body(
    settings: &AlertSettings,
    item: &AlertItem,
    now: chrono::DateTime<chrono::Utc>,
) -> WorkitemCreate {
    let w = &settings.workitem;
    let verb = if item.held_for_review {
        "Approve"
    } else {
        "Review"
    };
    let name = format!(
        "{verb} skill change: {} / {} {:.2} → {:.2}",
        item.agent_name, item.skill_name, item.current, item.proposed
    );
    let crossing = item
        .crossing
        .as_ref()
        .map(|c| format!(" Skill groups: the agent {c}."))
        .unwrap_or_default();
    let description = if item.held_for_review {
        format!(
            "skill-tuner proposes {:.2} → {:.2} (target {:.2}, threshold {:.2}); NOT applied until this workitem is closed as approved.{crossing} Why: {}",
            item.current, item.proposed, item.target, settings.threshold, item.explanation
        )
    } else {
        format!(
            "skill-tuner changed {:.2} → {:.2} (target {:.2} is {:.2} away, threshold {:.2}).{crossing} Why: {}",
            item.current, item.proposed, item.target, (item.target - item.current).abs(), settings.threshold, item.explanation
        )
    };
    let assignee = if w.assign_to_manager {
        item.manager_id.clone()
    } else {
        None
    };
    let queue = if assignee.is_none() {
        w.queue_id.clone()
    } else {
        None
    };
    let due = now + chrono::Duration::days(i64::from(w.due_in_days));
    WorkitemCreate {
        name: clip(&name, 256),
        type_id: w.worktype_id.clone(),
        description: Some(clip(&description, 512)),
        assignee_id: assignee,
        queue_id: queue,
        priority: Some(w.priority),
        date_due: Some(due.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        external_tag: Some(item.change_id.clone()),
        custom_fields: None,
    }
}

/// Files one workitem per item, skipping those whose `externalTag` already exists; due
/// dates count from `now`.
pub async fn file_workitems(
    client: &GenesysClient,
    settings: &AlertSettings,
    items: &[AlertItem],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(String, Filed)> {
    if items.is_empty() {
        return Vec::new();
    }
    let tags: Vec<String> = items.iter().map(|i| i.change_id.clone()).collect();
    let existing: HashMap<String, String> = match client
        .workitems_by_external_tag(&settings.workitem.worktype_id, &tags)
        .await
    {
        Ok(found) => found
            .into_iter()
            .filter_map(|w| w.external_tag.map(|t| (t, w.id)))
            .collect(),
        Err(e) => {
            // Without the check we could file twice; report instead.
            let reason = format!("cannot check for existing workitems: {e}");
            return items
                .iter()
                .map(|i| (i.change_id.clone(), Filed::Failed(reason.clone())))
                .collect();
        }
    };
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        if let Some(id) = existing.get(&item.change_id) {
            results.push((item.change_id.clone(), Filed::AlreadyThere(id.clone())));
            continue;
        }
        let body = workitem_body(settings, item, now);
        let filed = match client.create_workitem(&body).await {
            Ok(w) => Filed::Created(w.id),
            Err(first) => {
                // The create may have landed before the error: look before trying again.
                match client
                    .workitems_by_external_tag(
                        &settings.workitem.worktype_id,
                        std::slice::from_ref(&item.change_id),
                    )
                    .await
                {
                    Ok(found) if !found.is_empty() => Filed::AlreadyThere(found[0].id.clone()),
                    Ok(_) if first.status().is_none_or(|s| s >= 500 || s == 429) => {
                        match client.create_workitem(&body).await {
                            Ok(w) => Filed::Created(w.id),
                            Err(e) => Filed::Failed(e.to_string()),
                        }
                    }
                    _ => Filed::Failed(first.to_string()),
                }
            }
        };
        match &filed {
            Filed::Created(id) => {
                tracing::info!(change = %item.change_id, workitem = %id, agent = %Printable(&item.agent_name), skill = %Printable(&item.skill_name), "filed a review workitem")
            }
            Filed::AlreadyThere(id) => {
                tracing::debug!(change = %item.change_id, workitem = %id, "review workitem already filed")
            }
            Filed::Failed(e) => {
                tracing::warn!(change = %item.change_id, error = %e, "could not file a review workitem")
            }
        }
        results.push((item.change_id.clone(), filed));
    }
    results
}

/// The digest as the configured format wants it.
///
/// The whole report is rendered only when the JSON format asks for it: at 100 000 agents it
/// is large.
pub(crate) fn digest_body(format: WebhookFormat, report: &CycleReport) -> serde_json::Value {
    match format {
        WebhookFormat::Slack => serde_json::json!({ "text": report.digest_text() }),
        WebhookFormat::Json => serde_json::to_value(report).unwrap_or_default(),
    }
}

/// Why the webhook digest did not arrive. It names the webhook by scheme and host only: a
/// Slack webhook's path is its credential, and the text reaches logs and reports.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    #[error("webhook {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("webhook {url}: {source}")]
    Send {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Posts the digest with `http` (the API client's, so it leaves through the same proxy),
/// retrying 5xx, 429 and connection errors a few times. The last error is returned when it
/// finally failed (reported, never fatal).
pub(crate) async fn post_webhook(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<(), WebhookError> {
    let shown = redact_after_host(url);
    let mut attempt = 0u32;
    loop {
        let sent = http
            .post(url)
            .timeout(Duration::from_secs(10))
            .json(body)
            .send()
            .await;
        let (error, retry) = match sent {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                let error = WebhookError::Status {
                    url: shown.clone(),
                    status: status.as_u16(),
                };
                (error, status.is_server_error() || status.as_u16() == 429)
            }
            Err(e) => {
                let error = WebhookError::Send {
                    url: shown.clone(),
                    source: e.without_url(),
                };
                (error, true)
            }
        };
        attempt += 1;
        if !retry || attempt == 3 {
            return Err(error);
        }
        tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_webhook_is_named_by_its_host_only() {
        let url = "http://user:PASSWORD@127.0.0.1:1/services/T000/B000/XXXXSECRET";
        let err = post_webhook(
            &reqwest::Client::new(),
            url,
            &serde_json::json!({"text": "t"}),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("http://127.0.0.1:1/…"), "{err}");
        assert!(
            !err.contains("PASSWORD") && !err.contains("XXXXSECRET"),
            "{err}"
        );
    }
}
