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
        account: "local".into(),
        name: "base".into(),
        public: true,
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
        resources: cairn_types::Resources {
            cpus: 1.0,
            memory_bytes: 1 << 29,
            pids_limit: 100,
        },
        process: cairn_types::ProcessDefaults {
            env: vec!["A=1".into()],
            workdir: "/".into(),
        },
        network: cairn_types::NetworkMode::None,
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
    assert_eq!(a.process.env, vec!["A=1".to_string()]);
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
fn a_pause_records_when_and_why_until_the_sandbox_leaves_paused() {
    let (_d, db) = db();
    image(&db);
    let s = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    db.set_state(&s.id, SandboxState::Running, None).unwrap();
    let running = db.sandbox(&s.id).unwrap().unwrap();
    assert!(running.paused_at.is_none() && running.pause_reason.is_none());

    let before = Utc::now();
    db.set_paused(&s.id, PauseReason::Idle).unwrap();
    let idle = db.sandbox(&s.id).unwrap().unwrap();
    assert_eq!(idle.state, SandboxState::Paused);
    assert_eq!(idle.pause_reason, Some(PauseReason::Idle));
    assert!(idle.paused_at.unwrap() >= before);
    // Paused again by its user: the pause is the user's.
    db.set_paused(&s.id, PauseReason::User).unwrap();
    let user = db.sandbox(&s.id).unwrap().unwrap();
    assert_eq!(user.pause_reason, Some(PauseReason::User));
    // Setting the state it has keeps them; leaving `paused` clears them.
    db.set_state(&s.id, SandboxState::Paused, None).unwrap();
    assert_eq!(
        db.sandbox(&s.id).unwrap().unwrap().pause_reason,
        Some(PauseReason::User)
    );
    db.set_state(&s.id, SandboxState::Running, None).unwrap();
    let resumed = db.sandbox(&s.id).unwrap().unwrap();
    assert!(resumed.paused_at.is_none() && resumed.pause_reason.is_none());
    // Only a running (or paused) sandbox can be paused.
    db.set_state(&s.id, SandboxState::Stopped, None).unwrap();
    assert!(db.set_paused(&s.id, PauseReason::Idle).is_err());
    assert!(db.sandbox(&s.id).unwrap().unwrap().pause_reason.is_none());
}

