//! Versioned schema migrations. Each entry moves the schema from version
//! `index` to `index + 1` inside one transaction; `PRAGMA user_version`
//! records where a database stands.

use rusqlite::Connection;

use crate::DbError;

const MIGRATIONS: &[&str] = &[
    // 1: accounts, tokens, images, sandboxes
    "CREATE TABLE accounts (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        account TEXT NOT NULL REFERENCES accounts(name),
        created_at TEXT NOT NULL
    );
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        size_bytes INTEGER NOT NULL,
        source TEXT NOT NULL,
        config_json TEXT NOT NULL,
        ready INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE sandboxes (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        name TEXT,
        image_id TEXT NOT NULL REFERENCES images(id),
        runtime TEXT NOT NULL,
        state TEXT NOT NULL,
        state_reason TEXT,
        cpus REAL NOT NULL,
        memory_bytes INTEGER NOT NULL,
        pids_limit INTEGER NOT NULL,
        env_json TEXT NOT NULL,
        workdir TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE(account, name)
    );",
    // 2: snapshots; the snapshot a sandbox's root descends from
    "CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        sandbox_id TEXT NOT NULL,
        name TEXT NOT NULL,
        parent_id TEXT,
        image_id TEXT NOT NULL REFERENCES images(id),
        runtime TEXT NOT NULL,
        cpus REAL NOT NULL,
        memory_bytes INTEGER NOT NULL,
        pids_limit INTEGER NOT NULL,
        env_json TEXT NOT NULL,
        workdir TEXT NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        size_bytes INTEGER NOT NULL DEFAULT 0,
        total_bytes INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        UNIQUE(sandbox_id, name)
    );
    CREATE INDEX snapshots_account ON snapshots(account);
    ALTER TABLE sandboxes ADD COLUMN parent_snapshot TEXT;",
    // 3: stateful snapshots (process memory checkpoint beside the tree)
    "ALTER TABLE snapshots ADD COLUMN stateful INTEGER NOT NULL DEFAULT 0;",
    // 4: automatic snapshots (pause), memory released to disk, idle timeouts
    "ALTER TABLE snapshots ADD COLUMN auto INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sandboxes ADD COLUMN memory_snapshot TEXT;
    ALTER TABLE sandboxes ADD COLUMN idle_timeout_secs INTEGER;",
    // 5: networking: a sandbox's mode and (nat) address, its published ports; a snapshot
    //    records its sandbox's mode (by trigger, so snapshot code need not know) for forks.
    "ALTER TABLE sandboxes ADD COLUMN network TEXT NOT NULL DEFAULT 'none';
    ALTER TABLE sandboxes ADD COLUMN address TEXT;
    CREATE UNIQUE INDEX sandboxes_address ON sandboxes(address);
    CREATE TABLE published_ports (
        host_port INTEGER PRIMARY KEY,
        sandbox_id TEXT NOT NULL,
        port INTEGER NOT NULL
    );
    CREATE INDEX published_ports_sandbox ON published_ports(sandbox_id);
    ALTER TABLE snapshots ADD COLUMN network TEXT NOT NULL DEFAULT 'none';
    CREATE TRIGGER snapshots_network AFTER INSERT ON snapshots BEGIN
        UPDATE snapshots SET network = COALESCE(
            (SELECT network FROM sandboxes WHERE id = NEW.sandbox_id), 'none')
        WHERE id = NEW.id;
    END;",
    // 6: tenancy. Tokens get an id (for ls and revoke), a role, an expiry and a revocation
    //    time. Images belong to an account (names unique per account) and may be public;
    //    images imported before this were usable by every account, so they stay public,
    //    owned by the operator's `local` account. The table is rebuilt to drop the global
    //    UNIQUE(name); foreign keys into it are checked at commit, when its rows are back.
    "ALTER TABLE tokens ADD COLUMN id TEXT;
    ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'user';
    ALTER TABLE tokens ADD COLUMN expires_at TEXT;
    ALTER TABLE tokens ADD COLUMN revoked_at TEXT;
    UPDATE tokens SET id = 'tok-' || lower(hex(randomblob(4)));
    CREATE UNIQUE INDEX tokens_id ON tokens(id);
    PRAGMA defer_foreign_keys = ON;
    CREATE TEMP TABLE images_old AS SELECT * FROM images;
    DROP TABLE images;
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        name TEXT NOT NULL,
        public INTEGER NOT NULL DEFAULT 0,
        size_bytes INTEGER NOT NULL,
        source TEXT NOT NULL,
        config_json TEXT NOT NULL,
        ready INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE(account, name)
    );
    INSERT INTO images(id, account, name, public, size_bytes, source, config_json, ready, created_at)
        SELECT id, 'local', name, 1, size_bytes, source, config_json, ready, created_at FROM images_old;
    DROP TABLE images_old;
    CREATE UNIQUE INDEX images_public_name ON images(name) WHERE public = 1;",
    // 7: accounts whose nat sandboxes may reach each other. `id` is
    //    the bridge port group of their sandboxes; AUTOINCREMENT never gives it to another.
    "CREATE TABLE network_peers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );",
    // 8: a sandbox's disk limit (bytes it may write into its root; NULL: none of
    //    its own); a snapshot records its sandbox's (by trigger, as for the network) for forks.
    "ALTER TABLE sandboxes ADD COLUMN disk_bytes INTEGER;
    ALTER TABLE snapshots ADD COLUMN disk_bytes INTEGER;
    CREATE TRIGGER snapshots_disk AFTER INSERT ON snapshots BEGIN
        UPDATE snapshots SET disk_bytes =
            (SELECT disk_bytes FROM sandboxes WHERE id = NEW.sandbox_id)
        WHERE id = NEW.id;
    END;",
    // 9 (names, issue 15): a snapshot records its sandbox's name (by trigger, as for the
    //    network), so `SANDBOX:NAME` finds it after the sandbox is destroyed; rows of
    //    sandboxes destroyed before this keep NULL (their id still works). Lookups by name.
    "ALTER TABLE snapshots ADD COLUMN sandbox_name TEXT;
    UPDATE snapshots SET sandbox_name = (SELECT name FROM sandboxes WHERE id = snapshots.sandbox_id);
    CREATE TRIGGER snapshots_sandbox_name AFTER INSERT ON snapshots BEGIN
        UPDATE snapshots SET sandbox_name =
            (SELECT name FROM sandboxes WHERE id = NEW.sandbox_id)
        WHERE id = NEW.id;
    END;
    CREATE INDEX snapshots_account_name ON snapshots(account, name);",
    // 10 (ops, issue 15): the snapshot a sandbox is being restored from, set once its new root
    //    is staged and cleared when it runs again, so that start-up recovery finishes a
    //    restore that a crash interrupted (see cairn-engine's restore).
    "ALTER TABLE sandboxes ADD COLUMN restoring TEXT;",
    // 11 (wake, issue 15): while a sandbox is paused, when and why (`idle`: its idle
    //    timeout, the next exec resumes it; `user`: a pause request, only resume continues it).
    "ALTER TABLE sandboxes ADD COLUMN paused_at TEXT;
    ALTER TABLE sandboxes ADD COLUMN pause_reason TEXT;",
    // 12 (share, issue 18): a snapshot imported from an archive records the id it had on
    //    its source host (shown as its lineage); it has no sandbox on this host.
    "ALTER TABLE snapshots ADD COLUMN imported_from TEXT;",
    // 13 (secrets, issue 17): a sandbox's or snapshot's secrets, sealed (AEAD, under the
    //    data directory's secrets.key) and their names (for inspect); never the values.
    "CREATE TABLE secrets (
        owner TEXT PRIMARY KEY,
        names TEXT NOT NULL,
        sealed BLOB NOT NULL
    );",
    // 14 (e2b, issue 19): a sandbox's metadata and the time its timeout runs out at (E2B's),
    //    when it is killed, or with `pause_at_timeout` paused.
    "CREATE TABLE sandbox_extras (
        sandbox_id TEXT PRIMARY KEY,
        metadata_json TEXT NOT NULL DEFAULT '{}',
        kill_at INTEGER,
        pause_at_timeout INTEGER NOT NULL DEFAULT 0
    );",
    // 15 (e2b, issue 19 leftovers): whether an in-sandbox call to a paused sandbox resumes it
    //    (E2B's autoResume); `pause_at_timeout` 2 pauses it releasing its memory.
    "ALTER TABLE sandbox_extras ADD COLUMN auto_resume INTEGER NOT NULL DEFAULT 0;",
    // 16 (templates, issue 21): named, snapshot-backed templates of an account, with the
    //    process defaults their sandboxes get; the account's build-step cache (step key →
    //    the snapshot that step left); the user a sandbox's commands run as by default.
    "CREATE TABLE templates (
        account TEXT NOT NULL,
        name TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        env_json TEXT NOT NULL DEFAULT '[]',
        workdir TEXT,
        user TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (account, name)
    );
    CREATE INDEX templates_snapshot ON templates(snapshot_id);
    CREATE TABLE template_steps (
        account TEXT NOT NULL,
        key TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (account, key)
    );
    CREATE INDEX template_steps_snapshot ON template_steps(snapshot_id);
    ALTER TABLE sandboxes ADD COLUMN user TEXT;",
    // 17 (registry pulls, issue 21): an account's registry credentials (`cairn image login`),
    //    sealed by the engine with the secrets key; never returned.
    "CREATE TABLE registry_logins (
        account TEXT NOT NULL,
        host TEXT NOT NULL,
        sealed BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (account, host)
    );",
    // 18 (sharing, issue 18): the archives store links uploaded, by snapshot (deleted with
    //    it; a row whose snapshot is gone is a deletion the store refused, retried at start).
    "CREATE TABLE store_archives (
        snapshot_id TEXT NOT NULL,
        key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (snapshot_id, key)
    );",
];

/// Brings the schema to the newest version.
pub(crate) fn migrate(conn: &Connection) -> Result<(), DbError> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Brings the schema to version `target` (tests make old databases with it).
pub(crate) fn migrate_to(conn: &Connection, target: usize) -> Result<(), DbError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    // A negative user_version is no version this code wrote: treat it as unknown (too new).
    let Ok(done) = usize::try_from(current) else {
        return Err(DbError::TooNew {
            found: current,
            known,
        });
    };
    if current > known {
        return Err(DbError::TooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().take(target).skip(done) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    Ok(())
}
