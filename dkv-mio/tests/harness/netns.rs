//! A throwaway LAN made of Linux network namespaces: one namespace holding a bridge
//! (the "switch") and one namespace per host, each joined to the bridge by a veth
//! pair. Addresses are on a private /24 (10.231.x.0/24) and exist only inside the
//! namespaces; nothing is created in, or routed to, the namespace the tests run in.
//! Each host has a default route on its LAN interface, as a DHCP-configured host
//! would, so the prototype's broadcast address 255.255.255.255 is reachable.
//!
//! Faults with every link up: [`Lan::split`] cuts the switch in two or more (each
//! group of hosts on a bridge of its own, as if the switch were two switches) and
//! [`Lan::join`] puts it back together; [`Lan::deafen`] stops broadcasts reaching one
//! host (it hears no beacons, while unicast still flows both ways).
//!
//! A [`Lan`] owns its namespaces: dropping it (also while unwinding from a panic)
//! kills every process left inside them and deletes them. Namespaces left behind by
//! a test process that died without unwinding are swept by the next [`Lan::new`].

use super::{in_ci, skip};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace these tests create: `dkvlan-<pid>-<n>-<role>`.
const PREFIX: &str = "dkvlan-";

/// The name of each host's LAN interface inside its namespace.
pub const HOST_IF: &str = "eth0";

static NEXT_LAN: AtomicU32 = AtomicU32::new(0);

/// One host of a [`Lan`]: a namespace with one interface on the bridge.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace name.
    pub ns: String,
    /// The host's current IPv4 address on the LAN.
    pub ip: Ipv4Addr,
    /// The bridge-side end of this host's veth pair (in the bridge namespace).
    pub bridge_port: String,
}

impl Host {
    /// A command that runs `program` inside this host's namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]);
        cmd
    }
}

/// A bridge namespace and its hosts; see the module docs.
#[derive(Debug)]
pub struct Lan {
    bridge_ns: String,
    hosts: Vec<Host>,
    net: u8,
    namespaces: Vec<String>,
    /// Bridges made by [`Lan::split`] beside `br0`, deleted by [`Lan::join`].
    extra_bridges: Vec<String>,
}

/// Runs `ip` with `args`; the error carries its stderr.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this process runs as root (euid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// False, after printing a visible skip line, when namespace LANs are out of reach
/// for sure (not root): lets a test skip before costlier preparations.
pub fn can_build_lans(test: &str) -> bool {
    if is_root() {
        true
    } else {
        skip(test, "network-namespace tests need root");
        false
    }
}

/// A LAN of `hosts` hosts for `test`, or `None` after printing a visible skip line.
///
/// Skips when not root. When root, a missing `ip` or a failing setup is a skip
/// outside CI and a panic under CI (`CI=true`), where this test must run.
pub fn lan_or_skip(test: &str, hosts: usize) -> Option<Lan> {
    if !can_build_lans(test) {
        return None;
    }
    let attempt = ip(&["netns", "list"]).and_then(|_| Lan::new(hosts));
    match attempt {
        Ok(lan) => Some(lan),
        Err(e) if in_ci() => panic!("{test}: network-namespace LAN setup failed under CI: {e}"),
        Err(e) => {
            skip(test, &format!("cannot build a network-namespace LAN: {e}"));
            None
        }
    }
}

