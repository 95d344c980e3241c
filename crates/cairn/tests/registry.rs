//! Image pulls (issue 21) against a real registry the harness starts: Debian's
//! `docker-registry` on 127.0.0.1 with a throw-away config, images built by `umoci` from the
//! busybox root filesystem and pushed by `skopeo`. What a user sees: a pulled image runs
//! (upper layers' whiteouts applied) on both runtimes; a manifest list gives the amd64
//! image; a missing tag is a 404 naming the reference; a registry dying mid-pull leaves no
//! image, tree or blob; a second image downloads only its new layer; basic auth with
//! `cairn image login`; an HTTP registry the operator did not list is refused.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cairn_test_support::{base_rootfs, both_runtimes, which, Daemon, Via};

fn need(tool: &str, pkg: &str) {
    assert!(
        which(tool).is_some(),
        "'{tool}' is missing: apt-get install {pkg} (or run scripts/setup.sh once)"
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `docker-registry` on a free port of 127.0.0.1, storing in a temp dir; killed on drop.
struct Registry {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `user`, behind htpasswd basic auth (`user`/`password`).
    fn start(user: Option<(&str, &str)>) -> Registry {
        need("docker-registry", "docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("cairn-test-registry-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().display()
        );
        if let Some((user, password)) = user {
            let hash = bcrypt(password);
            std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: cairn-test\n    path: {}/htpasswd\n",
                dir.path().display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut r = Registry {
            child: None,
            port,
            dir,
        };
        r.launch();
        r
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it (SIGKILL) and waits for it.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A bcrypt hash of `password` for htpasswd (docker-registry reads only bcrypt).
fn bcrypt(password: &str) -> String {
    let out = run(Command::new("python3").args([
        "-W",
        "ignore",
        "-c",
        "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
        password,
    ]));
    out.trim().replace("$2b$", "$2a$")
}

/// An OCI layout (made once per test process) with tags: `base` (the busybox root
/// filesystem), `app` (base + a layer that deletes /etc/cairn-image and adds /etc/upper),
/// `app2` (base + a layer adding /etc/other), `big` (base + 40 MB of random data), and
/// `multi`, an index of `app` for linux/amd64 and `base` labelled linux/arm64.
fn layout() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        need("umoci", "umoci");
        need("skopeo", "skopeo");
        remove_stale_layouts();
        let dir = std::env::temp_dir().join(format!("cairn-test-oci-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let l = dir.join("layout");
        let img = |tag: &str| format!("{}:{tag}", l.display());
        run(Command::new("umoci").args(["init", "--layout"]).arg(&l));
        run(Command::new("umoci").args(["new", "--image", &img("base")]));
        let derive = |from: &str, to: &str, change: &dyn Fn(&Path)| {
            let bundle = dir.join(format!("bundle-{to}"));
            run(Command::new("umoci")
                .args(["unpack", "--image", &img(from)])
                .arg(&bundle));
            change(&bundle.join("rootfs"));
            run(Command::new("umoci")
                .args(["repack", "--image", &img(to)])
                .arg(&bundle));
            let _ = std::fs::remove_dir_all(&bundle);
        };
        derive("base", "base", &|root| {
            run(Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", base_rootfs().display()))
                .arg(root));
        });
        derive("base", "app", &|root| {
            std::fs::remove_file(root.join("etc/cairn-image")).unwrap();
            std::fs::write(root.join("etc/upper"), "from the upper layer\n").unwrap();
        });
        derive("base", "app2", &|root| {
            std::fs::write(root.join("etc/other"), "the second image\n").unwrap();
        });
        derive("base", "big", &|root| {
            let mut data = vec![0u8; 40 << 20];
            let mut f = std::fs::File::open("/dev/urandom").unwrap();
            f.read_exact(&mut data).unwrap();
            std::fs::write(root.join("random.bin"), data).unwrap();
        });
        make_index(&l);
        dir
    })
    .as_path()
}

/// Removes the layouts of test processes that have ended (a process cannot remove its own
/// at exit).
fn remove_stale_layouts() {
    for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_prefix("cairn-test-oci-") else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Adds tag `multi`: an image index of `app` (linux/amd64) and `base` (linux/arm64).
fn make_index(l: &Path) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(l.join("index.json")).unwrap()).unwrap();
    let entry = |tag: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap()
            .clone()
    };
    let with_platform = |mut d: serde_json::Value, arch: &str| {
        d.as_object_mut().unwrap().remove("annotations");
        d["platform"] = serde_json::json!({ "architecture": arch, "os": "linux" });
        d
    };
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [with_platform(entry("base"), "arm64"), with_platform(entry("app"), "amd64")],
    });
    let bytes = serde_json::to_vec(&nested).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    std::fs::write(l.join("blobs/sha256").join(&digest), &bytes).unwrap();
    let mut index = index;
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{digest}"),
            "size": bytes.len(),
            "annotations": { "org.opencontainers.image.ref.name": "multi" },
        }));
    std::fs::write(l.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Pushes tag `tag` of the layout to `registry` as `repo` (e.g. `test/app:v1`).
fn push(registry: &Registry, tag: &str, repo: &str, extra: &[&str]) {
    let src = format!("oci:{}/layout:{tag}", layout().display());
    let dest = format!("docker://{}/{repo}", registry.host());
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .args(extra)
        .arg(&src)
        .arg(&dest));
}

