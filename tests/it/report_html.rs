//! `report --html`: one run of a real cycle against the simulator as a single page that opens
//! with no network — its structure, its figures against the ledger, and names from the org
//! that cannot become markup.

use crate::common;

use common::binary::{binary, config_file, output};
use common::sim::{client_for, cycle, memory_ledger, relaxed, start_sim};
use common::TempDir;
use genesys_sim::Simulator;
use skill_tuner::audit::{self, AuditError};
use skill_tuner::cycle::report::CycleReport;
use skill_tuner::cycle::Mode;
use skill_tuner::history::{ChangeStatus, Ledger, RunMode};

/// Nothing in the page reaches for the network or runs code: no tag loads or links anything,
/// the style imports nothing, and there is no script. (Text is escaped, so every `<` starts
/// a real tag.)
fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    for tag in html.split('<').skip(1).filter_map(|t| t.split('>').next()) {
        let name = tag
            .split([' ', '/'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(
            !["script", "img", "link", "iframe", "object", "embed", "image", "use"]
                .contains(&name.as_str()),
            "a <{name}> tag"
        );
        for attr in ["src=", "href=", "http:", "https:", " on"] {
            assert!(!tag.to_ascii_lowercase().contains(attr), "<{tag}>");
        }
    }
    let style = html
        .split("<style>")
        .nth(1)
        .and_then(|s| s.split("</style>").next())
        .unwrap_or("");
    assert!(!style.contains("url(") && !style.contains("@import"));
}

/// One cycle in `mode` on a simulated org of `agents` (after `prepare` has its way with the
/// org), recorded in an in-memory ledger.
async fn one_run(
    agents: usize,
    mode: Mode,
    prepare: impl FnOnce(&Simulator),
) -> (Simulator, Ledger, CycleReport) {
    let sim = start_sim(agents, |c| c.seed = 5).await;
    prepare(&sim);
    let settings = relaxed(&sim);
    let client = client_for(&sim, &settings).await;
    let ledger = memory_ledger(&sim);
    let report = cycle(&sim, &client, &settings, &ledger, mode)
        .await
        .unwrap();
    (sim, ledger, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_run_as_the_ledger_recorded_it() {
    let (sim, ledger, report) = one_run(80, Mode::Once, |_| {}).await;
    assert!(report.agents_changed > 0, "the fixture must change someone");

    let page = audit::run_page(&ledger, None).unwrap();
    assert_eq!(page.run.id, report.run_id, "the latest cycle by default");
    assert!(!page.after_is_planned);
    assert_eq!(page.skills.len(), report.distribution.len());
    for skill in &page.skills {
        let before: u32 = skill.before.iter().sum();
        let after: u32 = skill.after.iter().sum();
        assert_eq!(before, after, "{}: moves keep the agents", skill.skill);
        let applied = page
            .changes
            .iter()
            .filter(|c| c.skill_name == skill.skill && c.status == ChangeStatus::Applied)
            .count();
        assert_eq!(skill.up + skill.down, applied, "{}", skill.skill);
        // Each held proficiency is counted once, before.
        let holders = sim
            .org()
            .agent_ids()
            .iter()
            .filter(|id| {
                let skill_id = common::sim::skill_id(&sim, &skill.skill);
                sim.org().proficiency(id, &skill_id).is_some()
            })
            .count();
        assert!(before as usize <= holders, "{}", skill.skill);
    }

    let html = audit::html_report(&ledger, None).unwrap();
    assert_self_contained(&html);
    for section in [
        "Proficiency by skill, before and after",
        "Changes by reason",
        "Conflicts and holds",
        "Skill-group crossings",
        "Effect of tuning over time",
    ] {
        assert!(html.contains(&format!("<h2>{section}")), "{section}");
    }
    // One chart per skill, and three for the reasons.
    assert!(html.matches("<svg class=\"chart\"").count() >= page.skills.len() + 3);
    for skill in &page.skills {
        assert!(html.contains(&format!("<h3>{}</h3>", skill.skill)));
    }
    assert!(html.contains(&format!(
        "<b>{}</b><span>agents changed</span>",
        report.agents_changed
    )));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_the_org_are_text_not_markup() {
    let (sim, ledger, report) = one_run(30, Mode::Once, |sim| {
        for id in sim.org().agent_ids() {
            assert!(sim
                .org()
                .set_agent_name(&id, "<script>alert(1)</script>\u{202e}<img src=x>"));
        }
    })
    .await;
    assert!(report.agents_changed > 0);
    let html = audit::html_report(&ledger, Some(report.run_id)).unwrap();
    assert_self_contained(&html);
    assert!(
        !html.contains('\u{202e}'),
        "a bidi override reaches the page"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\u{202e}&lt;img src=x&gt;"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_the_planned_after_and_other_runs_are_refused_by_number() {
    let (sim, ledger, report) = one_run(40, Mode::Plan, |_| {}).await;
    let page = audit::run_page(&ledger, Some(report.run_id)).unwrap();
    assert!(page.after_is_planned);
    let moved: usize = page.skills.iter().map(|s| s.up + s.down).sum();
    assert_eq!(moved, report.skills_up + report.skills_down);
    assert!(audit::html_report(&ledger, Some(report.run_id))
        .unwrap()
        .contains("dry run: nothing was written"));

    let rollback = ledger
        .begin_run(RunMode::Rollback, "h", Some(report.run_id))
        .unwrap();
    match audit::html_report(&ledger, Some(rollback)) {
        Err(AuditError::Refused(why)) => assert!(why.contains("rollback"), "{why}"),
        other => panic!("a rollback's page: {:?}", other.map(|h| h.len())),
    }
    assert!(audit::html_report(&ledger, Some(999)).is_err());
    let empty = Ledger::in_memory().unwrap();
    match audit::html_report(&empty, None) {
        Err(AuditError::Refused(why)) => assert!(why.contains("no finished cycle"), "{why}"),
        other => panic!("an empty ledger's page: {:?}", other.map(|h| h.len())),
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_writes_the_page_to_the_file() {
    let dir = TempDir::new("report-html");
    let sim = start_sim(30, |c| c.seed = 5).await;
    let settings = relaxed(&sim);
    let path = dir.path().join("ledger.db");
    let config = config_file(dir.path(), &settings, &path);
    let once = output(binary(&["once"], &config)).await;
    assert!(once.status.success(), "{once:?}");
    let file = dir.path().join("report.html");
    let out = output(binary(
        &["report", "--html", file.to_str().unwrap(), "--run", "1"],
        &config,
    ))
    .await;
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(&file).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("<h1>Run 1 — once</h1>"), "{}", &html[..400]);
    let missing = output(binary(
        &["report", "--html", file.to_str().unwrap(), "--run", "7"],
        &config,
    ))
    .await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains('7'),
        "{missing:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_experiments_estimates_are_drawn_with_their_interval_up_to_the_run() {
    let (sim, ledger, report) = one_run(30, Mode::Once, |_| {}).await;
    let run_day = &audit::run_page(&ledger, None).unwrap().run.started_at[..10];
    let day = |offset: i64| {
        (chrono::NaiveDate::parse_from_str(run_day, "%Y-%m-%d").unwrap()
            + chrono::Duration::days(offset))
        .to_string()
    };
    for (offset, estimate) in [(-2, -1.0), (-1, -4.0), (0, -5.0), (1, 99.0)] {
        let estimate_json = serde_json::json!({"metrics": [{
            "metric": "handle_time", "unit": "s", "estimate": estimate,
            "ci_low": estimate - 2.0, "ci_high": estimate + 2.0,
            "verdict": {"kind": "helps", "text": "helps: <shorter>"}
        }]});
        ledger
            .record_effect_day("salt", &day(offset), Some(report.run_id), &estimate_json)
            .unwrap();
    }
    let page = audit::run_page(&ledger, Some(report.run_id)).unwrap();
    assert_eq!(page.effect.len(), 1);
    let estimates: Vec<f64> = page.effect[0].points.iter().map(|p| p.estimate).collect();
    assert_eq!(
        estimates,
        vec![-1.0, -4.0, -5.0],
        "days after the run are not drawn"
    );
    let html = audit::html_report(&ledger, Some(report.run_id)).unwrap();
    assert_self_contained(&html);
    assert_eq!(html.matches("<polygon").count(), 1, "one interval band");
    assert!(html.contains("helps: &lt;shorter&gt;"));
    sim.shutdown().await;
}
