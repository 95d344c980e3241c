//! Keys only cairnd holds, each a file of 32 random bytes in the data directory (0600):
//! the signed links' (`link.key`) and the secrets' (`secrets.key`).

use std::io::Write;
use std::path::Path;

/// Makes key file `name` in `home` if there is none: 32 random bytes, 0600, written to a
/// temporary name, synced, renamed, and the directory synced.
pub(crate) fn ensure(home: &Path, name: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = home.join(name);
    if path.exists() {
        return Ok(());
    }
    let tmp = home.join(format!("{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&key)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(home)?.sync_all()
}
