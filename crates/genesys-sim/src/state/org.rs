//! The synthetic organisation: divisions, skills, users, queues, groups.
//!
//! Per-user data is kept compact (a UUID, a few small integers and the held skills) because the
//! simulator must hold 100 000 agents; names and e-mails are re-derived from the index.
//! The only mutable part is each user's skill list and version, behind one `RwLock`. When a
//! closed-loop twin runs, every change to it is also written to a time-stamped [`Journal`], so
//! the twin replays proficiencies in the order and at the instants they were set.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use skill_tuner_clock::Clock;
use uuid::Uuid;

use crate::data::rng::{domain, uuid_for, Rng};
use crate::state::skillgroups::{ProficiencyMatch, SkillGroup};

const SKILL_NAMES: [&str; 6] = [
    "Billing",
    "Sales",
    "Technical Support",
    "Retention",
    "Spanish",
    "Claims",
];
const FIRST_NAMES: [&str; 24] = [
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera",
    "Wen", "Yusuf",
];
const LAST_NAMES: [&str; 20] = [
    "Anders", "Brown", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka",
    "Weber",
];
pub(crate) const DIVISION_NAMES: [&str; 2] = ["Home", "Europe"];
pub(crate) const GROUP_NAMES: [&str; 2] = ["Team North", "Team South"];
/// How many agents one supervisor manages (sim choice).
const TEAM_SIZE: usize = 12;

/// What kind of user this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Agent,
    Supervisor,
}

/// Immutable facts about a user.
#[derive(Debug, Clone)]
pub(crate) struct UserInfo {
    pub(crate) id: Uuid,
    pub(crate) role: Role,
    pub(crate) active: bool,
    pub(crate) division: u8,
    pub(crate) manager: Option<u32>,
    /// Index into [`GROUP_NAMES`] for agents.
    pub(crate) group: Option<u8>,
    /// Skills held at generation time: the pairs that have conversation data.
    pub(crate) original_skills: Box<[u16]>,
}

/// The mutable part of a user.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserSkills {
    pub(crate) version: u32,
    pub(crate) skills: Vec<(u16, f64)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Skill {
    pub(crate) id: Uuid,
    pub(crate) name: String,
}

/// A queue's `skillEvaluationMethod`: how routing uses skills (the SDK's `Queue` enum).
///
/// - `Best` ("best available skills"): among the (up to) 100 longest-idle eligible agents,
///   the one with the highest proficiency on the requested skill; ties go to the longest idle.
/// - `All` ("all skills matching"): the longest-idle agent who holds every requested skill;
///   proficiency is not looked at.
/// - `None` ("disregard skills, next agent"): the longest-idle member of the queue, whether
///   or not they hold the requested skill. Members hold their queue's skills when the org is
///   generated, so until a skill is taken away this is "longest idle among the skilled".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvalMethod {
    None,
    Best,
    All,
}

impl EvalMethod {
    /// The value of `Queue.skillEvaluationMethod`.
    pub fn as_api(self) -> &'static str {
        match self {
            EvalMethod::None => "NONE",
            EvalMethod::Best => "BEST",
            EvalMethod::All => "ALL",
        }
    }

    /// Whether proficiency changes who gets an interaction on such a queue.
    pub fn uses_proficiency(self) -> bool {
        self == EvalMethod::Best
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) division: u8,
    pub(crate) method: EvalMethod,
    /// The skills interactions on this queue request (an Architect flow sets one per
    /// interaction). The open-loop org's queues request the one skill they are named after.
    pub(crate) skills: Vec<u16>,
    /// Active agents who are members, in roster order (fixed at generation).
    pub(crate) members: Vec<u32>,
}

/// One change to a user's skills, stamped with the simulator's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SkillChange {
    /// Milliseconds since the Unix epoch.
    pub(crate) at_ms: i64,
    pub(crate) user: u32,
    pub(crate) skill: u16,
    /// The new proficiency; `None`: the skill was taken away.
    pub(crate) value: Option<f64>,
}

/// Every skill change since the twin last looked, in the order they were made.
#[derive(Debug)]
pub(crate) struct Journal {
    clock: Clock,
    entries: Mutex<Vec<SkillChange>>,
}

impl Journal {
    pub(crate) fn new(clock: Clock) -> Self {
        Journal {
            clock,
            entries: Mutex::new(Vec::new()),
        }
    }

