//! `cairnd`: the Cairn daemon. Opens the data directory (database, btrfs
//! pool, runtimes), recovers from any crash, and serves the HTTP API on a
//! unix socket and optionally on TCP.

mod token;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use cairn_api::serve::{self, ServeConfig};
use cairn_api::{app, AuthMode};
use cairn_db::Db;
use cairn_engine::{Engine, EngineConfig};
use cairn_types::{parse_duration, parse_size, RuntimeKind};

const EXAMPLES: &str = "Examples:
  cairnd                                   # data in /var/lib/cairn, socket /var/lib/cairn/cairnd.sock
  cairnd --home /srv/cairn --listen 127.0.0.1:7421
  cairnd --subnet 10.99.0.0/16 --bridge cairn1  # nat sandboxes get 10.99.0.2, .3, …; gateway 10.99.0.1
  cairnd --max-image-size 30G              # image imports may decode up to 30 GiB of data
  cairnd --insecure-registry 10.0.0.7:5000 # image pulls from that registry over plain HTTP
  cairnd --registry-allow-private          # pulls may reach registries on private addresses (HTTPS)
  cairnd --listen 0.0.0.0:7421 --max-connections 20000 --max-connections-per-peer 64
                                           # many clients, each with few connections
  cairnd --default-disk 5G --max-disk 50G --pool-reserve 2G   # disk limits and the pool's reserve
  cairnd --idle-release-memory             # idle-paused sandboxes keep their memory on disk
  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… cairnd --remote s3://team-bucket/cairn
                                           # snapshot push/pull; forks pull what this host lacks
  cairnd token create --account alice      # prints a new ck_… token for alice
  cairnd token ls                          # token ids, accounts, roles, expiry
  cairnd token revoke tok-1a2b3c4d         # 401 for it from now on";

