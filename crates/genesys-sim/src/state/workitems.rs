//! Task Management state: one worktype ("Skill change review") with statuses Open, Approved
//! and Rejected, and the workitems created against it.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::data::aggregate::iso;
use crate::data::rng::{domain, uuid_for};
use skill_tuner_clock::Clock;

pub(crate) const WORKTYPE_NAME: &str = "Skill change review";
/// (name, category); index 0 is the initial status.
pub(crate) const STATUSES: [(&str, &str); 3] = [
    ("Open", "Open"),
    ("Approved", "Closed"),
    ("Rejected", "Closed"),
];

#[derive(Debug, Clone)]
pub(crate) struct Workitem {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) priority: i64,
    pub(crate) date_created: DateTime<Utc>,
    pub(crate) date_modified: DateTime<Utc>,
    pub(crate) date_due: Option<DateTime<Utc>>,
    pub(crate) date_closed: Option<DateTime<Utc>>,
    pub(crate) status: usize,
    pub(crate) assignee: Option<Uuid>,
    pub(crate) queue: Option<Uuid>,
    pub(crate) external_tag: Option<String>,
    pub(crate) custom_fields: Option<Value>,
}

/// The worktype, its statuses and the workitems.
#[derive(Debug)]
pub(crate) struct TaskStore {
    seed: u64,
    clock: Clock,
    pub(crate) worktype_id: Uuid,
    pub(crate) status_ids: Vec<Uuid>,
    items: Mutex<Vec<Workitem>>,
}

impl TaskStore {
    pub(crate) fn new(seed: u64, clock: Clock) -> Self {
        TaskStore {
            seed,
            clock,
            worktype_id: uuid_for(seed, domain::WORKTYPE, 0),
            status_ids: (0..STATUSES.len())
                .map(|i| uuid_for(seed, domain::STATUS, i as u64))
                .collect(),
            items: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Workitem>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn status_by_id(&self, id: &str) -> Option<usize> {
        let uuid = Uuid::parse_str(id).ok()?;
        self.status_ids.iter().position(|s| *s == uuid)
    }

    /// Stores a new workitem (its id is derived from the seed and its sequence number).
    pub(crate) fn insert(&self, mut item: Workitem) -> Workitem {
        let mut items = self.lock();
        item.id = uuid_for(self.seed, domain::WORKITEM, items.len() as u64);
        items.push(item.clone());
        item
    }

    pub(crate) fn get(&self, id: &str) -> Option<Workitem> {
        let uuid = Uuid::parse_str(id).ok()?;
        self.lock().iter().find(|w| w.id == uuid).cloned()
    }

    /// Applies `f` to the workitem and returns the updated copy.
    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut Workitem)) -> Option<Workitem> {
        let uuid = Uuid::parse_str(id).ok()?;
        let mut items = self.lock();
        let item = items.iter_mut().find(|w| w.id == uuid)?;
        f(item);
        item.date_modified = self.clock.now();
        Some(item.clone())
    }

    /// Moves a workitem to `status`, stamping `dateClosed` for closed categories.
    pub(crate) fn set_status(&self, id: &str, status: usize) -> Option<Workitem> {
        let now = self.clock.now();
        self.update(id, |w| {
            w.status = status;
            w.date_closed = (STATUSES[status].1 == "Closed").then_some(now);
        })
    }

    pub(crate) fn all(&self) -> Vec<Workitem> {
        self.lock().clone()
    }

    /// The workitem as the API renders it.
    pub(crate) fn render(&self, w: &Workitem) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(w.id.to_string()));
        m.insert("name".into(), json!(w.name));
        m.insert(
            "type".into(),
            json!({
                "id": self.worktype_id.to_string(),
                "name": WORKTYPE_NAME,
                "selfUri": format!("/api/v2/taskmanagement/worktypes/{}", self.worktype_id),
            }),
        );
        if let Some(d) = &w.description {
            m.insert("description".into(), json!(d));
        }
        m.insert("priority".into(), json!(w.priority));
        m.insert("dateCreated".into(), json!(iso(w.date_created)));
        m.insert("dateModified".into(), json!(iso(w.date_modified)));
        if let Some(d) = w.date_due {
            m.insert("dateDue".into(), json!(iso(d)));
        }
        if let Some(d) = w.date_closed {
            m.insert("dateClosed".into(), json!(iso(d)));
        }
        let status_id = self.status_ids[w.status];
        m.insert(
            "status".into(),
            json!({
                "id": status_id.to_string(),
                "name": STATUSES[w.status].0,
                "selfUri": format!(
                    "/api/v2/taskmanagement/worktypes/{}/statuses/{status_id}",
                    self.worktype_id
                ),
            }),
        );
        m.insert("statusCategory".into(), json!(STATUSES[w.status].1));
        if let Some(a) = w.assignee {
            m.insert(
                "assignee".into(),
                json!({ "id": a.to_string(), "selfUri": format!("/api/v2/users/{a}") }),
            );
        }
        if let Some(q) = w.queue {
            m.insert(
                "queue".into(),
                json!({ "id": q.to_string(), "selfUri": format!("/api/v2/routing/queues/{q}") }),
            );
        }
        if let Some(t) = &w.external_tag {
            m.insert("externalTag".into(), json!(t));
        }
        if let Some(c) = &w.custom_fields {
            m.insert("customFields".into(), c.clone());
        }
        m.insert(
            "selfUri".into(),
            json!(format!("/api/v2/taskmanagement/workitems/{}", w.id)),
        );
        Value::Object(m)
    }
}
