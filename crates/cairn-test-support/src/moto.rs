//! A real S3-compatible server for tests of the remote tier: `moto_server` from PyPI
//! (`moto[server]`, pinned in scripts/setup.sh), started on 127.0.0.1 on a free port with
//! one bucket, killed (its pid only) when dropped. The bucket is read and altered with
//! plain S3 requests through `curl` (moto does not check their signatures).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto version the tests were verified with (scripts/setup.sh installs it).
pub const MOTO_VERSION: &str = "5.2.1";

/// A request's signature, which moto does not check (without one, it treats a request as
/// anonymous and refuses reads of private objects).
const AUTH: &str = "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/// A running moto server with one bucket.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket made at start.
    pub bucket: String,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto_server and makes bucket `cairn-test`; panics saying how to install
    /// moto when it is missing.
    pub fn start() -> Moto {
        let bin = crate::which("moto_server").unwrap_or_else(|| {
            panic!(
                "moto_server is missing: run scripts/setup.sh (pip install 'moto[server]=={MOTO_VERSION}')"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("cairn-test-moto-")
            .tempdir()
            .unwrap();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let port = crate::free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: "cairn-test".into(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto_server exited ({status}) at start: {}",
                    moto.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within 30 s: {}",
                moto.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let url = moto.url(&[]);
        moto.curl(&["-X", "PUT", &url]);
        moto
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("moto.log")).unwrap_or_default()
    }

    /// The URL of `key` (or of the bucket) in path style.
    fn url(&self, key: &[&str]) -> String {
        let mut u = format!("{}/{}", self.endpoint, self.bucket);
        for k in key {
            u.push('/');
            u.push_str(k);
        }
        u
    }

    fn curl(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("curl")
            .args(["-sS", "-f", "-H", AUTH])
            .args(args)
            .output()
            .expect("curl (apt-get install curl)");
        assert!(
            out.status.success(),
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The environment cairnd needs for it (credentials moto accepts, the region).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// cairnd's arguments for a remote at `prefix` of the bucket.
    pub fn args(&self, prefix: &str) -> Vec<String> {
        vec![
            "--remote".into(),
            format!("s3://{}/{prefix}", self.bucket),
            "--remote-endpoint".into(),
            self.endpoint.clone(),
        ]
    }

    /// Every object under `prefix`: (key, size), sorted by key.
    pub fn objects(&self, prefix: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!(
                "{}?list-type=2&max-keys=1000&prefix={prefix}",
                self.url(&[])
            );
            if let Some(t) = &token {
                url.push_str(&format!(
                    "&continuation-token={}",
                    t.replace('=', "%3D")
                        .replace('+', "%2B")
                        .replace('/', "%2F")
                ));
            }
            let xml = String::from_utf8(self.curl(&[&url])).unwrap();
            for part in xml.split("<Contents>").skip(1) {
                let key = between(part, "<Key>", "</Key>").unwrap_or_default();
                let size = between(part, "<Size>", "</Size>")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                out.push((key.replace("&amp;", "&"), size));
            }
            token = between(&xml, "<NextContinuationToken>", "</NextContinuationToken>")
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        out.sort();
        out
    }

    /// Bytes stored under `prefix`.
    pub fn bytes(&self, prefix: &str) -> u64 {
        self.objects(prefix).iter().map(|o| o.1).sum()
    }

    /// Overwrites object `key` with `file`'s bytes.
    pub fn put(&self, key: &str, file: &Path) {
        let url = self.url(&[key]);
        let data = format!("@{}", file.display());
        self.curl(&["-X", "PUT", "--data-binary", &data, &url]);
    }

    /// Object `key`'s bytes.
    pub fn get(&self, key: &str) -> Vec<u8> {
        self.curl(&[&self.url(&[key])])
    }
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