/// The JSON error `cairn --json` printed on stderr.
fn err_json(r: &cairn_test_support::Run) -> serde_json::Value {
    serde_json::from_str(r.stderr.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stderr))
}

fn daemon_for(registry: &Registry) -> Daemon {
    let insecure = registry.host();
    Daemon::start_opts(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        false,
        &["--insecure-registry", &insecure],
    )
}

/// Image subvolumes in the pool, and blobs in the cache (and in its `tmp/`).
fn pool_state(d: &Daemon) -> (usize, usize, usize) {
    let pool = ["pool", "pool.img.mnt", "pool-mnt"]
        .iter()
        .map(|p| d.home.join(p))
        .find(|p| p.join("images").is_dir())
        .unwrap_or_else(|| d.home.join("pool"));
    let count = |p: PathBuf| std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0);
    (
        count(pool.join("images")),
        count(pool.join("registry/blobs/sha256")),
        count(pool.join("registry/tmp")),
    )
}

fn pulled_image_runs_with_upper_layer_whiteouts(runtime: &str) {
    let reg = Registry::start(None);
    push(&reg, "app", "test/app:v1", &[]);
    let d = daemon_for(&reg);
    let reference = format!("{}/test/app:v1", reg.host());
    let img = d.cairn(&["image", "pull", &reference, "--json"]);
    let img = img.json();
    assert_eq!(img["name"], "app-v1", "{img}");
    assert_eq!(img["pull"]["layers"], 2, "{img}");
    assert_eq!(img["pull"]["layers_downloaded"], 2, "{img}");
    assert_eq!(img["source"], reference.as_str());
    let id = d
        .cairn(&["up", "--image", "app-v1", "--runtime", runtime])
        .ok();
    assert_eq!(
        d.cairn(&["exec", &id, "cat /etc/upper"]).ok(),
        "from the upper layer"
    );
    let gone = d.cairn(&["exec", &id, "test -e /etc/cairn-image"]);
    assert_ne!(gone.code, 0, "the file the upper layer deleted is back");
    assert_eq!(d.cairn(&["exec", &id, "echo ok"]).ok(), "ok");
}

both_runtimes!(pulled_image_runs_with_upper_layer_whiteouts);

#[test]
fn manifest_list_gives_the_amd64_image_and_up_pulls_a_reference() {
    let reg = Registry::start(None);
    push(&reg, "multi", "test/multi:v1", &["--all"]);
    let d = daemon_for(&reg);
    let reference = format!("{}/test/multi:v1", reg.host());
    // `up --image REF` pulls when the account has no image pulled from REF.
    let id = d
        .cairn(&["up", "--image", &reference, "--runtime", "runc"])
        .ok();
    assert_eq!(
        d.cairn(&["exec", &id, "cat /etc/upper"]).ok(),
        "from the upper layer",
        "the index's linux/amd64 image (app) was not the one pulled"
    );
    let images = d.cairn(&["image", "ls", "--json"]).json();
    assert_eq!(images.as_array().unwrap().len(), 1, "{images}");
    // A second `up` reuses the pulled image.
    d.cairn(&["up", "--image", &reference, "--runtime", "runc"])
        .ok();
    let images = d.cairn(&["image", "ls", "--json"]).json();
    assert_eq!(images.as_array().unwrap().len(), 1, "{images}");
}