    /// Removes and returns the changes stamped before `before_ms`, in time order (writes
    /// made at the same instant keep the order they were made in).
    pub(crate) fn take_before(&self, before_ms: i64) -> Vec<SkillChange> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (mut due, keep): (Vec<_>, Vec<_>) =
            entries.drain(..).partition(|c| c.at_ms < before_ms);
        *entries = keep;
        due.sort_by_key(|c| c.at_ms);
        due
    }

    fn record(&self, user: u32, changes: impl Iterator<Item = (u16, Option<f64>)>) {
        let at_ms = self.clock.now().timestamp_millis();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.extend(changes.map(|(skill, value)| SkillChange {
            at_ms,
            user,
            skill,
            value,
        }));
    }
}

/// The whole org.
#[derive(Debug)]
pub(crate) struct Org {
    pub(crate) seed: u64,
    pub(crate) skills: Vec<Skill>,
    pub(crate) divisions: Vec<Uuid>,
    pub(crate) users: Vec<UserInfo>,
    pub(crate) queues: Vec<Queue>,
    pub(crate) groups: Vec<Uuid>,
    /// Skill (expression) groups; none in a twin unless a test creates them.
    skill_groups: RwLock<Vec<SkillGroup>>,
    user_index: HashMap<Uuid, u32>,
    skill_index: HashMap<Uuid, u16>,
    state: RwLock<Vec<UserSkills>>,
    /// Names an admin changed (tests): user index → name.
    renamed: RwLock<HashMap<u32, String>>,
    /// Set when a twin replays skill changes.
    pub(crate) journal: Option<Journal>,
}

/// How many supervisors an org of `agents` active agents has: they come first in the
/// roster, so agent `a` (active ones first, then the inactive) is user `supervisors + a`.
pub(crate) fn supervisor_count(agents: usize) -> usize {
    agents.div_ceil(TEAM_SIZE)
}

/// How many inactive agents (who still hold skills) an org of `agents` active agents has.
pub(crate) fn inactive_count(agents: usize) -> usize {
    if agents == 0 {
        0
    } else {
        (agents / 50).max(2)
    }
}

/// The skill catalogue of an org.
pub(crate) fn catalogue(seed: u64, skills: usize) -> Vec<Skill> {
    (0..skills)
        .map(|i| Skill {
            id: uuid_for(seed, domain::SKILL, i as u64),
            name: skill_name(i),
        })
        .collect()
}

fn skill_name(i: usize) -> String {
    SKILL_NAMES
        .get(i)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("Skill {:02}", i + 1))
}

/// A starting proficiency as a person would have set it: mostly whole or half numbers, and
/// mostly in line with the agent's ability — but about a fifth are stale (set long ago, or
/// by guesswork), which is what skill-tuner exists to find.
fn initial_proficiency(r: &mut Rng, ability: f64) -> f64 {
    let spread = if r.unit() < 0.2 { 1.5 } else { 0.25 };
    let raw = (2.4 + 1.1 * ability + spread * r.normal()).clamp(0.0, 5.0);
    as_set_by_hand(r, raw)
}

/// A proficiency as a person types it: mostly whole stars (65 %), else halves (25 %), else
/// two decimals.
pub(crate) fn as_set_by_hand(r: &mut Rng, raw: f64) -> f64 {
    let roll = r.unit();
    if roll < 0.65 {
        raw.round()
    } else if roll < 0.9 {
        (raw * 2.0).round() / 2.0
    } else {
        (raw * 100.0).round() / 100.0
    }
}

impl Org {
    /// Builds the open-loop org for `agents` active agents holding skills from a catalogue of
    /// `skills`; its queues are named after the first three skills and use BEST.
    pub(crate) fn generate(seed: u64, agents: usize, skills: usize) -> Org {
        let max_held = skills.min(5) as u64;
        let mut org = Org::assemble(seed, agents, catalogue(seed, skills), |index, _, r| {
            let agent = crate::data::synth::agent_traits(seed, index);
            let held = if max_held == 0 {
                0
            } else {
                1 + r.below(max_held)
            };
            let mut chosen: Vec<u16> = Vec::new();
            while (chosen.len() as u64) < held {
                // Earlier skills are more common, like a real catalogue.
                let s = (r.unit().powf(1.6) * skills as f64) as u16;
                if !chosen.contains(&s) {
                    chosen.push(s);
                }
            }
            chosen
                .iter()
                .map(|&s| {
                    let pair = crate::data::synth::pair_traits(seed, index, s, &agent);
                    (s, initial_proficiency(r, pair.ability))
                })
                .collect()
        });
        org.queues = (0..skills.min(3))
            .map(|i| {
                let skill = i as u16;
                Queue {
                    id: uuid_for(seed, domain::QUEUE, i as u64),
                    name: org.skills[i].name.clone(),
                    division: 0,
                    method: EvalMethod::Best,
                    skills: vec![skill],
                    members: (0..org.users.len() as u32)
                        .filter(|&u| {
                            org.is_active_agent(u)
                                && org.users[u as usize].original_skills.contains(&skill)
                        })
                        .collect(),
                }
            })
            .collect();
        org.skill_groups = RwLock::new(crate::state::skillgroups::default_groups(
            seed,
            &org.skills,
            &org.queues,
        ));
        org
    }

