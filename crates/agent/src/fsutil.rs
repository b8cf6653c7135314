//! Small file helpers shared by the modules that keep state on disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replace `path` with `bytes` atomically: write a temporary file beside it, optionally
/// fsync it, rename it over the old one, then fsync the directory. A crash leaves either
/// the old or the new content, never a mix. `private` creates the file with mode 0600
/// (for secrets).
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool, durable: bool) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = open_new(&tmp, private)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if durable {
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

fn open_new(path: &Path, private: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if private {
            o.mode(0o600);
        }
    }
    #[cfg(not(unix))]
    let _ = private;
    o.open(path)
}

/// Make a rename or a file creation in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