/// `Accept: application/x-ndjson`: each layer downloaded reports its bytes under its
/// digest, ending at its size; then the image; a missing tag is one error line.
#[test]
fn a_pull_streams_each_layers_progress_when_asked() {
    let reg = Registry::start(None);
    push(&reg, "app", "test/app:v1", &[]);
    let d = daemon_for(&reg);
    let body = format!(r#"{{"reference": "{}/test/app:v1"}}"#, reg.host());
    let (code, lines) = d.ndjson(Via::Unix, "POST", "/v1/images/pull", None, &body);
    assert_eq!(code, 200, "{lines:?}");
    let (last, reports) = lines.split_last().unwrap();
    assert_eq!(
        (&last["type"], &last["status"]),
        (&"result".into(), &201.into()),
        "{last}"
    );
    assert_eq!(last["body"]["name"], "app-v1", "{last}");
    let mut ended = std::collections::BTreeMap::new();
    for r in reports {
        let phase = r["phase"].as_str().unwrap();
        assert!(phase.starts_with("layer sha256:"), "{r}");
        assert_eq!(r["unit"], "bytes", "{r}");
        let (done, total) = (r["done"].as_u64().unwrap(), r["total"].as_u64().unwrap());
        assert!(done <= total, "{r}");
        ended.insert(phase.to_string(), done == total);
    }
    assert_eq!(ended.len(), 2, "one phase per layer: {lines:?}");
    assert!(
        ended.values().all(|e| *e),
        "each layer's last report is its size: {lines:?}"
    );
    let body = format!(r#"{{"reference": "{}/test/app:nope"}}"#, reg.host());
    let (code, lines) = d.ndjson(Via::Unix, "POST", "/v1/images/pull", None, &body);
    assert_eq!((code, lines.len()), (200, 1), "{lines:?}");
    assert_eq!(lines[0]["status"], 404, "{lines:?}");
    assert_eq!(lines[0]["error"]["code"], "not_found", "{lines:?}");
}

#[test]
fn missing_tag_is_a_not_found_naming_the_reference() {
    let reg = Registry::start(None);
    push(&reg, "app", "test/app:v1", &[]);
    let d = daemon_for(&reg);
    let reference = format!("{}/test/app:nope", reg.host());
    let r = d.cairn(&["image", "pull", &reference, "--json"]);
    assert_ne!(r.code, 0);
    let err = err_json(&r);
    assert_eq!(err["error"]["code"], "not_found", "{err}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("'nope' not found") && msg.contains("test/app") && msg.contains("list-tags"),
        "{msg}"
    );
    let missing_repo = format!("{}/test/none:v1", reg.host());
    let r = d.cairn(&["image", "pull", &missing_repo]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
    assert_eq!(pool_state(&d).0, 0, "a failed pull left an image tree");
}

/// A TCP proxy to `to` that sends the answers on at most ~8 MB/s, so that a pull through it
/// lasts long enough to be cut.
fn slow_proxy(to: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c_out.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(8));
                        }
                    }
                }
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