#[test]
fn tokens_map_to_accounts_roles_expiry_and_revocation() {
    let (_d, db) = db();
    let t = db
        .add_token("tok-00000001", "alice", "hash1", TokenRole::User, None)
        .unwrap();
    assert_eq!((t.account.as_str(), t.role), ("alice", TokenRole::User));
    let found = db.token_by_hash("hash1").unwrap().unwrap();
    assert_eq!(found.id, "tok-00000001");
    assert!(found.revoked_at.is_none() && found.expires_at.is_none());
    assert!(db.token_by_hash("nope").unwrap().is_none());
    let later = Utc::now() + chrono::Duration::days(30);
    db.add_token(
        "tok-00000002",
        "bob",
        "hash2",
        TokenRole::Admin,
        Some(later),
    )
    .unwrap();
    let b = db.token_by_hash("hash2").unwrap().unwrap();
    assert_eq!(b.role, TokenRole::Admin);
    assert_eq!(b.expires_at.map(|e| e.timestamp()), Some(later.timestamp()));
    assert_eq!(db.list_tokens(None).unwrap().len(), 2);
    assert_eq!(db.list_tokens(Some("bob")).unwrap().len(), 1);
    let revoked = db.revoke_token("tok-00000001").unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(db
        .token_by_hash("hash1")
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    assert!(matches!(
        db.revoke_token("tok-99999999"),
        Err(DbError::NotFound(_))
    ));
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
    assert_eq!(db.list_images("someone").unwrap().len(), 1);
    assert!(db.find_image("someone", "base").unwrap().is_some());
}

#[test]
fn image_names_are_unique_per_account_and_users_are_tracked() {
    let (_d, db) = db();
    let img = image(&db);
    let dup = ImageRecord {
        id: "img-00000002".into(),
        ..img.clone()
    };
    assert!(matches!(db.insert_image(&dup), Err(DbError::Conflict(_))));
    // Another account may use the name for its own private image, which it then sees first.
    let bobs = ImageRecord {
        id: "img-00000003".into(),
        account: "bob".into(),
        public: false,
        ..img.clone()
    };
    db.insert_image(&bobs).unwrap();
    db.finish_image(&bobs.id, 1, "{}").unwrap();
    assert_eq!(db.find_image("bob", "base").unwrap().unwrap().id, bobs.id);
    assert_eq!(db.find_image("carol", "base").unwrap().unwrap().id, img.id);
    assert!(db.find_image("carol", &bobs.id).unwrap().is_none());
    assert_eq!(db.list_images("carol").unwrap().len(), 1);
    assert_eq!(db.list_images("bob").unwrap().len(), 2);
    // Two public images cannot share a name.
    assert!(matches!(
        db.set_image_public(&bobs.id, true),
        Err(DbError::Conflict(_))
    ));
    let s = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    assert_eq!(
        db.image_users(&img.id).unwrap(),
        vec![ImageUser {
            id: s.id.to_string(),
            account: "alice".into()
        }]
    );
}

#[test]
fn a_version_5_database_keeps_its_images_public_and_its_tokens_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        migrations::migrate_to(&conn, 5).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts VALUES ('alice', '2026-01-01T00:00:00Z');
             INSERT INTO tokens(hash, account, created_at) VALUES ('h', 'alice', '2026-01-01T00:00:00Z');
             INSERT INTO images VALUES ('img-00000001', 'base', 1, '/x', '{}', 1, '2026-01-01T00:00:00Z');
             INSERT INTO sandboxes(id, account, image_id, runtime, state, cpus, memory_bytes, pids_limit, env_json, workdir, created_at)
               VALUES ('sbx-00000001', 'alice', 'img-00000001', 'runc', 'stopped', 1, 1, 2, '[]', '/', '2026-01-01T00:00:00Z');",
        )
        .unwrap();
    }
    let db = Db::open(&path).unwrap();
    let img = db.find_image("bob", "base").unwrap().unwrap();
    assert!(img.public);
    assert_eq!(img.account, "local");
    let t = db.token_by_hash("h").unwrap().unwrap();
    assert!(t.id.starts_with("tok-") && t.id.len() == 12, "{}", t.id);
    assert_eq!(t.role, TokenRole::User);
    assert_eq!(db.image_users("img-00000001").unwrap().len(), 1);
    // The foreign key still holds: the image cannot go while the sandbox uses it.
    assert!(db.delete_image("img-00000001").is_err());
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
    // Bob learns nothing of Alice's sandbox; Alice is told which of hers holds it.
    assert!(
        e.to_string()
            .contains("8080 is already taken by another sandbox"),
        "{e}"
    );
    assert!(!e.to_string().contains(a.id.as_str()), "{e}");
    let a2 = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    let e = db
        .insert_published_ports(&a2.id, &[(8443, 443)])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("8443 is already taken by your sandbox {}", a.id)),
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
fn peer_groups_are_per_account_and_never_reused() {
    let (_d, db) = db();
    assert_eq!(db.peer_group("alice").unwrap(), None);
    let a = db.allow_peers("alice").unwrap();
    assert_eq!(
        db.allow_peers("alice").unwrap(),
        a,
        "allowing twice keeps the group"
    );
    let b = db.allow_peers("bob").unwrap();
    assert_ne!(a, b);
    assert_eq!(db.deny_peers("bob").unwrap(), Some(b));
    assert_eq!(db.deny_peers("bob").unwrap(), None);
    // Bob's old group is the highest id; a new one must still not get it.
    let c = db.allow_peers("carol").unwrap();
    assert!(c > b, "{c} reuses {b}");
    assert_eq!(
        db.peer_groups().unwrap(),
        vec![("alice".to_string(), a), ("carol".to_string(), c)]
    );
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
        sandbox_name: None,
        name: "s".into(),
        parent_id: None,
        image_id: "img-00000001".into(),
        runtime: RuntimeKind::Runc,
        resources: cairn_types::Resources {
            cpus: 1.0,
            memory_bytes: 1 << 29,
            pids_limit: 100,
        },
        process: cairn_types::ProcessDefaults {
            env: vec![],
            workdir: "/".into(),
        },
        stateful: false,
        auto: false,
        state: cairn_types::SnapshotState::Creating,
        error: None,
        size_bytes: 0,
        total_bytes: 0,
        created_at: Utc::now(),
        imported_from: None,
    };
    let (s1, s2) = (snap(&a), snap(&unlimited));
    db.insert_snapshot(&s1).unwrap();
    db.insert_snapshot(&s2).unwrap();
    assert_eq!(db.snapshot_disk(&s1.id).unwrap(), Some(64 << 20));
    assert_eq!(db.snapshot_disk(&s2.id).unwrap(), None);
    assert_eq!(db.snapshot_disk(&SnapshotId::generate()).unwrap(), None);
}

