//! Templates on plain directories and the fake runtime (no root): the build-step cache
//! per account, which snapshots a replaced or removed template frees (its lineage, unless
//! another template descends from it), and the snapshot a template holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use cairn_db::Db;
use cairn_engine::{
    CreateSandbox, Engine, EngineConfig, EngineError, NewTemplate, Principal, SnapshotLimits,
};
use cairn_runtime::Runtime;
use cairn_test_support::{DirStorage, FakeRuntime};
use cairn_types::{NetworkMode, RuntimeKind};

const ALICE: &str = "local";

async fn engine(dir: &Path) -> Arc<Engine> {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let storage = Arc::new(DirStorage::new(home.join("pool")).unwrap());
    let mut cfg = EngineConfig::new(&home);
    cfg.default_runtime = RuntimeKind::Runc;
    cfg.disk_quota = false;
    cfg.default_disk_bytes = None;
    cfg.bridge = format!("ctt{}", std::process::id());
    cfg.snapshot_limits = SnapshotLimits::default();
    let db = Arc::new(Db::open(&home.join("cairn.db")).unwrap());
    let runtime: Arc<dyn Runtime> = Arc::new(FakeRuntime::new(RuntimeKind::Runc));
    let e = Engine::open_with(cfg, db, storage, vec![runtime])
        .await
        .unwrap();
    let src = dir.join("image");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("bin/sh"), "#!/bin/true\n").unwrap();
    let operator = Principal {
        account: ALICE,
        operator: true,
    };
    e.import_image_path(
        operator,
        "base",
        src.to_str().unwrap(),
        true,
        cairn_types::ProgressSink::none(),
    )
    .await
    .unwrap();
    e
}

fn template(name: &str, snap: &str) -> NewTemplate {
    NewTemplate {
        name: name.into(),
        from_snapshot: snap.into(),
        replace: true,
        ..NewTemplate::default()
    }
}

/// A "build": a sandbox, a snapshot per step cached under `keys`; returns the snapshots.
async fn build(e: &Engine, account: &str, sandbox: &str, keys: &[&str]) -> Vec<String> {
    e.create_sandbox(
        account,
        &CreateSandbox {
            image: "base".into(),
            name: Some(sandbox.into()),
            network: Some(NetworkMode::None),
            ..CreateSandbox::default()
        },
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    for k in keys {
        let s = e
            .create_snapshot(account, sandbox, Some(&format!("step-{k}")), false)
            .await
            .unwrap();
        e.put_template_step(account, k, &s.id).await.unwrap();
        out.push(s.id);
    }
    e.destroy_sandbox(account, sandbox, true, false)
        .await
        .unwrap();
    out
}

#[tokio::test]
async fn steps_are_per_account_and_go_with_the_templates_that_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let a = build(&e, ALICE, "b1", &["k1", "k2", "k3"]).await;
    // Cached for Alice only.
    assert_eq!(
        e.template_step(ALICE, "k2").await.unwrap().to_string(),
        a[1]
    );
    assert!(matches!(
        e.template_step("bob", "k2").await,
        Err(EngineError::NotFound(_))
    ));
    assert!(matches!(
        e.put_template_step("bob", "k9", &a[0]).await,
        Err(EngineError::NotFound(_))
    ));
    assert!(matches!(
        e.template_step(ALICE, "../k").await,
        Err(EngineError::InvalidArgument(_))
    ));
    e.create_template(ALICE, &template("t", &a[2]))
        .await
        .unwrap();

    // The template's snapshot cannot be deleted; its ancestors can (the cache forgets them).
    match e.delete_snapshot(ALICE, &a[2]).await {
        Err(EngineError::Conflict(m)) => assert!(m.contains("cairn template rm t"), "{m}"),
        other => panic!("a held snapshot was deleted: {other:?}"),
    }
    // A rebuild that shares no step: a new chain k4 k5.
    let b = build(&e, ALICE, "b2", &["k4", "k5"]).await;
    e.create_template(ALICE, &template("t", &b[1]))
        .await
        .unwrap();
    // The old chain (k1..k3) is not in the new one's lineage: gone with the replace.
    for k in ["k1", "k2", "k3"] {
        assert!(e.template_step(ALICE, k).await.is_err(), "{k} kept");
    }
    assert!(e.inspect_snapshot(ALICE, &a[2]).await.is_err());
    // A second template on the same snapshot keeps its chain when the first goes.
    e.create_template(ALICE, &template("u", &b[1]))
        .await
        .unwrap();
    e.remove_template(ALICE, "t").await.unwrap();
    assert!(e.template_step(ALICE, "k5").await.is_ok());
    e.remove_template(ALICE, "u").await.unwrap();
    assert!(e.template_step(ALICE, "k5").await.is_err());
    assert!(e.template_step(ALICE, "k4").await.is_err());
    assert!(matches!(
        e.remove_template(ALICE, "u").await,
        Err(EngineError::NotFound(_))
    ));

    // A failed build's steps: only a prune removes them, and only unused ones.
    let c = build(&e, ALICE, "b3", &["k6", "k7"]).await;
    e.create_template(ALICE, &template("v", &c[0]))
        .await
        .unwrap();
    let pruned = e.prune_steps(ALICE, None).await.unwrap();
    assert_eq!(
        pruned.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![c[1].clone()]
    );
    assert!(e.template_step(ALICE, "k6").await.is_ok());

    // An interrupted build's step that was never cached: pruned once its build sandbox is
    // gone; a snapshot of the user's that only looks like one (another sandbox) is kept.
    for (sandbox, name) in [("build-w", "step-2-abc"), ("mine", "step-1")] {
        e.create_sandbox(
            ALICE,
            &CreateSandbox {
                image: "base".into(),
                name: Some(sandbox.into()),
                network: Some(NetworkMode::None),
                ..CreateSandbox::default()
            },
        )
        .await
        .unwrap();
        e.create_snapshot(ALICE, sandbox, Some(name), false)
            .await
            .unwrap();
    }
    assert!(
        e.prune_steps(ALICE, None).await.unwrap().is_empty(),
        "a live build's"
    );
    e.destroy_sandbox(ALICE, "build-w", true, false)
        .await
        .unwrap();
    e.destroy_sandbox(ALICE, "mine", true, false).await.unwrap();
    assert_eq!(e.prune_steps(ALICE, None).await.unwrap().len(), 1);
    assert!(e
        .inspect_snapshot(ALICE, "build-w:step-2-abc")
        .await
        .is_err());
    e.inspect_snapshot(ALICE, "mine:step-1").await.unwrap();
}
