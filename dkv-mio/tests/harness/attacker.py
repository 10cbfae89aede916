#!/usr/bin/env python3
"""Test attacker for dkv-mio/tests/attacks_netns.rs: one hostile LAN host.

It runs inside a network-namespace host of a test LAN and attacks `dkv node`
processes on other hosts of that LAN. Every mode is bounded in time (`--secs`) and
in count, and every target must be in 10.231.0.0/16 (the test LANs' private range):
nothing is ever sent to a broadcast address or outside the test LAN.

Each mode prints exactly one summary line of `name=value` pairs on stdout when it
ends (the test parses it); progress and errors go to stderr.

Modes:
  spoof       beacons `beacon <port>` and dkv hellos with many ports and ids, from
              one or more source addresses, unicast to the victim's beacon port;
  list-flood  a prototype-like peer that floods `list` and `question` and counts
              the bytes of the answers it is sent;
  big         a raw ZMTP 3.0 PUB peer that streams one `set` with a huge value,
              then (on the same or a re-dialled connection) one small `set`;
  stall-sub   a SUB that subscribes to everything and never reads, while its
              I/O thread keeps sending heartbeats;
  rogue       a rogue publisher against a keyed cluster: plain and forged
              beacons, hellos and messages, and replays of captured ones.

pyzmq comes from the fixture venv (harness/pyenv.rs); `big` needs only the
standard library.
"""

import argparse
import ipaddress
import os
import random
import select
import socket
import struct
import sys
import threading
import time

LAN = ipaddress.ip_network("10.231.0.0/16")
HELLO_PREFIX = b"dkv2\x00"
WIRE_VERSION = 1


