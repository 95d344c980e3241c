//! Network rows: each `nat` sandbox's address (unique, kept until the
//! sandbox row goes), the host ports sandboxes publish (unique per host), and
//! the accounts whose sandboxes may reach each other (with their peer group id).

use std::collections::HashSet;

use rusqlite::{params, OptionalExtension};

use cairn_types::{NetworkMode, SandboxId, SnapshotId};

use crate::{now, Db, DbError};

/// One published port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedPortRecord {
    /// The sandbox publishing it.
    pub sandbox_id: SandboxId,
    /// Port on the host's loopback.
    pub host_port: u16,
    /// Port inside the sandbox.
    pub port: u16,
}

impl Db {
    /// Gives sandbox `id` an address: `pick` gets the addresses in use and
    /// returns a free one (or `None` when the subnet is full). One
    /// transaction, so concurrent creates never get the same address.
    pub fn assign_address(
        &self,
        id: &SandboxId,
        pick: impl FnOnce(&HashSet<String>) -> Option<String>,
    ) -> Result<Option<String>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let used: HashSet<String> = {
            let mut stmt = tx.prepare("SELECT address FROM sandboxes WHERE address IS NOT NULL")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let Some(addr) = pick(&used) else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE sandboxes SET address = ?2 WHERE id = ?1",
            params![id.as_str(), addr],
        )?;
        tx.commit()?;
        Ok(Some(addr))
    }

    /// How many sandboxes hold an address (perf, issue 16: a batch of forks checks that
    /// the subnet has room for all of them before making any).
    pub fn addresses_in_use(&self) -> Result<usize, DbError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM sandboxes WHERE address IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Records the ports sandbox `id` publishes; a host port another sandbox
    /// holds is a conflict (naming that sandbox when it is of the same account);
    /// nothing is recorded then.
    pub fn insert_published_ports(
        &self,
        id: &SandboxId,
        ports: &[(u16, u16)],
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (host_port, port) in ports {
            // The holder is named only to its own account: another tenant learns nothing of it.
            let holder: Option<(String, bool)> = tx
                .query_row(
                    "SELECT p.sandbox_id, s.account = (SELECT account FROM sandboxes WHERE id = ?2)
                     FROM published_ports p LEFT JOIN sandboxes s ON s.id = p.sandbox_id
                     WHERE p.host_port = ?1",
                    params![host_port, id.as_str()],
                    |r| Ok((r.get(0)?, r.get::<_, Option<bool>>(1)?.unwrap_or(false))),
                )
                .optional()?;
            if let Some((holder, same_account)) = holder {
                let by = if same_account {
                    format!("your sandbox {holder}")
                } else {
                    "another sandbox".to_string()
                };
                return Err(DbError::Conflict(format!(
                    "host port {host_port} is already taken by {by}: choose another HOSTPORT"
                )));
            }
            tx.execute(
                "INSERT INTO published_ports(host_port, sandbox_id, port) VALUES (?1, ?2, ?3)",
                params![host_port, id.as_str(), port],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Ports published by one sandbox, or by all when `id` is `None`, by host port.
    pub fn published_ports(
        &self,
        id: Option<&SandboxId>,
    ) -> Result<Vec<PublishedPortRecord>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT sandbox_id, host_port, port FROM published_ports
             WHERE ?1 IS NULL OR sandbox_id = ?1 ORDER BY host_port",
        )?;
        let rows = stmt.query_map([id.map(|i| i.as_str())], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u16>(1)?,
                r.get::<_, u16>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (sandbox, host_port, port) = row?;
            out.push(PublishedPortRecord {
                sandbox_id: sandbox
                    .parse()
                    .map_err(|e: cairn_types::IdError| DbError::Corrupt(e.to_string()))?,
                host_port,
                port,
            });
        }
        Ok(out)
    }

    /// The network mode of the sandbox a snapshot was taken from, at that time (`none` when
    /// not recorded or unknown).
    pub fn snapshot_network(&self, id: &SnapshotId) -> Result<NetworkMode, DbError> {
        let mode: Option<String> = self
            .conn()
            .query_row(
                "SELECT network FROM snapshots WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(mode.and_then(|m| m.parse().ok()).unwrap_or_default())
    }

    /// The peer group id of `account` when it lets its `nat` sandboxes reach each other.
    pub fn peer_group(&self, account: &str) -> Result<Option<i64>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM network_peers WHERE account = ?1",
                [account],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Lets `account`'s `nat` sandboxes reach each other; returns its peer group id (the
    /// one it has when it already does; a new one, never used before, otherwise).
    pub fn allow_peers(&self, account: &str) -> Result<i64, DbError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO network_peers(account, created_at) VALUES (?1, ?2)",
            params![account, now()],
        )?;
        Ok(conn.query_row(
            "SELECT id FROM network_peers WHERE account = ?1",
            [account],
            |r| r.get(0),
        )?)
    }

    /// Stops `account`'s `nat` sandboxes from reaching each other; returns the peer group
    /// id it had.
    pub fn deny_peers(&self, account: &str) -> Result<Option<i64>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM network_peers WHERE account = ?1",
                [account],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute("DELETE FROM network_peers WHERE account = ?1", [account])?;
        tx.commit()?;
        Ok(id)
    }

    /// Every account that lets its sandboxes reach each other, with its peer group id.
    pub fn peer_groups(&self) -> Result<Vec<(String, i64)>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT account, id FROM network_peers ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
