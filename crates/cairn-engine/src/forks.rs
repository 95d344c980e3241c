//! Forks in batches: `count` sandboxes from one snapshot. The snapshot is looked up and
//! the batch checked once (count, names, options); the first fork is made alone, so that
//! whatever refuses a fork of this snapshot (its runtime identity, CRIU, the caps, a full
//! pool) refuses the batch before anything else is made; the rest are made concurrently,
//! a few at a time. Each fork is an ordinary `create_sandbox`, which rolls a failed fork
//! back completely (row, subvolume, container, network), so a partial batch leaves only
//! whole sandboxes. Not here: what a fork is (see `sandboxes`).

use std::sync::Arc;

use cairn_types::api::{ForkRequest, SandboxInfo};
use cairn_types::{validate_name, Progress, ProgressSink};

use crate::{CreateSandbox, Engine, EngineError, Result};

/// The most forks one request may ask for.
pub const MAX_FORKS: u32 = 256;

/// Forks made at the same time: each is mostly runtime processes (create, start) and a
/// btrfs snapshot, which a few at a time keep the CPUs busy with.
const CONCURRENT_FORKS: usize = 4;

/// What a batch made.
#[derive(Debug)]
pub struct Forked {
    /// The forks made, in the order asked for.
    pub made: Vec<SandboxInfo>,
    /// Why each of the others was not made.
    pub failed: Vec<EngineError>,
}

impl Engine {
    /// Makes `req.count` forks of `snapshot` for `account`. An error means none was made;
    /// otherwise [`Forked`] says which were and why the others were not.
    pub async fn fork_snapshot(
        self: &Arc<Self>,
        account: &str,
        snapshot: &str,
        req: &ForkRequest,
        progress: &ProgressSink,
    ) -> Result<Forked> {
        let count = req.count.unwrap_or(1);
        if count == 0 || count > MAX_FORKS {
            return Err(EngineError::InvalidArgument(format!(
                "invalid count {count}: give 1 to {MAX_FORKS} forks"
            )));
        }
        let snap = self.ready_or_pulled(account, snapshot).await?;
        let names = fork_names(req.name.as_deref(), count)?;
        for name in names.iter().flatten() {
            let (who, n) = (account.to_string(), name.clone());
            if self
                .db(move |db| db.find_sandbox(&who, &n))
                .await?
                .is_some()
            {
                return Err(EngineError::Conflict(format!(
                    "a sandbox named '{name}' exists already: choose another name prefix"
                )));
            }
        }
        let network = req.network.as_deref().map(str::parse).transpose().map_err(
            |e: cairn_types::NetworkModeError| EngineError::InvalidArgument(e.to_string()),
        )?;
        let one = CreateSandbox {
            image: String::new(),
            from_snapshot: Some(snap.id.to_string()),
            fresh: req.fresh,
            name: None,
            runtime: req.runtime,
            cpus: req.cpus,
            memory: req.memory.clone(),
            pids_limit: req.pids_limit,
            env: req.env.clone(),
            workdir: req.workdir.clone(),
            idle_timeout: req.idle_timeout.clone(),
            network,
            publish: Vec::new(),
            disk: req.disk.clone(),
            secrets: req.secrets.clone(),
            repo: None,
        };
        let (network, _) = self.requested_network(&one, Some(&snap)).await?;
        if network == cairn_net::NetworkMode::Nat {
            // Each `nat` fork takes an address of the subnet: all of them, or none.
            let subnet = self.net.config().subnet;
            let free = subnet
                .sandbox_addresses()
                .count()
                .saturating_sub(self.db(|db| db.addresses_in_use()).await?);
            if count as usize > free {
                return Err(EngineError::Limit(format!(
                    "{count} forks of a 'nat' snapshot need {count} addresses and the subnet {subnet} has {free} free: fork fewer, destroy unused nat sandboxes, or restart cairnd with a larger --subnet"
                )));
            }
        }
        self.require_pool_room("fork the snapshot")?;
        let requests: Vec<CreateSandbox> = names
            .into_iter()
            .map(|name| CreateSandbox {
                name,
                ..one.clone()
            })
            .collect();
        let mut requests = requests.into_iter();
        // The first alone: what refuses it refuses the batch, with nothing made.
        let Some(first) = requests.next() else {
            return Err(EngineError::Internal("a batch of no forks".into()));
        };
        let first = self.create_sandbox(account, &first).await?;
        let report = |done: usize| {
            progress.report(Progress::items(
                "forks",
                done as u64,
                Some(u64::from(count)),
            ));
        };
        report(1);
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_FORKS));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, r) in requests.enumerate() {
            let (engine, account, permits) =
                (Arc::clone(self), account.to_string(), Arc::clone(&permits));
            tasks.spawn(async move {
                let made = match permits.acquire_owned().await {
                    Ok(_permit) => engine.create_sandbox(&account, &r).await,
                    Err(e) => Err(EngineError::failed("the batch's permits are gone", e)),
                };
                (i, made)
            });
        }
        let mut results = Vec::with_capacity(count as usize - 1);
        while let Some(joined) = tasks.join_next().await {
            report(results.len() + 2);
            match joined {
                Ok(r) => results.push(r),
                Err(e) => results.push((
                    usize::MAX,
                    Err(EngineError::failed("a fork's task ended abnormally", e)),
                )),
            }
        }
        results.sort_by_key(|(i, _)| *i);
        let mut forked = Forked {
            made: vec![first],
            failed: Vec::new(),
        };
        for (_, r) in results {
            match r {
                Ok(info) => forked.made.push(info),
                Err(e) => forked.failed.push(e),
            }
        }
        tracing::info!(snapshot = %snap.id, asked = count, made = forked.made.len(), "forks made");
        Ok(forked)
    }
}

/// The forks' names: `PREFIX-1`, `PREFIX-2`… (checked), or none without a prefix.
fn fork_names(prefix: Option<&str>, count: u32) -> Result<Vec<Option<String>>> {
    (1..=count)
        .map(|i| match prefix {
            Some(p) => {
                let name = format!("{p}-{i}");
                validate_name(&name)?;
                Ok(Some(name))
            }
            None => Ok(None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forks_are_named_after_the_prefix_in_order() {
        let names = fork_names(Some("web"), 3).unwrap();
        assert_eq!(
            names,
            vec![
                Some("web-1".to_string()),
                Some("web-2".to_string()),
                Some("web-3".to_string())
            ]
        );
        assert_eq!(fork_names(None, 2).unwrap(), vec![None, None]);
    }

    #[test]
    fn a_prefix_that_makes_bad_names_is_refused() {
        assert!(fork_names(Some("no spaces"), 2).is_err());
    }
}