#[test]
fn registry_dying_mid_pull_leaves_nothing_and_a_retry_works() {
    let mut reg = Registry::start(None);
    push(&reg, "big", "test/big:v1", &[]);
    let proxy = slow_proxy(reg.port);
    let host = format!("127.0.0.1:{proxy}");
    let d = Daemon::start_opts(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        false,
        &["--insecure-registry", &host],
    );
    let reference = format!("{host}/test/big:v1");
    let pull = d
        .cairn_command(&["image", "pull", &reference, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the registry once the big layer is arriving.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tmp = pool_state(&d).2;
        if tmp > 0 {
            std::thread::sleep(Duration::from_millis(300));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pull never started downloading"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    reg.kill();
    let out = pull.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the pull succeeded without its registry"
    );
    let err: serde_json::Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let msg = err["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("try again"), "{err}");
    // Nothing half-imported: no image row, no tree, no blob (whole or partial).
    let images = d.cairn(&["image", "ls", "--json"]).json();
    assert_eq!(images.as_array().unwrap().len(), 0, "{images}");
    assert_eq!(pool_state(&d), (0, 0, 0), "leftovers in the pool");
    // Again, once the registry is back.
    reg.launch();
    let img = d.cairn(&["image", "pull", &reference, "--json"]).json();
    assert_eq!(img["pull"]["layers"], 2, "{img}");
    assert_eq!(pool_state(&d).2, 0);
}

#[test]
fn pull_cut_short_by_a_crash_is_removed_at_start_up() {
    let reg = Registry::start(None);
    push(&reg, "app", "test/app:v1", &[]);
    let insecure = reg.host();
    let mut d = Daemon::start_env(
        env!("CARGO_BIN_EXE_cairnd"),
        env!("CARGO_BIN_EXE_cairn"),
        false,
        &["--insecure-registry", &insecure],
        &[("CAIRN_CRASH_AT".into(), "pull-before-ready".into())],
    );
    let reference = format!("{}/test/app:v1", reg.host());
    assert_ne!(d.cairn(&["image", "pull", &reference]).code, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.has_exited() {
        assert!(Instant::now() < deadline, "cairnd did not crash");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        pool_state(&d).1 > 0,
        "the crash came before the blobs were stored"
    );
    d.env.retain(|(k, _)| k != "CAIRN_CRASH_AT");
    d.relaunch();
    let images = d.cairn(&["image", "ls", "--json"]).json();
    assert_eq!(images.as_array().unwrap().len(), 0, "{images}");
    assert_eq!(pool_state(&d), (0, 0, 0), "leftovers after recovery");
    let img = d.cairn(&["image", "pull", &reference, "--json"]).json();
    assert_eq!(img["pull"]["layers_downloaded"], 2, "{img}");
}

#[test]
fn second_image_downloads_only_its_new_layer_and_rm_keeps_shared_blobs() {
    let reg = Registry::start(None);
    push(&reg, "app", "test/app:v1", &[]);
    // The second image as a Docker schema 2 manifest, its layers recompressed with zstd.
    push(&reg, "app2", "test/app2:v1", &["--format", "v2s2"]);
    push(
        &reg,
        "app2",
        "test/app2:zstd",
        &["--dest-compress-format", "zstd", "--dest-compress"],
    );
    let d = daemon_for(&reg);
    let first = d
        .cairn(&[
            "image",
            "pull",
            &format!("{}/test/app:v1", reg.host()),
            "--json",
        ])
        .json();
    let second = d
        .cairn(&[
            "image",
            "pull",
            &format!("{}/test/app2:v1", reg.host()),
            "--json",
        ])
        .json();
    assert_eq!(second["pull"]["layers"], 2, "{second}");
    assert_eq!(second["pull"]["layers_downloaded"], 1, "{second}");
    let (first_bytes, second_bytes) = (
        first["pull"]["downloaded_bytes"].as_u64().unwrap(),
        second["pull"]["downloaded_bytes"].as_u64().unwrap(),
    );
    assert!(
        second_bytes < 4096 && first_bytes > 500_000,
        "the second pull downloaded {second_bytes} bytes (the first {first_bytes})"
    );
    // zstd layers unpack too (new blobs: recompressed).
    let z = d
        .cairn(&[
            "image",
            "pull",
            &format!("{}/test/app2:zstd", reg.host()),
            "--name",
            "z",
            "--json",
        ])
        .json();
    let id = d.cairn(&["up", "--image", "z", "--runtime", "runc"]).ok();
    assert_eq!(
        d.cairn(&["exec", &id, "cat /etc/other"]).ok(),
        "the second image",
        "{z}"
    );
    // Removing the first image keeps the base layer the second still uses: its re-pull
    // downloads only the first's own layer.
    d.cairn(&["image", "rm", "app-v1"]).ok();
    let again = d
        .cairn(&[
            "image",
            "pull",
            &format!("{}/test/app:v1", reg.host()),
            "--json",
        ])
        .json();
    assert_eq!(again["pull"]["layers_downloaded"], 1, "{again}");
}

#[test]
fn basic_auth_uses_the_login_and_refuses_a_wrong_password() {
    let reg = Registry::start(Some(("alice", "s3cret-pw")));
    let src = format!("oci:{}/layout:app", layout().display());
    run(Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:s3cret-pw",
        ])
        .arg(&src)
        .arg(format!("docker://{}/test/private:v1", reg.host())));
    let d = daemon_for(&reg);
    let reference = format!("{}/test/private:v1", reg.host());
    let r = d.cairn(&["image", "pull", &reference, "--json"]);
    assert_ne!(r.code, 0);
    let err = err_json(&r);
    assert_eq!(err["error"]["code"], "forbidden", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cairn image login"),
        "{err}"
    );
    d.cairn_with_stdin(
        &[
            "image",
            "login",
            &reg.host(),
            "-u",
            "alice",
            "--password-stdin",
        ],
        "wrong\n",
    )
    .ok();
    let r = d.cairn(&["image", "pull", &reference, "--json"]);
    assert_ne!(r.code, 0);
    let msg = err_json(&r)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("refused your credentials"), "{msg}");
    assert!(!msg.contains("wrong"), "the password leaked: {msg}");
    d.cairn_with_stdin(
        &[
            "image",
            "login",
            &reg.host(),
            "-u",
            "alice",
            "--password-stdin",
        ],
        "s3cret-pw\n",
    )
    .ok();
    let img = d.cairn(&["image", "pull", &reference, "--json"]).json();
    assert_eq!(img["name"], "private-v1", "{img}");
    assert!(
        !d.log_text().contains("s3cret-pw"),
        "the password is in the log"
    );
    d.cairn(&["image", "logout", &reg.host()]).ok();
    let r = d.cairn(&["image", "pull", &reference, "--name", "again"]);
    assert_ne!(r.code, 0, "pulled after logout");
}

#[test]
fn http_registry_not_listed_as_insecure_is_refused() {
    let reg = Registry::start(None);
    push(&reg, "app", "test/app:v1", &[]);
    let d = Daemon::start(env!("CARGO_BIN_EXE_cairnd"), env!("CARGO_BIN_EXE_cairn"));
    let r = d.cairn(&[
        "image",
        "pull",
        &format!("{}/test/app:v1", reg.host()),
        "--json",
    ]);
    assert_ne!(r.code, 0);
    let err = err_json(&r);
    assert_eq!(err["error"]["code"], "forbidden", "{err}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("--insecure-registry"), "{msg}");
    assert_eq!(pool_state(&d), (0, 0, 0));
}
