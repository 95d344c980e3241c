//! A small client of the OCI distribution API (what `docker pull` speaks): manifests and
//! blobs of one repository, with anonymous, basic and bearer-token authentication.
//!
//! Hand-written on `reqwest` (already in the tree for the remote tier) rather than
//! `oci-client`, because a multi-tenant host must control every connection a tenant causes
//! (`access`: resolver, redirects, token realms — `oci-client` builds its own HTTP client
//! with none of these hooks) and must cap every document it reads. Not for: the blob cache
//! or unpacking (`cache`, `mod`).

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode, Url};
use tokio::sync::Mutex;

use super::access::RegistryAccess;
use super::reference::Reference;
use crate::{EngineError, Result};

/// Largest manifest, index or configuration document read (Docker's own cap is 4 MiB).
pub(crate) const MAX_DOC_BYTES: usize = 4 << 20;
/// Largest token response read.
const MAX_TOKEN_BYTES: usize = 64 << 10;
/// What a manifest request accepts.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Credentials for one registry.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.user)
    }
}

/// One repository of one registry, as one pull sees it.
pub(crate) struct Registry {
    http: reqwest::Client,
    access: RegistryAccess,
    base: Url,
    reference: Reference,
    creds: Option<Credentials>,
    /// The `Authorization` header the last challenge earned.
    auth: Mutex<Option<HeaderValue>>,
}