fn user_snapshot(sandbox: &SandboxRecord, name: &str) -> SnapshotRecord {
    SnapshotRecord {
        id: SnapshotId::generate(),
        account: sandbox.account.clone(),
        sandbox_id: sandbox.id.clone(),
        sandbox_name: None,
        name: name.into(),
        parent_id: None,
        image_id: "img-00000001".into(),
        runtime: RuntimeKind::Runc,
        resources: cairn_types::Resources {
            cpus: 1.0,
            memory_bytes: 1 << 29,
            pids_limit: 100,
        },
        process: cairn_types::ProcessDefaults {
            env: vec![],
            workdir: "/".into(),
        },
        stateful: false,
        auto: false,
        state: cairn_types::SnapshotState::Creating,
        error: None,
        size_bytes: 0,
        total_bytes: 0,
        created_at: Utc::now(),
        imported_from: None,
    }
}

#[test]
fn a_snapshot_keeps_its_sandboxs_name_after_the_sandbox_is_gone() {
    let (_d, db) = db();
    image(&db);
    let named = db
        .insert_sandbox(&new_sandbox("alice", Some("builder")))
        .unwrap();
    let anonymous = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    let bobs = db
        .insert_sandbox(&new_sandbox("bob", Some("builder")))
        .unwrap();
    let (s1, s2, s3) = (
        user_snapshot(&named, "baseline"),
        user_snapshot(&anonymous, "baseline"),
        user_snapshot(&bobs, "baseline"),
    );
    for s in [&s1, &s2, &s3] {
        db.insert_snapshot(s).unwrap();
    }
    db.delete_sandbox(&named.id).unwrap();
    let got = db.snapshot(&s1.id).unwrap().unwrap();
    assert_eq!(got.sandbox_name.as_deref(), Some("builder"));
    assert_eq!(db.snapshot(&s2.id).unwrap().unwrap().sandbox_name, None);
    // By name: only the account's own, whatever the sandbox.
    let ids = |v: Vec<SnapshotRecord>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(db.snapshots_named("alice", "baseline").unwrap()),
        [s1.id.clone(), s2.id.clone()]
    );
    assert_eq!(
        ids(db.listed_snapshots("alice", None, Some("builder")).unwrap()),
        std::slice::from_ref(&s1.id)
    );
    assert_eq!(
        ids(db
            .listed_snapshots("alice", Some(&anonymous.id), None)
            .unwrap()),
        std::slice::from_ref(&s2.id)
    );
    assert!(db
        .listed_snapshots("alice", Some(&bobs.id), None)
        .unwrap()
        .is_empty());
}

#[test]
fn a_version_8_database_records_the_names_of_its_live_sandboxes_on_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        migrations::migrate_to(&conn, 8).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts VALUES ('alice', '2026-01-01T00:00:00Z');
             INSERT INTO images(id, account, name, public, size_bytes, source, config_json, ready, created_at)
               VALUES ('img-00000001', 'local', 'base', 1, 1, '/x', '{}', 1, '2026-01-01T00:00:00Z');
             INSERT INTO sandboxes(id, account, name, image_id, runtime, state, cpus, memory_bytes, pids_limit, env_json, workdir, created_at)
               VALUES ('sbx-00000001', 'alice', 'builder', 'img-00000001', 'runc', 'stopped', 1, 1, 2, '[]', '/', '2026-01-01T00:00:00Z');
             INSERT INTO snapshots(id, account, sandbox_id, name, image_id, runtime, cpus, memory_bytes, pids_limit, env_json, workdir, state, created_at)
               VALUES ('snap-00000001', 'alice', 'sbx-00000001', 'baseline', 'img-00000001', 'runc', 1, 1, 2, '[]', '/', 'ready', '2026-01-01T00:00:00Z'),
                      ('snap-00000002', 'alice', 'sbx-00000002', 'baseline', 'img-00000001', 'runc', 1, 1, 2, '[]', '/', 'ready', '2026-01-01T00:00:00Z');",
        )
        .unwrap();
    }
    let db = Db::open(&path).unwrap();
    let name = |id: &str| {
        db.snapshot(&id.parse().unwrap())
            .unwrap()
            .unwrap()
            .sandbox_name
    };
    assert_eq!(name("snap-00000001").as_deref(), Some("builder"));
    // Its sandbox was destroyed before the name was recorded: its id still finds it.
    assert_eq!(name("snap-00000002"), None);
}

