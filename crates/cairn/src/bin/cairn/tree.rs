//! `cairn snapshot tree [SANDBOX]`: the lineage of the caller's snapshots and sandboxes, as
//! a tree under each image. A snapshot hangs under the one it was taken on top of (its
//! `parent`: the last snapshot of its sandbox, or the one the sandbox was forked or restored
//! from); a sandbox hangs under the snapshot its files descend from (`parent_snapshot`), so
//! a fork shows under the snapshot it came from, and a restored sandbox under the snapshot
//! it went back to.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use cairn_types::api::{SandboxInfo, SnapshotInfo};
use cairn_types::SnapshotState;

/// One node of the lineage: an image (a root), a snapshot or a sandbox.
#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Node {
    /// The image the trees under it started from.
    Image {
        /// Its name.
        name: String,
        /// What descends from it directly.
        children: Vec<Node>,
    },
    /// A snapshot.
    Snapshot {
        id: String,
        name: String,
        /// The sandbox it was taken of.
        sandbox: String,
        stateful: bool,
        auto: bool,
        state: SnapshotState,
        #[serde(skip_serializing_if = "Option::is_none")]
        imported_from: Option<String>,
        created_at: DateTime<Utc>,
        children: Vec<Node>,
    },
    /// A sandbox (a leaf: where its files are now).
    Sandbox {
        id: String,
        name: Option<String>,
        state: cairn_types::SandboxState,
        created_at: DateTime<Utc>,
    },
}

impl Node {
    /// Where it goes among its siblings: snapshots first, oldest first, then the sandboxes
    /// that sit there now (a sandbox's creation says nothing of when it got there).
    fn order(&self) -> (bool, Option<DateTime<Utc>>) {
        match self {
            Node::Image { .. } => (false, None),
            Node::Snapshot { created_at, .. } => (false, Some(*created_at)),
            Node::Sandbox { created_at, .. } => (true, Some(*created_at)),
        }
    }

    /// Whether this node or one under it is sandbox `id`, or a snapshot taken of it.
    fn concerns(&self, id: &str) -> bool {
        match self {
            Node::Image { children, .. } => children.iter().any(|c| c.concerns(id)),
            Node::Snapshot {
                sandbox, children, ..
            } => sandbox == id || children.iter().any(|c| c.concerns(id)),
            Node::Sandbox { id: own, .. } => own == id,
        }
    }
}

/// The lineage of `snapshots` and `sandboxes`, one root per image, snapshots oldest first
/// then sandboxes at every level; with `focus` (a sandbox id), only the trees that hold that sandbox or a snapshot
/// of it. Snapshots that did not become ready are left out (their children, if any, hang
/// from the nearest ready ancestor, which is what the API says their parent is anyway).
pub fn build(
    snapshots: &[SnapshotInfo],
    sandboxes: &[SandboxInfo],
    focus: Option<&str>,
) -> Vec<Node> {
    let shown: Vec<&SnapshotInfo> = snapshots
        .iter()
        .filter(|s| s.state == SnapshotState::Ready)
        .collect();
    let ids: HashSet<&str> = shown.iter().map(|s| s.id.as_str()).collect();
    // Children of each snapshot; roots (no visible parent) by image.
    let mut snap_children: HashMap<&str, Vec<&SnapshotInfo>> = HashMap::new();
    let mut sbx_children: HashMap<&str, Vec<&SandboxInfo>> = HashMap::new();
    let mut root_snaps: BTreeMap<&str, Vec<&SnapshotInfo>> = BTreeMap::new();
    let mut root_sbxs: BTreeMap<&str, Vec<&SandboxInfo>> = BTreeMap::new();
    for s in &shown {
        match s.parent.as_deref().filter(|p| ids.contains(p)) {
            Some(p) => snap_children.entry(p).or_default().push(s),
            None => root_snaps.entry(s.image.as_str()).or_default().push(s),
        }
    }
    for b in sandboxes {
        match b.parent_snapshot.as_deref().filter(|p| ids.contains(p)) {
            Some(p) => sbx_children.entry(p).or_default().push(b),
            None => root_sbxs.entry(b.image.as_str()).or_default().push(b),
        }
    }
    fn sandbox_node(b: &SandboxInfo) -> Node {
        Node::Sandbox {
            id: b.id.clone(),
            name: b.name.clone(),
            state: b.state,
            created_at: b.created_at,
        }
    }
    fn snapshot_node(
        s: &SnapshotInfo,
        snap_children: &HashMap<&str, Vec<&SnapshotInfo>>,
        sbx_children: &HashMap<&str, Vec<&SandboxInfo>>,
        depth: usize,
    ) -> Node {
        let mut children: Vec<Node> = Vec::new();
        // A parent chain is acyclic by construction; the depth bound keeps a corrupt one
        // from recursing without end.
        if depth < 10_000 {
            for c in snap_children.get(s.id.as_str()).into_iter().flatten() {
                children.push(snapshot_node(c, snap_children, sbx_children, depth + 1));
            }
        }
        for b in sbx_children.get(s.id.as_str()).into_iter().flatten() {
            children.push(sandbox_node(b));
        }
        children.sort_by_key(Node::order);
        Node::Snapshot {
            id: s.id.clone(),
            name: s.name.clone(),
            sandbox: s.sandbox.clone(),
            stateful: s.stateful,
            auto: s.auto,
            state: s.state,
            imported_from: s.imported_from.clone(),
            created_at: s.created_at,
            children,
        }
    }
    let images: std::collections::BTreeSet<&str> =
        root_snaps.keys().chain(root_sbxs.keys()).copied().collect();
    let mut out = Vec::new();
    for image in images {
        let mut children: Vec<Node> = Vec::new();
        for s in root_snaps.get(image).into_iter().flatten() {
            children.push(snapshot_node(s, &snap_children, &sbx_children, 0));
        }
        for b in root_sbxs.get(image).into_iter().flatten() {
            children.push(sandbox_node(b));
        }
        children.sort_by_key(Node::order);
        if let Some(id) = focus {
            children.retain(|c| c.concerns(id));
            if children.is_empty() {
                continue;
            }
        }
        out.push(Node::Image {
            name: image.to_string(),
            children,
        });
    }
    out
}

