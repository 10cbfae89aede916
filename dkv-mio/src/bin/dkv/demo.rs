//! `dkv demo`: a small cluster in one process over the loopback broadcast address,
//! narrated step by step. Every step waits for its condition with a bounded
//! timeout; a step that times out ends the demo with a failure.

use dkv_mio::{unused_udp_port, BootstrapPhase, Config, Dkv, Error, Summary};
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The longest any step may take.
const STEP_LIMIT: Duration = Duration::from_secs(15);

/// Keys the first node writes before the late joiner arrives.
const EXTRA_KEYS: usize = 200;

/// Prints one line of the story, or ends it when stdout is gone (unlike
/// `println!`, which would panic).
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(io::stdout(), $($arg)*).map_err(|err| format!("cannot write to stdout: {err}"))?
    };
}

struct Member {
    name: String,
    dkv: Dkv,
}

/// Runs the demo with `nodes` nodes (at least 3, the late joiner included).
pub fn run(nodes: usize) -> ExitCode {
    // A closed stdout (`dkv demo | head`) ends the story; nothing left to tell.
    match story(nodes) {
        Ok(()) => {
            let _ = writeln!(io::stdout(), "\nDemo finished: every step worked.");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            let _ = writeln!(io::stdout(), "\nDemo FAILED: {reason}");
            ExitCode::FAILURE
        }
    }
}

fn fail(err: Error) -> String {
    format!("node error: {err}")
}

