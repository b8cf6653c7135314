//! Which new passwords are refused: too short or too long, one of the most used and
//! breached passwords (a list built into the binary, `common_passwords.txt`), the
//! username itself, or too few different characters ("aaaaaaaa", "abababab").
//! NIST SP 800-63B §5.1.1.2: check against commonly used and compromised values,
//! without composition rules.

use std::collections::HashSet;
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WeakPassword {
    #[error("password must be 8 to 256 characters")]
    Length,
    #[error("this password is among the most used and breached ones; choose another")]
    Common,
    #[error("the password must not be the username")]
    Username,
    #[error("the password needs at least 5 different characters")]
    Repetitive,
}

fn common() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common_passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Whether `password` may be set for `username`.
pub fn check(password: &str, username: &str) -> Result<(), WeakPassword> {
    let n = password.chars().count();
    if !(8..=256).contains(&n) {
        return Err(WeakPassword::Length);
    }
    let lower = password.to_lowercase();
    if common().contains(lower.as_str()) {
        return Err(WeakPassword::Common);
    }
    if !username.is_empty() && lower == username.to_lowercase() {
        return Err(WeakPassword::Username);
    }
    if password.chars().collect::<HashSet<_>>().len() < 5 {
        return Err(WeakPassword::Repetitive);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_and_trivial_passwords_are_refused() {
        for (pw, why) in [
            ("short", WeakPassword::Length),
            ("Password123", WeakPassword::Common),
            ("QWERTYUIOP", WeakPassword::Common),
            ("iloveyou", WeakPassword::Common),
            ("alice.smith", WeakPassword::Username),
            ("abababababab", WeakPassword::Repetitive),
        ] {
            assert_eq!(check(pw, "alice.smith"), Err(why), "{pw}");
        }
    }

    #[test]
    fn ordinary_passphrases_pass() {
        for pw in ["a-long-password", "correct horse battery", "Tr0ub4dor&3x"] {
            assert_eq!(check(pw, "alice"), Ok(()), "{pw}");
        }
        assert!(common().len() > 100);
    }
}
