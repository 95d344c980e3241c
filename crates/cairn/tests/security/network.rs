//! Finding 8: tenants reached each other on the network. A nat sandbox of Bob fetched
//! Alice's HTTP server; nat sandboxes reached host services bound to 0.0.0.0 through the
//! gateway and the host's own address (and over IPv6 link-local). Now a nat sandbox
//! reaches the outside world and answers the host (published ports), but never another
//! account's sandboxes, the gateway or the host's addresses; an account's own sandboxes
//! reach each other only once it says so (`cairn network set --sandbox-to-sandbox on`).
//!
//! Each daemon has its own bridge `cns<pid><n>` and subnet `10.<200+n>.<pid%250>.0/24`, so
//! these tests never collide with `tests/network.rs` (10.150+) or with each other.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_test_support::{assert_error, Daemon, PrivateNet, Run, Via};

use crate::{assert_healthy, tcp_daemon};

/// A daemon (with TCP) on a private bridge and subnet; returns it, the bridge and the gateway.
fn daemon() -> (Daemon, String, Ipv4Addr) {
    assert!(
        cairn_test_support::which("curl").is_some(),
        "'curl' is missing: apt-get install curl (or run scripts/setup.sh once)"
    );
    let net = PrivateNet::next("cns", 200);
    let d = tcp_daemon(&net.args());
    (d, net.bridge, net.gateway)
}

/// An account acting over TCP with its own token, through the real CLI.
struct Tenant<'a> {
    d: &'a Daemon,
    token: String,
}

