//! The twin end to end on small orgs: analytics answers are the sums of what was handled,
//! routing follows each queue's method, proficiency changes act at their instant, an oracle
//! beats a noisy static set, and the arrival stream does not depend on proficiencies.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use skill_tuner_clock::Clock;

use crate::config::{MethodMix, TwinConfig};
use crate::data::aggregate;
use crate::data::aquery::{self, Kind, QueryLimits};
use crate::state::org::EvalMethod;
use crate::state::world::World;
use crate::twin::engine::{Entry, LogEntry, PoolState};
use crate::twin::{gini, DayOutcome, Totals, TwinHandle};

/// A Monday morning, before the first shift.
fn start() -> DateTime<Utc> {
    "2027-03-01T06:00:00Z".parse().unwrap_or_default()
}

fn small(queues: usize, mix: MethodMix) -> TwinConfig {
    TwinConfig {
        queues,
        method_mix: mix,
        history_days: 0,
        evaluation_share: 0.05,
        survey_share: 0.2,
        ..TwinConfig::default()
    }
}

struct Twin {
    world: Arc<World>,
    clock: Clock,
    handle: TwinHandle,
}

fn twin(seed: u64, agents: usize, skills: usize, config: &TwinConfig) -> Twin {
    let clock = Clock::manual(start());
    let world = Arc::new(World::new(
        seed,
        agents,
        skills,
        clock.clone(),
        Some(config),
    ));
    let handle = TwinHandle::new(world.clone()).expect("a twin");
    let t = world.twin.as_ref().expect("a twin");
    let mut st = t.lock();
    st.engine.log = Some(Vec::new());
    st.engine.arrival_log = Some(Vec::new());
    drop(st);
    Twin {
        world,
        clock,
        handle,
    }
}

impl Twin {
    /// Moves the clock to 06:00 on day `d` (0 = the first day).
    fn morning(&self, d: i64) {
        self.clock.set(start() + Duration::days(d));
    }

    fn log(&self) -> Vec<LogEntry> {
        let t = self.world.twin.as_ref().expect("a twin");
        t.lock().engine.log.clone().unwrap_or_default()
    }

    fn arrivals(&self) -> Vec<(i64, u32, u32)> {
        let t = self.world.twin.as_ref().expect("a twin");
        t.lock().engine.arrival_log.clone().unwrap_or_default()
    }

    fn query(&self, kind: Kind, body: Value) -> Value {
        let limits = QueryLimits {
            max_user_predicates: 100,
            max_interval_days: 31,
        };
        let q = aquery::parse(kind, &self.world.org, limits, body.to_string().as_bytes())
            .expect("a valid query");
        serde_json::to_value(aggregate::answer(
            kind,
            &self.world,
            &q,
            self.world.clock.now(),
        ))
        .expect("an answer serializes")
    }

    /// Ids of a membership's user, skill and queue.
    fn ids(&self, m: u32) -> (String, String, String) {
        let t = self.world.twin.as_ref().expect("a twin");
        let l = &t.layout;
        let mb = l.memb[m as usize];
        let pool = l.pools[mb.pool as usize];
        let org = &self.world.org;
        (
            org.users[l.agents[mb.agent as usize].user as usize]
                .id
                .to_string(),
            org.skills[pool.skill as usize].id.to_string(),
            org.queues[pool.queue as usize].id.to_string(),
        )
    }

    fn total(&self) -> Totals {
        self.handle
            .outcomes()
            .iter()
            .fold(Totals::default(), |mut acc, o| {
                acc.add(&o.total);
                acc
            })
    }
}

