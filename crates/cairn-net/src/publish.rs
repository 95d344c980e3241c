//! Published ports: a userspace TCP proxy from `127.0.0.1:HOSTPORT` on the
//! host to `ADDRESS:PORT` of a `nat` sandbox.
//!
//! Why a proxy in cairnd and not nftables DNAT: DNAT of host-loopback
//! traffic needs `net.ipv4.conf.*.route_localnet=1`, which makes the kernel
//! route 127.0.0.0/8 packets that arrive from the network (the kube-proxy
//! CVE-2020-8558 class of bugs: neighbours reach services bound to
//! localhost); a proxy needs no sysctl, works the same for runc and gVisor,
//! learns at `bind()` that a port is taken (and by whom), and listens only
//! on loopback. Its costs: bytes go through cairnd (fine for development
//! traffic, not for bulk data) and the server sees connections from the
//! gateway address instead of the real client; listeners must be bound
//! again when cairnd restarts (the engine does that at start-up).

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use cairn_cmd::Cmd;

use crate::NetError;

/// One `HOSTPORT:PORT` mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishSpec {
    /// Port on the host's 127.0.0.1.
    pub host_port: u16,
    /// TCP port inside the sandbox.
    pub port: u16,
}

impl FromStr for PublishSpec {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = |why: &str| {
            NetError::Invalid(format!(
                "invalid publish spec '{s}': {why}; use HOSTPORT:PORT, e.g. 8080:80"
            ))
        };
        let (h, p) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let port = |v: &str, what: &str| -> Result<u16, NetError> {
            match v.parse::<u16>() {
                Ok(0) => Err(bad(&format!("{what} 0 is not a port"))),
                Ok(n) => Ok(n),
                Err(_) => Err(bad(&format!(
                    "{what} '{v}' is not a number from 1 to 65535"
                ))),
            }
        };
        Ok(PublishSpec {
            host_port: port(h, "host port")?,
            port: port(p, "sandbox port")?,
        })
    }
}

impl fmt::Display for PublishSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host_port, self.port)
    }
}

impl PublishSpec {
    /// Parses every spec and refuses a host port given twice.
    pub fn parse_all(specs: &[String]) -> Result<Vec<PublishSpec>, NetError> {
        let mut out: Vec<PublishSpec> = Vec::new();
        for s in specs {
            let p: PublishSpec = s.parse()?;
            if out.iter().any(|o| o.host_port == p.host_port) {
                return Err(NetError::Invalid(format!(
                    "host port {} is published twice: give each HOSTPORT once",
                    p.host_port
                )));
            }
            out.push(p);
        }
        Ok(out)
    }
}

/// Who holds a host port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortHolder {
    /// A Cairn sandbox publishes it.
    Sandbox(String),
    /// A host process listens on it.
    Process {
        /// Program name.
        name: String,
        /// Its pid.
        pid: u32,
    },
    /// Something we could not identify.
    Unknown,
}

impl fmt::Display for PortHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortHolder::Sandbox(id) => write!(f, "sandbox {id}"),
            PortHolder::Process { name, pid } => write!(f, "process '{name}' (pid {pid})"),
            PortHolder::Unknown => f.write_str("another program on this host"),
        }
    }
}

struct Listener {
    owner: String,
    task: JoinHandle<()>,
}

/// The published ports of every sandbox.
#[derive(Default)]
pub struct PortProxy {
    listeners: Mutex<HashMap<u16, Listener>>,
}

impl PortProxy {
    /// An empty proxy.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u16, Listener>> {
        // Every update is a single insert or remove, so a poisoned map is consistent.
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Listens on `127.0.0.1:spec.host_port` and forwards each connection to
    /// `target:spec.port`, on behalf of sandbox `owner`.
    pub async fn publish(
        &self,
        owner: &str,
        spec: PublishSpec,
        target: Ipv4Addr,
    ) -> Result<(), NetError> {
        if let Some(l) = self.map().get(&spec.host_port) {
            if l.owner == owner {
                return Ok(());
            }
            return Err(NetError::PortTaken {
                port: spec.host_port,
                holder: PortHolder::Sandbox(l.owner.clone()),
            });
        }
        let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, spec.host_port)).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(NetError::PortTaken {
                    port: spec.host_port,
                    holder: process_holding(spec.host_port).await,
                })
            }
            Err(e) => {
                return Err(NetError::Io {
                    what: format!("cannot listen on 127.0.0.1:{}", spec.host_port),
                    source: e,
                })
            }
        };
        let to = SocketAddr::from((target, spec.port));
        let sandbox = owner.to_string();
        let task = tokio::spawn(async move { serve(listener, to, sandbox).await });
        let mut map = self.map();
        if let Some(old) = map.insert(
            spec.host_port,
            Listener {
                owner: owner.to_string(),
                task,
            },
        ) {
            old.task.abort();
        }
        tracing::info!(sandbox = owner, host_port = spec.host_port, to = %to, "port published");
        Ok(())
    }

    /// Stops every listener of `owner` (and the connections going through them).
    pub fn unpublish_all(&self, owner: &str) {
        self.map().retain(|_, l| {
            if l.owner == owner {
                l.task.abort();
                false
            } else {
                true
            }
        });
    }

    /// The host ports currently listened on for `owner`.
    pub fn ports_of(&self, owner: &str) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .map()
            .iter()
            .filter(|(_, l)| l.owner == owner)
            .map(|(p, _)| *p)
            .collect();
        v.sort_unstable();
        v
    }
}

