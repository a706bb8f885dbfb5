//! Seeds: what an agent joins through, and how each becomes socket addresses.
//!
//! A seed is written one of three ways:
//!
//! | seed | becomes |
//! |---|---|
//! | `10.0.0.5:7946`, `[fd00::5]:7946` | that address |
//! | `host.example:7946` | every address the system resolver gives `host.example` (DNS, `/etc/hosts`), on that port |
//! | `host.example`, `10.0.0.5` (no port) | the targets and ports of the SRV records `_muster._udp.host.example`, each target resolved as above; with no SRV records, the name's addresses on [`DEFAULT_PORT`] |
//!
//! Names are resolved again before every join retry and seed re-contact (the driver does
//! that), so a seed list follows DNS. SRV names are asked through `/etc/resolv.conf`'s
//! servers (hickory's resolver, read afresh each time, so nothing is cached across
//! resolutions); SRV targets and plain names go through the system resolver, as any
//! program's would.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

/// The gossip port a seed without one is contacted on (`muster agent`'s default bind).
pub const DEFAULT_PORT: u16 = 7946;

/// The SRV owner name of seed `NAME` is `_muster._udp.NAME`.
pub const SRV_PREFIX: &str = "_muster._udp.";

/// Most SRV records of one seed name that are used: a huge answer cannot make the agent
/// resolve thousands of targets.
pub const MAX_SRV_TARGETS: usize = 64;

/// One seed as written, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    /// An address: nothing to resolve.
    Addr(SocketAddr),
    /// `host:port`: the host's addresses on the port.
    HostPort(String, u16),
    /// A host without a port: its SRV records, else its addresses on [`DEFAULT_PORT`].
    Srv(String),
}

impl Seed {
    /// Classifies `seed`, or says what is wrong with it.
    pub fn parse(seed: &str) -> Result<Seed, String> {
        if let Ok(addr) = seed.parse::<SocketAddr>() {
            return Ok(Seed::Addr(addr));
        }
        if let Ok(ip) = seed.parse::<IpAddr>() {
            return Ok(Seed::Addr(SocketAddr::new(ip, DEFAULT_PORT)));
        }
        let unbracketed = |h: &str| -> String {
            h.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(h)
                .to_owned()
        };
        let Some((host, port)) = seed.rsplit_once(':') else {
            check_host(seed)?;
            return Ok(Seed::Srv(seed.trim_end_matches('.').to_owned()));
        };
        let host = unbracketed(host);
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("the port must be a number from 1 to 65535")?;
        if host.parse::<IpAddr>().is_err() {
            check_host(&host)?;
        }
        Ok(Seed::HostPort(host, port))
    }

    /// Whether resolving it asks DNS (or `/etc/hosts`): everything but an address.
    pub fn is_name(&self) -> bool {
        !matches!(self, Seed::Addr(_))
    }

    /// The host it names (an address's IP as text).
    pub fn host(&self) -> String {
        match self {
            Seed::Addr(addr) => addr.ip().to_string(),
            Seed::HostPort(host, _) | Seed::Srv(host) => host.clone(),
        }
    }

    /// Its addresses now, without duplicates; an error says why there are none.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        match self {
            Seed::Addr(addr) => Ok(vec![*addr]),
            Seed::HostPort(host, port) => lookup(host, *port).await,
            Seed::Srv(name) => match srv_targets(name).await {
                Ok(targets) if !targets.is_empty() => {
                    let mut out = Vec::new();
                    let mut last_error = None;
                    for (target, port) in targets {
                        match lookup(&target, port).await {
                            Ok(addrs) => push_new(&mut out, addrs),
                            Err(e) => last_error = Some(e),
                        }
                    }
                    match (out.is_empty(), last_error) {
                        (true, Some(e)) => Err(format!("{SRV_PREFIX}{name}: {e}")),
                        _ => Ok(out),
                    }
                }
                // No SRV records (or no DNS server to ask): the name's own addresses.
                Ok(_) | Err(_) => lookup(name, DEFAULT_PORT)
                    .await
                    .map_err(|e| format!("no SRV records at {SRV_PREFIX}{name}, and {name}: {e}")),
            },
        }
    }
}

/// A DNS name's shape: dot-separated labels of letters, digits, `-` and `_`, at most 63
/// bytes each and 253 in all.
fn check_host(host: &str) -> Result<(), String> {
    let name = host.trim_end_matches('.');
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{host:?} is not a host name, and there is no :port after it"
        ));
    }
    Ok(())
}