#[derive(Parser)]
#[command(name = "cairnd", version, about = "The Cairn daemon: sandboxes for AI agents", after_help = EXAMPLES)]
struct Args {
    /// Data directory (database, btrfs pool, runtime state).
    #[arg(
        long,
        env = "CAIRN_HOME",
        default_value = "/var/lib/cairn",
        global = true
    )]
    home: PathBuf,
    /// Also serve the API on this TCP address (requests then need a bearer token).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// The URL clients reach the TCP listener by, for signed download links
    /// (`cairn snapshot url`) [default: http://ADDR of --listen].
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// The longest life of a signed download link (90s, 30m, 1h…); also their default.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    max_link_expiry: String,
    /// The remote store snapshots are pushed to and pulled from (`cairn snapshot push`,
    /// forks of snapshots this host lacks): an S3 bucket and key prefix. Credentials come
    /// from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (region: AWS_REGION, default
    /// us-east-1). Checked at start.
    #[arg(long, env = "CAIRN_REMOTE", value_name = "s3://BUCKET/PREFIX")]
    remote: Option<String>,
    /// The S3-compatible endpoint of --remote (MinIO, Ceph, moto…) [default:
    /// AWS_ENDPOINT_URL, or AWS].
    #[arg(long, value_name = "URL", requires = "remote")]
    remote_endpoint: Option<String>,
    /// Push every snapshot to --remote as it becomes ready (taken or imported; not a pause's
    /// automatic ones), in the background, one at a time; at start, the ready ones not in the
    /// store yet.
    #[arg(long, requires = "remote")]
    remote_push_ready: bool,
    /// How old a chunk of the store that no pushed snapshot names any more must be before a
    /// remote delete collects it (a push on another host uploads its chunks before its
    /// recipe: keep this longer than a push takes; 0 collects at once, for a store only one
    /// host pushes to).
    #[arg(
        long,
        default_value = "1h",
        value_name = "DURATION",
        requires = "remote"
    )]
    remote_gc_grace: String,
    /// Most one account may keep in the remote store (its pushed snapshots' chunks and
    /// recipes, and its store links' archives), e.g. 50G; a push or store link past it is
    /// refused (limit_exceeded) and leaves nothing [default: no limit].
    #[arg(long, value_name = "SIZE", requires = "remote")]
    max_account_remote_size: Option<String>,
    /// Size of the btrfs pool image, when the data directory is not on btrfs.
    #[arg(long, default_value = "20G", value_name = "SIZE")]
    pool_size: String,
    /// The gVisor runtime binary.
    #[arg(long, env = "CAIRN_RUNSC", default_value = "runsc")]
    runsc: PathBuf,
    /// The runc binary.
    #[arg(long, env = "CAIRN_RUNC", default_value = "runc")]
    runc: PathBuf,
    /// The static cairn-agent binary every sandbox runs as its init (default: `cairn-agent`
    /// beside cairnd, or cargo's static build of it, target/x86_64-unknown-linux-gnu/…).
    #[arg(long, env = "CAIRN_AGENT", value_name = "PATH")]
    agent: Option<PathBuf>,
    /// Most snapshots one sandbox may have.
    #[arg(long, default_value_t = 20, value_name = "N")]
    max_snapshots_per_sandbox: usize,
    /// Most snapshot data one account may hold (each snapshot's own changes; shared data counts once).
    #[arg(long, default_value = "10G", value_name = "SIZE")]
    max_account_snapshot_size: String,
    /// Largest change one snapshot may hold.
    #[arg(long, default_value = "2G", value_name = "SIZE")]
    max_snapshot_size: String,
    /// Disk limit of sandboxes that ask for none (`cairn up --disk`): what one may write beyond
    /// its image or snapshot; `none` for no limit of their own. A fork takes its snapshot's.
    #[arg(long, default_value = "10G", value_name = "SIZE|none")]
    default_disk: String,
    /// The largest disk limit a sandbox may ask for; `none` for any.
    #[arg(long, default_value = "100G", value_name = "SIZE|none")]
    max_disk: String,
    /// Pool space sandboxes' writes can never take, kept for snapshots, images and metadata:
    /// a size (512M) or a share of the pool (5%) [default: 5% of the pool, at least 256M and at
    /// most 4G]. Creates, forks, imports and snapshots are refused (507 pool_full) once less than
    /// half of it is free.
    #[arg(long, value_name = "SIZE|PERCENT")]
    pool_reserve: Option<String>,
    /// Do not limit sandboxes' disk writes (for kernels before 6.7, which lack btrfs simple
    /// quotas): then `--disk` is refused, and a sandbox's writes can fill the pool.
    #[arg(long)]
    no_disk_quota: bool,
    /// Automatic snapshots (taken by 'cairn pause') kept per sandbox; older ones are pruned.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep_auto_pause: u32,
    /// When a sandbox's idle timeout pauses it, also checkpoint its processes to disk and end
    /// them (as 'cairn pause --release-memory'), so idle sandboxes hold no memory; the next
    /// exec restores them (a moment slower than a plain wake). Needs CRIU for runc sandboxes;
    /// without it theirs stays in memory.
    #[arg(long)]
    idle_release_memory: bool,
    /// Largest memory limit one sandbox may ask for (default: this host's memory).
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<String>,
    /// Most CPU cores one sandbox may ask for (default: this host's CPU count).
    #[arg(long, value_name = "N")]
    max_cpus: Option<f64>,
    /// Largest process limit one sandbox may ask for.
    #[arg(long, default_value_t = 32_768, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
    max_pids: u32,
    /// Most data one image import may decode (the holes of sparse files do not count), and the
    /// largest archive a tenant may upload; larger ones, and archive bombs, are refused.
    #[arg(long, default_value = "10G", value_name = "SIZE")]
    max_image_size: String,
    /// A registry (HOST or HOST:PORT, as references write it) that image pulls reach over plain
    /// HTTP, private address or not (repeatable). Every other registry is HTTPS only.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// Let image pulls reach registries (and their token services and redirects) on
    /// loopback, private and link-local addresses over HTTPS. Off: a tenant cannot make
    /// cairnd connect into the host's own networks.
    #[arg(long)]
    registry_allow_private: bool,
    /// Let tenants' `up --repo` clones reach loopback, private and link-local addresses.
    /// Off: git, which runs on the host, reaches public addresses only, follows no
    /// redirect, and a tenant cannot point it at the host's own services.
    #[arg(long)]
    repo_allow_private: bool,
    /// Runtime for sandboxes that do not name one: gvisor or runc.
    #[arg(long, env = "CAIRN_DEFAULT_RUNTIME", default_value = "gvisor")]
    default_runtime: String,
    /// IPv4 subnet of `--network nat` sandboxes; the bridge takes its first address (the gateway).
    #[arg(
        long,
        env = "CAIRN_SUBNET",
        default_value = "10.88.0.0/16",
        value_name = "CIDR"
    )]
    subnet: String,
    /// Bridge of `--network nat` sandboxes (also the name of its nftables table).
    #[arg(
        long,
        env = "CAIRN_BRIDGE",
        default_value = "cairn0",
        value_name = "NAME"
    )]
    bridge: String,
    /// Close a connection that sends no request for this long (after opening, or after its
    /// previous answer), or whose request head is not complete this long after it starts.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    header_timeout: String,
    /// Answer 408 and close the connection when a request body sends nothing for this long
    /// while cairnd reads it (slow uploads are fine as long as they keep sending).
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    body_idle_timeout: String,
    /// Most TCP connections open at once; more get a 503 and are closed. At most half the
    /// open-file limit (RLIMIT_NOFILE), so the unix socket always answers.
    #[arg(long, default_value_t = serve::DEFAULT_MAX_CONNECTIONS, value_name = "N",
          value_parser = at_least_one)]
    max_connections: usize,
    /// Most TCP connections open at once from one address (IPv6: one /64). Behind a reverse
    /// proxy every client has the proxy's address: raise it to --max-connections there.
    #[arg(long, default_value_t = serve::DEFAULT_MAX_CONNECTIONS_PER_PEER, value_name = "N",
          value_parser = at_least_one)]
    max_connections_per_peer: usize,
    /// Most connections open at once on the unix socket; at most an eighth of the open-file limit.
    #[arg(long, default_value_t = serve::DEFAULT_MAX_UNIX_CONNECTIONS, value_name = "N",
          value_parser = at_least_one)]
    max_unix_connections: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of at least 1")),
    }
}

