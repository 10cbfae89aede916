#!/usr/bin/env python3
"""Test fixture: a faithful reimplementation of the dkv Python prototype.

It follows ../../../../shared/protocol-prototype.md (the "prototype protocol" page)
and exists only so that dkv-mio's tests can check wire compatibility against the
prototype's behaviour: UDP beacons, SO_REUSEPORT listener, peer up/down, one PUB
socket on a random port, one SUB socket with the prototype's exact subscriptions,
set/get/question/answer/list/list_answer, and bootstrap with the prototype's pacing
(it steps only between 100 ms idle polls, so about 10 keys per second).

Deliberate differences from the deployed prototype, all for testability:
  * local address detection connects a UDP socket toward the *broadcast address*
    (not a public address) and reads the local side: nothing is sent anywhere;
  * it is driven by a stdin line protocol identical to `dkv node`'s
    (set/get/keys/peers/stats/help/quit, exactly one line out per command, `quit`
    answering OK; values printed as `dkv node` prints them; no `wait` commands);
  * timings and addresses are flags;
  * the SUB socket is touched only by the worker thread (connect/disconnect requests
    are queued to it) and the PUB socket is guarded by a lock: pyzmq sockets are not
    thread-safe.

Kept on purpose (documented prototype behaviour):
  * the worker thread dies on a message with the wrong frame count, on a non-UTF-8
    key (and, an assumption the protocol page leaves open, on an unknown topic that
    a prefix subscription lets in, such as `setx`), and on a `list_answer` addressed
    to another node (which it receives through
    its `list` subscription as soon as three nodes run). After that it no longer
    processes any message; `stats` shows `worker_alive=0`. Pass
    `--survive-foreign-list-answer` to ignore only that last case instead.
  * the own-beacon filter compares (source ip, payload) with (local address, own
    payload), so a node whose IP changes underneath it may see itself as a peer.

Usage: prototype.py [--beacon-addr A] [--beacon-port P] [--bind IP]
                    [--beacon-interval-ms N] [--peer-timeout-ms N] [--log LEVEL]
"""

import argparse
import errno
import logging
import os
import queue
import socket
import sys
import threading
import time
import unicodedata

import zmq

log = logging.getLogger("prototype")

BEACON_PREFIX = b"beacon "
RECV_BUFFER = 1024
POLL_MS = 100
MIN_QUESTION_SPACING = 0.005
NET_DOWN_ERRNOS = (errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN)


class WorkerCrash(Exception):
    """What kills the prototype's worker thread."""