impl Drop for PortProxy {
    fn drop(&mut self) {
        for (_, l) in self.map().drain() {
            l.task.abort();
        }
    }
}

/// Accepts connections and pipes each one to `to`; dropping the task drops
/// the listener and aborts its connections.
async fn serve(listener: TcpListener, to: SocketAddr, sandbox: String) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut inbound, _)) => {
                    conns.spawn(async move {
                        let connect = TcpStream::connect(to);
                        match tokio::time::timeout(Duration::from_secs(10), connect).await {
                            Ok(Ok(mut outbound)) => {
                                let _ = inbound.set_nodelay(true);
                                let _ = outbound.set_nodelay(true);
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                            Ok(Err(e)) => tracing::debug!(to = %to, error = %e, "published port: sandbox refused"),
                            Err(_) => tracing::debug!(to = %to, "published port: connect timed out"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(sandbox = %sandbox, error = %e, "published port: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Which host process listens on TCP `port` (`ss -Htlnp`), if it can be told.
async fn process_holding(port: u16) -> PortHolder {
    let out = Cmd::new("ss")
        .args(["-Htlnp", &format!("sport = :{port}")])
        .timeout(Duration::from_secs(5))
        .run()
        .await;
    out.ok()
        .and_then(|o| parse_ss_users(&o.stdout_str()))
        .unwrap_or(PortHolder::Unknown)
}

/// The first `users:(("name",pid=N,…))` of `ss -p` output.
fn parse_ss_users(text: &str) -> Option<PortHolder> {
    let rest = &text[text.find("users:((\"")? + 9..];
    let (name, rest) = rest.split_once('"')?;
    let pid = rest.split("pid=").nth(1)?;
    let pid: u32 = pid
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(PortHolder::Process {
        name: name.to_string(),
        pid,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn specs_parse_and_refuse_bad_input() {
        assert_eq!(
            "8080:80".parse::<PublishSpec>().unwrap(),
            PublishSpec {
                host_port: 8080,
                port: 80
            }
        );
        for (s, why) in [
            ("8080", "no ':'"),
            ("0:80", "host port 0"),
            ("8080:0", "sandbox port 0"),
            ("70000:80", "'70000'"),
            ("a:80", "'a'"),
        ] {
            let e = s.parse::<PublishSpec>().unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
        let e = PublishSpec::parse_all(&["8080:80".into(), "8080:81".into()]).unwrap_err();
        assert!(e.to_string().contains("8080 is published twice"), "{e}");
    }

    #[test]
    fn ss_output_names_the_holder() {
        let line = r#"LISTEN 0 128 127.0.0.1:8080 0.0.0.0:* users:(("python3",pid=4242,fd=3))"#;
        assert_eq!(
            parse_ss_users(line),
            Some(PortHolder::Process {
                name: "python3".into(),
                pid: 4242
            })
        );
        assert_eq!(parse_ss_users(""), None);
    }

    #[tokio::test]
    async fn a_taken_port_names_its_holder() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let proxy = PortProxy::new();
        let spec = PublishSpec {
            host_port: port,
            port: 80,
        };
        let e = proxy
            .publish("sbx-00000001", spec, Ipv4Addr::new(10, 0, 0, 2))
            .await
            .unwrap_err();
        match e {
            NetError::PortTaken { port: p, holder } => {
                assert_eq!(p, port);
                assert!(matches!(holder, PortHolder::Process { .. }), "{holder:?}");
            }
            other => panic!("{other}"),
        }
        drop(held);
        proxy
            .publish("sbx-00000001", spec, Ipv4Addr::new(10, 0, 0, 2))
            .await
            .unwrap();
        let e = proxy
            .publish("sbx-00000002", spec, Ipv4Addr::new(10, 0, 0, 3))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("sandbox sbx-00000001"), "{e}");
        assert_eq!(proxy.ports_of("sbx-00000001"), vec![port]);
        proxy.unpublish_all("sbx-00000001");
        assert!(proxy.ports_of("sbx-00000001").is_empty());
    }
}
