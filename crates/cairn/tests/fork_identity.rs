//! Forks are fresh (issue 15, finding 7): every sandbox — a fresh create, a fork, a stateful
//! fork, the target of `snapshot restore --to` — has its own hostname (its id) and its own
//! `/etc/machine-id`, and the restored processes of a stateful fork see them; random bytes
//! differ between forks, while a userland PRNG seeded before the snapshot does not (the
//! hazard docs/snapshots.md describes). The source is never touched.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use cairn_test_support::Daemon;

fn daemon() -> Daemon {
    Daemon::with_base(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        &[],
    )
}

fn up(d: &Daemon, rt: &str) -> String {
    d.cairn(&["up", "--image", "base", "--runtime", rt]).ok()
}

fn hostname(d: &Daemon, id: &str) -> String {
    d.cairn(&["exec", id, "hostname"]).ok()
}

/// The sandbox's `/etc/machine-id`, checked to be one (32 lowercase hex digits and a newline).
fn machine_id(d: &Daemon, id: &str) -> String {
    let text = d
        .cairn(&[
            "exec",
            id,
            "cat /etc/machine-id; test -f /etc/machine-id -a ! -L /etc/machine-id && echo regular",
        ])
        .stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "sandbox {id} has no machine id of its own: {text:?}"
    );
    let mid = lines[0];
    assert!(
        mid.len() == 32
            && mid
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "sandbox {id}: {mid:?} is not a machine id"
    );
    assert_eq!(
        lines[1], "regular",
        "sandbox {id}: /etc/machine-id is not a plain file"
    );
    mid.to_string()
}

/// Detached (a child of the init, so a stateful snapshot carries it): a loop that reads
/// the hostname and machine id once, then every 100 ms writes
/// `CACHED_HOST LIVE_HOST CACHED_ID LIVE_ID` to /tmp/ident and appends
/// `N RANDOM URANDOM` (its iteration, the shell's `$RANDOM`, 8 bytes of /dev/urandom) to
/// /tmp/rand.
fn start_identity_loop(d: &Daemon, id: &str) {
    d.cairn(&[
        "exec",
        "-d",
        id,
        "H=$(hostname); M=$(cat /etc/machine-id); i=0; \
         while :; do i=$((i+1)); \
           echo \"$H $(hostname) $M $(cat /etc/machine-id)\" > /tmp/ident.new; mv /tmp/ident.new /tmp/ident; \
           echo \"$i $RANDOM $(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' ')\" >> /tmp/rand; \
           sleep 0.1; done",
    ])
    .ok();
    wait_for(&format!("the loop in {id} to start"), || {
        d.cairn(&["exec", id, "test -s /tmp/ident && test -s /tmp/rand"])
            .code
            == 0
    });
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the loop last wrote: (cached hostname, live hostname, cached id, live id).
fn ident(d: &Daemon, id: &str) -> (String, String, String, String) {
    let out = d.cairn(&["exec", id, "cat /tmp/ident"]).ok();
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.len(), 4, "{id}: {out:?}");
    (f[0].into(), f[1].into(), f[2].into(), f[3].into())
}

/// The loop's lines by iteration: ($RANDOM, urandom bytes).
fn rand_lines(d: &Daemon, id: &str) -> BTreeMap<u64, (String, String)> {
    d.cairn(&["exec", id, "cat /tmp/rand"])
        .ok()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| (f[0].parse().unwrap(), (f[1].into(), f[2].into())))
        })
        .collect()
}

cairn_test_support::both_runtimes!(
    every_fork_has_its_own_hostname_machine_id_and_random_bytes,
    a_restore_into_another_sandbox_gives_it_its_own_identity,
);