/// The tree as text, one node a line, drawn with box-drawing characters.
pub fn render(roots: &[Node]) -> String {
    fn label(n: &Node) -> String {
        match n {
            Node::Image { name, .. } => format!("image {name}"),
            Node::Snapshot {
                id,
                name,
                sandbox,
                stateful,
                auto,
                imported_from,
                created_at,
                ..
            } => {
                let mut marks = Vec::new();
                if *stateful {
                    marks.push("stateful".to_string());
                }
                if *auto {
                    marks.push("auto".to_string());
                }
                if let Some(from) = imported_from {
                    marks.push(format!("imported from {from}"));
                }
                let marks = if marks.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", marks.join(", "))
                };
                format!(
                    "{id} {name}{marks}  of {sandbox}, {}",
                    crate::output::age(*created_at)
                )
            }
            Node::Sandbox {
                id, name, state, ..
            } => match name {
                Some(n) => format!("● {id} ({n}) {state}"),
                None => format!("● {id} {state}"),
            },
        }
    }
    fn children(n: &Node) -> &[Node] {
        match n {
            Node::Image { children, .. } | Node::Snapshot { children, .. } => children,
            Node::Sandbox { .. } => &[],
        }
    }
    fn walk(n: &Node, prefix: &str, out: &mut String) {
        let kids = children(n);
        for (i, c) in kids.iter().enumerate() {
            let last = i + 1 == kids.len();
            out.push_str(prefix);
            out.push_str(if last { "└── " } else { "├── " });
            out.push_str(&label(c));
            out.push('\n');
            let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
            walk(c, &deeper, out);
        }
    }
    let mut out = String::new();
    for r in roots {
        out.push_str(&label(r));
        out.push('\n');
        walk(r, "", &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_types::{NetworkMode, RuntimeKind, SandboxState};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn snap(id: &str, sandbox: &str, parent: Option<&str>, t: i64) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            name: format!("n-{id}"),
            sandbox: sandbox.into(),
            sandbox_name: None,
            parent: parent.map(Into::into),
            image: "base".into(),
            runtime: RuntimeKind::Runc,
            stateful: false,
            auto: false,
            state: SnapshotState::Ready,
            error: None,
            size_bytes: 0,
            total_bytes: 0,
            created_at: at(t),
            imported_from: None,
        }
    }

    fn sbx(id: &str, parent: Option<&str>, t: i64) -> SandboxInfo {
        let v = serde_json::json!({
            "id": id, "name": null, "image": "base", "runtime": "runc", "state": "running",
            "state_reason": null, "cpus": 1.0, "memory_bytes": 1, "pids_limit": 1, "env": [],
            "workdir": "/", "created_at": at(t), "idle_timeout_secs": null,
            "memory_released": false, "paused_at": null, "pause_reason": null,
            "network": "none", "address": null, "published": [], "disk_bytes": null,
            "disk_used_bytes": null, "parent_snapshot": parent,
        });
        let b: SandboxInfo = serde_json::from_value(v).unwrap();
        assert_eq!(b.network, NetworkMode::None);
        assert_eq!(b.state, SandboxState::Running);
        b
    }

    #[test]
    fn forks_and_restores_hang_under_the_snapshot_they_came_from() {
        // a: s1, then s2 on top; b forked from s1, then s3 of b; a restored to s1; c fresh.
        let snaps = [
            snap("s1", "a", None, 1),
            snap("s2", "a", Some("s1"), 2),
            snap("s3", "b", Some("s1"), 4),
        ];
        let sbxs = [
            sbx("a", Some("s1"), 0),
            sbx("b", Some("s3"), 3),
            sbx("c", None, 5),
        ];
        let text = render(&build(&snaps, &sbxs, None));
        let want = "image base
├── s1 n-s1  of a, AGE
│   ├── s2 n-s2  of a, AGE
│   ├── s3 n-s3  of b, AGE
│   │   └── ● b running
│   └── ● a running
└── ● c running
";
        let ages = regex_lite_ages(&text);
        assert_eq!(ages, want, "{text}");
        // Focused on b: the tree holding it, not c.
        let focused = render(&build(&snaps, &sbxs, Some("b")));
        assert!(
            focused.contains("s3") && !focused.contains("● c"),
            "{focused}"
        );
        // JSON: nested nodes with their kinds.
        let v = serde_json::to_value(build(&snaps, &sbxs, Some("c"))).unwrap();
        assert_eq!(v[0]["kind"], "image");
        assert_eq!(v[0]["children"][0]["kind"], "sandbox");
        assert_eq!(v[0]["children"][0]["id"], "c");
    }

    #[test]
    fn snapshots_that_are_not_ready_are_left_out_and_a_missing_parent_makes_a_root() {
        let mut failed = snap("s2", "a", None, 2);
        failed.state = SnapshotState::Failed;
        let snaps = [snap("s1", "a", Some("gone"), 1), failed];
        let roots = build(&snaps, &[], None);
        let text = render(&roots);
        assert!(text.contains("s1") && !text.contains("s2"), "{text}");
    }

    /// The text with every "N units ago" replaced by AGE.
    fn regex_lite_ages(text: &str) -> String {
        text.lines()
            .map(|l| match l.find(", ") {
                Some(i) if l.ends_with(" ago") => format!("{}, AGE", &l[..i]),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }
}
