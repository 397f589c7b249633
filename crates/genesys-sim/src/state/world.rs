//! The simulated world shared by the HTTP handlers and by tests ([`OrgHandle`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::TwinConfig;
use crate::data::aggregate::{days_with_data, pair_totals};
use crate::data::rng::{domain, uuid_for};
use crate::data::synth::{ConvMetric, Stat, CONV_METRICS};
use crate::state::org::{self, Journal, Org, Queue, Role, GROUP_NAMES};
use crate::state::workitems::TaskStore;
use crate::twin::layout::Layout;
use crate::twin::{day_of, Twin};
use skill_tuner_clock::Clock;

/// Everything mutable or generated about the simulated org.
#[derive(Debug)]
pub(crate) struct World {
    /// The simulator's "now": which days have data, workitem timestamps.
    pub(crate) clock: Clock,
    pub(crate) org: Org,
    pub(crate) tasks: TaskStore,
    pub(crate) webhook: Mutex<Vec<Value>>,
    pub(crate) writes: AtomicU64,
    /// The closed-loop twin, when configured; analytics then answers from its records.
    pub(crate) twin: Option<Twin>,
}

impl World {
    pub(crate) fn new(
        seed: u64,
        agents: usize,
        skills: usize,
        clock: Clock,
        twin: Option<&TwinConfig>,
    ) -> World {
        let (org, twin) = match twin {
            None => (Org::generate(seed, agents, skills), None),
            Some(config) => {
                let (org, twin) = twin_org(seed, agents, skills, &clock, config);
                (org, Some(twin))
            }
        };
        World {
            org,
            tasks: TaskStore::new(seed, clock.clone()),
            clock,
            webhook: Mutex::new(Vec::new()),
            writes: AtomicU64::new(0),
            twin,
        }
    }
}

/// The twin's org: the usual roster, with skills, queues and starting proficiencies from
/// the twin's layout, and a journal of skill changes for the twin to replay.
fn twin_org(
    seed: u64,
    agents: usize,
    skills: usize,
    clock: &Clock,
    config: &TwinConfig,
) -> (Org, Twin) {
    let first_day = day_of(clock.now()) - i64::from(config.history_days);
    let layout = Layout::generate(
        seed,
        agents,
        org::inactive_count(agents),
        org::supervisor_count(agents),
        skills,
        first_day,
        config,
    );
    let mut org = Org::assemble(seed, agents, org::catalogue(seed, skills), |_, a, _| {
        layout.holdings.get(a).cloned().unwrap_or_default()
    });
    org.queues = layout
        .queues
        .iter()
        .enumerate()
        .map(|(q, spec)| Queue {
            id: uuid_for(seed, domain::QUEUE, q as u64),
            name: spec.name.clone(),
            division: (q % 2) as u8,
            method: spec.method,
            skills: spec.skills.iter().map(|s| s.0).collect(),
            members: spec
                .members
                .iter()
                .map(|&a| layout.agents[a as usize].user)
                .collect(),
        })
        .collect();
    org.journal = Some(Journal::new(clock.clone()));
    let twin = Twin::new(layout, &org);
    (org, twin)
}

/// One metric's summary in [`TruthStats::metrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricStats {
    pub count: u64,
    pub sum: i64,
    pub min: i64,
    pub max: i64,
}

/// What the conversation aggregates endpoint answers for one (agent, skill) pair, computed
/// without HTTP so tests can check the client's arithmetic independently.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TruthStats {
    /// Conversations handled (`nConnected` count = `tHandle` count).
    pub n_conversations: u64,
    pub t_handle_sum_ms: i64,
    pub t_handle_count: u64,
    pub t_handle_min_ms: i64,
    pub t_handle_max_ms: i64,
    pub t_talk_sum_ms: i64,
    pub t_held_sum_ms: i64,
    pub t_held_count: u64,
    pub t_acw_sum_ms: i64,
    pub n_transferred: u64,
    pub n_blind_transferred: u64,
    pub n_consult_transferred: u64,
    pub n_outbound: u64,
    /// Every metric with data, by API name (absent = the endpoint would omit it).
    pub metrics: BTreeMap<String, MetricStats>,
}