fn every_fork_has_its_own_hostname_machine_id_and_random_bytes(rt: &str) {
    let d = daemon();
    let src = up(&d, rt);
    // A fresh sandbox: its id as hostname, a machine id of its own.
    assert_eq!(hostname(&d, &src), src);
    let src_mid = machine_id(&d, &src);
    start_identity_loop(&d, &src);
    let snap = d.cairn(&["snapshot", "create", &src, "--stateful"]).ok();
    // The loop's last iteration in the snapshot is at most this one.
    let at_snapshot = *rand_lines(&d, &src).keys().last().unwrap();
    let stateful: Vec<String> = d
        .cairn(&["fork", &snap, "--count", "2"])
        .ok()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(stateful.len(), 2);
    let fresh = d.cairn(&["up", "--from-snapshot", &snap, "--fresh"]).ok();

    let mut mids = HashSet::from([src_mid.clone()]);
    for f in stateful.iter().chain([&fresh]) {
        assert_eq!(
            d.cairn(&["inspect", f, "--json"]).json()["state"],
            "running"
        );
        // Its own hostname, at once (set before the fork was reported running)…
        assert_eq!(hostname(&d, f), *f, "fork {f} has another's hostname");
        // … and its own machine id.
        let mid = machine_id(&d, f);
        assert!(mids.insert(mid.clone()), "fork {f} shares machine id {mid}");
        // Nothing of the work is left behind, in the fork or on the host.
        assert_eq!(
            d.cairn(&["exec", f, "ls -a /etc | grep -c cairn-tmp"])
                .stdout
                .trim(),
            "0"
        );
        let scratch = d.home.join("run").join(f).join("exec");
        let left: Vec<_> = std::fs::read_dir(&scratch)
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            !left
                .iter()
                .any(|n| n.to_string_lossy().starts_with("hostname-")),
            "{left:?}"
        );
    }
    // Under gVisor the agent's init set it (no runtime exec); under runc cairnd does
    // (nsenter: the agent lacks CAP_SYS_ADMIN there, which would be the host kernel's).
    let by_agent = d.log_text().matches("hostname by its agent").count();
    assert_eq!(
        by_agent,
        if rt == "gvisor" { 2 } else { 0 },
        "{}",
        d.log_text()
    );
    for f in &stateful {
        // The resumed loop sees the fork's hostname and machine id when it asks again; what
        // it read before the snapshot it keeps (documented).
        let mid = machine_id(&d, f);
        wait_for(&format!("the resumed loop in {f} to write again"), || {
            let (_, live_host, _, live_mid) = ident(&d, f);
            live_host == *f && live_mid == mid
        });
        let (cached_host, _, cached_mid, _) = ident(&d, f);
        assert_eq!(cached_host, src);
        assert_eq!(cached_mid, src_mid);
    }

    // Random state: the forks' resumed loop reads different bytes from /dev/urandom at the
    // same iteration, while the shell's own PRNG (seeded before the snapshot) repeats.
    let common = |a: &BTreeMap<u64, (String, String)>, b: &BTreeMap<u64, (String, String)>| {
        a.keys()
            .filter(|k| **k > at_snapshot + 1 && b.contains_key(k))
            .count()
    };
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    wait_for(
        "both resumed loops to run 5 iterations past the snapshot",
        || {
            a = rand_lines(&d, &stateful[0]);
            b = rand_lines(&d, &stateful[1]);
            common(&a, &b) >= 5
        },
    );
    for (n, (random, urandom)) in a.iter().filter(|(n, _)| **n > at_snapshot + 1) {
        let Some((other_random, other_urandom)) = b.get(n) else {
            continue;
        };
        assert_ne!(
            urandom, other_urandom,
            "iteration {n}: the forks read the same random bytes"
        );
        assert_eq!(
            random, other_random,
            "iteration {n}: a PRNG seeded before the snapshot is expected to repeat in every fork"
        );
    }
    // New processes read different bytes too, in each fork and in the source.
    let urandom: HashSet<String> = stateful
        .iter()
        .chain([&fresh, &src])
        .map(|f| {
            d.cairn(&[
                "exec",
                f,
                "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'",
            ])
            .ok()
        })
        .collect();
    assert_eq!(urandom.len(), 4, "{urandom:?}");

    // The source is untouched: its hostname and machine id, seen by its own loop too.
    assert_eq!(hostname(&d, &src), src);
    assert_eq!(machine_id(&d, &src), src_mid);
    let (cached_host, live_host, cached_mid, live_mid) = ident(&d, &src);
    assert_eq!((cached_host, live_host), (src.clone(), src.clone()));
    assert_eq!((cached_mid, live_mid), (src_mid.clone(), src_mid));
}

fn a_restore_into_another_sandbox_gives_it_its_own_identity(rt: &str) {
    let d = daemon();
    let a = up(&d, rt);
    let b = up(&d, rt);
    let (a_mid, b_mid) = (machine_id(&d, &a), machine_id(&d, &b));
    assert_ne!(a_mid, b_mid);
    start_identity_loop(&d, &a);
    let snap = d.cairn(&["snapshot", "create", &a, "--stateful"]).ok();

    // Into b: a's files and processes, b's hostname and machine id.
    let restored = d
        .cairn(&["snapshot", "restore", &snap, "--to", &b, "--json"])
        .json();
    assert_eq!(restored["state"], "running");
    assert_eq!(hostname(&d, &b), b);
    assert_eq!(machine_id(&d, &b), b_mid);
    wait_for("the loop restored into b to see b's identity", || {
        let (cached, live, _, live_mid) = ident(&d, &b);
        assert_eq!(cached, a, "the loop came from a");
        live == b && live_mid == b_mid
    });

    // Into a itself: the same sandbox, so the same hostname and machine id.
    d.cairn(&["snapshot", "restore", &snap]).ok();
    assert_eq!(hostname(&d, &a), a);
    assert_eq!(machine_id(&d, &a), a_mid);
    wait_for("the loop restored into a to run again", || {
        let (_, live, _, live_mid) = ident(&d, &a);
        live == a && live_mid == a_mid
    });
    for id in [&a, &b] {
        assert_eq!(
            d.cairn(&["inspect", id, "--json"]).json()["state"],
            "running"
        );
    }
}

/// A snapshot whose `/etc/machine-id` is a symlink to a host path: the fork gets a file of
/// its own in its root, and the host's file stays as it was.
#[test]
fn a_machine_id_symlink_never_leads_the_write_out_of_the_root() {
    let d = daemon();
    let victim = d.scratch().join("machine-id");
    std::fs::write(&victim, "host-file\n").unwrap();
    let src = up(&d, "runc");
    d.cairn(&[
        "exec",
        &src,
        &format!(
            "mkdir -p /var/lib/dbus && ln -sf {v} /etc/machine-id && ln -sf {v} /var/lib/dbus/machine-id",
            v = victim.display()
        ),
    ])
    .ok();
    let snap = d.cairn(&["snapshot", "create", &src]).ok();
    let fork = d.cairn(&["up", "--from-snapshot", &snap]).ok();
    let mid = machine_id(&d, &fork);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host-file\n");
    // dbus's link is left a link (now dangling inside the sandbox, as it was).
    assert_eq!(
        d.cairn(&["exec", &fork, "readlink /var/lib/dbus/machine-id"])
            .ok(),
        victim.display().to_string()
    );
    // A restart keeps the fork's machine id (it is written once, at creation).
    d.cairn(&["stop", &fork]).ok();
    d.cairn(&["start", &fork]).ok();
    assert_eq!(machine_id(&d, &fork), mid);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host-file\n");
}
