//! What one cycle knows about the org: in-scope agents with their current skills and their
//! metrics, held compactly (indices, not string keys) so that 100 000 agents fit in a few MB.

/// Whether two proficiencies are the same value. They are doubles: compared with a tolerance
/// far below any real step.
pub(crate) fn same(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// Index of an agent in [`Snapshot::agents`].
pub type AgentIx = u32;
/// Index of a skill in [`Snapshot::skills`].
pub type SkillIx = u16;
/// Index of a queue in [`Snapshot::queues`].
pub type QueueIx = u16;
/// The "queue" of conversations analytics gave no `queueId` (direct calls, transfers to a
/// person): case mix treats them as one more queue per skill.
pub const NO_QUEUE: QueueIx = QueueIx::MAX;

/// A routing skill of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    pub id: String,
    pub name: String,
}

/// Conversation metrics of one agent on one skill over the look-back window.
/// Built only from metrics the API returned: an absent metric stays `None`, never zero.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PairMetrics {
    /// `tHandle.count`: handled interactions.
    pub handled: u64,
    /// `tHandle.sum`, milliseconds.
    pub handle_ms: f64,
    /// `nTransferred.count`; `None` when the API returned no such metric for the group.
    pub transferred: Option<u64>,
}

impl PairMetrics {
    /// Average handle time in seconds.
    pub fn aht_secs(&self) -> Option<f64> {
        (self.handled > 0).then(|| self.handle_ms / self.handled as f64 / 1000.0)
    }

    /// Transferred share of handled interactions (0 transfers when the metric is absent but
    /// interactions were handled: the API omits zero counts).
    pub fn transfer_rate(&self) -> Option<f64> {
        (self.handled > 0).then(|| self.transferred.unwrap_or(0) as f64 / self.handled as f64)
    }
}

/// One agent's work on one skill in one queue (the case-mix unit), and the only place an
/// agent's conversation metrics are kept: 24 bytes, so 100 000 agents' breakdown costs a few
/// MB, and the per-skill totals are summed from it when asked for rather than stored twice.
/// Work that named no queue is a cell on [`NO_QUEUE`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueCell {
    pub skill: SkillIx,
    pub queue: QueueIx,
    /// `tHandle.count`.
    pub handled: u32,
    /// `nTransferred.count`; `None` when the API returned no such metric for the group.
    pub transferred: Option<u32>,
    /// `tHandle.sum`, milliseconds.
    pub handle_ms: f64,
}

impl QueueCell {
    /// A cell holding `pair` (counts beyond `u32` saturate: no agent handles four billion
    /// interactions in a window).
    pub fn new(skill: SkillIx, queue: QueueIx, pair: &PairMetrics) -> QueueCell {
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        QueueCell {
            skill,
            queue,
            handled: narrow(pair.handled),
            transferred: pair.transferred.map(narrow),
            handle_ms: pair.handle_ms,
        }
    }
}

/// How a queue's routing uses proficiency: the `Queue.skillEvaluationMethod` of the API.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum EvaluationMethod {
    /// Skills are disregarded: the next agent.
    #[serde(rename = "NONE")]
    None,
    /// Best available skills: proficiency ranks the free agents.
    #[serde(rename = "BEST")]
    Best,
    /// All skills matching: the skills must be held, their proficiency is not ranked.
    #[serde(rename = "ALL")]
    All,
}

impl EvaluationMethod {
    /// The API's spelling; `None` for a value the contract does not list.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "NONE" => Some(Self::None),
            "BEST" => Some(Self::Best),
            "ALL" => Some(Self::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Best => "BEST",
            Self::All => "ALL",
        }
    }
}

/// A queue seen in the listing or in analytics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub id: String,
    /// `None` for a queue analytics names but the listing does not (deleted, or another
    /// division).
    pub name: Option<String>,
    /// `None` when the listing did not say (or was not readable).
    pub method: Option<EvaluationMethod>,
}

/// A sum and count of scores (evaluations, surveys), per agent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScoreStat {
    pub count: u64,
    pub sum: f64,
}

impl ScoreStat {
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// One in-scope agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    pub name: String,
    /// Shared between the agents of one team (interned: a manager has many agents).
    pub manager_id: Option<std::sync::Arc<str>>,
    /// Skills held now, with the proficiency the plan is computed against.
    pub skills: Vec<(SkillIx, f64)>,
    /// Conversation metrics per skill and queue (only skills with data; work that named no
    /// queue on [`NO_QUEUE`]).
    pub cells: Vec<QueueCell>,
    pub quality: Option<ScoreStat>,
    pub csat: Option<ScoreStat>,
}

impl Agent {
    pub fn proficiency(&self, skill: SkillIx) -> Option<f64> {
        self.skills
            .iter()
            .find(|(s, _)| *s == skill)
            .map(|(_, p)| *p)
    }

    /// The agent's metrics on `skill`, summed over its queues; `None` without data. Transfers
    /// are `None` only when no queue's answer had the metric.
    pub fn metrics_for(&self, skill: SkillIx) -> Option<PairMetrics> {
        let mut cells = self.cells.iter().filter(|c| c.skill == skill).peekable();
        cells.peek()?;
        let mut m = PairMetrics::default();
        for c in cells {
            m.handled += u64::from(c.handled);
            m.handle_ms += c.handle_ms;
            if let Some(t) = c.transferred {
                m.transferred = Some(m.transferred.unwrap_or(0) + u64::from(t));
            }
        }
        Some(m)
    }

    /// The skills the agent has metrics on, each once, in the order analytics gave them.
    pub fn skills_with_data(&self) -> impl Iterator<Item = SkillIx> + '_ {
        self.cells
            .iter()
            .enumerate()
            .filter(|(i, c)| !self.cells[..*i].iter().any(|d| d.skill == c.skill))
            .map(|(_, c)| c.skill)
    }
}

/// The whole input of one plan.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub skills: Vec<Skill>,
    pub agents: Vec<Agent>,
    /// Skills the policy may touch (scope.skills minus scope.exclude_skills).
    pub tunable: Vec<bool>,
    /// The org's queues as listed, then any other queue analytics named.
    pub queues: Vec<Queue>,
    /// Whether the queue listing was read (`false`: no method is known).
    pub queues_listed: bool,
    /// The skill groups that feed listed queues (`Queue.memberGroups` of type `SKILLGROUP`):
    /// (queue, skill group id).
    pub queue_skill_groups: Vec<(QueueIx, String)>,
    /// ISO-8601 `start/end` of the metrics window.
    pub interval: String,
    /// Analytics queries that returned no group at all (an outage looks like this).
    pub empty_queries: usize,
    pub queries: usize,
}