impl TruthStats {
    fn from_day(total: &[Stat]) -> TruthStats {
        let get = |m: ConvMetric| total[m as usize];
        let metrics = CONV_METRICS
            .iter()
            .zip(total)
            .filter(|(_, s)| s.count > 0)
            .map(|((name, _), s)| {
                (
                    name.to_string(),
                    MetricStats {
                        count: s.count,
                        sum: s.sum,
                        min: s.min,
                        max: s.max,
                    },
                )
            })
            .collect();
        TruthStats {
            n_conversations: get(ConvMetric::NConnected).count,
            t_handle_sum_ms: get(ConvMetric::THandle).sum,
            t_handle_count: get(ConvMetric::THandle).count,
            t_handle_min_ms: get(ConvMetric::THandle).min,
            t_handle_max_ms: get(ConvMetric::THandle).max,
            t_talk_sum_ms: get(ConvMetric::TTalk).sum,
            t_held_sum_ms: get(ConvMetric::THeld).sum,
            t_held_count: get(ConvMetric::THeld).count,
            t_acw_sum_ms: get(ConvMetric::TAcw).sum,
            n_transferred: get(ConvMetric::NTransferred).count,
            n_blind_transferred: get(ConvMetric::NBlindTransferred).count,
            n_consult_transferred: get(ConvMetric::NConsultTransferred).count,
            n_outbound: get(ConvMetric::NOutbound).count,
            metrics,
        }
    }
}

/// Read and modify the synthetic org from tests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OrgHandle {
    world: Arc<World>,
}

impl OrgHandle {
    pub(crate) fn new(world: Arc<World>) -> Self {
        OrgHandle { world }
    }

    fn org(&self) -> &Org {
        &self.world.org
    }

    fn ids_where(&self, keep: impl Fn(u32) -> bool) -> Vec<String> {
        (0..self.org().users.len() as u32)
            .filter(|&i| keep(i))
            .map(|i| self.org().users[i as usize].id.to_string())
            .collect()
    }

    /// Active users holding skills, in roster order (inactive agents are left out).
    pub fn agent_ids(&self) -> Vec<String> {
        self.ids_where(|i| self.org().is_active_agent(i))
    }

    /// Deactivated agents (still holding skills; `state=active` must exclude them).
    pub fn inactive_ids(&self) -> Vec<String> {
        self.ids_where(|i| !self.org().users[i as usize].active)
    }

    /// Supervisors: active users without skills who manage agents.
    pub fn supervisor_ids(&self) -> Vec<String> {
        self.ids_where(|i| self.org().users[i as usize].role == Role::Supervisor)
    }

    /// The skill catalogue as (id, name).
    pub fn skills(&self) -> Vec<(String, String)> {
        self.org()
            .skills
            .iter()
            .map(|s| (s.id.to_string(), s.name.clone()))
            .collect()
    }

    /// Queues as (id, name).
    pub fn queues(&self) -> Vec<(String, String)> {
        self.org()
            .queues
            .iter()
            .map(|q| (q.id.to_string(), q.name.clone()))
            .collect()
    }

    /// Groups as (id, name).
    pub fn groups(&self) -> Vec<(String, String)> {
        self.org()
            .groups
            .iter()
            .zip(GROUP_NAMES)
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect()
    }

    /// Skill groups as (id, name), in listing order.
    pub fn skill_groups(&self) -> Vec<(String, String)> {
        self.org()
            .skill_groups()
            .iter()
            .map(|g| (g.id.to_string(), g.name.clone()))
            .collect()
    }

    /// The ids of the active agents skill group `group_id` admits now (as the members
    /// endpoint lists them, under `proficiency_match`); empty for an unknown group.
    pub fn skill_group_member_ids(
        &self,
        group_id: &str,
        proficiency_match: crate::ProficiencyMatch,
    ) -> Vec<String> {
        let Some(group) = self
            .org()
            .skill_groups()
            .into_iter()
            .find(|g| g.id.to_string().eq_ignore_ascii_case(group_id))
        else {
            return Vec::new();
        };
        self.org()
            .skill_group_members(&group, proficiency_match)
            .into_iter()
            .map(|i| self.org().users[i as usize].id.to_string())
            .collect()
    }

    /// An admin creates a skill group from a `SkillGroup` body as the API takes it (`name`,
    /// `description`, `skillConditions`), feeding the queues named in `feeds`. Returns its
    /// id, or why the body was refused.
    pub fn create_skill_group(&self, body: &Value, feeds: &[&str]) -> Result<String, String> {
        let org = self.org();
        let n = org.skill_groups().len() as u64;
        let id =
            crate::data::rng::uuid_for(org.seed ^ 0x5EED, crate::data::rng::domain::SKILL_GROUP, n);
        let queues = feeds
            .iter()
            .map(|name| {
                org.queues
                    .iter()
                    .position(|q| q.name == *name)
                    .ok_or_else(|| format!("no queue named {name}"))
            })
            .collect::<Result<_, _>>()?;
        let group = crate::state::skillgroups::SkillGroup::parse(id, body, &org.skills, queues)?;
        org.add_skill_group(group);
        Ok(id.to_string())
    }