def lan_ip(text):
    """An IPv4 address inside the test LAN range, or an argparse error."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    if ip not in LAN:
        raise argparse.ArgumentTypeError("%s is outside %s" % (text, LAN))
    return text


def lan_ips(text):
    return [lan_ip(t) for t in text.split(",") if t]


def ports(text):
    return [int(t) for t in text.split(",") if t]


def summary(**kv):
    print(" ".join("%s=%s" % item for item in kv.items()), flush=True)


def log(msg):
    print("attacker: %s" % msg, file=sys.stderr, flush=True)


def beacon(port):
    return b"beacon %d" % port


def hello(port, node_id):
    return HELLO_PREFIX + bytes([WIRE_VERSION]) + struct.pack(">H", port) + node_id


def ascii_id(rng):
    """An 8-byte id of printable bytes (any 8 bytes would do)."""
    return bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))


class Beaconer(threading.Thread):
    """Beacons `datagram` to each target's beacon port every `every` seconds until
    stopped or `secs` pass."""

    def __init__(self, targets, beacon_port, datagram, every, secs):
        super().__init__(daemon=True)
        self.targets = targets
        self.beacon_port = beacon_port
        self.datagrams = [datagram]
        self.every = every
        self.until = time.monotonic() + secs
        self.stop = threading.Event()
        self.sent = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def run(self):
        while not self.stop.is_set() and time.monotonic() < self.until:
            for t in self.targets:
                for d in self.datagrams:
                    try:
                        self.sock.sendto(d, (t, self.beacon_port))
                        self.sent += 1
                    except OSError as e:
                        log("beacon send: %s" % e)
            self.stop.wait(self.every)


# ---- spoof -------------------------------------------------------------------
def run_spoof(a):
    """Cycles over `--ports` ports from `--first-port` on, from every source
    address, sending a beacon (and every `--hello-every`th time a hello with a
    fresh id) to the victim, until `--secs` pass or `--max-datagrams` are sent."""
    rng = random.Random(a.seed)
    socks = []
    for src in a.sources:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.bind((src, 0))
        socks.append(s)
    dest = (a.target, a.beacon_port)
    deadline = time.monotonic() + a.secs
    sent = beacons = hellos = errors = cycles = 0
    per_source = max(1, a.ports // len(socks))
    i = 0
    while time.monotonic() < deadline and sent < a.max_datagrams:
        port = a.first_port + (i % per_source)
        if i % per_source == per_source - 1:
            cycles += 1
        for s in socks:
            if a.hello_every and i % a.hello_every == 0:
                d = hello(port, bytes(rng.getrandbits(8) for _ in range(8)))
                hellos += 1
            else:
                d = beacon(port)
                beacons += 1
            try:
                s.sendto(d, dest)
                sent += 1
            except OSError:
                errors += 1
                # The send buffer is full: let the victim's side drain a little.
                time.sleep(0.001)
        i += 1
        if a.pace and i % a.pace == 0:
            time.sleep(0.001)
    summary(sent=sent, beacons=beacons, hellos=hellos, errors=errors, cycles=cycles,
            sources=len(socks), ports_per_source=per_source)


# ---- list-flood --------------------------------------------------------------
def run_list_flood(a):
    """A prototype-like peer: an XPUB the victim subscribes to once it hears our
    beacon, and a SUB on the victim's PUB for the `list_answer` and `answer`
    topics. Once the victim has subscribed to `list `, floods `list <fresh id>`
    and `question <our id> <key>` for `--secs`, draining replies as it goes."""
    import zmq

    rng = random.Random(a.seed)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.SNDHWM, 100000)
    pub.setsockopt(zmq.XPUB_VERBOSE, 1)
    if a.ping_ttl_ms:
        # PINGs carrying a TTL arm a timer in the victim's libzmq whatever its own
        # heartbeat settings; it fires if the victim stops reading this connection.
        pub.setsockopt(zmq.HEARTBEAT_IVL, 100)
        pub.setsockopt(zmq.HEARTBEAT_TTL, a.ping_ttl_ms)
        pub.setsockopt(zmq.HEARTBEAT_TIMEOUT, 600000)
    port = pub.bind_to_random_port("tcp://%s" % a.me)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 100000)
    sub.setsockopt(zmq.SUBSCRIBE, b"list_answer ")
    sub.setsockopt(zmq.SUBSCRIBE, b"answer ")
    sub.connect("tcp://%s:%d" % (a.target, a.pub_port))
    beaconer = Beaconer([a.target], a.beacon_port, beacon(port), 0.2, a.secs + 30)
    beaconer.start()

    # Wait (bounded) until the victim's SUB has subscribed to `list `.
    deadline = time.monotonic() + 15
    subscribed = False
    while time.monotonic() < deadline and not subscribed:
        if pub.poll(200):
            msg = pub.recv()
            subscribed = msg[:1] == b"\x01" and msg[1:].startswith(b"list")
    if not subscribed:
        summary(ready=0)
        return
    # ZeroMQ's slow joiner: let every subscription of the victim settle.
    time.sleep(0.5)

    asker = ascii_id(rng)
    keys = [k.encode() for k in a.keys]
    counts = dict(list_sent=0, question_sent=0, request_bytes=0, list_answers=0,
                  list_answer_bytes=0, answers=0, answer_bytes=0)

    def drain():
        while True:
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            size = sum(len(f) for f in frames)
            if frames[0].startswith(b"list_answer "):
                counts["list_answers"] += 1
                counts["list_answer_bytes"] += size
            else:
                counts["answers"] += 1
                counts["answer_bytes"] += size

    start = time.monotonic()
    deadline = start + a.secs
    n = 0
    while time.monotonic() < deadline and n < a.max_messages:
        if n % 2 == 0:
            frames = [b"list " + ascii_id(rng)]
            counts["list_sent"] += 1
        else:
            frames = [b"question " + asker, keys[n // 2 % len(keys)]]
            counts["question_sent"] += 1
        pub.send_multipart(frames)
        counts["request_bytes"] += sum(len(f) for f in frames)
        n += 1
        if n % 64 == 0:
            drain()
            if a.rate:
                # Pace to at most `--rate` messages per second.
                ahead = n / a.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    flooded = time.monotonic() - start
    end = time.monotonic() + 2
    while time.monotonic() < end:
        if sub.poll(100):
            drain()
    beaconer.stop.set()
    summary(ready=1, flood_secs="%.2f" % flooded, **counts)
    pub.close(0)
    sub.close(0)
    ctx.term()


# ---- raw ZMTP (big) ----------------------------------------------------------
def zmtp_greeting():
    # signature, version 3.0, NULL mechanism, as-server 0, filler
    return (b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00")
            + b"\x00" + b"\x00" * 31)


def zmtp_command(name, body=b""):
    payload = bytes([len(name)]) + name + body
    if len(payload) > 255:
        return b"\x06" + struct.pack(">Q", len(payload)) + payload
    return b"\x04" + bytes([len(payload)]) + payload


def zmtp_ready(socket_type):
    prop = b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    return zmtp_command(b"READY", prop)


def frame_header(size, more):
    flags = 0x01 if more else 0x00
    if size > 255:
        return bytes([flags | 0x02]) + struct.pack(">Q", size)
    return bytes([flags, size])


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf


class ZmtpPeer:
    """One accepted ZMTP 3.0 connection, as a PUB. A reader thread consumes what
    the SUB sends (subscriptions, heartbeats) and answers PINGs with PONGs; writes
    are serialised by a lock so a PONG never lands inside a frame."""

    def __init__(self, conn):
        self.conn = conn
        self.lock = threading.Lock()
        self.closed = threading.Event()
        conn.settimeout(10)
        conn.sendall(zmtp_greeting())
        greeting = recv_exact(conn, 64)
        if greeting[0] != 0xFF or greeting[9] != 0x7F:
            raise ConnectionError("not a ZMTP peer")
        conn.sendall(zmtp_ready(b"PUB"))
        flags, body = self.read_frame()
        if not flags & 0x04 or not body[1:6] == b"READY":
            raise ConnectionError("no READY from peer")
        conn.settimeout(None)
        threading.Thread(target=self.reader, daemon=True).start()

    def read_frame(self):
        flags = recv_exact(self.conn, 1)[0]
        if flags & 0x02:
            size = struct.unpack(">Q", recv_exact(self.conn, 8))[0]
        else:
            size = recv_exact(self.conn, 1)[0]
        if size > 1 << 20:
            raise ConnectionError("peer sent a %d-byte frame" % size)
        return flags, recv_exact(self.conn, size)

    def reader(self):
        try:
            while True:
                flags, body = self.read_frame()
                if flags & 0x04 and body[1:5] == b"PING":
                    # PING: name, 2-byte TTL, context; PONG echoes the context.
                    with self.lock:
                        self.conn.sendall(zmtp_command(b"PONG", body[7:]))
        except (OSError, ConnectionError):
            pass
        finally:
            self.closed.set()

    def send_message(self, frames):
        with self.lock:
            for i, f in enumerate(frames):
                self.conn.sendall(frame_header(len(f), i + 1 < len(frames)) + f)


def run_big(a):
    """Streams one `set <key> <--size bytes>` to the victim's SUB, `--chunk` bytes at
    a time, until done, cut off or `--secs` pass; then sends one small
    `set <--after-key> after` on the same connection if it still stands, else on
    the next connection the victim makes within `--redial-secs`."""
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((a.me, 0))
    lst.listen(16)
    port = lst.getsockname()[1]
    beaconer = Beaconer([a.target], a.beacon_port, beacon(port), 0.2,
                        a.secs + a.redial_secs + 30)
    beaconer.start()

    def accept(limit):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            r, _, _ = select.select([lst], [], [], 0.2)
            if r:
                conn, _ = lst.accept()
                try:
                    return ZmtpPeer(conn)
                except (OSError, ConnectionError) as e:
                    log("handshake failed: %s" % e)
                    conn.close()
        return None

    peer = accept(15)
    if peer is None:
        summary(ready=0)
        return
    # Let the victim's subscriptions arrive (a SUB drops what it has not subscribed).
    time.sleep(0.5)
    log("streaming a %d-byte value" % a.size)
    sent = 0
    cut = 0
    cut_error = "-"
    chunk = b"x" * a.chunk
    start = time.monotonic()
    deadline = start + a.secs
    try:
        with peer.lock:
            for i, f in enumerate([b"set", b"attack-big"]):
                peer.conn.sendall(frame_header(len(f), True) + f)
            peer.conn.sendall(frame_header(a.size, False))
            while sent < a.size:
                if time.monotonic() > deadline:
                    raise TimeoutError("out of time")
                n = min(len(chunk), a.size - sent)
                peer.conn.sendall(chunk[:n])
                sent += n
    except (OSError, TimeoutError) as e:
        cut = 1
        cut_error = type(e).__name__
    stream_secs = time.monotonic() - start
    log("streamed %d bytes in %.2fs, cut=%d (%s)" % (sent, stream_secs, cut, cut_error))
    redialed = 0
    if cut:
        peer.conn.close()
        peer = accept(a.redial_secs)
        redialed = int(peer is not None)
        if peer is not None:
            time.sleep(0.5)
    after_sent = 0
    if peer is not None:
        try:
            peer.send_message([b"set", a.after_key.encode(), b"after"])
            after_sent = 1
        except OSError as e:
            log("small set failed: %s" % e)
    summary(ready=1, sent=sent, size=a.size, stream_secs="%.2f" % stream_secs, cut=cut,
            cut_error=cut_error, redialed=redialed, after_sent=after_sent)
    # Stay connected (answering heartbeats) while the test checks the small set.
    end = time.monotonic() + a.linger
    while time.monotonic() < end and peer is not None and not peer.closed.is_set():
        time.sleep(0.1)
    beaconer.stop.set()


# ---- stall-sub ---------------------------------------------------------------
def run_stall_sub(a):
    """Connects a SUB that never reads to the victim's PUB: one message of receive
    queue and a small kernel buffer, so its TCP window closes soon, while its I/O
    thread keeps sending heartbeats every 50 ms. Exits after `--secs`."""
    import zmq

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.RCVBUF, 4096)
    sub.setsockopt(zmq.HEARTBEAT_IVL, 50)
    sub.setsockopt(zmq.HEARTBEAT_TIMEOUT, 60000)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect("tcp://%s:%d" % (a.target, a.pub_port))
    print("connected", flush=True)
    time.sleep(a.secs)
    summary(done=1)
    sub.close(0)
    ctx.term()


# ---- rogue -------------------------------------------------------------------
def flip(data, rng):
    """A copy of `data` with one bit flipped (a forgery)."""
    if not data:
        return b"\x01"
    b = bytearray(data)
    i = rng.randrange(len(b))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


class Listener(threading.Thread):
    """Accepts (and closes) TCP connections on `sock`, counting them."""

    def __init__(self, sock, until):
        super().__init__(daemon=True)
        self.sock = sock
        self.until = until
        self.accepted = 0
        self.sources = set()

    def run(self):
        self.sock.settimeout(0.2)
        while time.monotonic() < self.until:
            try:
                conn, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            self.sources.add(addr[0])
            conn.close()


def run_rogue(a):
    """Against keyed nodes (`--targets`, PUB ports `--pub-ports`): captures their
    hellos and published frames, then for `--secs` sends plain beacons and hellos
    of its own, replays and bit-flipped copies of captured hellos, and publishes
    plain `set`s (of `--victim-key` and of `rogue-*` keys) and replays and forged
    copies of captured frames from its own PUB. Counts every TCP connection made to
    its PUB port or to any port a captured hello named (the keyed nodes must make
    none)."""
    import zmq

    rng = random.Random(a.seed)
    until = time.monotonic() + a.secs + 3
    ctx = zmq.Context()

    # Capture: hellos heard on the beacon port, frames from every honest PUB.
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    udp.bind(("0.0.0.0", a.beacon_port))
    udp.setblocking(False)
    spy = ctx.socket(zmq.SUB)
    spy.setsockopt(zmq.LINGER, 0)
    spy.setsockopt(zmq.SUBSCRIBE, b"")
    for t, p in zip(a.targets, a.pub_ports):
        spy.connect("tcp://%s:%d" % (t, p))

    # The rogue PUB, watched by a raw listener count (via a ZMQ monitor).
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub_port = pub.bind_to_random_port("tcp://%s" % a.me)
    monitor = pub.get_monitor_socket(zmq.EVENT_ACCEPTED)
    pub_accepted = 0
    listeners = {}

    captured_hellos = []
    captured_frames = []
    counts = dict(datagrams=0, plain_sets=0, replayed_frames=0, forged_frames=0,
                  replayed_hellos=0, forged_hellos=0)

    def capture():
        while True:
            try:
                data, (ip, _) = udp.recvfrom(2048)
            except (BlockingIOError, OSError):
                break
            if ip in a.targets and len(captured_hellos) < 64 and data not in captured_hellos:
                captured_hellos.append(data)
                # Listen where a replayed hello would send a connect: our IP, its port.
                port = hello_port(data)
                if port and port not in listeners and port != pub_port:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        s.bind((a.me, port))
                        s.listen(16)
                        lst = Listener(s, until)
                        lst.start()
                        listeners[port] = lst
                    except OSError:
                        s.close()
        while len(captured_frames) < 256:
            try:
                captured_frames.append(spy.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break

    def send_udp(d, t):
        try:
            udp.sendto(d, (t, a.beacon_port))
            counts["datagrams"] += 1
        except OSError:
            pass

    start = time.monotonic()
    deadline = start + a.secs
    i = 0
    while time.monotonic() < deadline:
        capture()
        for t in a.targets:
            send_udp(beacon(pub_port), t)
            send_udp(hello(pub_port, ascii_id(rng)), t)
            for h in captured_hellos[:8]:
                send_udp(h, t)
                counts["replayed_hellos"] += 1
                send_udp(flip(h, rng), t)
                counts["forged_hellos"] += 1
        for j in range(8):
            pub.send_multipart([b"set", a.victim_key.encode(), b"rogue"])
            pub.send_multipart([b"set", b"rogue-%d" % (i * 8 + j), b"rogue"])
            counts["plain_sets"] += 2
        for frames in captured_frames[-16:]:
            pub.send_multipart(frames)
            counts["replayed_frames"] += 1
            forged = list(frames)
            k = rng.randrange(len(forged))
            forged[k] = flip(forged[k], rng)
            pub.send_multipart(forged)
            counts["forged_frames"] += 1
        while monitor.poll(0):
            monitor.recv_multipart()
            pub_accepted += 1
        i += 1
        time.sleep(0.05)
    time.sleep(1)
    while monitor.poll(0):
        monitor.recv_multipart()
        pub_accepted += 1
    listened = sum(lst.accepted for lst in listeners.values())
    summary(captured_hellos=len(captured_hellos), captured_frames=len(captured_frames),
            pub_accepted=pub_accepted, hello_port_accepted=listened,
            listened_ports=len(listeners), **counts)
    pub.disable_monitor()
    for s in (spy, pub, monitor):
        s.close(0)
    ctx.term()


def hello_port(data):
    """The port a plain hello announces, or None (a sealed hello's layout is not
    known here, so any datagram that is not a plain hello gives None)."""
    if data.startswith(HELLO_PREFIX) and len(data) >= len(HELLO_PREFIX) + 3:
        return struct.unpack(">H", data[len(HELLO_PREFIX) + 1:len(HELLO_PREFIX) + 3])[0]
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)

    s = sub.add_parser("spoof")
    s.add_argument("--target", type=lan_ip, required=True)
    s.add_argument("--sources", type=lan_ips, required=True)
    s.add_argument("--beacon-port", type=int, default=5005)
    s.add_argument("--ports", type=int, default=30000)
    s.add_argument("--first-port", type=int, default=20000)
    s.add_argument("--hello-every", type=int, default=2)
    s.add_argument("--secs", type=float, required=True)
    s.add_argument("--max-datagrams", type=int, default=3000000)
    s.add_argument("--pace", type=int, default=0,
                   help="sleep 1 ms every this many ports (0: never)")
    s.add_argument("--seed", type=int, default=9)

    s = sub.add_parser("list-flood")
    s.add_argument("--me", type=lan_ip, required=True)
    s.add_argument("--target", type=lan_ip, required=True)
    s.add_argument("--pub-port", type=int, required=True)
    s.add_argument("--beacon-port", type=int, default=5005)
    s.add_argument("--keys", type=lambda t: t.split(","), required=True)
    s.add_argument("--secs", type=float, required=True)
    s.add_argument("--max-messages", type=int, default=2000000)
    s.add_argument("--rate", type=int, default=0, help="messages/s cap (0: none)")
    s.add_argument("--ping-ttl-ms", type=int, default=0,
                   help="send ZMTP PINGs every 100 ms with this TTL (0: no PINGs)")
    s.add_argument("--seed", type=int, default=9)

    s = sub.add_parser("big")
    s.add_argument("--me", type=lan_ip, required=True)
    s.add_argument("--target", type=lan_ip, required=True)
    s.add_argument("--beacon-port", type=int, default=5005)
    s.add_argument("--size", type=int, default=1 << 30)
    s.add_argument("--chunk", type=int, default=1 << 20)
    s.add_argument("--secs", type=float, required=True)
    s.add_argument("--redial-secs", type=float, default=10)
    s.add_argument("--after-key", required=True)
    s.add_argument("--linger", type=float, default=10)

    s = sub.add_parser("stall-sub")
    s.add_argument("--target", type=lan_ip, required=True)
    s.add_argument("--pub-port", type=int, required=True)
    s.add_argument("--secs", type=float, required=True)

    s = sub.add_parser("rogue")
    s.add_argument("--me", type=lan_ip, required=True)
    s.add_argument("--targets", type=lan_ips, required=True)
    s.add_argument("--pub-ports", type=ports, required=True)
    s.add_argument("--beacon-port", type=int, default=5005)
    s.add_argument("--victim-key", required=True)
    s.add_argument("--secs", type=float, required=True)
    s.add_argument("--seed", type=int, default=9)

    a = p.parse_args()
    {"spoof": run_spoof, "list-flood": run_list_flood, "big": run_big,
     "stall-sub": run_stall_sub, "rogue": run_rogue}[a.mode](a)


if __name__ == "__main__":
    main()