impl<'a> Tenant<'a> {
    fn new(d: &'a Daemon, account: &str) -> Tenant<'a> {
        Tenant {
            d,
            token: d.token(account),
        }
    }

    fn cairn(&self, args: &[&str]) -> Run {
        let host = format!("http://{}", self.d.tcp.as_ref().unwrap());
        self.d
            .cairn_env(args, &[("CAIRN_HOST", &host), ("CAIRN_TOKEN", &self.token)])
    }

    /// A running nat sandbox: (id, address).
    fn up(&self, rt: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec![
            "up",
            "--image",
            "base",
            "--runtime",
            rt,
            "--network",
            "nat",
            "--json",
        ];
        args.extend_from_slice(extra);
        let r = self.cairn(&args);
        r.ok();
        let s = r.json();
        (
            s["id"].as_str().unwrap().to_string(),
            s["address"].as_str().unwrap().to_string(),
        )
    }

    /// Serves `body` at `/` on port 8080 of sandbox `id` (a detached child of its init).
    fn serve(&self, id: &str, body: &str) {
        self.cairn(&[
            "exec",
            id,
            &format!("mkdir -p /www && echo {body} > /www/index.html"),
        ])
        .ok();
        self.cairn(&["exec", "-d", id, "httpd -f -p 8080 -h /www"])
            .ok();
    }

    /// `GET http://addr:8080/` from inside sandbox `id`, waiting at most 2 s for the
    /// connection: the page, or `None` when it could not connect.
    fn fetch(&self, id: &str, addr: &str) -> Option<String> {
        let r = self.cairn(&[
            "exec",
            id,
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {addr} 8080 | tail -n 1"),
        ]);
        let body = r.ok();
        (!body.is_empty()).then_some(body)
    }

    /// Like [`Tenant::fetch`], retried for a few seconds: for what must succeed (a port's
    /// policy just changed, a resumed server may not accept yet).
    fn fetch_eventually(&self, id: &str, addr: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.fetch(id, addr);
            if got.is_some() || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sets the account's sandbox-to-sandbox switch and checks the answer.
    fn sandbox_to_sandbox(&self, on: bool) {
        let r = self.cairn(&[
            "network",
            "set",
            "--sandbox-to-sandbox",
            if on { "on" } else { "off" },
            "--json",
        ]);
        r.ok();
        assert_eq!(r.json()["sandbox_to_sandbox"], on, "{r:?}");
    }

    /// Whether a TCP connection from sandbox `id` to `host` (an address, IPv6 with `%eth0`)
    /// port `port` succeeds within 2 s.
    fn connects(&self, id: &str, host: &str, port: u16) -> bool {
        let r = self.cairn(&["exec", id, &format!("nc -w 2 {host} {port} </dev/null")]);
        r.code == 0
    }
}

/// `GET http://addr/` from the test (the host), retried while the server starts.
fn http_get(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = (|| -> std::io::Result<String> {
            let sock: SocketAddr = addr.parse().unwrap();
            let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            match out.split_once("\r\n\r\n") {
                Some((head, body)) if head.contains(" 200 ") => Ok(body.trim().to_string()),
                _ => Err(std::io::Error::other(format!("bad reply: {out}"))),
            }
        })();
        match got {
            Ok(body) => return body,
            Err(e) if Instant::now() > deadline => panic!("GET http://{addr}/ failed: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A host service bound to every address, IPv4 and IPv6 (`[::]`, dual-stack), as a
/// careless host daemon would be; counts the connections it accepts.
struct HostService {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HostService {
    fn start() -> HostService {
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only")
                .unwrap_or_default()
                .trim(),
            "0",
            "this test binds [::] for IPv4 and IPv6 at once: set net.ipv6.bindv6only=0"
        );
        let listener = TcpListener::bind("[::]:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok(_) => {
                        a.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        HostService {
            port,
            accepted,
            stop,
        }
    }

    /// Connections accepted so far (after a moment for the accept loop).
    fn accepted(&self) -> usize {
        std::thread::sleep(Duration::from_millis(100));
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for HostService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The host's primary IPv4 address (the source of its default route).
fn primary_address() -> Ipv4Addr {
    let out = sh("ip -j -4 route get 192.0.2.123 2>/dev/null || ip -j -4 route get 1.1.1.1");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["prefsrc"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("this test needs a host with an IPv4 default route: {out}"))
}

/// The IPv6 link-local addresses the host could answer on the bridge: the ones it has, and
/// the EUI-64 one of the bridge's MAC (what the kernel gives a bridge with IPv6 on).
fn bridge_link_local(bridge: &str) -> Vec<Ipv6Addr> {
    let mut out: Vec<Ipv6Addr> = Vec::new();
    let listed = sh(&format!("ip -j -6 addr show dev {bridge} scope link"));
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap_or_default();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(addr) = a["local"].as_str().and_then(|a| a.parse().ok()) {
                out.push(addr);
            }
        }
    }
    let mac = std::fs::read_to_string(format!("/sys/class/net/{bridge}/address")).unwrap();
    let m: Vec<u8> = mac
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let eui = Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 2, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    );
    if !out.contains(&eui) {
        out.push(eui);
    }
    out
}

/// Nothing of the daemon's networking is left on the host.
fn assert_no_network_leftovers(d: &Daemon, bridge: &str) {
    let netns: Vec<_> = std::fs::read_dir(d.home.join("run/netns"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(netns.is_empty(), "namespaces left: {netns:?}");
    assert!(
        !std::path::Path::new("/sys/class/net").join(bridge).exists(),
        "bridge {bridge} left"
    );
    let tables = sh("nft list tables");
    for family in ["ip", "bridge"] {
        assert!(
            !tables
                .lines()
                .any(|l| l.trim() == format!("table {family} {bridge}")),
            "nft table {family} {bridge} left: {tables}"
        );
    }
}

cairn_test_support::both_runtimes!(
    a_tenant_reaches_neither_another_tenants_sandboxes_nor_the_host,
    isolation_is_rebuilt_after_a_crash_and_holds_through_stop_start_forks_and_address_reuse,
);

/// Bob's sandbox cannot fetch Alice's server by address, nor reach a host service bound to
/// every address through the gateway, the host's primary address or the bridge's IPv6
/// link-local address. Alice's own sandboxes reach each other only once she allows it, and
/// that never lets Bob in (nor Bob's allowing it, him). The host and the publish proxy still
/// reach Alice's server, and everything of hers is intact afterwards.
fn a_tenant_reaches_neither_another_tenants_sandboxes_nor_the_host(rt: &str) {
    let (d, bridge, gateway) = daemon();
    let alice = Tenant::new(&d, "alice");
    let bob = Tenant::new(&d, "bob");
    let published = free_port();
    let (a1, a1_addr) = alice.up(rt, &["--publish", &format!("{published}:8080")]);
    alice.serve(&a1, "alice-secret");
    // The server is up: the host reaches it directly and through the publish proxy.
    assert_eq!(http_get(&format!("{a1_addr}:8080")), "alice-secret");
    assert_eq!(http_get(&format!("127.0.0.1:{published}")), "alice-secret");
    let (a2, _) = alice.up(rt, &[]);
    let (b1, _) = bob.up(rt, &[]);
    let (b2, b2_addr) = bob.up(rt, &[]);
    bob.serve(&b2, "bob-page");
    assert_eq!(http_get(&format!("{b2_addr}:8080")), "bob-page");

    // The attack of the finding: Bob fetches Alice's server by address.
    assert_eq!(
        bob.fetch(&b1, &a1_addr),
        None,
        "Bob's sandbox fetched Alice's server"
    );

    // A host service bound to 0.0.0.0 and [::]: the host reaches it on every address…
    let service = HostService::start();
    let primary = primary_address();
    for addr in [
        SocketAddr::from((gateway, service.port)),
        SocketAddr::from((primary, service.port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, service.port)),
    ] {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("the host service does not answer on {addr}: {e}"));
    }
    assert_eq!(service.accepted(), 3);
    // …a sandbox on none: not the gateway, not the host's primary address, not over IPv6.
    let mut targets = vec![gateway.to_string(), primary.to_string()];
    targets.extend(
        bridge_link_local(&bridge)
            .iter()
            .map(|a| format!("{a}%eth0")),
    );
    for target in &targets {
        assert!(
            !bob.connects(&b1, target, service.port),
            "Bob's sandbox reached the host service on {target}"
        );
    }
    assert_eq!(
        service.accepted(),
        3,
        "the host service got a connection from a sandbox"
    );

    // An account's own sandboxes do not reach each other by default either…
    assert_eq!(alice.fetch(&a2, &a1_addr), None, "same account, by default");
    assert_eq!(
        alice.cairn(&["network", "show", "--json"]).json()["sandbox_to_sandbox"],
        false,
        "sandbox-to-sandbox is off by default"
    );
    // …until the account allows it; that lets in neither Bob nor Alice's sandboxes to his.
    alice.sandbox_to_sandbox(true);
    assert_eq!(
        alice.fetch_eventually(&a2, &a1_addr).as_deref(),
        Some("alice-secret"),
        "Alice allowed her sandboxes to reach each other"
    );
    assert_eq!(bob.fetch(&b1, &a1_addr), None, "Alice's choice let Bob in");
    bob.sandbox_to_sandbox(true);
    assert_eq!(
        bob.fetch_eventually(&b1, &b2_addr).as_deref(),
        Some("bob-page"),
        "Bob allowed his sandboxes to reach each other"
    );
    assert_eq!(
        bob.fetch(&b1, &a1_addr),
        None,
        "two allowing accounts are two groups"
    );
    assert_eq!(
        alice.fetch(&a2, &b2_addr),
        None,
        "Alice reached Bob's sandbox"
    );
    // Allowed or not, the host stays out of reach.
    for target in &targets {
        assert!(
            !alice.connects(&a2, target, service.port),
            "Alice's sandbox reached the host service on {target}"
        );
    }
    assert_eq!(
        service.accepted(),
        3,
        "the host service got a connection from a sandbox"
    );
    // Turned off, at once for running sandboxes.
    alice.sandbox_to_sandbox(false);
    assert_eq!(
        alice.fetch(&a2, &a1_addr),
        None,
        "off again, Alice's sandboxes still talk"
    );

    // Alice's sandbox and server are intact; the daemon is healthy.
    assert_eq!(
        alice.cairn(&["exec", &a1, "cat /www/index.html"]).ok(),
        "alice-secret"
    );
    assert_eq!(http_get(&format!("127.0.0.1:{published}")), "alice-secret");
    assert_healthy(&d);
    for (t, id) in [(&alice, &a1), (&alice, &a2), (&bob, &b1), (&bob, &b2)] {
        t.cairn(&["destroy", "--force", id]).ok();
    }
    assert_no_network_leftovers(&d, &bridge);
}

/// Start-up rebuilds the rules and every port's policy from the database, even when a crash
/// left the host without them; a stopped and started sandbox, a stateful fork (a new address)
/// and a sandbox that gets a destroyed one's address all get their own account's policy.
fn isolation_is_rebuilt_after_a_crash_and_holds_through_stop_start_forks_and_address_reuse(
    rt: &str,
) {
    let (mut d, bridge, gateway) = daemon();
    let alice = Tenant::new(&d, "alice");
    let bob = Tenant::new(&d, "bob");
    let (a1, a1_addr) = alice.up(rt, &[]);
    alice.serve(&a1, "alice-secret");
    assert_eq!(http_get(&format!("{a1_addr}:8080")), "alice-secret");
    let (b1, _) = bob.up(rt, &[]);
    assert_eq!(bob.fetch(&b1, &a1_addr), None, "Bob reached Alice");
    alice.sandbox_to_sandbox(true);
    let (a2, a2_addr) = alice.up(rt, &[]);
    assert_eq!(
        alice.fetch_eventually(&a2, &a1_addr).as_deref(),
        Some("alice-secret")
    );

    // cairnd dies, and the host loses Cairn's tables and its ports' settings (a firewall
    // reload, a crash half-way through a change): every port open, nothing filtered.
    let tokens = (alice.token, bob.token);
    d.kill9();
    sh(&format!(
        "nft delete table ip {bridge}; nft delete table bridge {bridge}; \
         for p in $(ls /sys/class/net/{bridge}/brif); do \
           ip link set dev $p type bridge_slave isolated off; ip link set dev $p group 0; done"
    ));
    let port = format!("cv{}", &b1[4..]);
    let details = sh(&format!("ip -d link show dev {port}"));
    assert!(details.contains("isolated off"), "{details}");
    assert!(!sh("nft list tables").contains(&format!("table bridge {bridge}\n")));
    if rt == "runc" {
        // (gVisor keeps the address in its own network stack, not in the namespace.) The
        // neighbour cache forgets the failed lookups of the isolated port first.
        let ns = d.home.join("run/netns").join(&b1);
        let leaked = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "nsenter --net={0} ip neigh flush all && nsenter --net={0} busybox nc -w 2 {a1_addr} 8080 </dev/null",
                ns.display()
            ))
            .status()
            .unwrap();
        assert!(
            leaked.success(),
            "with the rules gone Bob's namespace reaches Alice: the restart must rebuild them"
        );
    }
    d.relaunch();
    let alice = Tenant {
        d: &d,
        token: tokens.0,
    };
    let bob = Tenant {
        d: &d,
        token: tokens.1,
    };
    assert_eq!(bob.fetch(&b1, &a1_addr), None, "after the restart");
    assert!(
        !bob.connects(&b1, &gateway.to_string(), 22),
        "after the restart, the gateway"
    );
    assert_eq!(
        alice.fetch_eventually(&a2, &a1_addr).as_deref(),
        Some("alice-secret"),
        "Alice's choice survives the restart"
    );

    // Stop and start: the port is made again, isolated.
    bob.cairn(&["stop", &b1]).ok();
    bob.cairn(&["start", &b1]).ok();
    assert_eq!(bob.fetch(&b1, &a1_addr), None, "after stop/start");

    // Stateful forks get new addresses and their own account's policy.
    let bob_snap = bob
        .cairn(&["snapshot", "create", &b1, "--stateful", "--json"])
        .json();
    let bob_snap = bob_snap["id"].as_str().unwrap();
    let forks = bob.cairn(&["fork", bob_snap, "--json"]).json();
    let bf = forks[0]["id"].as_str().unwrap();
    assert_eq!(bob.fetch(bf, &a1_addr), None, "Bob's fork reached Alice");
    let snap = alice
        .cairn(&["snapshot", "create", &a1, "--stateful", "--json"])
        .json();
    let forks = alice
        .cairn(&["fork", snap["id"].as_str().unwrap(), "--json"])
        .json();
    let (af, af_addr) = (
        forks[0]["id"].as_str().unwrap(),
        forks[0]["address"].as_str().unwrap(),
    );
    assert_ne!(af_addr, a1_addr);
    assert_eq!(
        http_get(&format!("{af_addr}:8080")),
        "alice-secret",
        "the server resumed in Alice's fork"
    );
    assert_eq!(
        alice.fetch_eventually(af, &a1_addr).as_deref(),
        Some("alice-secret"),
        "Alice's fork is one of her sandboxes"
    );
    assert_eq!(
        bob.fetch(&b1, af_addr),
        None,
        "Bob reached Alice's fork (its server resumed there)"
    );
    // Restored in place, Bob's sandbox is still isolated.
    bob.cairn(&["snapshot", "restore", bob_snap]).ok();
    assert_eq!(bob.fetch(&b1, &a1_addr), None, "after a restore");

    // A destroyed sandbox's address goes to Bob's next one, without Alice's rights.
    alice.cairn(&["destroy", "--force", &a2]).ok();
    let (b3, b3_addr) = bob.up(rt, &[]);
    assert_eq!(b3_addr, a2_addr, "the lowest free address is reused");
    assert_eq!(
        bob.fetch(&b3, &a1_addr),
        None,
        "Bob inherited Alice's rights"
    );

    // Alice's server is intact; the daemon is healthy.
    assert_eq!(http_get(&format!("{a1_addr}:8080")), "alice-secret");
    assert_healthy(&d);
    for s in alice.cairn(&["ls", "--json"]).json().as_array().unwrap() {
        alice
            .cairn(&["destroy", "--force", s["id"].as_str().unwrap()])
            .ok();
    }
    for s in bob.cairn(&["ls", "--json"]).json().as_array().unwrap() {
        bob.cairn(&["destroy", "--force", s["id"].as_str().unwrap()])
            .ok();
    }
    assert_no_network_leftovers(&d, &bridge);
}

/// The switch is per account, answers with JSON errors to bad input, and needs a token.
#[test]
fn the_sandbox_to_sandbox_switch_is_per_account_and_checks_its_input() {
    let (d, _, _) = daemon();
    let alice = d.token("alice");
    let bob = d.token("bob");
    let put = |token: Option<&str>, body: &str| {
        d.http(Via::Tcp, "PUT", "/v1/account/network", token, Some(body))
    };
    let (code, v) = put(Some(&alice), r#"{"sandbox_to_sandbox":true}"#);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v,
        serde_json::json!({ "account": "alice", "sandbox_to_sandbox": true })
    );
    let (code, v) = d.http(Via::Tcp, "GET", "/v1/account/network", Some(&bob), None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["sandbox_to_sandbox"], false,
        "Alice's choice is not Bob's"
    );
    for (body, mentions) in [
        (r#"{"sandbox_to_sandbox":"yes"}"#, "sandbox_to_sandbox"),
        (r#"{}"#, "sandbox_to_sandbox"),
        (r#"{"sandbox_to_sandbox":true,"account":"bob"}"#, "account"),
        ("not json", "invalid request body"),
    ] {
        assert_error(&put(Some(&alice), body), 400, "invalid_argument", mentions);
    }
    assert_error(
        &put(None, r#"{"sandbox_to_sandbox":true}"#),
        401,
        "unauthenticated",
        "Bearer",
    );
    let (_, v) = d.http(Via::Tcp, "GET", "/v1/account/network", Some(&alice), None);
    assert_eq!(
        v["sandbox_to_sandbox"], true,
        "refused requests changed nothing"
    );
    let (_, v) = d.http(Via::Tcp, "GET", "/v1/account/network", Some(&bob), None);
    assert_eq!(v["sandbox_to_sandbox"], false);
    assert_healthy(&d);
}
