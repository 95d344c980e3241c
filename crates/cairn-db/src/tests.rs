use super::*;
use cairn_types::{RuntimeKind, SnapshotId};

fn db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("cairn.db")).unwrap();
    (dir, db)
}

fn image(db: &Db) -> ImageRecord {
    let img = ImageRecord {
        id: "img-00000001".into(),
        name: "base".into(),
        size_bytes: 0,
        source: "/tmp/x".into(),
        config_json: "{}".into(),
        ready: false,
        created_at: Utc::now(),
    };
    db.insert_image(&img).unwrap();
    db.finish_image(&img.id, 10, "{}").unwrap();
    img
}

fn new_sandbox(account: &str, name: Option<&str>) -> NewSandbox {
    NewSandbox {
        id: SandboxId::generate(),
        account: account.into(),
        name: name.map(Into::into),
        image_id: "img-00000001".into(),
        runtime: RuntimeKind::Runc,
        cpus: 1.0,
        memory_bytes: 1 << 29,
        pids_limit: 100,
        env: vec!["A=1".into()],
        workdir: "/".into(),
        network: "none".into(),
        origin: None,
        idle_timeout_secs: None,
        disk_bytes: Some(64 << 20),
    }
}

#[test]
fn sandboxes_round_trip_and_stay_in_their_account() {
    let (_d, db) = db();
    image(&db);
    let a = db
        .insert_sandbox(&new_sandbox("alice", Some("box")))
        .unwrap();
    assert_eq!(a.state, SandboxState::Creating);
    assert_eq!(a.env, vec!["A=1".to_string()]);
    assert!(db.find_sandbox("alice", "box").unwrap().is_some());
    assert!(db.find_sandbox("bob", "box").unwrap().is_none());
    assert!(db.find_sandbox("bob", a.id.as_str()).unwrap().is_none());
    assert_eq!(db.list_sandboxes("alice").unwrap().len(), 1);
    assert!(db.list_sandboxes("bob").unwrap().is_empty());
}

#[test]
fn duplicate_names_conflict_within_an_account_only() {
    let (_d, db) = db();
    image(&db);
    db.insert_sandbox(&new_sandbox("alice", Some("box")))
        .unwrap();
    assert!(matches!(
        db.insert_sandbox(&new_sandbox("alice", Some("box"))),
        Err(DbError::Conflict(_))
    ));
    db.insert_sandbox(&new_sandbox("bob", Some("box"))).unwrap();
}

#[test]
fn illegal_state_changes_are_refused() {
    let (_d, db) = db();
    image(&db);
    let s = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    db.set_state(&s.id, SandboxState::Running, None).unwrap();
    db.set_state(&s.id, SandboxState::Stopped, Some("stopped by user"))
        .unwrap();
    assert!(db.set_state(&s.id, SandboxState::Paused, None).is_err());
    let back = db.sandbox(&s.id).unwrap().unwrap();
    assert_eq!(back.state, SandboxState::Stopped);
    assert_eq!(back.state_reason.as_deref(), Some("stopped by user"));
}

#[test]
fn tokens_map_to_accounts() {
    let (_d, db) = db();
    db.add_token("alice", "hash1").unwrap();
    assert_eq!(
        db.account_for_token("hash1").unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(db.account_for_token("nope").unwrap(), None);
}

#[test]
fn reopening_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    {
        let db = Db::open(&path).unwrap();
        image(&db);
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(db.list_images().unwrap().len(), 1);
    assert!(db.image("base").unwrap().is_some());
}

#[test]
fn image_names_are_unique_and_users_are_tracked() {
    let (_d, db) = db();
    let img = image(&db);
    let dup = ImageRecord {
        id: "img-00000002".into(),
        ..img.clone()
    };
    assert!(matches!(db.insert_image(&dup), Err(DbError::Conflict(_))));
    let s = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    assert_eq!(db.image_users(&img.id).unwrap(), vec![s.id.to_string()]);
}

#[test]
fn addresses_are_unique_kept_and_freed_with_the_row() {
    let (_d, db) = db();
    image(&db);
    let a = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    let b = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    let pick = |used: &std::collections::HashSet<String>| {
        ["10.0.0.2", "10.0.0.3"]
            .into_iter()
            .find(|a| !used.contains(*a))
            .map(String::from)
    };
    assert_eq!(
        db.assign_address(&a.id, pick).unwrap().as_deref(),
        Some("10.0.0.2")
    );
    assert_eq!(
        db.assign_address(&b.id, pick).unwrap().as_deref(),
        Some("10.0.0.3")
    );
    let c = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    assert_eq!(db.assign_address(&c.id, pick).unwrap(), None, "subnet full");
    assert_eq!(
        db.sandbox(&a.id).unwrap().unwrap().address.as_deref(),
        Some("10.0.0.2")
    );
    db.delete_sandbox(&a.id).unwrap();
    assert_eq!(
        db.assign_address(&c.id, pick).unwrap().as_deref(),
        Some("10.0.0.2")
    );
}

#[test]
fn published_host_ports_are_unique_across_sandboxes() {
    let (_d, db) = db();
    image(&db);
    let a = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    let b = db.insert_sandbox(&new_sandbox("bob", None)).unwrap();
    db.insert_published_ports(&a.id, &[(8080, 80), (8443, 443)])
        .unwrap();
    let e = db
        .insert_published_ports(&b.id, &[(9000, 90), (8080, 80)])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("8080 is already taken by sandbox {}", a.id)),
        "{e}"
    );
    assert!(
        db.published_ports(Some(&b.id)).unwrap().is_empty(),
        "all or nothing"
    );
    assert_eq!(db.published_ports(None).unwrap().len(), 2);
    db.delete_sandbox(&a.id).unwrap();
    assert!(db.published_ports(None).unwrap().is_empty());
    db.insert_published_ports(&b.id, &[(8080, 80)]).unwrap();
}

#[test]
fn a_sandbox_keeps_its_disk_limit_and_its_snapshots_record_it() {
    let (_d, db) = db();
    image(&db);
    let a = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    assert_eq!(a.disk_bytes, Some(64 << 20));
    let unlimited = db
        .insert_sandbox(&NewSandbox {
            disk_bytes: None,
            ..new_sandbox("alice", None)
        })
        .unwrap();
    assert_eq!(unlimited.disk_bytes, None);
    let snap = |sandbox: &SandboxRecord| SnapshotRecord {
        id: SnapshotId::generate(),
        account: "alice".into(),
        sandbox_id: sandbox.id.clone(),
        name: "s".into(),
        parent_id: None,
        image_id: "img-00000001".into(),
        runtime: RuntimeKind::Runc,
        cpus: 1.0,
        memory_bytes: 1 << 29,
        pids_limit: 100,
        env: vec![],
        workdir: "/".into(),
        stateful: false,
        auto: false,
        state: cairn_types::SnapshotState::Creating,
        error: None,
        size_bytes: 0,
        total_bytes: 0,
        created_at: Utc::now(),
    };
    let (s1, s2) = (snap(&a), snap(&unlimited));
    db.insert_snapshot(&s1).unwrap();
    db.insert_snapshot(&s2).unwrap();
    assert_eq!(db.snapshot_disk(&s1.id).unwrap(), Some(64 << 20));
    assert_eq!(db.snapshot_disk(&s2.id).unwrap(), None);
    assert_eq!(db.snapshot_disk(&SnapshotId::generate()).unwrap(), None);
}
