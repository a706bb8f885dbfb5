//! [`HttpUrl`]: the `http://` and `https://` URLs webhooks and HTTP checks take, parsed
//! once when the config is read, so a bad one stops the agent with the reason.

/// A parsed `http://` or `https://` URL, as webhooks and HTTP checks take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https://`.
    pub tls: bool,
    /// Host name or IP address, without brackets.
    pub host: String,
    /// Port (80 or 443 unless given).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://host[:port][/path][?query]` (or `https://`); a fragment is
    /// dropped. User info (`user:pass@`) is refused: put credentials in `headers`.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let bad = |why: &str| format!("{url:?}: {why}");
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("https://") {
            (true, &url[8..])
        } else if lower.starts_with("http://") {
            (false, &url[7..])
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain spaces or control characters"));
        }
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(bad(
                "user info in the URL is not supported; send credentials in headers",
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("expected :port after ]"))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        };
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(HttpUrl {
            tls,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The `Host` header: the host, bracketed if IPv6, with the port unless default.
    pub(crate) fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_host_port_and_path() {
        let url = |s| HttpUrl::parse(s).unwrap();
        let u = url("http://127.0.0.1:9000/alerts?x=1#frag");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "127.0.0.1", 9000, "/alerts?x=1")
        );
        assert_eq!(u.host_header(), "127.0.0.1:9000");
        let u = url("HTTPS://alerts.example.com");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "alerts.example.com", 443, "/")
        );
        assert_eq!(u.host_header(), "alerts.example.com");
        let u = url("http://[::1]:8080?q");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8080, "/?q")
        );
        assert_eq!(u.host_header(), "[::1]:8080");
        assert_eq!(url("http://[::1]/").port, 80);
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("ftp://x/", "must start with http:// or https://"),
            ("localhost:80", "must start with http:// or https://"),
            ("http:///path", "the host is empty"),
            ("http://:80/", "the host is empty"),
            ("http://h:0/", "the port must be"),
            ("http://h:http/", "the port must be"),
            ("http://u:p@h/", "user info"),
            ("http://[::1/", "unclosed ["),
            ("http://h/a b", "spaces"),
        ] {
            let err = HttpUrl::parse(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
    }
}