class Prototype:
    def __init__(self, beacon_addr, beacon_port, bind, interval, peer_timeout,
                 survive_foreign_list_answer):
        self.beacon_addr = beacon_addr
        self.beacon_port = beacon_port
        self.interval = interval
        self.peer_timeout = peer_timeout
        self.survive_foreign_list_answer = survive_foreign_list_answer

        self.id = os.urandom(8)
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub_port = self.pub.bind_to_random_port("tcp://%s" % bind)
        self.pub_lock = threading.Lock()
        self.sub = self.ctx.socket(zmq.SUB)
        for topic in (b"set", b"question", b"list",
                      b"answer " + self.id, b"list_answer " + self.id):
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        self.payload = str(self.pub_port).encode()

        self.lock = threading.Condition()
        self.store = {}          # key (str) -> value (bytes)
        self.peers = {}          # (ip, payload bytes) -> last seen (monotonic)
        self.local_ip = None
        self.sub_requests = queue.Queue()  # ("connect"|"disconnect", endpoint)

        # bootstrap state, touched by the worker thread and by net up (under lock)
        self.bootstrap_phase = "idle"   # idle | delay | fetching | done
        self.bootstrap_deadline = None
        self.to_fetch = []
        self.requested = set()
        self.last_question = 0.0
        self.settle_deadline = None

        self.counters = {"beacons_out": 0, "beacons_in": 0, "msgs_in": 0, "msgs_out": 0,
                         "peers_up": 0, "peers_down": 0, "net_up": 0, "net_down": 0,
                         "bootstraps_done": 0, "bootstrap_questions": 0}
        self.worker_alive = True
        self.running = True

        self.udp_out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp_out.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.udp_in = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp_in.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp_in.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.udp_in.bind(("0.0.0.0", beacon_port))
        self.udp_in.settimeout(0.2)

        self.threads = [threading.Thread(target=self.beacon_loop, daemon=True),
                        threading.Thread(target=self.listen_loop, daemon=True),
                        threading.Thread(target=self.worker_loop, daemon=True)]
        for t in self.threads:
            t.start()

    # ---- helpers -------------------------------------------------------------
    def count(self, name, n=1):
        with self.lock:
            self.counters[name] += n

    def publish(self, frames):
        with self.pub_lock:
            self.pub.send_multipart(frames)
        self.count("msgs_out")

    def detect_local_ip(self):
        """The address traffic toward the broadcast address leaves from; sends nothing."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            s.connect((self.beacon_addr, self.beacon_port))
            ip = s.getsockname()[0]
            return None if ip == "0.0.0.0" else ip
        except OSError:
            return None
        finally:
            s.close()

    # ---- discovery -----------------------------------------------------------
    def beacon_loop(self):
        next_tick = time.monotonic()
        while self.running:
            if self.local_ip is None:
                ip = self.detect_local_ip()
                if ip is not None:
                    with self.lock:
                        self.local_ip = ip
                        self.counters["net_up"] += 1
                    log.info("net up: local address %s", ip)
                    self.start_bootstrap()
            try:
                self.udp_out.sendto(BEACON_PREFIX + self.payload,
                                    (self.beacon_addr, self.beacon_port))
                self.count("beacons_out")
            except OSError as e:
                if e.errno in NET_DOWN_ERRNOS and self.local_ip is not None:
                    with self.lock:
                        self.local_ip = None
                        self.counters["net_down"] += 1
                    log.info("net down: %s", e)
                else:
                    log.debug("beacon send failed: %s", e)
            self.check_timeouts()
            next_tick += self.interval
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def check_timeouts(self):
        now = time.monotonic()
        with self.lock:
            dead = [p for p, seen in self.peers.items() if now - seen > self.peer_timeout]
            for p in dead:
                del self.peers[p]
                self.counters["peers_down"] += 1
        for ip, payload in dead:
            log.info("peer down %s:%s", ip, payload.decode(errors="replace"))
            self.sub_requests.put(("disconnect", "tcp://%s:%s" % (ip, payload.decode(errors="replace"))))

    def listen_loop(self):
        while self.running:
            try:
                data, (ip, _port) = self.udp_in.recvfrom(RECV_BUFFER)
            except socket.timeout:
                continue
            except OSError:
                if not self.running:
                    return
                continue
            if not data.startswith(BEACON_PREFIX):
                continue
            payload = data[len(BEACON_PREFIX):]
            if ip == self.local_ip and payload == self.payload:
                continue
            self.count("beacons_in")
            try:
                port = int(payload.decode())
                if not 0 < port < 65536:
                    raise ValueError(port)
            except ValueError:
                log.debug("ignoring beacon with bad port %r from %s", payload, ip)
                continue
            with self.lock:
                new = (ip, payload) not in self.peers
                self.peers[(ip, payload)] = time.monotonic()
                if new:
                    self.counters["peers_up"] += 1
            if new:
                log.info("peer up %s:%d", ip, port)
                self.sub_requests.put(("connect", "tcp://%s:%d" % (ip, port)))

    # ---- bootstrap -----------------------------------------------------------
    def start_bootstrap(self):
        with self.lock:
            self.bootstrap_phase = "delay"
            self.bootstrap_deadline = time.monotonic() + 2 * self.interval
            self.to_fetch = []
            self.requested = set()
            self.settle_deadline = None

    def bootstrap_step(self):
        """One step, run by the worker only when a 100 ms poll came back idle."""
        now = time.monotonic()
        frames = None
        with self.lock:
            if self.bootstrap_phase == "delay" and now >= self.bootstrap_deadline:
                self.bootstrap_phase = "fetching"
                frames = [b"list " + self.id]
            elif self.bootstrap_phase == "fetching":
                if self.to_fetch:
                    if now - self.last_question >= MIN_QUESTION_SPACING:
                        key = self.to_fetch.pop(0)
                        self.last_question = now
                        self.counters["bootstrap_questions"] += 1
                        self.settle_deadline = None
                        frames = [b"question " + self.id, key.encode()]
                elif self.settle_deadline is None:
                    self.settle_deadline = now + 2 * self.interval
                elif now >= self.settle_deadline:
                    self.bootstrap_phase = "done"
                    self.counters["bootstraps_done"] += 1
                    log.info("bootstrap done")
        if frames is not None:
            self.publish(frames)

    # ---- data plane ----------------------------------------------------------
    def worker_loop(self):
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        try:
            while self.running:
                while True:
                    try:
                        op, endpoint = self.sub_requests.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        getattr(self.sub, op)(endpoint)
                    except zmq.ZMQError as e:
                        log.debug("%s %s failed: %s", op, endpoint, e)
                if poller.poll(POLL_MS):
                    self.handle(self.sub.recv_multipart())
                else:
                    self.bootstrap_step()
        except WorkerCrash as e:
            log.error("worker thread died: %s", e)
            with self.lock:
                self.worker_alive = False
        except Exception as e:  # the prototype's worker dies on any error
            log.error("worker thread died: %r", e)
            with self.lock:
                self.worker_alive = False

    def handle(self, frames):
        self.count("msgs_in")
        name, _, target = frames[0].partition(b" ")
        name = name.decode()
        if name == "set":
            key, value = self.args(frames, 2)
            with self.lock:
                self.store[key.decode()] = value
                self.lock.notify_all()
        elif name == "question":
            (key,) = self.args(frames, 1)
            key = key.decode()
            with self.lock:
                value = self.store.get(key)
            if value:
                self.publish([b"answer " + target, key.encode(), value])
        elif name == "answer":
            key, value = self.args(frames, 2)
            with self.lock:
                self.store[key.decode()] = value
                self.lock.notify_all()
        elif name == "list":
            self.args(frames, 0)
            with self.lock:
                keys = [k.encode() for k in self.store]
            self.publish([b"list_answer " + target] + keys)
        elif name == "list_answer":
            if target != self.id:
                if self.survive_foreign_list_answer:
                    return
                # the prototype's bug: a list_answer for someone else kills the worker
                raise WorkerCrash("list_answer addressed to another node")
            keys = [k.decode() for k in frames[1:]]
            with self.lock:
                if self.bootstrap_phase in ("delay", "fetching"):
                    for k in keys:
                        if k not in self.requested:
                            self.requested.add(k)
                            self.to_fetch.append(k)
                    if self.to_fetch:
                        self.settle_deadline = None
        else:
            raise WorkerCrash("unknown topic %r" % frames[0])

    @staticmethod
    def args(frames, n):
        if len(frames) != n + 1:
            raise WorkerCrash("%d frames for %r" % (len(frames), frames[0]))
        return frames[1:]

    # ---- the API -------------------------------------------------------------
    def set(self, key, value):
        with self.lock:
            self.store[key] = value
        self.publish([b"set", key.encode(), value])

    def get(self, key, timeout):
        with self.lock:
            if key in self.store:
                return self.store[key]
        self.publish([b"question " + self.id, key.encode()])
        deadline = time.monotonic() + timeout
        with self.lock:
            while key not in self.store:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.lock.wait(left)
            return self.store.get(key)

    def keys(self):
        with self.lock:
            return sorted(self.store)

    def peer_list(self):
        with self.lock:
            return sorted("%s:%s" % (ip, p.decode(errors="replace")) for ip, p in self.peers)

    def stats(self):
        with self.lock:
            fields = dict(self.counters)
            fields.update(peers=len(self.peers), keys=len(self.store),
                          worker_alive=int(self.worker_alive),
                          bootstrap=self.bootstrap_phase,
                          local_ip=self.local_ip or "-", pub_port=self.pub_port)
        return " ".join("%s=%s" % kv for kv in fields.items())

    def shutdown(self):
        self.running = False
        with self.lock:
            gone = list(self.peers)
            self.peers.clear()
        for ip, payload in gone:
            log.info("peer down %s:%s", ip, payload.decode(errors="replace"))
        for t in self.threads:
            t.join(timeout=2)
        self.udp_in.close()
        self.udp_out.close()
        self.pub.close(linger=0)
        self.sub.close(linger=0)
        self.ctx.term()


HELP = "commands: set KEY VALUE | get KEY [TIMEOUT_MS] | keys | peers | stats | help | quit"


def display_value(value):
    """A value on one line, as `dkv node` prints it: UTF-8 text without control
    characters as it is, anything else with Rust's `escape_ascii` escapes."""
    try:
        text = value.decode("utf-8")
        if not any(unicodedata.category(c) == "Cc" for c in text):
            return text
    except UnicodeDecodeError:
        pass
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x27: "\\'", 0x22: '\\"', 0x5C: "\\\\"}
    return "".join(named.get(b) or (chr(b) if 0x20 <= b < 0x7F else "\\x%02x" % b)
                   for b in value)


