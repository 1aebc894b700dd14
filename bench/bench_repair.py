#!/usr/bin/env python3
"""Scrub and repair throughput of qsfs-stor on six loopback redis-servers
(k=4, m=2), over a volume of N 2:1 compressible objects (default 24 x 16 MiB),
with stor.scrub_rate set so high that it does not bind:

  scrub   `qsfs-ctl scrub` over the whole volume: MB/s of shard bytes read
          (status scrub.bytes / wall time) and MB/s of object data covered;
  repair  FLUSHALL one redis-server, then `qsfs-ctl repair` (the same pass: it
          rebuilds every object that lost shards): MB/s of object data
          rebuilt (objects repaired x object size / wall time) and objects/s;
          the output must say that all N objects were repaired;
  check   the cheap pass (EXISTS of every piece) qsfs-stor starts by itself
          when a backend that was down answers again: one redis-server is
          stopped (SIGSTOP) until stor marks it down, then continued.

Scrub and repair are timed from the request to the first status (polled on
the control socket every 2 ms) that shows the pass over (qsfs-ctl itself polls
every 200 ms, so its own exit comes later); the check from the first status
showing it asked for or running. Every run starts from empty redis-servers,
a fresh state directory and a freshly formatted volume. Baselines in the same
run: raw redis GET throughput of 1 MiB values on the same six servers from a
simple Python client (round-robin over the six servers on one connection
each, and with six threads, one per server), and bench-codec's single-core
stage speeds. Medians over several runs. Not run in CI.

    bench/bench_repair.py [--build DIR] [--objects N] [--size MIB] [--runs N] [--level L]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from benchutil import free_port, make_object, wait_port

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20
POLL_S = 0.002


class Resp:
    """A minimal RESP client: one connection, one command at a time."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), 30)
        self.buf = bytearray()

    def close(self):
        self.s.close()

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk

    def cmd(self, *args):
        args = [a if isinstance(a, (bytes, bytearray)) else str(a).encode() for a in args]
        self.s.sendall(b"*%d\r\n" % len(args) +
                       b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        line = self._line()
        if line[:1] == b"-":
            raise RuntimeError(f"redis: {line.decode()}")
        if line[:1] != b"$":
            return line.decode()
        n = int(line[1:])
        if n < 0:
            return None
        out = bytearray(n + 2)
        have = min(len(self.buf), n + 2)
        out[:have] = self.buf[:have]
        del self.buf[:have]
        mv = memoryview(out)
        while have < n + 2:
            k = self.s.recv_into(mv[have:])
            if not k:
                raise ConnectionError("redis closed the connection")
            have += k
        return mv[:n]


def redis_cmd(port, *args):
    r = Resp(port)
    try:
        return r.cmd(*args)
    finally:
        r.close()


def redis_baseline(ports, values):
    """GET `values` 1 MiB values from each server: MB/s sequentially
    (round-robin over the servers) and with one thread per server."""
    conns = [Resp(p) for p in ports]
    try:
        val = os.urandom(MIB)
        for c in conns:
            for j in range(values):
                c.cmd("SET", f"bench:{j}", val)
        total = len(ports) * values * MIB
        t0 = time.monotonic()
        for j in range(values):
            for c in conns:
                assert len(c.cmd("GET", f"bench:{j}")) == MIB
        seq = total / (time.monotonic() - t0) / 1e6
        errors = []

        def reader(c):
            try:
                for j in range(values):
                    assert len(c.cmd("GET", f"bench:{j}")) == MIB
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(c,)) for c in conns]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        par = total / (time.monotonic() - t0) / 1e6
        if errors:
            raise SystemExit(f"redis baseline failed: {errors[0]}")
        for c in conns:
            c.cmd("FLUSHALL")
        return seq, par
    finally:
        for c in conns:
            c.close()


def status(sock):
    """STATUS straight on qsfs-stor's control socket (no qsfs-ctl process)."""
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(sock))
        s.sendall(b"STATUS\n")
        out = bytearray()
        while not out.endswith(b"\n"):  # one reply line; the connection stays open
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return json.loads(out)


def busy(st):
    x = st["scrub"]
    return x["running"] or x["requested"] or x["check_requested"]


def wait_idle(sock, timeout=600):
    t0 = time.monotonic()
    while busy(status(sock)):
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"qsfs-stor still in a pass after {timeout} s")
        time.sleep(0.05)


