//! `up --repo`: a git repository cloned by cairnd into a new sandbox's root before it starts,
//! so the sandbox needs neither network nor git of its own. The clone (`git clone --depth 1`)
//! runs on the host into a fresh directory at the top of the sandbox's own tree (its disk
//! limit counts it), then moves to its path there through the same in-root resolution as
//! the files API (a link in the image never leads it out). The caller's token reaches git
//! only as an HTTP header in git's environment: it is in no file, row, log or snapshot.
//! URLs: `https://`, `http://` and `git://` for everyone; a local path or `file://` only for
//! the operator (it reads the host's files); no credentials inside the URL (they would be
//! kept in the clone's `.git/config`); no other transport (git's `ext::` runs commands).
//!
//! A tenant's clone reaches public addresses only, unless the operator allows private ones
//! (`cairnd --repo-allow-private`): git runs on the host, where loopback, private and
//! link-local addresses are the host's own services. The host name is resolved and checked
//! before git starts, and git is held to those addresses (`http.curloptResolve`; for
//! `git://`, the URL rewritten to the address for this run only), and follows no redirect,
//! so neither a second lookup nor a redirect leads it elsewhere.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use cairn_cmd::Cmd;

use crate::files::{TreeFiles, TreePath};
use crate::{EngineError, Result};

/// How long a clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long resolving a repository's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(15);
/// Where the checkout goes when no path is given.
pub const DEFAULT_PATH: &str = "/workspace";

/// A repository to clone into a new sandbox.
#[derive(Clone, Default)]
pub struct RepoClone {
    /// `https://…`, `http://…`, `git://…`; `file://…` or a path for the operator only.
    pub url: String,
    /// The branch or tag [default: the remote's default branch].
    pub branch: Option<String>,
    /// Where the checkout goes in the sandbox [default: /workspace].
    pub path: Option<String>,
    /// Sent as HTTP basic auth (`x-access-token:TOKEN`, what GitHub and GitLab take), never
    /// stored.
    pub token: Option<String>,
    /// Whether the caller is the operator (who alone may clone host paths).
    pub local_allowed: bool,
}

impl std::fmt::Debug for RepoClone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoClone")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

/// What a checked [`RepoClone`] clones: the URL, the protocols git may use for it, the
/// branch, and the path inside the sandbox.
pub(crate) struct Checked {
    url: String,
    protocols: &'static str,
    branch: Option<String>,
    path: TreePath,
    /// Whether the operator asked (host paths allowed, no address check).
    operator: bool,
    /// For a network URL: its scheme, authority as written, host and port.
    remote: Option<RemoteUrl>,
    /// Set by [`admit`] once it checked the host's addresses (git then follows no
    /// redirect): the addresses a host name resolved to, which git is held to (none for a
    /// literal address).
    guard: Option<Vec<IpAddr>>,
}

/// The parts of a network repository URL the address check needs.
struct RemoteUrl {
    scheme: String,
    authority: String,
    host: String,
    port: u16,
}