#[test]
fn a_restore_marker_is_set_then_cleared_with_the_final_state() {
    let (_d, db) = db();
    image(&db);
    let s = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    db.set_state(&s.id, SandboxState::Running, None).unwrap();
    assert_eq!(db.restoring(&s.id).unwrap(), None);
    let snap = Restoring {
        snapshot: SnapshotId::generate(),
        fresh: false,
    };
    db.set_restoring(&s.id, &snap).unwrap();
    assert_eq!(db.restoring(&s.id).unwrap(), Some(snap.clone()));
    let fresh = Restoring {
        fresh: true,
        ..snap.clone()
    };
    db.set_restoring(&s.id, &fresh).unwrap();
    assert_eq!(db.restoring(&s.id).unwrap(), Some(fresh));
    db.set_restoring(&s.id, &snap).unwrap();
    // An illegal final state leaves the marker: the restore is not over.
    assert!(db.end_restore(&s.id, SandboxState::Creating, None).is_err());
    assert!(db.restoring(&s.id).unwrap().is_some());
    db.end_restore(&s.id, SandboxState::Stopped, Some("resuming failed"))
        .unwrap();
    assert_eq!(db.restoring(&s.id).unwrap(), None);
    let back = db.sandbox(&s.id).unwrap().unwrap();
    assert_eq!(back.state, SandboxState::Stopped);
    assert_eq!(back.state_reason.as_deref(), Some("resuming failed"));
    assert!(db.set_restoring(&SandboxId::generate(), &snap).is_err());
    // A paused sandbox restored and running again is no longer paused for any reason.
    db.set_state(&s.id, SandboxState::Running, None).unwrap();
    db.set_paused(&s.id, PauseReason::Idle).unwrap();
    db.set_restoring(&s.id, &snap).unwrap();
    db.end_restore(&s.id, SandboxState::Running, None).unwrap();
    let back = db.sandbox(&s.id).unwrap().unwrap();
    assert_eq!(back.state, SandboxState::Running);
    assert_eq!((back.paused_at, back.pause_reason), (None, None));
}

#[test]
fn a_snapshot_gets_a_sealed_copy_of_its_sandboxs_secrets_and_each_goes_with_its_owner() {
    let (_d, db) = db();
    image(&db);
    let sbx = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    let names = vec!["API_KEY".to_string()];
    db.set_secrets(sbx.id.as_str(), Some((&names, b"sealed-blob")))
        .unwrap();
    assert_eq!(db.secret_names(sbx.id.as_str()).unwrap(), names);
    let snap = user_snapshot(&sbx, "s");
    db.insert_snapshot(&snap).unwrap();
    assert_eq!(
        db.sealed_secrets(snap.id.as_str()).unwrap().as_deref(),
        Some(b"sealed-blob".as_slice())
    );
    assert_eq!(db.secret_names(snap.id.as_str()).unwrap(), names);
    // A sandbox without secrets makes snapshots without.
    let plain = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    let plain_snap = user_snapshot(&plain, "s");
    db.insert_snapshot(&plain_snap).unwrap();
    assert_eq!(db.sealed_secrets(plain_snap.id.as_str()).unwrap(), None);
    assert!(db.secret_names(plain_snap.id.as_str()).unwrap().is_empty());
    // Gone with their owners.
    db.delete_sandbox(&sbx.id).unwrap();
    assert_eq!(db.sealed_secrets(sbx.id.as_str()).unwrap(), None);
    assert!(db.sealed_secrets(snap.id.as_str()).unwrap().is_some());
    db.delete_snapshot(&snap.id).unwrap();
    assert_eq!(db.sealed_secrets(snap.id.as_str()).unwrap(), None);
    // None removes them.
    db.set_secrets(plain.id.as_str(), Some((&names, b"x")))
        .unwrap();
    db.set_secrets(plain.id.as_str(), None).unwrap();
    assert_eq!(db.sealed_secrets(plain.id.as_str()).unwrap(), None);
}

#[test]
fn a_sandbox_due_says_how_to_pause_it_and_keeps_whether_calls_resume_it() {
    let (_d, db) = db();
    image(&db);
    let a = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    let b = db.insert_sandbox(&new_sandbox("alice", None)).unwrap();
    let (a, b) = (a.id.to_string(), b.id.to_string());
    assert!(!db.sandbox_auto_resume(&a).unwrap());
    db.set_sandbox_pause_at_timeout(&a, true, true).unwrap();
    db.set_sandbox_auto_resume(&a, true).unwrap();
    db.set_sandbox_pause_at_timeout(&b, true, false).unwrap();
    for id in [&a, &b] {
        db.set_sandbox_kill_at(id, Some(10)).unwrap();
    }
    assert!(db.sandbox_auto_resume(&a).unwrap());
    assert!(!db.sandbox_auto_resume(&b).unwrap());
    let mut due = db.sandboxes_due(20).unwrap();
    due.sort();
    let mut want = vec![
        (a.clone(), "alice".to_string(), true, true),
        (b.clone(), "alice".to_string(), true, false),
    ];
    want.sort();
    assert_eq!(due, want);
}