def serve(node, inp, out):
    """The stdin line protocol of `dkv node`: exactly one output line per command."""
    for raw in inp:
        line = raw.rstrip("\n").rstrip("\r")
        words = line.split(" ")
        cmd = words[0]
        if cmd == "":
            continue
        if cmd == "set":
            if len(words) < 3 or words[1] == "":
                reply = "ERR usage: set KEY VALUE (the value is the rest of the line)"
            else:
                node.set(words[1], line.split(" ", 2)[2].encode())
                reply = "OK"
        elif cmd == "get":
            if len(words) not in (2, 3) or words[1] == "":
                reply = "ERR usage: get KEY [TIMEOUT_MS]"
            else:
                try:
                    timeout = int(words[2]) / 1000.0 if len(words) == 3 else 0.1
                except ValueError:
                    reply = "ERR timeout must be a number of milliseconds"
                else:
                    v = node.get(words[1], timeout)
                    reply = "(nil)" if v is None else display_value(v)
        elif cmd == "keys":
            reply = " ".join(node.keys())
        elif cmd == "peers":
            reply = " ".join(node.peer_list())
        elif cmd == "stats":
            reply = node.stats()
        elif cmd == "help":
            reply = HELP
        elif cmd in ("quit", "exit"):
            out.write("OK\n")
            out.flush()
            return
        else:
            reply = "ERR unknown command %r (try help)" % cmd
        out.write(reply + "\n")
        out.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beacon-addr", default="255.255.255.255")
    ap.add_argument("--beacon-port", type=int, default=5005)
    ap.add_argument("--bind", default="*", help="interface for the PUB socket")
    ap.add_argument("--beacon-interval-ms", type=int, default=1000)
    ap.add_argument("--peer-timeout-ms", type=int, default=4000)
    ap.add_argument("--log", default="warning")
    ap.add_argument("--survive-foreign-list-answer", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(stream=sys.stderr, level=a.log.upper(),
                        format="%(asctime)s prototype %(levelname)s %(message)s")
    node = Prototype(a.beacon_addr, a.beacon_port, a.bind, a.beacon_interval_ms / 1000.0,
                     a.peer_timeout_ms / 1000.0, a.survive_foreign_list_answer)
    try:
        serve(node, sys.stdin, sys.stdout)
    finally:
        node.shutdown()


if __name__ == "__main__":
    main()
