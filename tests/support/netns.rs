//! A lab of hosts made of network namespaces: one hub namespace with a bridge, and one
//! namespace per host with a veth into it, its address, and (optionally) its own
//! `/etc/hosts` (`ip netns exec` mounts `/etc/netns/NAME/hosts` over `/etc/hosts`).
//! Everything is removed when the lab is dropped, whatever way the test ends; processes
//! the test started in a namespace must be stopped before (drop them first).
//!
//! Needs root and `ip` (iproute2); [`is_root`] lets a test skip with a message.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Runs `program args`, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(String::from))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

/// The namespaces of a lab. See the module docs.
pub struct Lab {
    prefix: String,
    addrs: Vec<String>,
}

impl Lab {
    /// Builds a hub and one host namespace per address in `addrs` (each a `/24` on the
    /// bridge), named `PREFIX-h1`, `PREFIX-h2`, …; `prefix` is made unique per process.
    pub fn build(prefix: &str, addrs: &[&str]) -> Result<Lab> {
        let lab = Lab {
            prefix: format!("{prefix}{}", std::process::id() % 100_000),
            addrs: addrs.iter().map(|a| (*a).to_owned()).collect(),
        };
        let hub = lab.hub();
        run("ip", &["netns", "add", &hub])?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        for (i, addr) in addrs.iter().enumerate() {
            let ns = lab.ns(i);
            let port = format!("p{i}");
            run("ip", &["netns", "add", &ns])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            run(
                "ip",
                &[
                    "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                    "netns", &hub,
                ],
            )?;
            run(
                "ip",
                &[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    "eth0",
                ],
            )?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &hub, "link", "set", &port, "master", "br0"])?;
            run("ip", &["-n", &hub, "link", "set", &port, "up"])?;
        }
        Ok(lab)
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Host `i`'s namespace (0-based).
    pub fn ns(&self, i: usize) -> String {
        format!("{}-h{}", self.prefix, i + 1)
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> &str {
        &self.addrs[i]
    }

    /// How many hosts.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Writes host `i`'s `/etc/hosts` (`addr name` lines after localhost). Rewrites
    /// the same file in place, so a running namespace sees the change at its next
    /// lookup.
    pub fn set_hosts(&self, i: usize, entries: &[(&str, &str)]) -> Result<()> {
        let dir = self.etc(i);
        std::fs::create_dir_all(&dir)?;
        let mut text = String::from("127.0.0.1 localhost\n");
        for (addr, name) in entries {
            text.push_str(&format!("{addr} {name}\n"));
        }
        std::fs::write(dir.join("hosts"), text)?;
        Ok(())
    }

    /// Writes host `i`'s `/etc/resolv.conf`: one `nameserver`. Like `/etc/hosts`, it is
    /// read at each lookup by whoever runs in the namespace through [`Lab::exec`].
    pub fn set_nameserver(&self, i: usize, addr: &str) -> Result<()> {
        let dir = self.etc(i);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("resolv.conf"), format!("nameserver {addr}\n"))?;
        Ok(())
    }

    /// A UDP socket bound to `addr` inside host `i`, for a server the test runs itself:
    /// a short-lived thread enters the namespace and binds it, and the socket stays in
    /// that namespace whichever thread uses it.
    pub fn udp_socket(&self, i: usize, addr: &str) -> Result<std::net::UdpSocket> {
        let ns = PathBuf::from("/var/run/netns").join(self.ns(i));
        let addr = addr.to_owned();
        std::thread::spawn(move || -> Result<std::net::UdpSocket> {
            let file = std::fs::File::open(&ns)?;
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&file),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            Ok(std::net::UdpSocket::bind(addr.as_str())?)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
    }

    fn etc(&self, i: usize) -> PathBuf {
        PathBuf::from("/etc/netns").join(self.ns(i))
    }

    /// A command running `program` inside host `i`, with none of this process's
    /// `MUSTER_*` variables.
    pub fn exec(&self, i: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(i), program]);
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("MUSTER_") {
                command.env_remove(var);
            }
        }
        command.env_remove("RUST_LOG");
        command
    }

    /// Runs `nft RULE` inside host `i`.
    pub fn nft(&self, i: usize, rule: &str) -> Result<()> {
        run("ip", &["netns", "exec", &self.ns(i), "nft", rule])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.addrs.len() {
            let _ = run("ip", &["netns", "del", &self.ns(i)]);
            let _ = std::fs::remove_dir_all(self.etc(i));
        }
        let _ = run("ip", &["netns", "del", &self.hub()]);
    }
}
