//! Image rows. An image belongs to the account that imported it; the operator may make it
//! public, so that every account can use it. Names are unique per account, and among
//! public images.

use rusqlite::{params, OptionalExtension};

use crate::int::to_sql;
use crate::{Db, DbError, ImageRecord};

/// A sandbox or snapshot that uses an image: its id and its account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUser {
    /// `sbx-…` or `snap-…`.
    pub id: String,
    /// Its account.
    pub account: String,
}

impl Db {
    /// Records an image being imported (not ready yet); fails if its account already has
    /// an image of that name.
    pub fn insert_image(&self, image: &ImageRecord) -> Result<(), DbError> {
        let conn = self.conn();
        let taken: Option<String> = conn
            .query_row(
                "SELECT id FROM images WHERE account = ?1 AND name = ?2",
                params![image.account, image.name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = taken {
            return Err(DbError::Conflict(format!(
                "you already have an image named '{}' ({id}); remove it with 'cairn image rm {}' or choose another name",
                image.name, image.name
            )));
        }
        conn.execute(
            "INSERT INTO images(id, account, name, public, size_bytes, source, config_json, ready, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                image.id,
                image.account,
                image.name,
                image.public,
                to_sql(image.size_bytes),
                image.source,
                image.config_json,
                image.ready,
                image.created_at
            ],
        )
        .map_err(|e| public_name_conflict(e, &image.name))?;
        Ok(())
    }

    /// Marks an import finished with its measured size and config.
    pub fn finish_image(
        &self,
        id: &str,
        size_bytes: u64,
        config_json: &str,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE images SET ready = 1, size_bytes = ?2, config_json = ?3 WHERE id = ?1",
            params![id, to_sql(size_bytes), config_json],
        )?;
        Ok(())
    }

    /// The ready images `account` can use (its own and the public ones), by name.
    pub fn list_images(&self, account: &str) -> Result<Vec<ImageRecord>, DbError> {
        self.query_images(
            "SELECT * FROM images WHERE ready = 1 AND (account = ?1 OR public = 1) ORDER BY name, account != ?1",
            [account],
        )
    }

    /// Every image row of every account, finished or not (the registry blob cache keeps
    /// the blobs any of them names).
    pub fn all_images(&self) -> Result<Vec<ImageRecord>, DbError> {
        self.query_images("SELECT * FROM images ORDER BY id", [])
    }

    /// Images whose import never finished (left by a crash).
    pub fn unfinished_images(&self) -> Result<Vec<ImageRecord>, DbError> {
        self.query_images("SELECT * FROM images WHERE ready = 0", [])
    }

    /// A ready image by id, whatever its account (for the engine's own use: the image of a
    /// sandbox or snapshot).
    pub fn image(&self, id: &str) -> Result<Option<ImageRecord>, DbError> {
        Ok(self
            .query_images("SELECT * FROM images WHERE ready = 1 AND id = ?1", [id])?
            .pop())
    }

    /// A ready image `account` can use, by id or name: an id-shaped string is an id; a
    /// name is the account's own image of that name, else the public one.
    pub fn find_image(
        &self,
        account: &str,
        name_or_id: &str,
    ) -> Result<Option<ImageRecord>, DbError> {
        let sql = if cairn_types::looks_like_id(name_or_id) {
            "SELECT * FROM images WHERE ready = 1 AND id = ?2 AND (account = ?1 OR public = 1)"
        } else {
            "SELECT * FROM images WHERE ready = 1 AND name = ?2 AND (account = ?1 OR public = 1)
             ORDER BY account = ?1 DESC LIMIT 1"
        };
        Ok(self.query_images(sql, params![account, name_or_id])?.pop())
    }

    fn query_images<P: rusqlite::Params>(
        &self,
        sql: &str,
        p: P,
    ) -> Result<Vec<ImageRecord>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(p, ImageRecord::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes an image public or private again; a public image's name must be unused by
    /// other public images.
    pub fn set_image_public(&self, id: &str, public: bool) -> Result<(), DbError> {
        let name: Option<String> = self
            .conn()
            .query_row("SELECT name FROM images WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        let name = name.ok_or_else(|| DbError::NotFound(format!("no image {id}")))?;
        self.conn()
            .execute(
                "UPDATE images SET public = ?2 WHERE id = ?1",
                params![id, public],
            )
            .map_err(|e| public_name_conflict(e, &name))?;
        Ok(())
    }

    /// Deletes an image row.
    pub fn delete_image(&self, id: &str) -> Result<(), DbError> {
        self.conn()
            .execute("DELETE FROM images WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The sandboxes and snapshots (of any account, in any state: their rows refer to the
    /// image) that use an image, oldest first.
    pub fn image_users(&self, image_id: &str) -> Result<Vec<ImageUser>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, account FROM (
                 SELECT id, account, created_at FROM sandboxes WHERE image_id = ?1
                 UNION ALL
                 SELECT id, account, created_at FROM snapshots WHERE image_id = ?1
             ) ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([image_id], |r| {
            Ok(ImageUser {
                id: r.get(0)?,
                account: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Turns the unique index on public names into a conflict that says what to do.
fn public_name_conflict(e: rusqlite::Error, name: &str) -> DbError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            DbError::Conflict(format!(
                "a public image named '{name}' already exists: give this one another name"
            ))
        }
        other => DbError::Sqlite(other),
    }
}
