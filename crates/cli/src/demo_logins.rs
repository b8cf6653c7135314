//! The demo's logins: a random password per account, made at the first start of a
//! data folder and kept in it (`demo-logins.json`, readable by its owner only), so
//! that a demo reachable on the network (`--lan`) is not opened by passwords that
//! anyone who has read the source knows. Printed at every start.

use anyhow::Context;
use std::path::Path;

/// The demo's accounts: (role, user name).
pub const ACCOUNTS: [(&str, &str); 4] = [
    ("admin", "admin"),
    ("owner", "owner"),
    ("courier", "courier"),
    ("dispatcher", "dispatcher"),
];

const FILE: &str = "demo-logins.json";

/// Letters and digits that cannot be mistaken for one another on a phone's keyboard.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logins {
    /// One password per entry of [`ACCOUNTS`], in that order.
    passwords: Vec<String>,
    /// Made just now: accounts a previous demo created must be given these.
    pub fresh: bool,
}

impl Logins {
    /// The password of `user` (one of [`ACCOUNTS`]).
    pub fn password(&self, user: &str) -> &str {
        ACCOUNTS
            .iter()
            .position(|(_, u)| *u == user)
            .and_then(|i| self.passwords.get(i))
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// A password of four groups of four (about 79 bits), e.g. `k7qm-2xhp-w9ta-c4rn`.
fn password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).context("no randomness for the demo's passwords")?;
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    Ok(chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// The data folder's logins, made on its first start.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Logins> {
    let path = data_dir.join(FILE);
    if !path.exists() {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let made: serde_json::Map<String, serde_json::Value> = ACCOUNTS
            .iter()
            .map(|(_, user)| Ok(((*user).to_owned(), password()?.into())))
            .collect::<anyhow::Result<_>>()?;
        let text = serde_json::to_vec_pretty(&made)?;
        if threshold_hub::secrets::create_private_once(&path, &text)
            .with_context(|| format!("cannot write {}", path.display()))?
        {
            let mut logins = read(&path)?;
            logins.fresh = true;
            return Ok(logins);
        }
    }
    read(&path)
}

fn read(path: &Path) -> anyhow::Result<Logins> {
    let text = threshold_hub::secrets::read_private(path)?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| {
            format!(
                "{} is not the demo's logins (delete it, or --reset)",
                path.display()
            )
        })?;
    let passwords = ACCOUNTS
        .iter()
        .map(|(_, user)| {
            map.get(*user)
                .and_then(|v| v.as_str())
                .filter(|p| p.len() >= 12)
                .map(str::to_owned)
                .with_context(|| format!("{}: no password for {user}", path.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Logins {
        passwords,
        fresh: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert!(first.fresh);
        let again = load_or_create(dir.path()).unwrap();
        assert!(!again.fresh);
        assert_eq!(first.passwords, again.passwords);
        for (_, user) in ACCOUNTS {
            let pw = first.password(user);
            assert_eq!(pw.len(), 19, "{pw}");
            assert!(
                pw.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)),
                "{pw}"
            );
        }
        assert_ne!(first.password("owner"), first.password("courier"));
        let other = load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert_ne!(first.password("owner"), other.password("owner"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join(FILE);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(
                load_or_create(dir.path()).is_err(),
                "a file others can read is refused"
            );
        }
    }

    #[test]
    fn a_damaged_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        threshold_hub::secrets::create_private(&dir.path().join(FILE), b"{\"owner\": 3}").unwrap();
        let e = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no password for admin"), "{e}");
    }
}