/// Polls `check` every 10 ms until it returns `Some`, or fails after STEP_LIMIT.
fn wait_for<T>(
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>, Error>,
) -> Result<(T, Duration), String> {
    let start = Instant::now();
    loop {
        if let Some(found) = check().map_err(fail)? {
            return Ok((found, start.elapsed()));
        }
        if start.elapsed() > STEP_LIMIT {
            return Err(format!("timed out after {STEP_LIMIT:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until every member's store has the same summary (fingerprint and count)
/// and returns it.
fn same_summary(members: &[Member]) -> Result<Summary, String> {
    let (summary, _) = wait_for("every store to have the same fingerprint", || {
        let mut first = None;
        for m in members {
            let summary = m.dkv.status()?.summary;
            if *first.get_or_insert(summary) != summary {
                return Ok(None);
            }
        }
        Ok(first)
    })?;
    Ok(summary)
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn story(nodes: usize) -> Result<(), String> {
    // Two founders and a late joiner at least: the indexing and `- 1`s below
    // rely on it (the command line allows 3..=12).
    if nodes < 3 {
        return Err(format!("the demo needs at least 3 nodes, not {nodes}"));
    }
    let port = unused_udp_port().map_err(|e| format!("no free UDP port: {e}"))?;
    let mut timings = Config::fast_timings();
    timings.beacon_interval = Duration::from_millis(100);
    timings.peer_timeout = Duration::from_millis(500);
    timings.get_timeout = Duration::from_millis(300);
    // Room for list answers to cross on a busy machine before bootstrap settles.
    timings.bootstrap_settle = Duration::from_millis(500);
    let config = Config {
        timings,
        ..Config::loopback(port)
    };
    say!("dkv demo: {nodes} nodes in this process, beacons to 127.255.255.255:{port}");
    say!("(loopback only: nothing leaves this machine; beacons every 100 ms, peers down after 500 ms of silence)");

    // 1. Discovery.
    say!("\n[1/7] Discovery");
    let founders = nodes - 1;
    let mut members = Vec::new();
    for i in 1..=founders {
        let dkv = Dkv::start(config.clone()).map_err(fail)?;
        say!(
            "  started node-{i}: id {}, PUB port {}",
            dkv.id(),
            dkv.pub_port()
        );
        members.push(Member {
            name: format!("node-{i}"),
            dkv,
        });
    }
    for m in &members {
        let what = format!(
            "{} to see {} peers (does this host route 127.255.255.255 on lo?)",
            m.name,
            founders - 1
        );
        let (peers, took) = wait_for(&what, || {
            let peers = m.dkv.peers()?;
            Ok((peers.len() >= founders - 1).then_some(peers))
        })?;
        let list: Vec<String> = peers.iter().map(ToString::to_string).collect();
        say!(
            "  {} found its peers by their beacons after {}: {}",
            m.name,
            ms(took),
            list.join(", ")
        );
    }
    for m in &members {
        let what = format!("{} to have {} ready peers", m.name, founders - 1);
        let (_, took) = wait_for(&what, || {
            Ok((m.dkv.ready_peers()?.len() >= founders - 1).then_some(()))
        })?;
        say!(
            "  {} reconciled with each of them: all ready after {} (a write now reaches them)",
            m.name,
            ms(took)
        );
    }

    // 2. A replicated set.
    say!("\n[2/7] A replicated set");
    let writer = &members[0];
    let greeting = format!("hello from {}", writer.name);
    let start = Instant::now();
    say!("  {}: set greeting = {greeting:?}", writer.name);
    writer.dkv.set("greeting", greeting.clone()).map_err(fail)?;
    wait_for("the set to reach every founder", || {
        for m in &members[1..] {
            if m.dkv.get_local("greeting")?.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })?;
    for m in &members[1..] {
        let value = m
            .dkv
            .get_local("greeting")
            .map_err(fail)?
            .unwrap_or_default();
        say!(
            "  {} holds greeting = {:?} (replicated, no get needed)",
            m.name,
            String::from_utf8_lossy(&value)
        );
    }
    say!(
        "  replicated to {} peer(s) in {}",
        founders - 1,
        ms(start.elapsed())
    );
    let writer2 = &members[1];
    for k in 0..EXTRA_KEYS {
        writer2
            .dkv
            .set(format!("city/{k:03}"), format!("value {k}"))
            .map_err(fail)?;
    }
    let expected = EXTRA_KEYS + 1;
    let (_, took) = wait_for("the founders to hold every key", || {
        for m in &members {
            if m.dkv.keys()?.len() < expected {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })?;
    say!(
        "  {} wrote {EXTRA_KEYS} more keys (city/000..); every founder held all {expected} keys after {}",
        writer2.name,
        ms(took)
    );

    // 3. A delete.
    say!("\n[3/7] A replicated delete");
    let deleter = &members[founders - 1];
    say!("  {}: del city/000", deleter.name);
    deleter.dkv.delete("city/000").map_err(fail)?;
    let expected = expected - 1;
    let (_, took) = wait_for("the delete to reach every founder", || {
        for m in &members {
            if m.dkv.get_local("city/000")?.is_some() {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })?;
    let entry = members[0].dkv.entry("city/000").map_err(fail)?;
    let version = entry.map(|e| e.version.to_string()).unwrap_or_default();
    say!(
        "  every founder reads city/000 as (nil) after {}: a tombstone with version {version} \
         (a newer write would bring the key back; an older one loses to it)",
        ms(took)
    );
    let summary = same_summary(&members)?;
    say!(
        "  every founder's store fingerprint: {:016x} over {} entries (the tombstone included)",
        summary.fingerprint,
        summary.count
    );

    // 4. A late joiner arrives.
    say!("\n[4/7] A late joiner arrives");
    let late = Member {
        name: format!("node-{nodes}"),
        dkv: Dkv::start(config.clone()).map_err(fail)?,
    };
    say!(
        "  started {}: id {}, PUB port {}, holding {} keys",
        late.name,
        late.dkv.id(),
        late.dkv.pub_port(),
        late.dkv.keys().map_err(fail)?.len()
    );
    let late_endpoint = std::net::SocketAddr::from(([127, 0, 0, 1], late.dkv.pub_port()));
    let (_, took) = wait_for("the late joiner and the founders to see each other", || {
        if late.dkv.peers()?.len() < founders {
            return Ok(None);
        }
        for m in &members {
            if !m.dkv.peers()?.contains(&late_endpoint) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })?;
    say!(
        "  {} and the {founders} founders discovered each other in {}",
        late.name,
        ms(took)
    );

    // 5. A remote get.
    say!("\n[5/7] A remote get");
    let before = late.dkv.stats().map_err(fail)?.proto.gets_answered;
    let start = Instant::now();
    let mut value = None;
    let mut attempts = 0;
    while value.is_none() && start.elapsed() < STEP_LIMIT {
        attempts += 1;
        value = late
            .dkv
            .get("greeting", Some(Duration::from_millis(300)))
            .map_err(fail)?;
    }
    let value = value.ok_or("timed out waiting for a remote get to be answered")?;
    let answered = late.dkv.stats().map_err(fail)?.proto.gets_answered > before;
    say!(
        "  {}: get greeting -> {:?} in {} ({} attempt(s)); {}",
        late.name,
        String::from_utf8_lossy(&value),
        ms(start.elapsed()),
        attempts,
        if answered {
            "not held locally, so it asked the cluster and a peer answered"
        } else {
            "already held: reconciling with its peers got there first"
        }
    );
    say!("  the answer is now kept locally too");

    // 6. Bootstrap.
    say!("\n[6/7] The late joiner bootstraps");
    say!("  it compares range fingerprints with its peers and pulls what it lacks in pages");
    let (_, took) = wait_for("the late joiner's bootstrap to finish", || {
        Ok((late.dkv.bootstrap()?.phase == BootstrapPhase::Done).then_some(()))
    })?;
    let held = late.dkv.keys().map_err(fail)?.len();
    let stats = late.dkv.stats().map_err(fail)?.proto;
    say!(
        "  bootstrap done {} after its peers were found: {} sessions, {} ranges pulled in {} pages, \
         {} entries applied",
        ms(took),
        stats.sync_sessions_completed,
        stats.sync_ranges_pulled,
        stats.sync_pull_pages,
        stats.entries_applied
    );
    if held != expected || late.dkv.get_local("city/000").map_err(fail)?.is_some() {
        return Err(format!(
            "the late joiner holds {held} keys after bootstrap, expected {expected} (city/000 deleted)"
        ));
    }
    members.push(late);
    let summary = same_summary(&members)?;
    say!(
        "  node-{nodes} now holds all {held} keys and the tombstone of city/000: every store's \
         fingerprint is {:016x}",
        summary.fingerprint
    );
    let late = members.pop().ok_or("no late joiner")?;

    // 7. A peer goes down.
    say!("\n[7/7] A node stops");
    let gone = members.remove(0);
    let gone_endpoint = std::net::SocketAddr::from(([127, 0, 0, 1], gone.dkv.pub_port()));
    gone.dkv.shutdown().map_err(fail)?;
    say!("  stopped {}; its beacons stop", gone.name);
    members.push(late);
    let (_, took) = wait_for("the others to see the stopped node go down", || {
        for m in &members {
            if m.dkv.peers()?.contains(&gone_endpoint) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })?;
    say!(
        "  every remaining node saw {} go down {} later (peer timeout 500 ms)",
        gone.name,
        ms(took)
    );
    for m in &members {
        m.dkv.shutdown().map_err(fail)?;
    }
    Ok(())
}
