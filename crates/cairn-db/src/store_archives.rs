//! The archives store links uploaded to the remote store, by snapshot: deleting a snapshot
//! deletes exactly these (and a snapshot without any costs the store nothing). A row is
//! written before its upload starts and removed once the object is deleted, so one whose
//! snapshot is gone is a deletion still to do.

use rusqlite::params;

use crate::{Db, DbError};

impl Db {
    /// Records that `key` in the store holds (or is about to hold) an archive of snapshot
    /// `snapshot`; recording it again changes nothing.
    pub fn add_store_archive(&self, snapshot: &str, key: &str) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO store_archives(snapshot_id, key, created_at) VALUES (?1, ?2, ?3)",
            params![snapshot, key, chrono::Utc::now()],
        )?;
        Ok(())
    }

    /// The store keys of snapshot `snapshot`'s archives.
    pub fn store_archives(&self, snapshot: &str) -> Result<Vec<String>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT key FROM store_archives WHERE snapshot_id = ?1 ORDER BY key")?;
        let rows = stmt.query_map(params![snapshot], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (snapshot, key) of the archives whose snapshot is gone: deletions still to do.
    pub fn orphan_store_archives(&self) -> Result<Vec<(String, String)>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT snapshot_id, key FROM store_archives
             WHERE snapshot_id NOT IN (SELECT id FROM snapshots) ORDER BY snapshot_id, key",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets an archive (its object is deleted).
    pub fn remove_store_archive(&self, snapshot: &str, key: &str) -> Result<(), DbError> {
        self.conn().execute(
            "DELETE FROM store_archives WHERE snapshot_id = ?1 AND key = ?2",
            params![snapshot, key],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Db;

    #[test]
    fn archives_are_listed_by_snapshot_and_orphans_once_their_snapshot_is_gone() {
        let dir = tempfile::tempdir().expect("dir");
        let db = Db::open(&dir.path().join("cairn.db")).expect("db");
        db.add_store_archive("snap-1", "p/a/archives/snap-1.tar.zst")
            .expect("add");
        db.add_store_archive("snap-1", "p/a/archives/snap-1.tar.zst")
            .expect("twice");
        db.add_store_archive("snap-1", "p/a/archives/snap-1.tar.gz")
            .expect("add");
        assert_eq!(db.store_archives("snap-1").expect("list").len(), 2);
        assert!(db.store_archives("snap-2").expect("list").is_empty());
        // No snapshot row: both are deletions to do.
        assert_eq!(db.orphan_store_archives().expect("orphans").len(), 2);
        db.remove_store_archive("snap-1", "p/a/archives/snap-1.tar.gz")
            .expect("remove");
        assert_eq!(
            db.orphan_store_archives().expect("orphans"),
            vec![(
                "snap-1".to_string(),
                "p/a/archives/snap-1.tar.zst".to_string()
            )]
        );
    }
}
