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
}
