//! `[alerts]`: who hears about large changes, and how.

use serde::{Deserialize, Serialize};

/// Supervisor notifications.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    /// Alert where |target − current| ≥ this.
    pub threshold: f64,
    /// Over-threshold changes are proposed, not applied, until their workitem is approved.
    pub hold_for_review: bool,
    pub workitem: WorkitemSettings,
    pub webhook: WebhookSettings,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            threshold: 1.0,
            hold_for_review: false,
            workitem: WorkitemSettings::default(),
            webhook: WebhookSettings::default(),
        }
    }
}

/// A Task Management workitem per over-threshold change.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkitemSettings {
    pub enabled: bool,
    /// The worktype (set up once: a workbin and a worktype).
    pub worktype_id: String,
    /// Assign to the agent's manager when known.
    pub assign_to_manager: bool,
    /// Route here when there is no manager (or instead of one).
    pub queue_id: Option<String>,
    pub priority: i64,
    pub due_in_days: u32,
    /// Status names that count as "approved" when a held change's workitem closes.
    pub approved_statuses: Vec<String>,
}

impl Default for WorkitemSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            worktype_id: String::new(),
            assign_to_manager: true,
            queue_id: None,
            priority: 5,
            due_in_days: 3,
            approved_statuses: vec!["Approved".into()],
        }
    }
}

/// Format of the per-cycle webhook digest.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookFormat {
    /// `{"text": …}`: Slack, Mattermost, Teams workflows and most chat tools accept it.
    #[default]
    Slack,
    /// The cycle report as JSON.
    Json,
}

/// One webhook digest per cycle.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    pub enabled: bool,
    pub url: String,
    pub format: WebhookFormat,
}
