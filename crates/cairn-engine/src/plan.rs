//! The engine's own words for a new sandbox, and the pure step that turns them into limits.
//!
//! [`CreateSandbox`] is what a create or a fork asks for, as the API parsed it (the network
//! mode is already an enum; sizes and durations are still the caller's text, so that an error
//! can quote them). [`plan_create`] resolves the resources (the request's, else a fork's
//! snapshot's, else the defaults), the idle timeout and the runtime, and checks them against
//! the configured caps and the request limits: no I/O, so it is tested here without root.
//! Not here: what needs the database, the pool or the runtime (image and snapshot lookups,
//! the network plan, disk limits, runtime identity): `sandboxes.rs`, `network.rs`, `disk.rs`.

use cairn_types::{parse_size, NetworkMode, Resources, RuntimeKind};

use crate::limits::{check_env, check_timeout, check_workdir, ResourceCaps, MAX_PUBLISHED};
use crate::{defaults, EngineError, Result};

/// Smallest memory limit we accept: below this even a shell cannot start.
pub(crate) const MIN_MEMORY: u64 = 16 << 20;

/// A request for a new sandbox (from an image, or a fork of a snapshot), in the engine's terms.
#[derive(Clone, Debug, Default)]
pub struct CreateSandbox {
    /// Image name or id; empty with `from_snapshot`.
    pub image: String,
    /// Fork: the snapshot (id, `NAME` or `SANDBOX:NAME`) whose files it starts from.
    pub from_snapshot: Option<String>,
    /// With a stateful `from_snapshot`: boot fresh on its files instead of resuming its processes.
    pub fresh: bool,
    /// Optional name, unique per account.
    pub name: Option<String>,
    /// Runtime; default: the snapshot's, else the engine's default.
    pub runtime: Option<RuntimeKind>,
    /// CPU limit in cores.
    pub cpus: Option<f64>,
    /// Memory limit as the caller wrote it (`512M`, `2G`).
    pub memory: Option<String>,
    /// Most processes at once.
    pub pids_limit: Option<u32>,
    /// Environment, `KEY=VALUE`, over the image's (or the snapshot's).
    pub env: Vec<String>,
    /// Default working directory (absolute).
    pub workdir: Option<String>,
    /// Idle timeout as the caller wrote it (`90s`, `30m`).
    pub idle_timeout: Option<String>,
    /// Network mode; default: the snapshot's, else `nat` with published ports, else `none`.
    pub network: Option<NetworkMode>,
    /// Ports to publish, `HOSTPORT:PORT`.
    pub publish: Vec<String>,
    /// Disk limit as the caller wrote it (`10G`).
    pub disk: Option<String>,
    /// Secrets, over a fork's snapshot's (see `secrets`).
    pub secrets: cairn_types::Secrets,
    /// A git repository cloned into its root before it starts.
    pub repo: Option<crate::RepoClone>,
}

/// What a fork inherits from its snapshot's sandbox unless the request says otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Inherited {
    /// The source sandbox's limits.
    pub resources: Resources,
    /// The source sandbox's runtime.
    pub runtime: RuntimeKind,
}

/// The limits, idle timeout and runtime a new sandbox gets, checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CreatePlan {
    /// Its cgroup limits.
    pub resources: Resources,
    /// Pause it after this many seconds without use.
    pub idle_timeout_secs: Option<u64>,
    /// Its runtime.
    pub runtime: RuntimeKind,
}