    /// The Task Management worktype for review workitems.
    pub fn worktype_id(&self) -> String {
        self.world.tasks.worktype_id.to_string()
    }

    /// The worktype's statuses as (id, name, category).
    pub fn worktype_statuses(&self) -> Vec<(String, String, String)> {
        self.world
            .tasks
            .status_ids
            .iter()
            .zip(crate::state::workitems::STATUSES)
            .map(|(id, (n, c))| (id.to_string(), n.to_string(), c.to_string()))
            .collect()
    }

    pub fn proficiency(&self, user_id: &str, skill_id: &str) -> Option<f64> {
        let u = self.org().user_by_id(user_id)?;
        let s = self.org().skill_by_id(skill_id)?;
        self.org()
            .user_skills(u)
            .skills
            .iter()
            .find(|(k, _)| *k == s)
            .map(|(_, p)| *p)
    }

    /// The user's current skills as (skill id, proficiency).
    pub fn user_skills(&self, user_id: &str) -> Vec<(String, f64)> {
        let Some(u) = self.org().user_by_id(user_id) else {
            return Vec::new();
        };
        self.org()
            .user_skills(u)
            .skills
            .iter()
            .map(|(s, p)| (self.org().skills[*s as usize].id.to_string(), *p))
            .collect()
    }

    /// A person's edit, as through the admin UI (adds the skill if not held). Not counted in
    /// [`Self::write_count`]. Returns false for an unknown user or skill.
    pub fn set_proficiency(&self, user_id: &str, skill_id: &str, value: f64) -> bool {
        match (
            self.org().user_by_id(user_id),
            self.org().skill_by_id(skill_id),
        ) {
            (Some(u), Some(s)) => {
                self.org().upsert_skills(u, &[(s, value)]);
                true
            }
            _ => false,
        }
    }

    /// An admin renames a user, as through the admin UI (names are free text there).
    /// Returns false for an unknown user.
    pub fn set_agent_name(&self, user_id: &str, name: &str) -> bool {
        match self.org().user_by_id(user_id) {
            Some(u) => {
                self.org().rename_user(u, name.to_string());
                true
            }
            None => false,
        }
    }

    pub fn manager_of(&self, user_id: &str) -> Option<String> {
        let u = self.org().user_by_id(user_id)?;
        let m = self.org().users[u as usize].manager?;
        Some(self.org().users[m as usize].id.to_string())
    }

    /// Every workitem, rendered as the API renders it, in creation order.
    pub fn workitems(&self) -> Vec<Value> {
        let tasks = &self.world.tasks;
        tasks.all().iter().map(|w| tasks.render(w)).collect()
    }

    /// A supervisor closes a workitem (status Approved or Rejected). False if unknown.
    pub fn close_workitem(&self, workitem_id: &str, approved: bool) -> bool {
        let status = if approved { 1 } else { 2 };
        self.world.tasks.set_status(workitem_id, status).is_some()
    }

    /// JSON bodies received at `POST /_sim/webhook`, in arrival order.
    pub fn webhook_posts(&self) -> Vec<Value> {
        self.world
            .webhook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Exactly what the conversation aggregates endpoint answers now for this pair over the
    /// UTC days whose noon lies inside `[interval_start, interval_end)` (days not yet ended by
    /// the simulator's clock have no data). `None` for unknown ids, a pair the agent never held,
    /// or a pair without any data (the endpoint would omit the group).
    pub fn metrics_truth(
        &self,
        user_id: &str,
        skill_id: &str,
        interval_start: DateTime<Utc>,
        interval_end: DateTime<Utc>,
    ) -> Option<TruthStats> {
        let u = self.org().user_by_id(user_id)?;
        let s = self.org().skill_by_id(skill_id)?;
        let now = self.world.clock.now();
        let days = days_with_data(interval_start, interval_end, now);
        let total = match &self.world.twin {
            Some(twin) => twin.pair_totals(&self.world.org, now, u, s, days)?,
            None => pair_totals(self.org(), u, s, days)?,
        };
        if total.iter().all(|s| s.count == 0) {
            return None;
        }
        Some(TruthStats::from_day(&total))
    }

    /// Successful skill-write requests (bulk PATCH or PUT) answered so far.
    pub fn write_count(&self) -> u64 {
        self.world.writes.load(Ordering::SeqCst)
    }
}
