//! Files that hold secrets (the hub key, a broker password): read only when nobody but
//! their owner can read them, so a secret left world-readable is noticed at start
//! instead of leaking quietly.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Exposed { path: String, mode: u32 },
}

/// Refuse `path` if its group or others may read or write it.
pub fn check_private(path: &Path) -> Result<(), SecretFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| SecretFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretFileError::Exposed {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Make `path` (a file or folder the hub just created) its owner's only: the data
/// folder holds the database, keys and recordings.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o700 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Create `path` (it must not exist) readable and writable by its owner only, write
/// `bytes` and flush them to disk: a secret is never on disk with wider rights.
pub fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Create a private file with `bytes` unless it exists, atomically: it appears whole
/// or not at all (written aside, then linked into place), so several hub processes
/// starting at once on one shared folder agree on one key. False if another process
/// created it first (read that one).
pub fn create_private_once(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let mut tag = [0u8; 8];
    getrandom::getrandom(&mut tag).map_err(std::io::Error::other)?;
    let aside = path.with_extension(format!("new-{}", hex::encode(tag)));
    create_private(&aside, bytes)?;
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The text of a private file (see [`check_private`]).
pub fn read_private(path: &Path) -> Result<String, SecretFileError> {
    check_private(path)?;
    std::fs::read_to_string(path).map_err(|source| SecretFileError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_owner_readable_files_are_read() {
        let dir = std::env::temp_dir().join(format!("thr-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_private(&f).unwrap_err();
        assert!(
            matches!(e, SecretFileError::Exposed { mode: 0o644, .. }),
            "{e}"
        );
        assert!(!e.to_string().contains("s3cret"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_private(&f).unwrap(), "s3cret\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn of_processes_starting_at_once_one_creates_the_key_and_all_read_it() {
        let dir = std::env::temp_dir().join(format!("thr-once-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("hub.key");
        let created: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u8)
                .map(|i| {
                    let f = f.clone();
                    s.spawn(move || create_private_once(&f, &[b'a' + i; 16]).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
        let text = read_private(&f).unwrap();
        assert_eq!(text.len(), 16, "whole: {text:?}");
        assert!(text.bytes().all(|b| b == text.as_bytes()[0]));
        // Nothing left aside.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