/// The serving config from the flags, fitted into the open-file limit (raised first).
fn serve_config(args: &Args) -> Result<ServeConfig> {
    let secs = |flag: &str, v: &str| {
        parse_duration(v)
            .map(std::time::Duration::from_secs)
            .with_context(|| format!("invalid {flag}"))
    };
    let mut cfg = ServeConfig {
        header_timeout: secs("--header-timeout", &args.header_timeout)?,
        body_idle_timeout: secs("--body-idle-timeout", &args.body_idle_timeout)?,
        max_connections: args.max_connections,
        max_connections_per_peer: args.max_connections_per_peer,
        max_unix_connections: args.max_unix_connections,
    };
    let nofile = serve::raise_fd_limit();
    for note in cfg.fit_fd_limit(nofile) {
        tracing::warn!("{note}");
    }
    if args.listen.is_some() {
        tracing::info!(
            open_files = nofile,
            "serving at most {} TCP connections ({} per address) and {} on the unix socket",
            cfg.max_connections,
            cfg.max_connections_per_peer,
            cfg.max_unix_connections
        );
    } else {
        tracing::info!(
            open_files = nofile,
            "serving at most {} connections on the unix socket",
            cfg.max_unix_connections
        );
    }
    Ok(cfg)
}

#[derive(Subcommand)]
enum Command {
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairnd: cannot start: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("cairnd: {e:#}");
        std::process::exit(1);
    }
}

fn open_db(home: &std::path::Path) -> Result<Arc<Db>> {
    std::fs::create_dir_all(home).with_context(|| {
        format!(
            "cannot create the data directory {}: check permissions (cairnd runs as root)",
            home.display()
        )
    })?;
    Ok(Arc::new(
        Db::open(&home.join("cairn.db")).context("while opening the metadata database")?,
    ))
}

