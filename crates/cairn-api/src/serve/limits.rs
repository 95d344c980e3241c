//! How many connections cairnd holds: the caps on TCP connections (in total and per peer
//! address) and on unix-socket connections, the slot a connection holds for as long as its
//! file descriptor lives, the refusal a connection over a cap gets, the open-file budget the
//! caps are fitted into, and a throttle that keeps a flood from writing a log line per
//! connection. Pure bookkeeping: no sockets are touched here.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cairn_types::api::{ErrorBody, ErrorDetail};

/// The caps, after [`fit_fd_limit`](super::ServeConfig::fit_fd_limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// TCP: a total and a per-peer cap.
    Tcp { total: usize, per_peer: usize },
    /// The unix socket: one cap.
    Unix { total: usize },
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address already has `cap` TCP connections open.
    Peer { cap: usize },
    /// cairnd already has `cap` TCP connections open.
    Total { cap: usize },
    /// The unix socket already has `cap` connections open.
    Unix { cap: usize },
}

impl Refusal {
    /// What the refused client reads.
    pub(crate) fn message(self) -> String {
        match self {
            Refusal::Peer { cap } => format!(
                "too many connections from your address: it already has {cap} open, the most \
                 cairnd accepts from one address (--max-connections-per-peer {cap}); close idle \
                 connections or reuse them (keep-alive), then retry"
            ),
            Refusal::Total { cap } => format!(
                "too many connections: cairnd already has {cap} TCP connections open, its limit \
                 (--max-connections {cap}); retry in a moment"
            ),
            Refusal::Unix { cap } => format!(
                "too many connections on the unix socket: {cap} are open, its limit \
                 (--max-unix-connections {cap}); close idle ones and retry"
            ),
        }
    }

    /// The complete HTTP/1.1 answer: 503 with our JSON error, then the connection closes.
    pub(crate) fn response(self) -> Vec<u8> {
        let body = ErrorBody {
            error: ErrorDetail {
                code: cairn_types::ErrorCode::TooManyConnections
                    .as_str()
                    .to_string(),
                message: self.message(),
                details: None,
            },
        };
        let json = serde_json::to_string(&body).unwrap_or_default();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{json}",
            json.len()
        )
        .into_bytes()
    }
}

/// The key a peer's connections are counted under: its IPv4 address (IPv4-mapped IPv6
/// included), or its IPv6 /64, the block one host usually holds.
pub(crate) fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(seg))
            }
        },
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// The connection counts of one listener.
pub(crate) struct Limits {
    kind: Kind,
    counts: Mutex<Counts>,
}

/// A connection's place under the caps, given back when dropped (with the connection's
/// file descriptor, which it travels with, also through a WebSocket upgrade).
pub(crate) struct Slot {
    limits: Arc<Limits>,
    peer: Option<IpAddr>,
}