def timed_pass(ctl, conf, sock, what):
    """Run `qsfs-ctl scrub|repair`; returns (seconds until the status shows
    the pass over, its scrub status, qsfs-ctl's output)."""
    wait_idle(sock)
    t0 = time.monotonic()
    p = subprocess.Popen([str(ctl), "-c", str(conf), what], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    seen = False
    while True:
        st = status(sock)
        now = time.monotonic()
        if busy(st):
            seen = True
        elif seen:
            break
        elif p.poll() is not None:  # qsfs-ctl is done and the pass was never seen
            break
        time.sleep(POLL_S)
    out = p.communicate()[0]
    if p.returncode:
        raise SystemExit(f"qsfs-ctl {what} failed (exit {p.returncode}):\n{out}")
    # not seen: the pass began and ended between two polls; now is when
    # qsfs-ctl was seen done (an upper bound)
    return now - t0, st["scrub"], out.strip()


def timed_check(sock, redis_proc, index):
    """Stop one redis-server until stor marks it down, continue it, and time
    the check pass stor starts when it answers again: from the first status
    showing the pass asked for or running to the first showing it over."""
    wait_idle(sock)
    if status(sock)["scrub"]["mode"] == "check":
        raise SystemExit("timed_check wants a scrub as the last pass")
    os.kill(redis_proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        while not status(sock)["backends"][index]["down_since"]:
            if time.monotonic() - t0 > 60:
                raise SystemExit("qsfs-stor did not mark a stopped redis-server down")
            time.sleep(0.05)
    finally:
        os.kill(redis_proc.pid, signal.SIGCONT)
    t0 = prev = time.monotonic()
    start = None
    while True:
        st = status(sock)
        now = time.monotonic()
        x = st["scrub"]
        if start is None and (x["check_requested"] or (x["running"] and x["mode"] == "check")):
            start = now
        elif start is None and x["mode"] == "check":  # began and ended between two polls
            start = prev
            break
        elif start is not None and not busy(st):
            break
        prev = now
        if now - t0 > 60:
            raise SystemExit("no check pass after the stopped redis-server came back")
        time.sleep(POLL_S)
    if x["mode"] != "check" or x["failed"] or x["checked"] != x["objects"]:
        raise SystemExit(f"check pass did not end clean: {x}")
    return now - start, x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--objects", type=int, default=24)
    ap.add_argument("--size", type=int, default=16, help="object size in MiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--level", type=int, default=1)
    a = ap.parse_args()
    build = Path(a.build)
    ctl, stord = build / "stor" / "qsfs-ctl", build / "stor" / "qsfs-stor"
    size = a.size * MIB
    work = Path(tempfile.mkdtemp(prefix="qsfs-bench-repair-", dir="/var/tmp"))
    redis, d = [], None
    try:
        for i in range(6):
            port = free_port()
            (work / f"redis{i}").mkdir()
            redis.append((port, subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--maxmemory", "0", "--dir", str(work / f"redis{i}")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        for port, _ in redis:
            wait_port(port)
        ports = [p for p, _ in redis]
        key = work / "key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        objs = []
        for i in range(a.objects):
            p = work / f"obj{i}"
            make_object(p, size)
            objs.append(p)
        total = a.objects * size
        codec = subprocess.run([str(build / "bench" / "bench-codec"), "--mib", "64", "--runs",
                                "3", "--level", str(a.level)], capture_output=True, text=True)
        print(codec.stdout.strip())
        r = {k: [] for k in ("scrub_read", "scrub_obj", "scrub_s", "repair", "repair_obj",
                             "repair_read", "repair_s", "check_s", "check_obj",
                             "redis_seq", "redis_par")}
        shard_bytes = 0
        for run in range(a.runs):
            for p in ports:
                assert redis_cmd(p, "FLUSHALL") == "+OK"
            # the raw redis baseline: about as many bytes as the scrub reads
            values = max(1, round(total * 3 / 4 / MIB / 6))
            seq, par = redis_baseline(ports, values)
            r["redis_seq"].append(seq)
            r["redis_par"].append(par)

            conf, sock, state = work / f"q{run}.yaml", work / f"s{run}.sock", work / f"state{run}"
            conf.write_text("\n".join([
                f"volume: benchrepair{run}", f"key_file: {key}", "cache:",
                f"  dir: {work}/cache{run}", "stor:", f"  socket: {sock}",
                f"  state_dir: {state}", f"  compression: zstd:{a.level}",
                "  scrub_rate: 100GiB", "  backends:",
            ] + [f"    - redis://127.0.0.1:{p}/0" for p in ports]) + "\n")
            c = lambda *x: subprocess.run([str(ctl), "-c", str(conf), *map(str, x)],
                                          capture_output=True, text=True, check=True)
            c("format")
            log = open(work / f"stor{run}.log", "w")
            d = subprocess.Popen([str(stord), "-c", str(conf)], stderr=log)
            log.close()
            while subprocess.run([str(ctl), "-c", str(conf), "status"],
                                 capture_output=True).returncode:
                if d.poll() is not None:
                    raise SystemExit("qsfs-stor exited:\n" +
                                     (work / f"stor{run}.log").read_text())
                time.sleep(0.02)
            for i, p in enumerate(objs):
                c("store", f"s{i + 1}", p)
            c("drain", "--timeout", "600")

            secs, x, out = timed_pass(ctl, conf, sock, "scrub")
            if x["checked"] != a.objects or x["bad_shards"] or x["failed"]:
                raise SystemExit(f"scrub of a whole volume was not clean: {out}")
            shard_bytes = x["bytes"]
            r["scrub_s"].append(secs)
            r["scrub_read"].append(x["bytes"] / secs / 1e6)
            r["scrub_obj"].append(total / secs / 1e6)

            lost = run % 6  # a different server each run
            before = int(redis_cmd(ports[lost], "DBSIZE")[1:])
            assert before > 0 and redis_cmd(ports[lost], "FLUSHALL") == "+OK"
            secs, x, out = timed_pass(ctl, conf, sock, "repair")
            if f" {a.objects} objects repaired, 0 failed" not in out or \
                    x["repaired"] != a.objects:
                raise SystemExit(f"repair did not rebuild all {a.objects} objects: {out}")
            if int(redis_cmd(ports[lost], "DBSIZE")[1:]) == 0:
                raise SystemExit("repair put nothing back on the flushed redis-server")
            st = status(sock)
            if st["redundancy"]["full"] != a.objects:
                raise SystemExit(f"not all objects at full redundancy: {st['redundancy']}")
            r["repair_s"].append(secs)
            r["repair"].append(x["repaired"] * size / secs / 1e6)
            r["repair_obj"].append(x["repaired"] / secs)
            r["repair_read"].append(x["bytes"] / secs / 1e6)

            secs, x = timed_check(sock, redis[(lost + 1) % 6][1], (lost + 1) % 6)
            r["check_s"].append(secs)
            r["check_obj"].append(x["checked"] / secs)

            d.terminate()
            if d.wait(60):
                raise SystemExit(f"qsfs-stor exited {d.returncode}:\n" +
                                 (work / f"stor{run}.log").read_text())
            d = None
            for p in ports:
                assert redis_cmd(p, "FLUSHALL") == "+OK"

        m = {k: statistics.median(v) for k, v in r.items()}
        print(f"\nbench-repair: {a.objects} x {a.size} MiB 2:1 objects "
              f"({total / MIB:.0f} MiB, {shard_bytes / MIB:.0f} MiB of shards), k=4 m=2 on 6 "
              f"loopback redis-servers, zstd:{a.level}, scrub_rate 100GiB, medians of "
              f"{a.runs}, {os.cpu_count()} cores")
        print(f"  scrub:  {m['scrub_read']:5.0f} MB/s of shards read, {m['scrub_obj']:5.0f} "
              f"MB/s of object data covered ({m['scrub_s']:.2f} s)")
        print(f"  repair: {m['repair']:5.0f} MB/s of object data rebuilt, "
              f"{m['repair_obj']:5.1f} objects/s, {m['repair_read']:5.0f} MB/s of shards checked "
              f"({m['repair_s']:.2f} s; one of six backends flushed, all {a.objects} objects "
              f"rebuilt)")
        print(f"  check:  {m['check_obj']:5.0f} objects/s ({m['check_s'] * 1000:.0f} ms for "
              f"{a.objects} objects; status polled every {POLL_S * 1000:.0f} ms)")
        print(f"  baseline, redis GET of 1 MiB values from Python: {m['redis_seq']:5.0f} MB/s "
              f"round-robin on one thread, {m['redis_par']:5.0f} MB/s with 6 threads "
              f"(one per server)")
    finally:
        if d is not None:
            d.kill()
            d.wait()
        for _, p in redis:
            try:
                os.kill(p.pid, signal.SIGCONT)
            except OSError:
                pass
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