fn interval(days: i64) -> String {
    let from = start() - Duration::hours(6);
    let to = from + Duration::days(days);
    format!(
        "{}/{}",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        to.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// `(count, sum, min, max)` of one metric.
type Summary = (u64, i64, i64, i64);
/// The summaries of each metric of each group, keyed by the group's JSON.
type Groups = BTreeMap<String, BTreeMap<String, Summary>>;

fn groups(answer: &Value) -> Groups {
    let mut out = BTreeMap::new();
    for r in answer["results"].as_array().into_iter().flatten() {
        let mut metrics: BTreeMap<String, Summary> = BTreeMap::new();
        for d in r["data"].as_array().into_iter().flatten() {
            for m in d["metrics"].as_array().into_iter().flatten() {
                let s = &m["stats"];
                let e = metrics
                    .entry(m["metric"].as_str().unwrap_or_default().to_string())
                    .or_insert(EMPTY);
                e.0 += s["count"].as_u64().unwrap_or(0);
                e.1 += s["sum"].as_i64().unwrap_or(0);
                e.2 = e.2.min(s["min"].as_i64().unwrap_or(i64::MAX));
                e.3 = e.3.max(s["max"].as_i64().unwrap_or(i64::MIN));
            }
        }
        out.insert(r["group"].to_string(), metrics);
    }
    out
}

fn fold(e: &mut Summary, v: i64) {
    e.0 += 1;
    e.1 += v;
    e.2 = e.2.min(v);
    e.3 = e.3.max(v);
}

const EMPTY: Summary = (0, 0, i64::MAX, i64::MIN);

#[test]
fn analytics_answers_are_the_sums_of_the_handled_interactions() {
    let t = twin(3, 90, 3, &small(3, MethodMix::default()));
    t.morning(3);
    let conv = t.query(
        Kind::Conversations,
        json!({
            "interval": interval(3),
            "groupBy": ["userId", "requestedRoutingSkillId", "queueId"],
            "metrics": ["tHandle", "tTalk", "tHeld", "tAcw", "tAlert", "tAnswered",
                        "nConnected", "nTransferred", "nBlindTransferred", "nConsultTransferred"],
        }),
    );
    let log = t.log();
    assert!(log.len() > 5_000, "{} handled", log.len());
    let mut expected: Groups = BTreeMap::new();
    for e in &log {
        let (user, skill, queue) = t.ids(e.m);
        let key =
            json!({"queueId": queue, "requestedRoutingSkillId": skill, "userId": user}).to_string();
        let g = expected.entry(key).or_default();
        let h = e.handled;
        for (name, v) in [
            ("tHandle", h.handle),
            ("tTalk", h.talk),
            ("tAcw", h.acw),
            ("tAlert", h.alert),
            ("tAnswered", h.answered),
        ] {
            fold(g.entry(name.into()).or_insert(EMPTY), i64::from(v));
        }
        if h.held > 0 {
            fold(g.entry("tHeld".into()).or_insert(EMPTY), i64::from(h.held));
        }
        let mut count = |name: &str, yes: bool| {
            if yes {
                let c = g.entry(name.into()).or_insert(EMPTY);
                c.0 += 1;
            }
        };
        count("nConnected", true);
        count("nTransferred", h.transferred);
        count("nBlindTransferred", h.transferred && h.blind);
        count("nConsultTransferred", h.transferred && !h.blind);
    }
    let answered = groups(&conv);
    assert_eq!(answered.len(), expected.len());
    for (key, metrics) in &expected {
        let got = &answered[key];
        for (name, e) in metrics {
            let g = got.get(name).copied().unwrap_or(EMPTY);
            if name.starts_with('n') {
                assert_eq!(g.0, e.0, "{key} {name}");
            } else {
                assert_eq!(g, *e, "{key} {name}");
            }
        }
        assert_eq!(
            got.len(),
            metrics.len(),
            "{key}: no metric beyond the records"
        );
    }

    // nOffered, queue side: every arrival, answered or not.
    let offered = groups(&t.query(
        Kind::Conversations,
        json!({"interval": interval(3), "groupBy": ["queueId", "requestedRoutingSkillId"],
               "metrics": ["nOffered"]}),
    ));
    let arrivals = t.arrivals();
    let l = &t.world.twin.as_ref().expect("twin").layout;
    for (p, pool) in l.pools.iter().enumerate() {
        let key = json!({
            "queueId": t.world.org.queues[pool.queue as usize].id.to_string(),
            "requestedRoutingSkillId": t.world.org.skills[pool.skill as usize].id.to_string(),
        })
        .to_string();
        let n = arrivals.iter().filter(|a| a.1 == p as u32).count() as u64;
        assert_eq!(offered[&key]["nOffered"].0, n, "{key}");
    }
    let total: Totals = t.total();
    assert_eq!(total.offered, arrivals.len() as u64);
    assert_eq!(total.answered, log.len() as u64);
    let day1 = t.handle.first_day() + Duration::days(1);
    let o = t.handle.outcome(day1).expect("an ended day");
    assert_eq!(o.date, day1);
    let n = log
        .iter()
        .filter(|e| e.day == t.handle_first_day() + 1)
        .count();
    assert_eq!(o.total.answered, n as u64);
    assert_eq!(o.work.iter().map(|&w| u64::from(w)).sum::<u64>(), n as u64);
    assert!(t.handle.outcome(day1 + Duration::days(5)).is_none());

    // The test-side truth (`OrgHandle::metrics_truth`) is the same sum, over the queues.
    let org = crate::state::world::OrgHandle::new(t.world.clone());
    let (user, skill, _) = t.ids(log[0].m);
    let truth = org
        .metrics_truth(
            &user,
            &skill,
            start() - Duration::hours(6),
            start() + Duration::days(3),
        )
        .expect("data");
    let mine: Vec<&LogEntry> = log
        .iter()
        .filter(|e| {
            let (u, s, _) = t.ids(e.m);
            u == user && s == skill
        })
        .collect();
    assert_eq!(truth.n_conversations, mine.len() as u64);
    assert_eq!(
        truth.t_handle_sum_ms,
        mine.iter()
            .map(|e| i64::from(e.handled.handle))
            .sum::<i64>()
    );

    // Evaluations per user; surveys per user and queue.
    let evals = groups(&t.query(
        Kind::Evaluations,
        json!({"interval": interval(3), "groupBy": ["userId"],
               "metrics": ["nEvaluations", "oTotalScore", "oTotalCriticalScore"]}),
    ));
    let surveys = groups(&t.query(
        Kind::Surveys,
        json!({"interval": interval(3), "groupBy": ["userId", "queueId"],
               "metrics": ["nSurveyResponses", "oSurveyTotalScore", "nSurveyNpsResponses",
                           "nSurveyNpsPromoters", "nSurveyNpsDetractors"]}),
    ));
    let mut e_exp: Groups = BTreeMap::new();
    let mut s_exp: Groups = BTreeMap::new();
    for e in &log {
        let (user, _, queue) = t.ids(e.m);
        if let Some((score, critical)) = e.handled.evaluation {
            let g = e_exp
                .entry(json!({"userId": user}).to_string())
                .or_default();
            g.entry("nEvaluations".into()).or_insert(EMPTY).0 += 1;
            fold(
                g.entry("oTotalScore".into()).or_insert(EMPTY),
                i64::from(score),
            );
            fold(
                g.entry("oTotalCriticalScore".into()).or_insert(EMPTY),
                i64::from(critical),
            );
        }
        if let Some((score, nps)) = e.handled.survey {
            let g = s_exp
                .entry(json!({"queueId": queue, "userId": user}).to_string())
                .or_default();
            g.entry("nSurveyResponses".into()).or_insert(EMPTY).0 += 1;
            fold(
                g.entry("oSurveyTotalScore".into()).or_insert(EMPTY),
                i64::from(score),
            );
            if let Some(nps) = nps {
                g.entry("nSurveyNpsResponses".into()).or_insert(EMPTY).0 += 1;
                if nps >= 9 {
                    g.entry("nSurveyNpsPromoters".into()).or_insert(EMPTY).0 += 1;
                } else if nps <= 6 {
                    g.entry("nSurveyNpsDetractors".into()).or_insert(EMPTY).0 += 1;
                }
            }
        }
    }
    assert!(!e_exp.is_empty() && !s_exp.is_empty());
    for (expected, answered) in [(&e_exp, &evals), (&s_exp, &surveys)] {
        assert_eq!(answered.len(), expected.len());
        for (key, metrics) in expected {
            for (name, e) in metrics {
                let g = answered[key].get(name).copied().unwrap_or(EMPTY);
                if name.starts_with('n') {
                    assert_eq!(g.0, e.0, "{key} {name}");
                } else {
                    assert_eq!(g, *e, "{key} {name}");
                }
            }
        }
    }

    // Daily buckets: each day's interactions land in that day.
    let daily = t.query(
        Kind::Conversations,
        json!({"interval": interval(3), "granularity": "P1D", "metrics": ["nConnected"]}),
    );
    let data = daily["results"][0]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(data.len(), 3);
    for (d, bucket) in data.iter().enumerate() {
        let n = log
            .iter()
            .filter(|e| e.day == t.handle_first_day() + d as i64);
        assert_eq!(bucket["metrics"][0]["stats"]["count"], n.count());
    }
    // Today has not ended: no data.
    let today = t.query(
        Kind::Conversations,
        json!({"interval": format!("{}/{}", (start() + Duration::days(3) - Duration::hours(6)).format("%Y-%m-%dT%H:%M:%SZ"),
                                       (start() + Duration::days(4) - Duration::hours(6)).format("%Y-%m-%dT%H:%M:%SZ")),
               "metrics": ["nConnected"]}),
    );
    assert_eq!(today["results"], json!([]));
}

impl Twin {
    fn handle_first_day(&self) -> i64 {
        self.world.twin.as_ref().map_or(0, |t| t.layout.first_day)
    }
}

/// Membership `m` of agent `m` (one membership each).
fn entry(m: u32, prof: f32) -> Entry {
    Entry {
        m,
        agent: m,
        stamp: 0,
        prof,
    }
}

#[test]
fn best_takes_the_most_proficient_of_the_longest_idle_and_ties_go_to_the_longest_idle() {
    let stamps = vec![0u32; 300];
    let mut pool = PoolState::default();
    pool.idle
        .extend([entry(0, 3.0), entry(1, 5.0), entry(2, 4.0), entry(3, 5.0)]);
    assert_eq!(pool.pick(EvalMethod::Best, &stamps), Some(1));
    // Only the first 100 eligible agents are looked at.
    let mut pool = PoolState::default();
    pool.idle.extend((0..100).map(|m| entry(m, 1.0)));
    pool.idle.push_back(entry(100, 5.0));
    assert_eq!(pool.pick(EvalMethod::Best, &stamps), Some(0));
    // Agents gone busy elsewhere (stale) and agents without the skill do not count toward
    // the 100: two of each in front, so the 101st entry is within reach again... and the
    // 103rd is not.
    let mut stamps = vec![0u32; 300];
    stamps[200] = 1;
    stamps[201] = 1;
    let mut pool = PoolState::default();
    pool.idle.extend([
        entry(0, 1.0),
        entry(200, 5.0),
        entry(202, f32::NAN),
        entry(201, 5.0),
    ]);
    pool.idle.extend((1..99).map(|m| entry(m, 1.0)));
    pool.idle.push_back(entry(150, 4.0));
    pool.idle.push_back(entry(151, 4.5));
    assert_eq!(pool.pick(EvalMethod::Best, &stamps), Some(150));
}

#[test]
fn none_and_all_take_the_longest_idle_and_all_needs_the_skill() {
    let mut stamps = vec![0u32; 10];
    stamps[0] = 1;
    let idle = [
        entry(0, 5.0),
        entry(1, f32::NAN),
        entry(2, 1.0),
        entry(3, 5.0),
    ];
    let mut none = PoolState::default();
    none.idle.extend(idle);
    assert_eq!(none.pick(EvalMethod::None, &stamps), Some(1));
    assert_eq!(none.pick(EvalMethod::None, &stamps), Some(2));
    let mut all = PoolState::default();
    all.idle.extend(idle);
    assert_eq!(all.pick(EvalMethod::All, &stamps), Some(2));
    assert_eq!(all.pick(EvalMethod::All, &stamps), Some(3));
    assert_eq!(all.pick(EvalMethod::All, &stamps), None);
}

/// Sets every held skill of every agent of the twin to `value(agent number, skill)`.
fn set_all(t: &Twin, value: impl Fn(usize, &str) -> f64) {
    let truth = t.handle.truth(t.handle.first_day());
    let mut users: Vec<&str> = truth.iter().map(|e| e.user_id.as_str()).collect();
    users.dedup();
    let values: Vec<(String, String, f64)> = truth
        .iter()
        .map(|e| {
            let a = users.iter().position(|u| *u == e.user_id).unwrap_or(0);
            (e.user_id.clone(), e.skill_id.clone(), value(a, &e.skill_id))
        })
        .collect();
    t.handle.set_proficiencies(&values).expect("set");
}

fn per_queue(outcomes: &[DayOutcome], q: usize) -> Totals {
    outcomes.iter().fold(Totals::default(), |mut acc, o| {
        acc.add(&o.per_queue[q]);
        acc
    })
}

/// On NONE and ALL queues proficiency changes nothing: with the same arrivals, the same
/// outcomes to the interaction; on BEST queues it changes who answers.
#[test]
fn only_best_queues_route_by_proficiency() {
    let config = TwinConfig {
        multi_queue_share: 0.0,
        ..small(
            3,
            MethodMix {
                best: 1.0,
                none: 1.0,
                all: 1.0,
            },
        )
    };
    let a = twin(5, 90, 3, &config);
    let b = twin(5, 90, 3, &config);
    set_all(&b, |agent, _| ((agent * 7919) % 11) as f64 / 2.0);
    for t in [&a, &b] {
        t.morning(2);
        t.handle.simulate_ended_days();
    }
    assert_eq!(a.arrivals(), b.arrivals());
    let (oa, ob) = (a.handle.outcomes(), b.handle.outcomes());
    let mut checked = Vec::new();
    for (q, info) in a.handle.queues().iter().enumerate() {
        let (x, y) = (per_queue(&oa, q), per_queue(&ob, q));
        assert_eq!(x.offered, y.offered);
        if info.method.uses_proficiency() {
            assert_ne!(x, y, "BEST queue {}", info.name);
        } else {
            assert_eq!(x, y, "{} queue {}", info.method.as_api(), info.name);
        }
        checked.push(info.method);
    }
    checked.sort_by_key(|m| m.as_api());
    assert_eq!(
        checked,
        [EvalMethod::All, EvalMethod::Best, EvalMethod::None]
    );
}

/// On a BEST queue the proficient get the work; on a NONE queue proficiency does not matter.
#[test]
fn best_gives_the_work_to_the_proficient() {
    for (mix, name) in [
        (MethodMix::all_best(), "BEST"),
        (
            MethodMix {
                best: 0.0,
                none: 1.0,
                all: 0.0,
            },
            "NONE",
        ),
    ] {
        let t = twin(
            9,
            60,
            2,
            &TwinConfig {
                multi_queue_share: 0.0,
                load: 0.8,
                ..small(1, mix)
            },
        );
        set_all(&t, |agent, _| if agent % 2 == 0 { 5.0 } else { 0.0 });
        t.morning(2);
        t.handle.simulate_ended_days();
        let work: Vec<u32> = t.handle.outcomes().iter().fold(vec![0; 60], |mut w, o| {
            w.iter_mut().zip(&o.work).for_each(|(a, b)| *a += b);
            w
        });
        let even: u32 = work.iter().step_by(2).sum();
        let odd: u32 = work.iter().skip(1).step_by(2).sum();
        let ratio = f64::from(even) / f64::from(odd);
        if name == "BEST" {
            assert!(ratio > 1.25, "{name}: {even} vs {odd}");
        } else {
            assert!((0.85..1.18).contains(&ratio), "{name}: {even} vs {odd}");
        }
    }
}

/// ALL routes only to agents who hold the requested skill; NONE disregards skills.
#[test]
fn all_needs_the_skill_and_none_disregards_it() {
    for (method, mix) in [
        (
            EvalMethod::All,
            MethodMix {
                best: 0.0,
                none: 0.0,
                all: 1.0,
            },
        ),
        (
            EvalMethod::None,
            MethodMix {
                best: 0.0,
                none: 1.0,
                all: 0.0,
            },
        ),
    ] {
        let t = twin(4, 40, 2, &small(1, mix));
        let l = &t.world.twin.as_ref().expect("twin").layout;
        // Agent 0 loses the queue's secondary skill before the day starts.
        let secondary = l.queues[0].skills[1].0;
        let user = l.agents[0].user;
        let kept: Vec<(u16, f64)> = t
            .world
            .org
            .user_skills(user)
            .skills
            .into_iter()
            .filter(|(s, _)| *s != secondary)
            .collect();
        t.world.org.replace_skills(user, kept);
        t.morning(1);
        t.handle.simulate_ended_days();
        let took = t
            .log()
            .iter()
            .filter(|e| {
                let mb = l.memb[e.m as usize];
                mb.agent == 0 && l.pools[mb.pool as usize].skill == secondary
            })
            .count();
        match method {
            EvalMethod::All => assert_eq!(took, 0),
            _ => assert!(took > 5, "{took}"),
        }
    }
}

/// A change made at noon acts from noon: the morning is the same to the interaction as
/// without it, and the agent gets more work in the afternoon.
#[test]
fn a_proficiency_change_acts_at_its_instant() {
    let config = small(1, MethodMix::all_best());
    let (a, b) = (twin(8, 40, 2, &config), twin(8, 40, 2, &config));
    let l = &a.world.twin.as_ref().expect("twin").layout;
    // The agent who starts earliest; everyone else at 3 stars, this one at 0.
    let first = (0..l.agents.len())
        .min_by_key(|&i| l.agents[i].shift.0)
        .unwrap_or(0);
    let user = a.world.org.users[l.agents[first].user as usize]
        .id
        .to_string();
    for t in [&a, &b] {
        set_all(t, |agent, _| if agent == first { 0.0 } else { 3.0 });
    }
    b.clock.set(start() + Duration::hours(6));
    let skills: Vec<(String, String, f64)> = b
        .world
        .org
        .user_skills(l.agents[first].user)
        .skills
        .iter()
        .map(|(s, _)| {
            (
                user.clone(),
                b.world.org.skills[*s as usize].id.to_string(),
                5.0,
            )
        })
        .collect();
    b.handle.set_proficiencies(&skills).expect("set");
    for t in [&a, &b] {
        t.morning(1);
        t.handle.simulate_ended_days();
    }
    let noon = 12 * 3_600_000;
    let (la, lb) = (a.log(), b.log());
    let morning = |log: &[LogEntry]| -> Vec<(u32, u32, u32)> {
        log.iter()
            .filter(|e| e.answered_at < noon)
            .map(|e| (e.m, e.idx, e.answered_at))
            .collect()
    };
    assert_eq!(morning(&la), morning(&lb));
    let afternoon = |log: &[LogEntry]| {
        log.iter()
            .filter(|e| e.answered_at >= noon && l.memb[e.m as usize].agent == first as u32)
            .count()
    };
    assert!(
        afternoon(&lb) > afternoon(&la),
        "{} {}",
        afternoon(&lb),
        afternoon(&la)
    );
}

/// Days are simulated lazily, but each with the proficiencies of its own time.
#[test]
fn a_later_write_does_not_reach_back_into_an_earlier_day() {
    let config = small(2, MethodMix::all_best());
    let (a, b) = (twin(6, 50, 2, &config), twin(6, 50, 2, &config));
    b.morning(1);
    set_all(&b, |agent, _| (agent % 6) as f64);
    for t in [&a, &b] {
        t.morning(2);
        t.handle.simulate_ended_days();
    }
    let (oa, ob) = (a.handle.outcomes(), b.handle.outcomes());
    assert_eq!(oa.len(), 2);
    assert_eq!(oa[0], ob[0]);
    assert_ne!(oa[1], ob[1]);
}

/// Routing by the truth beats a supervisor's noisy, partly stale ratings, on the same
/// interactions.
#[test]
fn an_oracle_beats_a_noisy_static_set_on_handle_time() {
    let config = TwinConfig {
        queues: 4,
        method_mix: MethodMix::all_best(),
        history_days: 0,
        ..TwinConfig::default()
    };
    let (stat, oracle) = (twin(11, 240, 4, &config), twin(11, 240, 4, &config));
    for d in 0..=4 {
        for t in [&stat, &oracle] {
            t.morning(d);
            t.handle.simulate_ended_days();
        }
        let date = oracle.handle.first_day() + Duration::days(d);
        oracle
            .handle
            .set_proficiencies(&oracle.handle.oracle_proficiencies(date))
            .expect("oracle");
    }
    assert_eq!(stat.arrivals(), oracle.arrivals(), "common random numbers");
    let (s, o) = (stat.total(), oracle.total());
    assert_eq!(s.offered, o.offered);
    let (s_aht, o_aht) = (s.aht_secs().unwrap_or(0.0), o.aht_secs().unwrap_or(0.0));
    assert!(
        o_aht < s_aht * 0.985,
        "oracle {o_aht:.1} s vs static {s_aht:.1} s"
    );
    assert!(o.transfer_rate() < s.transfer_rate());
}

#[test]
fn old_days_are_dropped_but_their_outcomes_stay() {
    let config = TwinConfig {
        retain_days: Some(2),
        ..small(2, MethodMix::default())
    };
    let t = twin(2, 30, 2, &config);
    t.morning(4);
    let daily = t.query(
        Kind::Conversations,
        json!({"interval": interval(4), "granularity": "P1D", "metrics": ["nConnected"]}),
    );
    let buckets = daily["results"][0]["data"].as_array().map_or(0, Vec::len);
    assert_eq!(buckets, 2);
    assert_eq!(t.handle.outcomes().len(), 4);
}

#[test]
fn totals_and_gini() {
    let mut t = Totals {
        offered: 10,
        answered: 8,
        abandoned: 2,
        answered_within_sl: 6,
        wait_ms: 16_000,
        handle_ms: 4_000_000,
        transferred: 1,
        evaluations: 2,
        evaluation_score: 170,
        surveys: 0,
        survey_score: 0,
    };
    assert_eq!(t.aht_secs(), Some(500.0));
    assert_eq!(t.service_level(), Some(0.6));
    assert_eq!(t.asa_secs(), Some(2.0));
    assert_eq!(t.abandonment_rate(), Some(0.2));
    assert_eq!(t.quality(), Some(85.0));
    assert_eq!(t.csat(), None);
    t.add(&t.clone());
    assert_eq!(t.offered, 20);
    assert_eq!(gini(&[5, 5, 5, 5]), 0.0);
    assert!((gini(&[0, 0, 0, 10]) - 0.75).abs() < 1e-9);
    assert_eq!(gini(&[]), 0.0);
}
