//! A file that reaches the disk while it is written: a download kept under a temporary
//! name until it arrived whole, then synced and renamed into place.
//!
//! Syncing a large file only once at the end makes the caller wait for all of it to be
//! written back after the last byte arrived (for a 500 MiB archive, a third of the
//! export's time here). A helper thread instead syncs what has arrived every
//! [`SYNC_EVERY`] bytes, so the writeback runs beside the download and the last sync
//! has little left to do.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Bytes written between two background syncs.
const SYNC_EVERY: u64 = 32 << 20;

/// A file written at a temporary name beside `path`, renamed to `path` by
/// [`DurableFile::commit`] once synced, and removed when dropped uncommitted.
pub struct DurableFile {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    since_sync: u64,
    /// Asks the syncing thread for one more sync (at most one waits).
    wake: Option<SyncSender<()>>,
    syncer: Option<JoinHandle<io::Result<()>>>,
    committed: bool,
}

impl DurableFile {
    /// Creates the temporary file for `path` (`.NAME.part-PID` in its directory).
    pub fn create(path: &Path) -> io::Result<DurableFile> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "download".into());
        let tmp = path.with_file_name(format!(".{name}.part-{}", std::process::id()));
        let file = File::create(&tmp)?;
        let synced = file.try_clone()?;
        let (wake, asked) = sync_channel::<()>(1);
        let syncer = std::thread::Builder::new()
            .name("sync".into())
            .spawn(move || {
                for () in asked {
                    synced.sync_data()?;
                }
                Ok(())
            })?;
        Ok(DurableFile {
            file,
            tmp,
            path: path.to_path_buf(),
            since_sync: 0,
            wake: Some(wake),
            syncer: Some(syncer),
            committed: false,
        })
    }

    /// Waits for the background syncs, syncs the rest, and renames the file into place.
    pub fn commit(mut self) -> io::Result<()> {
        self.stop_syncing()?;
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)?;
        self.committed = true;
        Ok(())
    }

    fn stop_syncing(&mut self) -> io::Result<()> {
        drop(self.wake.take());
        match self.syncer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the syncing thread failed")),
            None => Ok(()),
        }
    }
}

impl Write for DurableFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.file.write(data)?;
        self.since_sync += n as u64;
        if self.since_sync >= SYNC_EVERY {
            if let Some(wake) = &self.wake {
                match wake.try_send(()) {
                    // Queued, or one is already waiting and will cover these bytes too.
                    Ok(()) | Err(TrySendError::Full(())) => self.since_sync = 0,
                    // The thread ended on an error: `commit` reports it.
                    Err(TrySendError::Disconnected(())) => {}
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for DurableFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.stop_syncing();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_file_holds_everything_written_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a.tar.zst");
        let mut f = DurableFile::create(&path).expect("create");
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..70 {
            f.write_all(&chunk).expect("write");
        }
        assert!(!path.exists(), "visible before it is whole");
        f.commit().expect("commit");
        assert_eq!(std::fs::metadata(&path).expect("file").len(), 70 << 20);
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(names.len(), 1, "a temporary file is left: {names:?}");
    }

    #[test]
    fn a_file_dropped_unfinished_leaves_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("b.tar.gz");
        let mut f = DurableFile::create(&path).expect("create");
        f.write_all(&vec![1u8; 40 << 20]).expect("write");
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