impl RemoteUrl {
    /// Splits `url` (`scheme://authority/…`, already checked to have no credentials).
    fn parse(scheme: &str, url: &str) -> Result<RemoteUrl> {
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("").to_string();
        let default_port = match scheme {
            "https" => 443,
            "http" => 80,
            _ => 9418,
        };
        let bad = || {
            invalid(format!(
                "the repository URL '{url}' has an invalid host or port"
            ))
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => default_port,
                None => return Err(bad()),
            };
            (addr.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (authority.clone(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(RemoteUrl {
            scheme: scheme.to_string(),
            authority,
            host,
            port,
        })
    }
}

/// Resolves a tenant's repository host and refuses it when any of its addresses is not
/// public (unless `allow_private`); holds git to the addresses found. The operator's
/// clones and host paths are not checked.
pub(crate) async fn admit(c: &mut Checked, allow_private: bool) -> Result<()> {
    let Some(remote) = c.remote.as_ref().filter(|_| !c.operator && !allow_private) else {
        return Ok(());
    };
    let host = remote.host.clone();
    let lookup = tokio::net::lookup_host((host.clone(), remote.port));
    let found: Vec<IpAddr> = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        Ok(Err(_)) | Err(_) => Vec::new(),
    };
    if found.is_empty() {
        return Err(invalid(format!(
            "cannot clone {}: its host '{host}' does not resolve: check the URL",
            c.url
        )));
    }
    if found.iter().any(|ip| !crate::pull::is_public(*ip)) {
        return Err(invalid(format!(
            "cannot clone {}: its host '{host}' is on a loopback, private or link-local address, which tenants' clones may not reach: the operator allows it with cairnd --repo-allow-private",
            c.url
        )));
    }
    // A literal address needs no holding to.
    c.guard = Some(if host.parse::<IpAddr>().is_ok() {
        Vec::new()
    } else {
        found
    });
    Ok(())
}

/// git configuration for one run: `key=value` pairs given through the environment.
fn pinning(c: &Checked) -> Vec<(String, String)> {
    let (Some(remote), Some(pinned)) = (&c.remote, &c.guard) else {
        return Vec::new();
    };
    let mut config = vec![("http.followRedirects".to_string(), "false".to_string())];
    let shown: Vec<String> = pinned
        .iter()
        .map(|ip| match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        })
        .collect();
    let Some(first) = shown.first() else {
        return config;
    };
    if remote.scheme == "git" {
        // git:// has no resolve option: the URL names the first address, for this run.
        let target = format!("git://{first}:{}", remote.port);
        config.push((
            format!("url.{target}.insteadOf"),
            format!("git://{}", remote.authority),
        ));
    } else {
        config.push((
            "http.curloptResolve".to_string(),
            format!("{}:{}:{}", remote.host, remote.port, shown.join(",")),
        ));
    }
    config
}

/// Checks `repo` before anything is made.
pub(crate) fn check(repo: &RepoClone) -> Result<Checked> {
    let url = repo.url.trim();
    if url.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(invalid(
            "invalid repository URL: give https://HOST/OWNER/REPO (at most 2048 characters, no spaces)".into(),
        ));
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let local = match scheme.as_deref() {
        Some("https") | Some("http") | Some("git") => false,
        Some("file") => true,
        None if url.starts_with('/') => true,
        Some(other) => {
            return Err(invalid(format!(
                "repository URLs with {other}:// are not supported: give an https://, http:// or git:// URL"
            )))
        }
        None => {
            return Err(invalid(format!(
                "'{url}' is not a repository URL cairnd can clone (ssh and scp-style HOST:PATH are not supported): give https://HOST/OWNER/REPO"
            )))
        }
    };
    if local && !repo.local_allowed {
        return Err(invalid(
            "only the operator may clone a path on cairnd's host: give an https://, http:// or git:// URL".into(),
        ));
    }
    if !local {
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(invalid(
                "credentials in the repository URL would be kept in the sandbox's .git/config: give the URL without them and the token as repo_token (--repo-token)".into(),
            ));
        }
        if authority.is_empty() {
            return Err(invalid(format!("the repository URL '{url}' names no host")));
        }
    }
    if let Some(b) = &repo.branch {
        let ok = !b.is_empty()
            && b.len() <= 255
            && !b.starts_with(['-', '/', '.'])
            && !b.ends_with(['/', '.'])
            && !b.contains("..")
            && !b.contains("//")
            && !b.ends_with(".lock")
            && b.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/-+".contains(c));
        if !ok {
            return Err(invalid(format!(
                "invalid branch '{b}': give a branch or tag name (letters, digits, . _ / - +)"
            )));
        }
    }
    if let Some(t) = &repo.token {
        if t.is_empty() || t.len() > 4096 || t.chars().any(|c| c.is_control()) {
            return Err(invalid(
                "invalid repository token: give the token itself (at most 4096 characters, one line)".into(),
            ));
        }
    }
    let shown = repo.path.as_deref().unwrap_or(DEFAULT_PATH);
    let path = TreePath::parse(shown)?;
    if path.is_root()
        || shown.split('/').any(|c| c == "..")
        || ["proc", "sys", "dev", "run", ".cairn", ".cairn-agent"]
            .iter()
            .any(|top| path.relative().split('/').next() == Some(*top))
    {
        return Err(invalid(format!(
            "the repository cannot go to {shown}: give a directory such as /workspace or /root/project"
        )));
    }
    let remote = match &scheme {
        Some(sc) if !local => Some(RemoteUrl::parse(sc, url)?),
        _ => None,
    };
    Ok(Checked {
        url: url.to_string(),
        protocols: if local { "file" } else { "https:http:git" },
        branch: repo.branch.clone(),
        path,
        operator: repo.local_allowed,
        remote,
        guard: None,
    })
}