/// Resolves and checks what `req` asks for: each limit from the request, else from
/// `inherited` (a fork), else the defaults; then the caps, the environment, the working
/// directory, the number of published ports and the idle timeout, in that order (the first
/// problem is the one reported).
pub(crate) fn plan_create(
    req: &CreateSandbox,
    inherited: Option<Inherited>,
    default_runtime: RuntimeKind,
    caps: &ResourceCaps,
) -> Result<CreatePlan> {
    let from = inherited.map(|i| i.resources);
    let memory_bytes = match (&req.memory, from) {
        (Some(m), _) => parse_size(m)?,
        (None, Some(r)) => r.memory_bytes,
        (None, None) => defaults::MEMORY_BYTES,
    };
    if memory_bytes < MIN_MEMORY {
        return Err(EngineError::InvalidArgument(format!(
            "memory limit '{}' is too small: give at least 16M",
            req.memory.as_deref().unwrap_or_default()
        )));
    }
    caps.check_memory(memory_bytes)?;
    let cpus = req.cpus.or(from.map(|r| r.cpus)).unwrap_or(defaults::CPUS);
    caps.check_cpus(cpus)?;
    let pids_limit = req
        .pids_limit
        .or(from.map(|r| r.pids_limit))
        .unwrap_or(defaults::PIDS_LIMIT);
    caps.check_pids(pids_limit)?;
    check_env(&req.env)?;
    if let Some(w) = &req.workdir {
        check_workdir(w)?;
    }
    if req.publish.len() > MAX_PUBLISHED {
        return Err(EngineError::InvalidArgument(format!(
            "{} published ports asked for: at most {MAX_PUBLISHED} per sandbox",
            req.publish.len()
        )));
    }
    let idle_timeout_secs = req
        .idle_timeout
        .as_deref()
        .map(cairn_types::parse_duration)
        .transpose()
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
    if let Some(secs) = idle_timeout_secs {
        check_timeout("the idle timeout", secs)?;
    }
    let runtime = req
        .runtime
        .or(inherited.map(|i| i.runtime))
        .unwrap_or(default_runtime);
    Ok(CreatePlan {
        resources: Resources {
            cpus,
            memory_bytes,
            pids_limit,
        },
        idle_timeout_secs,
        runtime,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A runtime by name (the engine's code never names a runtime kind).
    fn kind(name: &str) -> RuntimeKind {
        name.parse().unwrap()
    }

    fn caps() -> ResourceCaps {
        ResourceCaps {
            memory_bytes: 4 << 30,
            cpus: 4.0,
            pids: 4096,
        }
    }

    fn invalid(e: EngineError) -> String {
        match e {
            EngineError::InvalidArgument(m) | EngineError::Limit(m) => m,
            other => panic!("expected a caller's error, got {other:?}"),
        }
    }

    #[test]
    fn a_bare_request_gets_the_defaults_and_the_default_runtime() {
        let plan = plan_create(&CreateSandbox::default(), None, kind("gvisor"), &caps()).unwrap();
        assert_eq!(
            plan,
            CreatePlan {
                resources: Resources {
                    cpus: defaults::CPUS,
                    memory_bytes: defaults::MEMORY_BYTES,
                    pids_limit: defaults::PIDS_LIMIT,
                },
                idle_timeout_secs: None,
                runtime: kind("gvisor"),
            }
        );
    }

    #[test]
    fn a_fork_inherits_its_snapshots_limits_and_runtime_unless_the_request_overrides_them() {
        let inherited = Inherited {
            resources: Resources {
                cpus: 2.0,
                memory_bytes: 1 << 30,
                pids_limit: 300,
            },
            runtime: kind("runc"),
        };
        let plan = plan_create(
            &CreateSandbox::default(),
            Some(inherited),
            kind("gvisor"),
            &caps(),
        )
        .unwrap();
        assert_eq!(plan.resources, inherited.resources);
        assert_eq!(plan.runtime, kind("runc"));
        let req = CreateSandbox {
            memory: Some("256M".into()),
            cpus: Some(0.5),
            ..Default::default()
        };
        let plan = plan_create(&req, Some(inherited), kind("gvisor"), &caps()).unwrap();
        assert_eq!(plan.resources.memory_bytes, 256 << 20);
        assert_eq!(plan.resources.cpus, 0.5);
        assert_eq!(plan.resources.pids_limit, 300);
    }

    #[test]
    fn too_little_memory_is_refused_quoting_what_was_asked() {
        let req = CreateSandbox {
            memory: Some("8M".into()),
            ..Default::default()
        };
        let m = invalid(plan_create(&req, None, kind("runc"), &caps()).unwrap_err());
        assert_eq!(m, "memory limit '8M' is too small: give at least 16M");
    }

    #[test]
    fn limits_over_the_caps_are_refused() {
        for req in [
            CreateSandbox {
                memory: Some("8G".into()),
                ..Default::default()
            },
            CreateSandbox {
                cpus: Some(8.0),
                ..Default::default()
            },
            CreateSandbox {
                pids_limit: Some(100_000),
                ..Default::default()
            },
        ] {
            assert!(plan_create(&req, None, kind("runc"), &caps()).is_err());
        }
    }

    #[test]
    fn bad_idle_timeouts_workdirs_and_too_many_ports_are_the_callers_mistakes() {
        let bad = [
            CreateSandbox {
                idle_timeout: Some("soon".into()),
                ..Default::default()
            },
            CreateSandbox {
                workdir: Some("relative/dir".into()),
                ..Default::default()
            },
            CreateSandbox {
                publish: vec!["8080:80".into(); MAX_PUBLISHED + 1],
                ..Default::default()
            },
        ];
        for req in bad {
            invalid(plan_create(&req, None, kind("runc"), &caps()).unwrap_err());
        }
        let req = CreateSandbox {
            idle_timeout: Some("90s".into()),
            ..Default::default()
        };
        let plan = plan_create(&req, None, kind("runc"), &caps()).unwrap();
        assert_eq!(plan.idle_timeout_secs, Some(90));
    }
}
