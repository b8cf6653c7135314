//! RTSP URLs and their credentials.
//!
//! A camera URL often carries its password (`rtsp://admin:secret@cam/stream`). The
//! password is split off when the URL is read and kept apart from it ([`RtspConfig`]
//! prints `url` without userinfo and never its credentials); every message that may
//! quote a URL (errors from the RTSP client, the agent's reasons) goes through
//! [`redact`], which blanks the userinfo of every `scheme://user:pass@host` in a text,
//! and [`RtspConfig::scrub`], which also blanks the password itself and its Basic
//! authorisation form wherever they appear.

/// An RTSP camera: its URL without credentials, and the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspConfig {
    /// `rtsp://host[:port]/path?query`, no userinfo.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for RtspConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspConfig")
            .field("url", &redact(&self.url))
            .field("username", &self.username.as_ref().map(|_| "<set>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl RtspConfig {
    /// Read an `rtsp://[user[:password]@]host[:port]/path` URL. Userinfo is
    /// percent-decoded and moved to `username`/`password`. Anything but `rtsp://` is
    /// refused with a reason that never repeats the credentials.
    pub fn parse(s: &str) -> Result<Self, String> {
        let shown = if s.contains("://") {
            redact(s)
        } else {
            // Not even a URL: whatever comes before an '@' may be a password.
            match s.rfind('@') {
                Some(at) => format!("***{}", &s[at..]),
                None => s.to_owned(),
            }
        };
        let scheme = s.split_once("://").map(|(a, _)| a.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("rtsp") => {}
            Some("rtsps") => {
                return Err(format!(
                    "{shown}: rtsps:// (RTSP over TLS) is not supported: the RTSP client (retina) speaks rtsp:// only"
                ))
            }
            _ => {
                return Err(format!(
                    "{shown} is not an RTSP URL: an RTSP camera needs rtsp://[user:password@]host[:port]/path"
                ))
            }
        }
        let mut u = ::url::Url::parse(s).map_err(|e| format!("{shown}: not a valid URL: {e}"))?;
        if u.host_str().is_none_or(str::is_empty) {
            return Err(format!("{shown}: the URL names no host"));
        }
        let decode = |v: &str| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("{shown}: the user name or password is not UTF-8"))
        };
        let username = match u.username() {
            "" => None,
            n => Some(decode(n)?),
        };
        let password = u.password().map(decode).transpose()?;
        u.set_username("")
            .map_err(|_| format!("{shown}: cannot remove the credentials from the URL"))?;
        u.set_password(None)
            .map_err(|_| format!("{shown}: cannot remove the credentials from the URL"))?;
        Ok(RtspConfig {
            url: u.to_string(),
            username,
            password,
        })
    }

    /// `text` with the userinfo of any URL, this camera's password and its Basic
    /// authorisation token blanked: for every message that leaves the source.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = redact(text);
        if let Some(p) = self.password.as_deref().filter(|p| !p.is_empty()) {
            out = out.replace(p, "***");
            let basic =
                base64_encode(format!("{}:{p}", self.username.as_deref().unwrap_or("")).as_bytes());
            out = out.replace(&basic, "***");
        }
        out
    }
}

/// `text` with the userinfo (`user:password@`) of every `scheme://…` URL in it
/// replaced by `***@`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the path, query, fragment or any whitespace/quote.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let (authority, after) = tail.split_at(end);
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Standard base64 with padding (for matching a Basic authorisation token).
pub(crate) fn base64_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_everywhere() {
        assert_eq!(
            redact("rtsp://admin:hunter2@10.0.0.5:554/Streaming/101"),
            "rtsp://***@10.0.0.5:554/Streaming/101"
        );
        assert_eq!(redact("rtsp://cam/x"), "rtsp://cam/x");
        assert_eq!(
            redact("error: Bad URL rtsp://u:p@h; also http://a:b@c?d=rtsp://e:f@g"),
            "error: Bad URL rtsp://***@h; also http://***@c?d=rtsp://***@g"
        );
        // A password with an '@' in it (unescaped) is blanked up to the last '@'.
        assert_eq!(redact("rtsp://u:p@ss@host/"), "rtsp://***@host/");
        assert_eq!(redact("rtsp://user@host"), "rtsp://***@host");
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(redact("dangling ://"), "dangling ://");
        assert_eq!(redact(""), "");
    }

    #[test]
    fn parses_rtsp_urls_and_keeps_credentials_apart() {
        let c = RtspConfig::parse("rtsp://admin:s%40cret@192.0.2.7:8554/live?ch=1").unwrap();
        assert_eq!(c.url, "rtsp://192.0.2.7:8554/live?ch=1");
        assert_eq!(c.username.as_deref(), Some("admin"));
        assert_eq!(c.password.as_deref(), Some("s@cret"));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s@cret") && !dbg.contains("admin"), "{dbg}");
        let plain = RtspConfig::parse("RTSP://cam.local/stream").unwrap();
        assert_eq!(plain.username, None);
        assert_eq!(plain.password, None);
        assert!(plain.url.starts_with("rtsp://cam.local/"));
    }

    #[test]
    fn refuses_what_is_not_rtsp_without_repeating_the_password() {
        for bad in [
            "http://admin:pw123@cam/stream.mjpg",
            "admin:pw123@cam",
            "rtsps://admin:pw123@cam/s",
            "rtsp://admin:pw123@/path",
            "rtsp://",
            "",
        ] {
            let e = RtspConfig::parse(bad).unwrap_err();
            assert!(!e.contains("pw123"), "{bad}: {e}");
        }
        assert!(RtspConfig::parse("rtsps://cam/s")
            .unwrap_err()
            .contains("not supported"));
        assert!(RtspConfig::parse("http://cam/s")
            .unwrap_err()
            .contains("not an RTSP URL"));
    }

    #[test]
    fn scrub_blanks_the_password_and_its_basic_token() {
        let c = RtspConfig::parse("rtsp://admin:pw123@cam/s").unwrap();
        let token = base64_encode(b"admin:pw123");
        assert_eq!(token, "YWRtaW46cHcxMjM=");
        let msg = format!("401 for rtsp://admin:pw123@cam/s (Authorization: Basic {token}; pw123)");
        let s = c.scrub(&msg);
        assert!(!s.contains("pw123") && !s.contains(&token), "{s}");
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
    }
}