/// Clones `c` into the tree at `root` (a new sandbox's, not running yet): into a fresh
/// directory at its top, then moved to its path.
pub(crate) async fn clone_into(root: &Path, c: &Checked, token: Option<&str>) -> Result<()> {
    let staging = format!(".cairn-repo-{:08x}", rand::random::<u32>());
    let target = root.join(&staging);
    let mut cmd = Cmd::new("git")
        .args([
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--no-tags",
            "--single-branch",
        ])
        .install_hint("apt-get install git")
        .timeout(CLONE_TIMEOUT)
        // Nothing of the host's git configuration, no prompt, only the allowed transports.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_ALLOW_PROTOCOL", c.protocols)
        .env("GIT_ASKPASS", "/bin/false");
    if let Some(b) = &c.branch {
        cmd = cmd.arg("--branch").arg(b);
    }
    // Configuration for this run only, through the environment: never in a file.
    let mut config = pinning(c);
    if let Some(t) = token {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{t}"));
        config.push((
            "http.extraHeader".into(),
            format!("Authorization: Basic {basic}"),
        ));
    }
    cmd = cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (key, value)) in config.into_iter().enumerate() {
        cmd = cmd
            .env(format!("GIT_CONFIG_KEY_{i}"), key)
            .env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
    let cloned = cmd.arg("--").arg(&c.url).arg(&target).run().await;
    if let Err(e) = cloned {
        let _ = tokio::fs::remove_dir_all(&target).await;
        let said = e.stderr().map(str::trim).unwrap_or_default().to_string();
        let said = said.lines().last().unwrap_or("").to_string();
        let why = if said.contains("Remote branch") || said.contains("not found in upstream") {
            format!(
                "the repository has no branch or tag '{}': give one it has",
                c.branch.as_deref().unwrap_or("")
            )
        } else if said.contains("Authentication failed")
            || said.contains("could not read Username")
            || said.contains("403")
        {
            "the repository refused the credentials (or needs some): give a token with read access as repo_token (--repo-token)".to_string()
        } else if said.is_empty() {
            format!("git clone failed: {e}")
        } else {
            format!("git clone failed: {said}")
        };
        return Err(invalid(format!("cannot clone {}: {why}", c.url)));
    }
    // Cloned into its staging directory, not yet in place.
    crate::crash_point("repo-after-clone");
    let root = root.to_path_buf();
    let path = c.path.clone();
    let moved = tokio::task::spawn_blocking(move || -> Result<()> {
        let tree = TreeFiles::open(&root)?;
        let staged = TreePath::parse(&format!("/{staging}"))?;
        let done = (|| {
            if let Some(parent) = path.parent_path() {
                tree.mkdir(&parent, true, 0o755)?;
            }
            tree.rename(&staged, &path)
        })();
        if done.is_err() {
            let _ = tree.remove(&staged, true);
        }
        done.map_err(|e| match e {
            EngineError::InvalidArgument(m) | EngineError::Conflict(m) => invalid(format!(
                "cannot put the repository at {}: {m}: give another --repo-path",
                path.shown()
            )),
            other => other,
        })
    })
    .await
    .map_err(|e| EngineError::failed("the clone's task ended abnormally", e))?;
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(url: &str) -> RepoClone {
        RepoClone {
            url: url.into(),
            ..Default::default()
        }
    }

    #[test]
    fn urls_other_than_https_http_and_git_are_refused() {
        for ok in [
            "https://example.com/o/r.git",
            "http://127.0.0.1:8080/r",
            "git://127.0.0.1/r",
        ] {
            assert!(check(&repo(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "ssh://host/r",
            "git@host:o/r.git",
            "ext::sh -c touch% /tmp/x",
            "file:///etc",
            "/etc",
            "https://user:secret@example.com/r",
            "https:///r",
            "-uhttps://x/r",
            "",
        ] {
            assert!(check(&repo(bad)).is_err(), "{bad}");
        }
        let operator = RepoClone {
            url: "file:///srv/repo".into(),
            local_allowed: true,
            ..Default::default()
        };
        assert!(check(&operator).is_ok());
    }

    #[tokio::test]
    async fn a_tenants_private_host_is_refused_unless_allowed_and_a_public_name_is_pinned() {
        for url in [
            "git://127.0.0.1:9418/r",
            "http://localhost:8080/r",
            "https://[::1]/r",
            "http://169.254.169.254/latest",
            "http://10.1.2.3/r",
        ] {
            let mut c = check(&repo(url)).expect(url);
            let err = admit(&mut c, false).await.expect_err(url).to_string();
            assert!(err.contains("--repo-allow-private"), "{url}: {err}");
            // Allowed by the operator's flag, and the operator's own clones are not checked.
            let mut c = check(&repo(url)).expect(url);
            admit(&mut c, true).await.expect(url);
            assert!(pinning(&c).is_empty());
            let mut c = check(&RepoClone {
                local_allowed: true,
                ..repo(url)
            })
            .expect(url);
            admit(&mut c, false).await.expect(url);
        }
        // A public literal address: no redirects, nothing to pin.
        let mut c = check(&repo("https://93.184.215.14/o/r.git")).expect("url");
        admit(&mut c, false).await.expect("public");
        assert_eq!(
            pinning(&c),
            vec![("http.followRedirects".to_string(), "false".to_string())]
        );
        // A name, as admit leaves it once resolved: held to its addresses.
        for (url, want) in [
            (
                "https://git.example.org/o/r.git",
                (
                    "http.curloptResolve",
                    "git.example.org:443:93.184.215.14,[2606:2800::1]",
                ),
            ),
            (
                "git://git.example.org/r",
                (
                    "url.git://93.184.215.14:9418.insteadOf",
                    "git://git.example.org",
                ),
            ),
        ] {
            let mut c = check(&repo(url)).expect(url);
            c.guard = Some(vec![
                "93.184.215.14".parse().expect("ip"),
                "2606:2800::1".parse().expect("ip"),
            ]);
            let got = pinning(&c);
            assert!(
                got.contains(&(want.0.to_string(), want.1.to_string())),
                "{url}: {got:?}"
            );
        }
    }

    #[test]
    fn branches_and_paths_are_checked() {
        let with = |branch: Option<&str>, path: Option<&str>| RepoClone {
            url: "https://example.com/r".into(),
            branch: branch.map(Into::into),
            path: path.map(Into::into),
            ..Default::default()
        };
        assert!(check(&with(Some("main"), Some("/root/p"))).is_ok());
        assert!(check(&with(Some("release/1.2"), None)).is_ok());
        for b in ["-x", "a..b", "a b", "x.lock", ""] {
            assert!(check(&with(Some(b), None)).is_err(), "{b}");
        }
        for p in ["/", "relative", "/proc/x", "/a/../b", "/.cairn-agent"] {
            assert!(check(&with(None, Some(p))).is_err(), "{p}");
        }
    }
}
