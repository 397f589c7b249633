use super::open::read_only_uri;
use super::*;

/// A fresh directory per call: the tag, the process and a per-process sequence number.
fn temp_db(tag: &str) -> PathBuf {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "skill-tuner-ledger-{tag}-{}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("ledger.db")
}

#[test]
fn a_run_is_live_while_its_owner_holds_it() {
    let path = temp_db("live");
    let owner = Ledger::open(&path).unwrap();
    let other = Ledger::open(&path).unwrap();
    let run = owner.begin_run(RunMode::Once, "h", None).unwrap();
    assert!(owner.is_live(run).unwrap());
    // Another handle (as another process would) sees the lock held.
    assert!(other.is_live(run).unwrap());
    owner.abandon_run(run);
    assert!(
        !other.is_live(run).unwrap(),
        "a dropped claim is a crashed run"
    );
    let run2 = owner.begin_run(RunMode::Once, "h", None).unwrap();
    owner
        .finish_run(run2, RunOutcome::Ok, &serde_json::json!({}))
        .unwrap();
    assert!(!other.is_live(run2).unwrap());
    assert!(!owner.run_lock_path(run2).unwrap().exists());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_ledger_that_would_not_persist_is_refused() {
    let dir = temp_db("durable");
    let dir = dir.parent().unwrap();
    for path in [
        Path::new(""),
        Path::new(":memory:"),
        Path::new("file::memory:"),
        Path::new("file:ledger?mode=memory&cache=shared"),
        dir,
    ] {
        for result in [Ledger::open(path), Ledger::open_read_only(path)] {
            let err = result.unwrap_err();
            assert!(
                matches!(err, LedgerError::NotDurable { .. }),
                "{path:?}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("`history.path`") && text.contains("outlives the process"),
                "{text}"
            );
        }
    }
    assert!(Ledger::open(dir)
        .unwrap_err()
        .to_string()
        .contains("is a directory"));
    assert_eq!(
        not_durable(Path::new("/var/lib/skill-tuner/skill-tuner.db")),
        None
    );
    assert_eq!(not_durable(Path::new("skill-tuner.db")), None);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn read_only_uris_keep_odd_paths_intact() {
    assert_eq!(
        read_only_uri(Path::new("/var/lib/st/a b?#%.db"), false),
        "file:///var/lib/st/a%20b%3F%23%25.db?mode=ro"
    );
    assert_eq!(
        read_only_uri(Path::new("rel.db"), true),
        "file:rel.db?mode=ro&immutable=1"
    );
}

#[test]
fn a_read_only_handle_reads_and_cannot_write() {
    let path = temp_db("ro");
    {
        let ledger = Ledger::open(&path).unwrap();
        let run = ledger.begin_run(RunMode::Once, "h", None).unwrap();
        ledger
            .finish_run(run, RunOutcome::Ok, &serde_json::json!({}))
            .unwrap();
    }
    let ro = Ledger::open_read_only(&path).unwrap();
    assert_eq!(ro.access(), Access::ReadOnly);
    assert_eq!(ro.recent_runs(5).unwrap().len(), 1);
    assert!(ro.begin_run(RunMode::Once, "h", None).is_err());
    assert_eq!(ro.recent_runs(5).unwrap().len(), 1);
    let missing = path.with_file_name("never-created.db");
    assert!(matches!(
        Ledger::open_read_only(&missing),
        Err(LedgerError::Missing { .. })
    ));
    assert!(
        !missing.exists(),
        "a reading command never creates a ledger"
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn without_a_shared_memory_file_a_read_only_handle_reads_immutable() {
    let path = temp_db("immutable");
    {
        let ledger = Ledger::open(&path).unwrap();
        let run = ledger.begin_run(RunMode::Once, "h", None).unwrap();
        ledger
            .finish_run(run, RunOutcome::Ok, &serde_json::json!({}))
            .unwrap();
    }
    // A dangling symlink where the -shm file would go: it cannot be created, even by
    // root (for whom permission bits would not stop it) — as on a read-only mount.
    let shm = PathBuf::from(format!("{}-shm", path.display()));
    let _ = std::fs::remove_file(&shm);
    std::os::unix::fs::symlink("/nonexistent-skill-tuner-dir/shm", &shm).unwrap();
    let before = std::fs::read(&path).unwrap();
    let ro = Ledger::open_read_only(&path).unwrap();
    assert_eq!(ro.access(), Access::Immutable);
    assert_eq!(ro.recent_runs(5).unwrap().len(), 1);
    drop(ro);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn in_memory_runs_are_live_only_for_their_handle() {
    let ledger = Ledger::in_memory().unwrap();
    let run = ledger.begin_run(RunMode::Once, "h", None).unwrap();
    assert!(ledger.is_live(run).unwrap());
    ledger.abandon_run(run);
    assert!(!ledger.is_live(run).unwrap());
}

#[test]
fn an_unknown_stored_value_is_an_error_naming_it() {
    let path = temp_db("unknown");
    let ledger = Ledger::open(&path).unwrap();
    let run = ledger.begin_run(RunMode::Once, "h", None).unwrap();
    ledger
        .finish_run(run, RunOutcome::Ok, &serde_json::json!({}))
        .unwrap();
    ledger
        .with(|c| c.execute("UPDATE runs SET outcome = 'so-so'", []))
        .unwrap();
    let err = ledger.run(run).unwrap_err();
    assert!(
        matches!(&err, LedgerError::UnknownValue { source, .. } if source.what == "run outcome"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("unknown run outcome `so-so`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
