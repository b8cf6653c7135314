//! An MQTT broker address as an operator writes it, `mqtt://[user[:password]@]host[:port]`,
//! parsed once, with the credentials kept apart from the address so that nothing
//! printing the address can print the password.

use std::fmt;

/// A parsed broker URL. `Display` shows it with the password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`: TLS to the broker.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl BrokerUrl {
    /// Parse `mqtt://` (or `tcp://`) URLs; the error never repeats the password.
    pub fn parse(text: &str) -> Result<BrokerUrl, String> {
        Self::parse_setting(text, "mqtt_url")
    }

    /// [`BrokerUrl::parse`] for the setting named `setting` (named in errors).
    pub fn parse_setting(text: &str, setting: &str) -> Result<BrokerUrl, String> {
        let url = url::Url::parse(text.trim())
            .map_err(|e| format!("{setting} is not a URL ({e}): {}", redact(text)))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "{setting} must start with mqtt:// or mqtts:// (found {other}://): {}",
                    redact(text)
                ))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("no host in {setting} {}", redact(text)))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{setting} takes no path or query: {}",
                redact(text)
            ));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("{setting} credentials are not UTF-8: {}", redact(text)))
        };
        let username = match url.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = url.password().map(decode).transpose()?;
        Ok(BrokerUrl {
            tls,
            host,
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            username,
            password,
        })
    }

    /// `host:port`, for a socket address or a log line (IPv6 in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.tls { "mqtts://" } else { "mqtt://" })?;
        if let Some(u) = &self.username {
            f.write_str(u)?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.address())
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

/// `text` with anything between `://` and the last `@` of the authority replaced by
/// `***`, for error messages about a URL that did not parse.
pub fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_parsed_and_decoded() {
        let u = BrokerUrl::parse("mqtt://hub:p%40ss:w0rd@broker.lan:8883").unwrap();
        assert_eq!(u.host, "broker.lan");
        assert_eq!(u.port, 8883);
        assert_eq!(u.username.as_deref(), Some("hub"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w0rd"));
    }

    #[test]
    fn mqtts_means_tls_on_8883_by_default() {
        let u = BrokerUrl::parse("mqtts://broker.lan").unwrap();
        assert!(u.tls);
        assert_eq!(u.port, 8883);
        assert_eq!(u.to_string(), "mqtts://broker.lan:8883");
        assert!(!BrokerUrl::parse("mqtt://broker.lan").unwrap().tls);
    }

    #[test]
    fn host_and_default_port() {
        let u = BrokerUrl::parse("mqtt://broker").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("broker", 1883));
        assert_eq!(u.username, None);
        let u = BrokerUrl::parse("tcp://127.0.0.1:1883/").unwrap();
        assert_eq!(u.address(), "127.0.0.1:1883");
        let u = BrokerUrl::parse("mqtt://[::1]:1884").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.address(), "[::1]:1884");
    }

    #[test]
    fn the_password_is_never_shown() {
        let u = BrokerUrl::parse("mqtt://hub:s3cret-pw@broker:1883").unwrap();
        for shown in [u.to_string(), format!("{u:?}")] {
            assert!(!shown.contains("s3cret-pw"), "{shown}");
            assert!(shown.contains("hub:***@broker:1883"), "{shown}");
        }
        for bad in [
            "mqtt://hub:s3cret-pw@broker:notaport",
            "http://hub:s3cret-pw@broker",
            "mqtt://hub:s3cret-pw@broker/path",
            "ftp://hub:s3cret-pw@broker",
            "mqtt://hub:s3cret-pw@",
        ] {
            let e = BrokerUrl::parse(bad).unwrap_err();
            assert!(!e.contains("s3cret-pw"), "{bad}: {e}");
            assert!(e.contains("mqtt_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn redact_hides_userinfo_only() {
        assert_eq!(redact("mqtt://a:b@h:1/x"), "mqtt://***@h:1/x");
        assert_eq!(redact("mqtt://h:1"), "mqtt://h:1");
        assert_eq!(redact("no url"), "no url");
    }
}