/// `host`'s addresses on `port` through the system resolver.
async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    push_new(&mut out, addrs);
    if out.is_empty() {
        return Err(format!("{host} has no addresses"));
    }
    Ok(out)
}

fn push_new(out: &mut Vec<SocketAddr>, addrs: impl IntoIterator<Item = SocketAddr>) {
    for addr in addrs {
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
}

/// The targets and ports of `_muster._udp.NAME`'s SRV records, lowest priority first
/// (RFC 2782; weights are not used: every target is a seed), at most
/// [`MAX_SRV_TARGETS`]. `Ok(empty)` when the name has none.
async fn srv_targets(name: &str) -> Result<Vec<(String, u16)>, String> {
    let resolver = TokioResolver::builder_tokio()
        .and_then(|b| b.build())
        .map_err(|e| format!("no DNS resolver configuration: {e}"))?;
    let lookup = match resolver.srv_lookup(format!("{SRV_PREFIX}{name}.")).await {
        Ok(lookup) => lookup,
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut records: Vec<(u16, String, u16)> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            // A target of "." says the service is not offered there (RFC 2782).
            RData::SRV(srv) if !srv.target.is_root() && srv.port != 0 => Some((
                srv.priority,
                srv.target.to_ascii().trim_end_matches('.').to_owned(),
                srv.port,
            )),
            _ => None,
        })
        .collect();
    records.sort();
    records.dedup();
    records.truncate(MAX_SRV_TARGETS);
    Ok(records.into_iter().map(|(_, t, p)| (t, p)).collect())
}

/// Resolves every seed in `seeds` (as written), addresses without duplicates. A seed
/// that is not valid or does not resolve is left out and handed to `skipped` with why.
pub async fn resolve_all(seeds: &[String], mut skipped: impl FnMut(&str, &str)) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for seed in seeds {
        match Seed::parse(seed) {
            Ok(parsed) => match parsed.resolve().await {
                Ok(addrs) => push_new(&mut out, addrs),
                Err(e) => skipped(seed, &e),
            },
            Err(e) => skipped(seed, &e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_addresses_host_ports_or_srv_names() {
        let cases = [
            (
                "10.0.0.5:7946",
                Seed::Addr("10.0.0.5:7946".parse().unwrap()),
            ),
            (
                "[fd00::5]:7000",
                Seed::Addr("[fd00::5]:7000".parse().unwrap()),
            ),
            ("10.0.0.5", Seed::Addr("10.0.0.5:7946".parse().unwrap())),
            ("fd00::5", Seed::Addr("[fd00::5]:7946".parse().unwrap())),
            (
                "seed.example:7000",
                Seed::HostPort("seed.example".into(), 7000),
            ),
            ("localhost:7946", Seed::HostPort("localhost".into(), 7946)),
            (
                "muster.default.svc.cluster.local",
                Seed::Srv("muster.default.svc.cluster.local".into()),
            ),
            ("seeds.example.", Seed::Srv("seeds.example".into())),
        ];
        for (text, want) in cases {
            assert_eq!(Seed::parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_seeds_say_what_is_wrong() {
        for (text, says) in [
            ("", "not a host name"),
            (":7946", "the host is empty"),
            ("seed:0", "the port must be"),
            ("seed:http", "the port must be"),
            ("se ed", "not a host name"),
            ("a..b", "not a host name"),
            ("bad\u{1b}name:7946", "not a host name"),
        ] {
            let err = Seed::parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
        assert!(Seed::parse(&"a".repeat(64)).is_err(), "a 64-byte label");
    }

    #[tokio::test]
    async fn addresses_resolve_to_themselves_and_localhost_to_loopback() {
        let addr = Seed::parse("127.0.0.1:7000").unwrap();
        assert_eq!(
            addr.resolve().await.unwrap(),
            vec!["127.0.0.1:7000".parse().unwrap()]
        );
        let local = Seed::parse("localhost:7000")
            .unwrap()
            .resolve()
            .await
            .unwrap();
        assert!(
            local
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 7000),
            "{local:?}"
        );
        let mut skipped = Vec::new();
        let all = resolve_all(
            &[
                "127.0.0.1:7000".into(),
                "127.0.0.1:7000".into(),
                "x:0".into(),
            ],
            |seed, why| skipped.push(format!("{seed}: {why}")),
        )
        .await;
        assert_eq!(
            all,
            vec!["127.0.0.1:7000".parse().unwrap()],
            "no duplicates"
        );
        assert_eq!(skipped.len(), 1, "{skipped:?}");
    }
}