impl Limits {
    pub(crate) fn new(kind: Kind) -> Arc<Limits> {
        Arc::new(Limits {
            kind,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every update is one step.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for a connection from `peer` (None on the unix socket), or says which cap
    /// it is over.
    pub(crate) fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Slot, Refusal> {
        let key = peer.map(peer_key);
        let mut c = self.counts();
        match self.kind {
            Kind::Unix { total } if c.total >= total => return Err(Refusal::Unix { cap: total }),
            Kind::Tcp { total, per_peer } => {
                let mine = key.and_then(|k| c.per_peer.get(&k).copied()).unwrap_or(0);
                if mine >= per_peer {
                    return Err(Refusal::Peer { cap: per_peer });
                }
                if c.total >= total {
                    return Err(Refusal::Total { cap: total });
                }
            }
            Kind::Unix { .. } => {}
        }
        c.total += 1;
        if let Some(k) = key {
            *c.per_peer.entry(k).or_insert(0) += 1;
        }
        Ok(Slot {
            limits: self.clone(),
            peer: key,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.counts().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.limits.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(k) = self.peer {
            if let Some(n) = c.per_peer.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    c.per_peer.remove(&k);
                }
            }
        }
    }
}

/// Lets one log line through per period and counts the events in between, so that 25,000
/// refused connections write a line or two, each with the count.
pub(crate) struct Throttle {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub(crate) fn new(period: Duration) -> Throttle {
        Throttle {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// Notes one event at `now`: `Some(n)` when a line should be written now, for `n` events
    /// (this one and those not logged since the last line).
    pub(crate) fn hit(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, unlogged) = &mut *s;
        *unlogged += 1;
        if last.is_some_and(|t| now.duration_since(t) < self.period) {
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(unlogged))
    }
}

/// The caps fitted to `nofile` open files: TCP connections may use at most half of them and
/// the unix socket an eighth, so that at least three eighths stay for the database, the
/// sandboxes' agent connections, runtimes, pipes and checkpoint streams. Returns the caps
/// `(tcp total, per peer, unix)` and a sentence for each one lowered.
pub(crate) fn fit(
    nofile: u64,
    tcp: usize,
    per_peer: usize,
    unix: usize,
) -> ((usize, usize, usize), Vec<String>) {
    let budget = |share: u64| usize::try_from(nofile / share).unwrap_or(usize::MAX).max(1);
    let mut notes = Vec::new();
    let mut lower = |flag: &str, want: usize, most: usize, why: &str| {
        if want <= most {
            return want;
        }
        notes.push(format!(
            "{flag} {want} lowered to {most}: cairnd may open {nofile} files (RLIMIT_NOFILE) and \
             {why}; raise the limit (LimitNOFILE= in its systemd unit, or ulimit -n) to allow more"
        ));
        most
    };
    let tcp = lower(
        "--max-connections",
        tcp,
        budget(2),
        "gives TCP connections at most half",
    );
    let unix = lower(
        "--max-unix-connections",
        unix,
        budget(8),
        "gives the unix socket at most an eighth",
    );
    let per_peer = per_peer.min(tcp);
    ((tcp, per_peer, unix), notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_counted_by_ipv4_address_or_ipv6_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let v4 = ip("192.0.2.7");
        assert_eq!(peer_key(v4), v4);
        assert_eq!(peer_key(ip("::ffff:192.0.2.7")), v4);
        let a = ip("2001:db8:1:2:aaaa::1");
        let b = ip("2001:db8:1:2:ffff:1:2:3");
        let other = ip("2001:db8:1:3::1");
        assert_eq!(peer_key(a), peer_key(b));
        assert_ne!(peer_key(a), peer_key(other));
        assert_eq!(peer_key(a).to_string(), "2001:db8:1:2::");
    }

    #[test]
    fn caps_refuse_per_peer_then_in_total_and_slots_give_back() {
        let limits = Limits::new(Kind::Tcp {
            total: 3,
            per_peer: 2,
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let c: IpAddr = [10, 0, 0, 3].into();
        let a1 = limits.admit(Some(a));
        let a2 = limits.admit(Some(a));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(limits.admit(Some(a)).err(), Some(Refusal::Peer { cap: 2 }));
        let b1 = limits.admit(Some(b));
        assert!(b1.is_ok());
        assert_eq!(limits.admit(Some(c)).err(), Some(Refusal::Total { cap: 3 }));
        assert_eq!(limits.open(), 3);
        drop(a1);
        assert!(limits.admit(Some(c)).is_ok(), "a freed slot is reusable");
        drop((a2, b1));
        assert_eq!(limits.open(), 0, "every slot was given back");
        assert!(
            limits.counts().per_peer.is_empty(),
            "no entry for gone peers"
        );
    }

    #[test]
    fn the_unix_socket_has_its_own_cap() {
        let limits = Limits::new(Kind::Unix { total: 1 });
        let first = limits.admit(None);
        assert!(first.is_ok());
        assert_eq!(limits.admit(None).err(), Some(Refusal::Unix { cap: 1 }));
        drop(first);
        assert!(limits.admit(None).is_ok());
    }

    #[test]
    fn refusals_name_the_cap_and_answer_503_json() {
        let r = Refusal::Peer { cap: 4 };
        assert!(r.message().contains("--max-connections-per-peer 4"));
        let text = String::from_utf8(r.response()).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_connections");
        assert!(Refusal::Total { cap: 9 }
            .message()
            .contains("--max-connections 9"));
        assert!(Refusal::Unix { cap: 5 }
            .message()
            .contains("--max-unix-connections 5"));
    }

    #[test]
    fn the_throttle_lets_one_line_through_per_period_with_the_count() {
        let t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.hit(start), Some(1));
        for i in 1..1000 {
            assert_eq!(t.hit(start + Duration::from_millis(i)), None);
        }
        assert_eq!(t.hit(start + Duration::from_secs(10)), Some(1000));
        assert_eq!(t.hit(start + Duration::from_secs(11)), None);
    }

    #[test]
    fn caps_fit_into_the_open_file_limit() {
        // The review's machine: 20,000 files; the defaults fit.
        let ((tcp, peer, unix), notes) = fit(20_000, 8192, 512, 1024);
        assert_eq!((tcp, peer, unix), (8192, 512, 1024));
        assert!(notes.is_empty());
        // Asking for more than the budget is lowered, with a note naming the flag.
        let ((tcp, peer, unix), notes) = fit(20_000, 50_000, 50_000, 5000);
        assert_eq!((tcp, peer, unix), (10_000, 10_000, 2500));
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains("--max-connections 50000 lowered to 10000"));
        // A tiny limit still leaves every listener something.
        let ((tcp, peer, unix), _) = fit(5, 8192, 512, 1024);
        assert_eq!((tcp, peer, unix), (2, 2, 1));
        // TCP and the unix socket together never take more than 5/8 of the files.
        for nofile in [64u64, 1024, 4096, 65_536, 1 << 20] {
            let ((tcp, _, unix), _) = fit(nofile, usize::MAX, usize::MAX, usize::MAX);
            assert!((tcp + unix) as u64 <= nofile * 5 / 8, "{nofile}");
        }
    }
}