impl Registry {
    /// A client for `reference`'s repository.
    pub(crate) fn new(
        reference: &Reference,
        access: &RegistryAccess,
        creds: Option<Credentials>,
    ) -> Result<Registry> {
        let scheme = if access.is_insecure(&reference.registry) {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{}/", reference.api_host()))
            .map_err(|e| EngineError::InvalidArgument(format!("bad registry host: {e}")))?;
        access.check_url(&base).map_err(EngineError::Forbidden)?;
        let redirects = access.clone();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error("more than 5 redirects");
            }
            match redirects.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(why),
            }
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(policy)
            .dns_resolver(access.resolver())
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::failed("cannot make the registry client", e))?;
        Ok(Registry {
            http,
            access: access.clone(),
            base,
            reference: reference.clone(),
            creds,
            auth: Mutex::new(None),
        })
    }

    /// The manifest (or index) named `what` (a tag or digest): its bytes and media type.
    pub(crate) async fn manifest(&self, what: &str) -> Result<(Vec<u8>, String)> {
        let path = format!("v2/{}/manifests/{what}", self.reference.repository);
        let resp = self.get(&path, Some(MANIFEST_TYPES)).await?;
        let media_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let body = read_capped(resp, MAX_DOC_BYTES, || {
            EngineError::TooLarge(format!(
                "the manifest of {} is larger than {} MiB: Cairn does not read it",
                self.reference,
                MAX_DOC_BYTES >> 20
            ))
        })
        .await
        .map_err(|e| self.cut_short(e))?;
        Ok((body, media_type))
    }

    /// A small blob (a configuration), whole.
    pub(crate) async fn small_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let resp = self.blob(digest).await?;
        read_capped(resp, MAX_DOC_BYTES, || {
            EngineError::TooLarge(format!(
                "the configuration of {} is larger than {} MiB: Cairn does not read it",
                self.reference,
                MAX_DOC_BYTES >> 20
            ))
        })
        .await
        .map_err(|e| self.cut_short(e))
    }

    /// The response carrying blob `digest`, for the caller to stream.
    pub(crate) async fn blob(&self, digest: &str) -> Result<Response> {
        let path = format!("v2/{}/blobs/{digest}", self.reference.repository);
        self.get(&path, None).await
    }

    /// The error for a transfer that failed part-way.
    pub(crate) fn cut_short(&self, e: EngineError) -> EngineError {
        match e {
            EngineError::Failed { source, .. } => EngineError::Unavailable(format!(
                "the registry {} stopped answering while {} was pulled ({source}): nothing was kept; try again",
                self.reference.registry, self.reference
            )),
            other => other,
        }
    }

    /// GETs `path` under the registry's base, answering one authentication challenge.
    async fn get(&self, path: &str, accept: Option<&str>) -> Result<Response> {
        let url = self
            .base
            .join(path)
            .map_err(|e| EngineError::InvalidArgument(format!("bad registry path: {e}")))?;
        let mut challenged = false;
        loop {
            let mut req = self.http.get(url.clone());
            if let Some(accept) = accept {
                req = req.header(ACCEPT, accept);
            }
            if let Some(auth) = self.auth.lock().await.clone() {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
            match resp.status() {
                s if s.is_success() => return Ok(resp),
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    let challenge = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let header = self.answer(&challenge).await?;
                    *self.auth.lock().await = Some(header);
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(self.denied());
                }
                StatusCode::NOT_FOUND => return Err(self.not_found(path)),
                StatusCode::TOO_MANY_REQUESTS => {
                    return Err(EngineError::Busy(format!(
                        "the registry {} is rate-limiting pulls: try again later (logging in with 'cairn image login {}' often raises the limit)",
                        self.reference.registry, self.reference.registry
                    )))
                }
                other => {
                    return Err(EngineError::Unavailable(format!(
                        "the registry {} answered {other} for {}: try again later",
                        self.reference.registry, self.reference
                    )))
                }
            }
        }
    }

    /// The `Authorization` header answering `challenge` (`Basic …` or `Bearer realm=…`).
    async fn answer(&self, challenge: &str) -> Result<HeaderValue> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let basic = || {
            self.creds.as_ref().map(|c| {
                let raw = format!("{}:{}", c.user, c.password);
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            })
        };
        let header = if scheme.eq_ignore_ascii_case("basic") {
            basic().ok_or_else(|| self.needs_login())?
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let params = parse_params(params);
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            let realm = get("realm").ok_or_else(|| self.bad_challenge())?;
            let mut url = Url::parse(&realm).map_err(|_| self.bad_challenge())?;
            self.access.check_url(&url).map_err(|why| {
                EngineError::Forbidden(format!("the registry's token service: {why}"))
            })?;
            {
                let mut q = url.query_pairs_mut();
                if let Some(service) = get("service") {
                    q.append_pair("service", &service);
                }
                let scope = get("scope")
                    .unwrap_or_else(|| format!("repository:{}:pull", self.reference.repository));
                q.append_pair("scope", &scope);
            }
            let mut req = self.http.get(url);
            if let Some(b) = basic() {
                req = req.header(AUTHORIZATION, b);
            }
            let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
            match resp.status() {
                s if s.is_success() => {}
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(self.denied()),
                other => {
                    return Err(EngineError::Unavailable(format!(
                        "the token service of {} answered {other}: try again later",
                        self.reference.registry
                    )))
                }
            }
            let body = read_capped(resp, MAX_TOKEN_BYTES, || self.bad_challenge())
                .await
                .map_err(|e| self.cut_short(e))?;
            #[derive(serde::Deserialize)]
            struct Token {
                token: Option<String>,
                access_token: Option<String>,
            }
            let t: Token = serde_json::from_slice(&body).map_err(|_| self.bad_challenge())?;
            let token = t
                .token
                .or(t.access_token)
                .ok_or_else(|| self.bad_challenge())?;
            format!("Bearer {token}")
        } else {
            return Err(self.bad_challenge());
        };
        HeaderValue::from_str(&header).map_err(|_| self.bad_challenge())
    }

    fn unreachable(&self, e: &reqwest::Error) -> EngineError {
        // The error's chain may hold the access policy's refusal: say that, not "unreachable".
        let mut cause = String::new();
        let mut src: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = src {
            cause = s.to_string();
            src = s.source();
        }
        if cause.contains("cairnd --insecure-registry") {
            return EngineError::Forbidden(cause);
        }
        tracing::warn!(registry = %self.reference.registry, error = %e, cause, "registry unreachable");
        let hint = if e.is_timeout() {
            "it did not answer in time"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "the connection failed"
        };
        let tls = if self.base.scheme() == "https" {
            " (pulls use HTTPS; a registry served over plain HTTP needs the operator's cairnd --insecure-registry HOST:PORT)"
        } else {
            ""
        };
        EngineError::Unavailable(format!(
            "the registry {} cannot be reached: {hint}{tls}; check the reference, or try again later",
            self.reference.registry
        ))
    }

    fn not_found(&self, path: &str) -> EngineError {
        let r = &self.reference;
        if path.contains("/manifests/") {
            EngineError::NotFound(format!(
                "{}: tag or digest '{}' not found in {}/{} (or the repository does not exist): list its tags with 'skopeo list-tags docker://{}/{}'",
                r,
                r.manifest_ref(),
                r.registry,
                r.repository,
                r.registry,
                r.repository
            ))
        } else {
            EngineError::Unavailable(format!(
                "the registry {} lacks a blob that the manifest of {r} names: the image is broken in the registry; push it again",
                r.registry
            ))
        }
    }

    fn denied(&self) -> EngineError {
        let host = &self.reference.registry;
        if self.creds.is_some() {
            EngineError::Forbidden(format!(
                "the registry {host} refused your credentials for {}: log in again with 'cairn image login {host} -u USER --password-stdin'",
                self.reference
            ))
        } else {
            self.needs_login()
        }
    }

    fn needs_login(&self) -> EngineError {
        let host = &self.reference.registry;
        EngineError::Forbidden(format!(
            "the registry {host} wants credentials for {}: log in with 'cairn image login {host} -u USER --password-stdin'",
            self.reference
        ))
    }

    fn bad_challenge(&self) -> EngineError {
        EngineError::Unavailable(format!(
            "the registry {} asked for authentication in a way Cairn does not understand",
            self.reference.registry
        ))
    }
}

/// Reads `resp`'s body whole, failing with `too_large()` past `cap` bytes.
async fn read_capped(
    mut resp: Response,
    cap: usize,
    too_large: impl Fn() -> EngineError,
) -> Result<Vec<u8>> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| EngineError::failed("reading from the registry", e))?
    {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `name="value"` pairs of a challenge.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (quoted[..end].to_string(), &quoted[end + 1..]),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_string(), &after[end..]),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((name, value));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_parsed() {
        let p = parse_params(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull""#,
        );
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(p[2].1, "repository:library/python:pull");
    }
}