impl Lan {
    /// Builds the bridge namespace and `hosts` host namespaces, all links up, host
    /// `i` at 10.231.x.(10+i)/24.
    pub fn new(hosts: usize) -> Result<Lan, String> {
        sweep_stale();
        let n = NEXT_LAN.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{}-{n}", std::process::id());
        let net = (std::process::id().wrapping_add(n) % 250) as u8 + 1;
        let mut lan = Lan {
            bridge_ns: format!("{base}-br"),
            hosts: Vec::new(),
            net,
            namespaces: Vec::new(),
            extra_bridges: Vec::new(),
        };
        // From here on, an early return drops `lan`, which deletes what exists.
        let br = lan.bridge_ns.clone();
        lan.add_namespace(&br)?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..hosts {
            let ns = format!("{base}-h{i}");
            lan.add_namespace(&ns)?;
            let port = format!("vh{i}");
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", HOST_IF, "netns",
                &ns,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &port, "up"])?;
            let host = Host {
                ns,
                ip: Ipv4Addr::new(10, 231, net, 10 + i as u8),
                bridge_port: port,
            };
            ip(&[
                "-n",
                &host.ns,
                "addr",
                "add",
                &cidr(host.ip),
                "dev",
                HOST_IF,
            ])?;
            ip(&["-n", &host.ns, "link", "set", HOST_IF, "up"])?;
            set_default_route(&host.ns)?;
            lan.hosts.push(host);
        }
        Ok(lan)
    }

    fn add_namespace(&mut self, ns: &str) -> Result<(), String> {
        ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_string());
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Host `i` as it is now.
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// Takes host `i`'s interface down, as when a laptop drops off the network: its
    /// routes go, so sends from it fail and its node sees net down.
    pub fn cut(&self, i: usize) -> Result<(), String> {
        ip(&["-n", &self.hosts[i].ns, "link", "set", HOST_IF, "down"])?;
        Ok(())
    }

    /// Brings host `i`'s interface back up with its address and default route.
    pub fn heal(&self, i: usize) -> Result<(), String> {
        let ns = &self.hosts[i].ns;
        ip(&["-n", ns, "link", "set", HOST_IF, "up"])?;
        set_default_route(ns)
    }

    /// Unplugs host `i` at the switch (its bridge port goes down); the host keeps its
    /// address and routes and sees only silence. [`Lan::replug`] reverses it.
    pub fn unplug(&self, i: usize) -> Result<(), String> {
        let port = &self.hosts[i].bridge_port;
        ip(&["-n", &self.bridge_ns, "link", "set", port, "down"])?;
        Ok(())
    }

    /// Plugs host `i` back in at the switch.
    pub fn replug(&self, i: usize) -> Result<(), String> {
        let port = &self.hosts[i].bridge_port;
        ip(&["-n", &self.bridge_ns, "link", "set", port, "up"])?;
        Ok(())
    }

    /// Splits the switch: the hosts of `groups[0]` stay on `br0`, those of each later
    /// group move (their bridge ports, links up) to a new bridge of that group's own,
    /// so each group hears only itself. Hosts in no group stay on `br0`. Undone by
    /// [`Lan::join`]; a LAN already split is joined first.
    pub fn split(&mut self, groups: &[&[usize]]) -> Result<(), String> {
        self.join()?;
        for (g, group) in groups.iter().enumerate().skip(1) {
            let bridge = format!("br{g}");
            ip(&[
                "-n",
                &self.bridge_ns,
                "link",
                "add",
                &bridge,
                "type",
                "bridge",
            ])?;
            self.extra_bridges.push(bridge.clone());
            ip(&["-n", &self.bridge_ns, "link", "set", &bridge, "up"])?;
            for &i in group.iter() {
                let port = &self.hosts[i].bridge_port;
                ip(&[
                    "-n",
                    &self.bridge_ns,
                    "link",
                    "set",
                    port,
                    "master",
                    &bridge,
                ])?;
            }
        }
        Ok(())
    }

    /// Puts every host back on `br0` and deletes the bridges [`Lan::split`] made.
    pub fn join(&mut self) -> Result<(), String> {
        for host in &self.hosts {
            ip(&[
                "-n",
                &self.bridge_ns,
                "link",
                "set",
                &host.bridge_port,
                "master",
                "br0",
            ])?;
        }
        for bridge in std::mem::take(&mut self.extra_bridges) {
            ip(&["-n", &self.bridge_ns, "link", "del", &bridge])?;
        }
        Ok(())
    }

    /// Stops the switch flooding broadcasts, multicast and unknown unicast to host
    /// `i`: it hears no beacons (so its peers time out for it), while the others
    /// still hear its beacons and unicast (TCP) still flows both ways. A one-way
    /// partition of discovery. [`Lan::undeafen`] reverses it.
    pub fn deafen(&self, i: usize) -> Result<(), String> {
        self.flood(i, "off")
    }

    /// Lets broadcasts reach host `i` again.
    pub fn undeafen(&self, i: usize) -> Result<(), String> {
        self.flood(i, "on")
    }

    fn flood(&self, i: usize, on: &str) -> Result<(), String> {
        let port = &self.hosts[i].bridge_port;
        let out = Command::new("bridge")
            .args(["-n", &self.bridge_ns, "link", "set", "dev", port])
            .args(["flood", on, "mcast_flood", on, "bcast_flood", on])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("bridge link set {port}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "bridge link set {port} flood {on} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Renumbers host `i` to 10.231.x.(100+i) (old address removed, new one added,
    /// default route restored) and returns the new address.
    pub fn change_ip(&mut self, i: usize) -> Result<Ipv4Addr, String> {
        let new = Ipv4Addr::new(10, 231, self.net, 100 + i as u8);
        let host = &mut self.hosts[i];
        ip(&[
            "-n",
            &host.ns,
            "addr",
            "del",
            &cidr(host.ip),
            "dev",
            HOST_IF,
        ])?;
        ip(&["-n", &host.ns, "addr", "add", &cidr(new), "dev", HOST_IF])?;
        set_default_route(&host.ns)?;
        host.ip = new;
        Ok(new)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = delete_namespace(ns) {
                eprintln!("netns cleanup: {e}");
            }
        }
    }
}

fn cidr(ip: Ipv4Addr) -> String {
    format!("{ip}/24")
}

fn set_default_route(ns: &str) -> Result<(), String> {
    ip(&["-n", ns, "route", "replace", "default", "dev", HOST_IF])?;
    Ok(())
}

/// Kills every process inside `ns` (all started by these tests), then deletes it.
fn delete_namespace(ns: &str) -> Result<(), String> {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
    }
    ip(&["netns", "del", ns]).map(|_| ())
}

/// Deletes namespaces of earlier test processes that are gone (killed before their
/// `Lan` could drop).
fn sweep_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next() else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = delete_namespace(name);
        }
    }
}
