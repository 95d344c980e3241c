//! Images: import a root filesystem (directory, OCI archive or layout
//! tarball) into a read-only subvolume; list; remove when unused.

use std::path::Path;

use chrono::Utc;

use cairn_db::ImageRecord;
use cairn_storage::Storage;
use cairn_types::api::ImageInfo;
use cairn_types::{validate_name, ImageId};

use crate::{Engine, EngineError, Result};

/// The parts of an image's config a sandbox inherits.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredImageConfig {
    pub env: Vec<String>,
    pub workdir: Option<String>,
}

pub(crate) fn info(r: &ImageRecord) -> ImageInfo {
    ImageInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        size_bytes: r.size_bytes,
        source: r.source.clone(),
        created_at: r.created_at,
    }
}

impl Engine {
    /// Imports `path` (on this host) as image `name`.
    pub async fn import_image(&self, name: &str, path: &str) -> Result<ImageInfo> {
        validate_name(name)?;
        let source = Path::new(path);
        if !source.is_absolute() {
            return Err(EngineError::InvalidArgument(format!(
                "image path '{path}' is not absolute: give the full path of a directory or .tar file on the daemon's host"
            )));
        }
        if !source.exists() {
            return Err(EngineError::InvalidArgument(format!(
                "image path '{path}' does not exist on the daemon's host"
            )));
        }
        self.require_pool_room("import the image")?;
        let id = ImageId::generate();
        let record = ImageRecord {
            id: id.to_string(),
            name: name.to_string(),
            size_bytes: 0,
            source: path.to_string(),
            config_json: "{}".to_string(),
            ready: false,
            created_at: Utc::now(),
        };
        // State first (ready = 0), side effect second, state update last.
        self.db
            .insert_image(&record)
            .map_err(EngineError::from_db)?;
        let dest = self.images_dir().join(id.as_str());
        match self.import_into(source, &dest).await {
            Ok((size, config)) => {
                self.db
                    .finish_image(id.as_str(), size, &config)
                    .map_err(EngineError::from_db)?;
                tracing::info!(image = %id, name, size, "image imported");
                let stored = self
                    .db
                    .image(id.as_str())?
                    .ok_or_else(|| EngineError::Internal("image vanished".into()))?;
                Ok(info(&stored))
            }
            Err(e) => {
                let _ = self.storage.delete_subvolume(&dest).await;
                let _ = self.db.delete_image(id.as_str());
                Err(self.pool_full_or("import the image", e))
            }
        }
    }

    async fn import_into(&self, source: &Path, dest: &Path) -> Result<(u64, String)> {
        self.storage.create_subvolume(dest).await?;
        let (src, dst) = (source.to_path_buf(), dest.to_path_buf());
        let config = tokio::task::spawn_blocking(move || cairn_images::import(&src, &dst))
            .await
            .map_err(|e| EngineError::Internal(format!("image import task failed: {e}")))??;
        let size = {
            let dst = dest.to_path_buf();
            tokio::task::spawn_blocking(move || cairn_images::dir_size(&dst))
                .await
                .unwrap_or(0)
        };
        self.storage.set_readonly(dest, true).await?;
        let stored = StoredImageConfig {
            env: config.env.clone(),
            workdir: config.workdir.clone(),
        };
        let json =
            serde_json::to_string(&stored).map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok((size, json))
    }

    /// All images.
    pub fn list_images(&self) -> Result<Vec<ImageInfo>> {
        Ok(self.db.list_images()?.iter().map(info).collect())
    }

    /// An image by name or id.
    pub(crate) fn find_image(&self, name: &str) -> Result<ImageRecord> {
        self.db.image(name)?.ok_or_else(|| {
            EngineError::NotFound(format!("no image named '{name}': list images with 'cairn image ls' or import one with 'cairn image import'"))
        })
    }

    /// Removes an image that no sandbox uses.
    pub async fn remove_image(&self, name: &str) -> Result<()> {
        let image = self.find_image(name)?;
        let mut users = self.db.image_users(&image.id)?;
        users.extend(self.db.image_snapshot_users(&image.id)?);
        if !users.is_empty() {
            return Err(EngineError::Conflict(format!(
                "image '{}' is used by {} sandbox(es) or snapshot(s) ({}); destroy or delete them first",
                image.name,
                users.len(),
                users.join(", ")
            )));
        }
        self.storage
            .delete_subvolume(&self.images_dir().join(&image.id))
            .await?;
        self.db.delete_image(&image.id)?;
        tracing::info!(image = %image.id, name = %image.name, "image removed");
        Ok(())
    }
}