    /// The roster every org shares: supervisors, then `agents` active agents, then the
    /// inactive ones, in teams, divisions and groups. `hold(user index, agent number, rng)`
    /// says which skills an agent holds, with their starting proficiencies. Queues are left
    /// to the caller.
    pub(crate) fn assemble(
        seed: u64,
        agents: usize,
        skill_list: Vec<Skill>,
        mut hold: impl FnMut(u32, usize, &mut Rng) -> Vec<(u16, f64)>,
    ) -> Org {
        let divisions = (0..DIVISION_NAMES.len())
            .map(|i| uuid_for(seed, domain::DIVISION, i as u64))
            .collect();
        let supervisors = supervisor_count(agents);
        let inactive = inactive_count(agents);
        let total = supervisors + agents + inactive;
        let mut users = Vec::with_capacity(total);
        let mut state = Vec::with_capacity(total);
        for s in 0..supervisors {
            users.push(UserInfo {
                id: uuid_for(seed, domain::USER, users.len() as u64),
                role: Role::Supervisor,
                active: true,
                division: (s % 2) as u8,
                manager: None,
                group: None,
                original_skills: Box::new([]),
            });
            state.push(UserSkills {
                version: 1,
                skills: Vec::new(),
            });
        }
        for a in 0..agents + inactive {
            let index = users.len() as u32;
            let team = a % agents.max(1) / TEAM_SIZE;
            let mut r = Rng::keyed(&[seed, domain::ROSTER, index as u64]);
            let held_skills = hold(index, a, &mut r);
            users.push(UserInfo {
                id: uuid_for(seed, domain::USER, index as u64),
                role: Role::Agent,
                active: a < agents,
                division: (team % 2) as u8,
                manager: (supervisors > 0).then_some((team % supervisors.max(1)) as u32),
                group: Some((team % 2) as u8),
                original_skills: held_skills.iter().map(|(s, _)| *s).collect(),
            });
            state.push(UserSkills {
                version: 1 + r.below(5) as u32,
                skills: held_skills,
            });
        }
        let groups = (0..GROUP_NAMES.len())
            .map(|i| uuid_for(seed, domain::GROUP, i as u64))
            .collect();
        let user_index = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id, i as u32))
            .collect();
        let skill_index = skill_list
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id, i as u16))
            .collect();
        Org {
            seed,
            skills: skill_list,
            divisions,
            users,
            queues: Vec::new(),
            groups,
            skill_groups: RwLock::default(),
            user_index,
            skill_index,
            state: RwLock::new(state),
            renamed: RwLock::default(),
            journal: None,
        }
    }

    /// Resolves a user id string (any UUID spelling); `None` if unknown or malformed.
    pub(crate) fn user_by_id(&self, id: &str) -> Option<u32> {
        let uuid = Uuid::parse_str(id).ok()?;
        self.user_index.get(&uuid).copied()
    }

    pub(crate) fn skill_by_id(&self, id: &str) -> Option<u16> {
        let uuid = Uuid::parse_str(id).ok()?;
        self.skill_index.get(&uuid).copied()
    }

    pub(crate) fn queue_by_id(&self, id: &str) -> Option<usize> {
        let uuid = Uuid::parse_str(id).ok()?;
        self.queues.iter().position(|q| q.id == uuid)
    }

    /// The skill groups (a snapshot: a test may add one while a request runs).
    pub(crate) fn skill_groups(&self) -> Vec<SkillGroup> {
        self.skill_groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_skill_groups(&self, groups: Vec<SkillGroup>) {
        *self.skill_groups.write().unwrap_or_else(|e| e.into_inner()) = groups;
    }

    pub(crate) fn add_skill_group(&self, group: SkillGroup) {
        self.skill_groups
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(group);
    }

    /// The active agents in `group` now, in roster order: membership follows the
    /// proficiencies in force at this moment.
    pub(crate) fn skill_group_members(&self, group: &SkillGroup, m: ProficiencyMatch) -> Vec<u32> {
        let state = self.read_state();
        (0..self.users.len() as u32)
            .filter(|&i| {
                self.is_active_agent(i)
                    && state
                        .get(i as usize)
                        .is_some_and(|u| group.admits(&u.skills, m))
            })
            .collect()
    }

    pub(crate) fn group_by_id(&self, id: &str) -> Option<u8> {
        let uuid = Uuid::parse_str(id).ok()?;
        self.groups.iter().position(|g| *g == uuid).map(|g| g as u8)
    }

    /// "First Last", derived from the index, unless an admin renamed the user.
    pub(crate) fn user_name(&self, index: u32) -> String {
        if let Some(name) = self
            .renamed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
        {
            return name.clone();
        }
        self.generated_name(index)
    }

    fn generated_name(&self, index: u32) -> String {
        let mut r = Rng::keyed(&[self.seed, domain::USER, index as u64, 77]);
        let first = FIRST_NAMES[r.below(FIRST_NAMES.len() as u64) as usize];
        let last = LAST_NAMES[r.below(LAST_NAMES.len() as u64) as usize];
        format!("{first} {last}")
    }

    /// An admin renames a user (any text: the org does not restrict it).
    pub(crate) fn rename_user(&self, index: u32, name: String) {
        self.renamed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(index, name);
    }

    /// A unique e-mail (the index disambiguates repeated names).
    pub(crate) fn user_email(&self, index: u32) -> String {
        let name = self.generated_name(index).to_lowercase().replace(' ', ".");
        format!("{name}.{index}@example.com")
    }

    /// Active agents: users that hold skills and are not inactive.
    pub(crate) fn is_active_agent(&self, index: u32) -> bool {
        let u = &self.users[index as usize];
        u.role == Role::Agent && u.active
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, Vec<UserSkills>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, Vec<UserSkills>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Current skills of a user (clone, so no lock is held by callers).
    pub(crate) fn user_skills(&self, index: u32) -> UserSkills {
        self.read_state()
            .get(index as usize)
            .cloned()
            .unwrap_or_default()
    }

    /// Upserts skills; bumps the version if anything changed.
    pub(crate) fn upsert_skills(&self, index: u32, changes: &[(u16, f64)]) {
        let mut state = self.write_state();
        let Some(user) = state.get_mut(index as usize) else {
            return;
        };
        let mut changed = false;
        for &(skill, prof) in changes {
            match user.skills.iter_mut().find(|(s, _)| *s == skill) {
                Some(slot) => {
                    if slot.1 != prof {
                        slot.1 = prof;
                        changed = true;
                    }
                }
                None => {
                    user.skills.push((skill, prof));
                    changed = true;
                }
            }
        }
        if changed {
            user.version += 1;
        }
        if let Some(journal) = &self.journal {
            journal.record(index, changes.iter().map(|&(s, p)| (s, Some(p))));
        }
    }

    /// Replaces all skills (the semantics of `PUT .../routingskills/bulk`).
    pub(crate) fn replace_skills(&self, index: u32, skills: Vec<(u16, f64)>) {
        let mut state = self.write_state();
        if let Some(user) = state.get_mut(index as usize) {
            if let Some(journal) = &self.journal {
                let removed = user
                    .skills
                    .iter()
                    .filter(|(s, _)| !skills.iter().any(|(k, _)| k == s))
                    .map(|&(s, _)| (s, None));
                let set = skills.iter().map(|&(s, p)| (s, Some(p)));
                journal.record(index, removed.chain(set));
            }
            user.skills = skills;
            user.version += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_org_has_expected_shape() {
        let org = Org::generate(42, 300, 6);
        let agents: Vec<u32> = (0..org.users.len() as u32)
            .filter(|&i| org.is_active_agent(i))
            .collect();
        assert_eq!(agents.len(), 300);
        assert_eq!(org.skills[2].name, "Technical Support");
        let state = org.read_state();
        for &a in &agents {
            let held = &state[a as usize].skills;
            assert!((1..=5).contains(&held.len()));
            assert!(held.iter().all(|(_, p)| (0.0..=5.0).contains(p)));
            assert!(org.users[a as usize].manager.is_some());
        }
        assert!(org.users.iter().any(|u| !u.active));
        assert_eq!(Org::generate(42, 10, 9).skills[7].name, "Skill 08");
        for q in &org.queues {
            assert_eq!(q.method, EvalMethod::Best);
            assert!(!q.members.is_empty());
            assert!(q.members.iter().all(|&m| agents.contains(&m)
                && org.users[m as usize].original_skills.contains(&q.skills[0])));
        }
    }
}
