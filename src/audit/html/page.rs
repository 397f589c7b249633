//! The page itself: sections in the order a supervisor asks their questions — what happened,
//! where each skill's proficiencies moved, why, and what needs a person.

use super::svg::{self, AFTER, BAD, BEFORE, GOOD, NEUTRAL, WARN};
use super::{driver, esc, RunPage, SkillView};
use crate::history::{ChangeRecord, ChangeStatus};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Rows listed per table before "… and N more" (the page stays small at 100 000 agents;
/// `show` and `export` list everything).
const ROWS_SHOWN: usize = 200;

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1c2127;margin:0;background:#f6f7f9}
main{max-width:1120px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #d3d8de;padding-bottom:4px}
h3{font-size:14px;margin:0 0 6px}.meta{color:#5f6b7c}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}.tile{background:#fff;border:1px solid #d3d8de;border-radius:6px;padding:8px 14px;min-width:110px}
.tile b{display:block;font-size:20px}.tile span{color:#5f6b7c;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:14px}
.card{background:#fff;border:1px solid #d3d8de;border-radius:6px;padding:12px}
.note{background:#fff4e5;border:1px solid #f0b46a;border-radius:6px;padding:10px 14px;margin:12px 0}
.bad{background:#fdecec;border-color:#e39a9a}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e5e8eb}
th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:middle}
svg.chart{width:100%;height:auto;display:block}svg .tick{font-size:10px;fill:#5f6b7c}svg .label{font-size:11px;fill:#1c2127}svg .axis{stroke:#8f99a8}svg .grid{stroke:#e5e8eb}svg .zero{stroke:#1c2127;stroke-dasharray:3 3}
footer{color:#5f6b7c;font-size:12px;margin-top:32px}";

/// The whole document.
pub fn render(page: &RunPage) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let run = &page.run;
    let title = format!("skill-tuner — run {} ({})", run.id, run.mode);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><main>",
        esc(&title)
    );
    header(&mut out, page);
    distributions(&mut out, page);
    reasons(&mut out, page);
    attention(&mut out, page);
    crossings(&mut out, page);
    effect(&mut out, page);
    routing(&mut out, page);
    let _ = writeln!(
        out,
        "<footer>Written by skill-tuner {} from the history ledger; self-contained (no network, no script). Every change with its full reason: <code>skill-tuner show {}</code>.</footer></main></body></html>",
        env!("CARGO_PKG_VERSION"),
        run.id
    );
    out
}

fn header(out: &mut String, page: &RunPage) {
    let run = &page.run;
    let s = &page.summary;
    let outcome = run
        .outcome
        .map(|o| o.as_str().to_string())
        .unwrap_or_else(|| "unfinished".into());
    let _ = write!(
        out,
        "<h1>Run {} — {}</h1><div class=\"meta\">{} · trigger {} · outcome <b>{}</b> · started {} · finished {} · policy {} · scoring: {}</div>",
        run.id,
        esc(run.mode.as_str()),
        if page.after_is_planned {
            "dry run: nothing was written"
        } else {
            "changes written to the org"
        },
        esc(run.trigger.map_or("not recorded", |t| t.as_str())),
        esc(&outcome),
        esc(&run.started_at),
        esc(run.finished_at.as_deref().unwrap_or("—")),
        esc(&run.config_hash),
        if s.case_mix {
            "case mix"
        } else {
            "absolute ramps"
        }
    );
    out.push_str("<div class=\"tiles\">");
    for (value, label) in [
        (s.agents_considered, "agents considered"),
        (s.agents_changed, "agents changed"),
        (s.skills_up, "promotions"),
        (s.skills_down, "demotions"),
        (s.unchanged, "unchanged"),
        (s.conflicts, "conflicts (left alone)"),
        (s.held_for_review, "held for review"),
        (s.failed, "failed"),
        (s.api_calls as usize, "API calls"),
    ] {
        let _ = write!(
            out,
            "<div class=\"tile\"><b>{value}</b><span>{label}</span></div>"
        );
    }
    out.push_str("</div>");
    if let Some(b) = &s.breaker {
        let _ = write!(
            out,
            "<div class=\"note bad\"><b>The blast-radius breaker stopped this run: nothing was applied.</b> Rule <code>{}</code>: {}</div>",
            esc(&b.rule),
            esc(&b.detail)
        );
    }
    if let Some(e) = &s.error {
        let _ = write!(
            out,
            "<div class=\"note bad\"><b>The run failed:</b> {}</div>",
            esc(e)
        );
    }
}

fn distributions(out: &mut String, page: &RunPage) {
    out.push_str("<h2>Proficiency by skill, before and after</h2>");
    if page.skills.is_empty() {
        out.push_str("<p class=\"meta\">This run recorded no per-skill distribution (runs recorded by skill-tuner before 0.1 lack it, and a run that failed before planning has none).</p>");
        return;
    }
    let _ = write!(
        out,
        "<p class=\"legend meta\">Agents per half star.<i style=\"background:{BEFORE}\"></i>before the run<i style=\"background:{AFTER}\"></i>after its {} changes</p><div class=\"grid\">",
        if page.after_is_planned {
            "planned"
        } else {
            "applied"
        }
    );
    let labels: Vec<String> = (0..super::HALF_STARS)
        .map(|i| {
            if i % 2 == 0 {
                format!("{}", i / 2)
            } else {
                format!("{}.5", i / 2)
            }
        })
        .collect();
    for skill in &page.skills {
        let held: u32 = skill.before.iter().sum();
        let _ = write!(
            out,
            "<div class=\"card\"><h3>{}</h3><div class=\"meta\">{} agents · mean {:.2} → {:.2} · {} up, {} down</div>{}</div>",
            esc(&skill.skill),
            held,
            mean(&skill.before),
            mean(&skill.after),
            skill.up,
            skill.down,
            svg::grouped_bars(&labels, &skill.before, &skill.after, &skill.skill)
        );
    }
    out.push_str("</div>");
}

/// The mean proficiency of half-star counts.
fn mean(counts: &[u32]) -> f64 {
    let n: u32 = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let total: f64 = counts
        .iter()
        .enumerate()
        .map(|(i, c)| f64::from(*c) * i as f64 / 2.0)
        .sum();
    total / f64::from(n)
}

fn reasons(out: &mut String, page: &RunPage) {
    out.push_str("<h2>Changes by reason</h2><div class=\"grid\">");
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &page.changes {
        *by_status.entry(c.status.as_str()).or_insert(0) += 1;
    }
    let status_rows: Vec<(String, u64, &str)> = by_status
        .iter()
        .map(|(status, n)| (status.to_string(), *n, status_colour(status)))
        .collect();
    card(
        out,
        "Outcome of each planned change",
        &svg::hbars(&status_rows, "outcome of each planned change"),
    );
    let mut drivers: BTreeMap<String, (u64, &str)> = BTreeMap::new();
    for c in &page.changes {
        let direction = if c.after > c.before { "up" } else { "down" };
        let what = driver(c).unwrap_or_else(|| "no score recorded".into());
        let colour = if direction == "up" { GOOD } else { WARN };
        drivers
            .entry(format!("{direction}: {what}"))
            .or_insert((0, colour))
            .0 += 1;
    }
    let driver_rows: Vec<(String, u64, &str)> = drivers
        .into_iter()
        .map(|(label, (n, colour))| (label, n, colour))
        .collect();
    card(
        out,
        "What drove each change (the component pulling hardest its way)",
        &svg::hbars(&driver_rows, "what drove each change"),
    );
    let mut kept: Vec<(String, u64, &str)> = page
        .summary
        .skipped
        .iter()
        .map(|(why, n)| (why.replace('_', " "), *n as u64, NEUTRAL))
        .collect();
    kept.push((
        "unchanged (dead band)".into(),
        page.summary.unchanged as u64,
        BEFORE,
    ));
    card(
        out,
        "Left alone, by reason (agent-skill pairs)",
        &svg::hbars(&kept, "left alone by reason"),
    );
    out.push_str("</div>");
}

fn status_colour(status: &str) -> &'static str {
    match status {
        "applied" => GOOD,
        "conflict" | "held" | "rejected" => WARN,
        "failed" => BAD,
        "planned" => AFTER,
        _ => NEUTRAL,
    }
}

fn card(out: &mut String, title: &str, body: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><h3>{}</h3>{body}</div>",
        esc(title)
    );
}

/// Conflicts, holds, rejections and failures: the rows a person may have to act on.
fn attention(out: &mut String, page: &RunPage) {
    out.push_str("<h2>Conflicts and holds</h2>");
    let rows: Vec<&ChangeRecord> = page
        .changes
        .iter()
        .filter(|c| {
            matches!(
                c.status,
                ChangeStatus::Conflict
                    | ChangeStatus::Held
                    | ChangeStatus::Rejected
                    | ChangeStatus::Failed
            )
        })
        .collect();
    if rows.is_empty() {
        out.push_str("<p class=\"meta\">None: every change was applied as planned, or nothing needed a person.</p>");
        return;
    }
    out.push_str("<p class=\"meta\">A conflict is a value a person (or another tool) changed after skill-tuner read it: it is left alone, never overwritten. A hold waits for its review workitem.</p><table><tr><th>agent</th><th>skill</th><th>status</th><th>before</th><th>proposed</th><th>detail</th><th>workitem</th></tr>");
    for c in rows.iter().take(ROWS_SHOWN) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.agent_name),
            esc(&c.skill_name),
            c.status.as_str(),
            c.before,
            c.after,
            esc(c.detail.as_deref().unwrap_or("")),
            esc(c.workitem_id.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</table>");
    if rows.len() > ROWS_SHOWN {
        let _ = write!(
            out,
            "<p class=\"meta\">… and {} more (<code>skill-tuner show {}</code> lists them all).</p>",
            rows.len() - ROWS_SHOWN,
            page.run.id
        );
    }
}

/// Per skill: the queues that requested it, their evaluation methods, and whether it was
/// tuned (proficiency only ranks agents on `BEST` queues).
fn routing(out: &mut String, page: &RunPage) {
    let routed: Vec<&SkillView> = page.skills.iter().filter(|s| s.routing.is_some()).collect();
    if routed.is_empty() {
        return;
    }
    out.push_str("<h2>Where proficiency changes routing</h2><table><tr><th>skill</th><th>queues (method, interactions)</th><th>routing effect</th><th>tuned</th></tr>");
    for skill in routed {
        let Some(r) = &skill.routing else { continue };
        let queues: Vec<String> = r
            .queues
            .iter()
            .map(|q| {
                format!(
                    "{} ({}, {})",
                    esc(q.queue.as_deref().unwrap_or(&q.queue_id)),
                    q.method
                        .map_or("method unknown".to_string(), |m| format!("{m:?}")
                            .to_uppercase()),
                    q.interactions
                )
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.skill),
            if queues.is_empty() {
                "no queue data".into()
            } else {
                queues.join(", ")
            },
            r.effect.describe(),
            if r.tuned { "yes" } else { "no" }
        );
    }
    out.push_str("</table>");
}

/// Agents the run moved into or out of a skill group (and so a queue), and what the guard
/// made of it.
fn crossings(out: &mut String, page: &RunPage) {
    out.push_str("<h2>Skill-group crossings</h2>");
    let Some(g) = &page.summary.skill_groups else {
        out.push_str(
            "<p class=\"meta\">Not recorded for this run (recorded by an older skill-tuner).</p>",
        );
        return;
    };
    if !g.checked {
        let _ = write!(
            out,
            "<p class=\"meta\">Skill groups were not checked in this run{}.</p>",
            if g.notes.is_empty() {
                String::new()
            } else {
                format!(": {}", esc(&g.notes.join("; ")))
            }
        );
        return;
    }
    let _ = write!(
        out,
        "<p class=\"meta\">{} groups checked · guard <code>{}</code> · proficiency against whole-number conditions: <code>{}</code>. A group feeds queues: joining or leaving one changes which queues offer the agent work.</p>",
        g.groups,
        g.guard.as_str(),
        g.proficiency_match.as_str()
    );
    if g.crossings.is_empty() {
        out.push_str(
            "<p class=\"meta\">No planned change moves anyone into or out of a group.</p>",
        );
        return;
    }
    let mut per_group: BTreeMap<String, u64> = BTreeMap::new();
    for c in &g.crossings {
        *per_group
            .entry(format!("{} {}", c.direction.as_str(), c.group))
            .or_insert(0) += 1;
    }
    let rows: Vec<(String, u64, &str)> = per_group
        .into_iter()
        .map(|(label, n)| {
            let colour = if label.starts_with("leaves") {
                WARN
            } else {
                GOOD
            };
            (label, n, colour)
        })
        .collect();
    out.push_str("<div class=\"grid\">");
    card(
        out,
        "Crossings by group",
        &svg::hbars(&rows, "crossings by group"),
    );
    out.push_str("</div><table><tr><th>agent</th><th>group</th><th>crossing</th><th>queues</th><th>changes behind it</th><th>guard</th></tr>");
    for c in g.crossings.iter().take(ROWS_SHOWN) {
        let changes: Vec<String> = c
            .changes
            .iter()
            .map(|ch| match ch.from {
                Some(from) => format!("{} {from:.2} → {:.2}", esc(&ch.skill), ch.to),
                None => format!("{} added at {:.2}", esc(&ch.skill), ch.to),
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.agent),
            esc(&c.group),
            if c.certain { "" } else { "possibly " },
            c.direction.as_str(),
            if c.queues.is_empty() {
                "none".to_string()
            } else {
                esc(&c.queues.join(", "))
            },
            changes.join("; "),
            c.action.as_str()
        );
    }
    out.push_str("</table>");
    if g.crossings.len() > ROWS_SHOWN {
        let _ = write!(
            out,
            "<p class=\"meta\">… and {} more (the cycle's JSON report lists them all).</p>",
            g.crossings.len() - ROWS_SHOWN
        );
    }
}

/// The holdout experiment's estimate of each judged metric, day by day, with its 95 %
/// interval: a band that leaves the dashed zero line is an effect.
fn effect(out: &mut String, page: &RunPage) {
    out.push_str("<h2>Effect of tuning over time</h2>");
    if page.effect.is_empty() {
        out.push_str("<p class=\"meta\">No experiment estimates recorded up to this run: set <code>[experiment]</code> to measure what tuning does against held-out skills (see <code>skill-tuner effect</code>).</p>");
        return;
    }
    out.push_str("<p class=\"meta\">Tuned minus held-out skills, per interaction, with the 95 % interval (shaded). Below zero is better for handle time and transfers, above zero for quality, CSAT and service level.</p><div class=\"grid\">");
    for series in &page.effect {
        let title = format!("{} ({})", series.metric.replace('_', " "), series.unit);
        let body = format!(
            "{}<div class=\"meta\">{}</div>",
            svg::band(&series.points, &title, &series.unit),
            esc(series.verdict.as_deref().unwrap_or(""))
        );
        card(out, &title, &body);
    }
    out.push_str("</div>");
}