async fn run(args: Args) -> Result<()> {
    if let Some(Command::Token { command }) = &args.command {
        return token::run(&*open_db(&args.home)?, command);
    }
    let default_runtime: RuntimeKind = args.default_runtime.parse().map_err(anyhow::Error::msg)?;
    let serve_cfg = serve_config(&args)?;
    let pool_size = parse_size(&args.pool_size).context("invalid --pool-size")?;
    let db = open_db(&args.home)?;
    let mut cfg = EngineConfig::new(&args.home);
    cfg.pool_size_bytes = pool_size;
    cfg.runsc = args.runsc.clone();
    cfg.runc = args.runc.clone();
    cfg.agent = args.agent.clone().or_else(default_agent);
    cfg.default_runtime = default_runtime;
    cfg.subnet = args.subnet.parse().context("invalid --subnet")?;
    cfg.bridge = args.bridge.clone();
    cfg.snapshot_limits = cairn_engine::SnapshotLimits {
        per_sandbox: args.max_snapshots_per_sandbox,
        account_bytes: parse_size(&args.max_account_snapshot_size)
            .context("invalid --max-account-snapshot-size")?,
        snapshot_bytes: parse_size(&args.max_snapshot_size)
            .context("invalid --max-snapshot-size")?,
    };
    cfg.auto_pause_keep = args.keep_auto_pause as usize;
    cfg.idle_release_memory = args.idle_release_memory;
    if let Some(m) = &args.max_memory {
        cfg.caps.memory_bytes = parse_size(m).context("invalid --max-memory")?;
    }
    if let Some(c) = args.max_cpus {
        if !(c.is_finite() && c >= 0.01) {
            bail!("invalid --max-cpus {c}: give a number of cores such as 4");
        }
        cfg.caps.cpus = c;
    }
    cfg.caps.pids = args.max_pids;
    cfg.max_image_bytes = parse_size(&args.max_image_size).context("invalid --max-image-size")?;
    let size_or_none = |text: &str, flag: &str| -> Result<Option<u64>> {
        if text.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let bytes = parse_size(text).with_context(|| format!("invalid {flag}"))?;
        if bytes < cairn_engine::MIN_DISK_BYTES {
            bail!("invalid {flag}: {text} is below the smallest disk limit, 16M");
        }
        Ok(Some(bytes))
    };
    cfg.disk_quota = !args.no_disk_quota;
    cfg.default_disk_bytes = size_or_none(&args.default_disk, "--default-disk")?;
    cfg.max_disk_bytes = size_or_none(&args.max_disk, "--max-disk")?;
    if let (Some(default), Some(max)) = (cfg.default_disk_bytes, cfg.max_disk_bytes) {
        if default > max {
            bail!(
                "--default-disk {} is over --max-disk {}: lower it or raise --max-disk",
                args.default_disk,
                args.max_disk
            );
        }
    }
    if let Some(r) = &args.pool_reserve {
        cfg.pool_reserve = r.parse().map_err(anyhow::Error::msg)?;
    }
    cfg.max_link_secs =
        parse_duration(&args.max_link_expiry).context("invalid --max-link-expiry")?;
    cfg.link_base = match (&args.public_url, args.listen) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(addr)) => Some(format!("http://{addr}")),
        (None, None) => None,
    };
    for host in &args.insecure_registries {
        if host.is_empty() || host.contains(['/', '@']) || host.contains("://") {
            bail!(
                "invalid --insecure-registry '{host}': give HOST or HOST:PORT, e.g. 10.0.0.7:5000"
            );
        }
    }
    cfg.registry = cairn_engine::RegistryAccess {
        insecure: args.insecure_registries.clone(),
        allow_private: args.registry_allow_private,
    };
    cfg.repo_allow_private = args.repo_allow_private;
    cfg.remote = args.remote.clone().map(|url| cairn_engine::RemoteConfig {
        url,
        endpoint: args.remote_endpoint.clone(),
        push_ready: args.remote_push_ready,
        gc_grace: std::time::Duration::ZERO,
        max_account_bytes: None,
    });
    if let Some(r) = cfg.remote.as_mut() {
        r.gc_grace = std::time::Duration::from_secs(match args.remote_gc_grace.trim() {
            "0" | "0s" => 0,
            g => parse_duration(g).context("invalid --remote-gc-grace")?,
        });
        r.max_account_bytes = args
            .max_account_remote_size
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(anyhow::Error::msg)
            .context("invalid --max-account-remote-size")?;
    }
    let engine = Engine::open(cfg, db)
        .await
        .context("while opening the data directory")?;

    let sock = args.home.join("cairnd.sock");
    let _ = std::fs::remove_file(&sock);
    let unix = tokio::net::UnixListener::bind(&sock)
        .with_context(|| format!("cannot listen on {}", sock.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::info!(socket = %sock.display(), "listening on the unix socket");
    let unix_app = app(engine.clone(), AuthMode::LocalSocket);
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(serve::serve_unix(unix, unix_app, serve_cfg, shutdown()));
    if let Some(addr) = args.listen {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, "listening on TCP (bearer tokens required)");
        let tcp_app = app(engine.clone(), AuthMode::Bearer);
        servers.spawn(serve::serve_tcp(tcp, tcp_app, serve_cfg, shutdown()));
    }
    while let Some(res) = servers.join_next().await {
        if let Err(e) = res {
            bail!("server task failed: {e}");
        }
    }
    // Operations whose clients went away still run in tasks of their own: let them finish.
    let running = engine.operations_running();
    if running > 0 {
        tracing::info!(
            operations = running,
            "waiting for the operations still running"
        );
        engine.finish_operations().await;
    }
    let _ = std::fs::remove_file(&sock);
    tracing::info!("cairnd stopped; sandboxes keep running and are found again at the next start");
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The agent binary when `--agent` gives none: the first static `cairn-agent` beside cairnd's
/// own executable, or where `scripts/build-agent.sh` builds it in cargo's target directory
/// (`target/<target triple>/<profile>/`, beside `target/<profile>/cairnd`); else the one
/// beside cairnd (which the engine then reports unusable), if any.
fn default_agent() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let beside = dir.join("cairn-agent");
    let mut candidates = vec![beside.clone()];
    if let (Some(profile), Some(target)) = (dir.file_name(), dir.parent()) {
        let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
        candidates.push(target.join(triple).join(profile).join("cairn-agent"));
    }
    candidates
        .into_iter()
        .find(|c| cairn_engine::is_static_executable(c).unwrap_or(false))
        .or_else(|| beside.exists().then_some(beside))
}
