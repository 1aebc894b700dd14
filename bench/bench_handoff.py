#!/usr/bin/env python3
"""The channel from qsfs-fs to qsfs-stor (issue 18): what one hand-off
costs, and how many control-socket connections a mount opens. Not run in
CI; needs root (FUSE).

    bench/bench_handoff.py [--build DIR] [--old-build DIR] [--segments N]
                           [--idle S] [--dir PARENT]

Variants, each on a fresh volume of six dir:// backends (k=4, m=2) with
128 KiB segments (one 64 KiB block record each, so every 64 KiB write
seals a segment):
  none      cache.handoff: none, no qsfs-stor: the cost of the writes alone
  hook      the shell hook (hooks/qsfs-hook -> qsfs-ctl store), the path
            every hand-off took before
  stor      qsfs-fs hands off through its own client (the default now)
  old hook  --old-build: a build of the code before this change, with its
            hook (its monitor asked STATUS and one CONFIRMED per segment)
qsfs-fs reaches stor through a counting proxy (a second socket; stor
itself listens on the real one), so connections are counted the same way
for every build.

Per variant: N segments written (64 KiB + fsync each) and drained; then
  hand-off latency  mean time from the hand-off's start to STORE
                    acknowledged (fs-status.json's handoff_seconds /
                    handoffs_done; not known for the old build)
  CPU/hand-off      CPU seconds of qsfs-fs (with its hook children) and
                    qsfs-stor during write + drain, minus the "none"
                    variant's, per hand-off
  conn/min idle     connections opened in --idle seconds, per minute, with
                    every segment confirmed
  conn/min pending  the same with N more segments handed off but not
                    uploadable (the backends moved away, a file in their
                    place), so none of them is confirmed
  floor             STORE straight on stor's socket from this script, one
                    kept connection (what a hand-off cannot go below: stor
                    journals the object with a hard link and fsyncs)
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchutil import relay

REPO = Path(__file__).resolve().parents[1]
CLK = os.sysconf("SC_CLK_TCK")


class Proxy:
    """Unix-socket proxy that counts the connections it forwards."""

    def __init__(self, listen: Path, target: Path):
        self.target = str(target)
        self.count = 0
        self.lock = threading.Lock()
        self.ls = socket.socket(socket.AF_UNIX)
        self.ls.bind(str(listen))
        self.ls.listen(256)
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.count += 1
            try:
                u = socket.socket(socket.AF_UNIX)
                u.connect(self.target)
            except OSError:
                c.close()
                continue
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=relay, args=(a, b), daemon=True).start()

    def close(self):
        self.ls.close()


def cpu(pid):
    """utime + stime + the waited-for children's, in seconds."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15]) / CLK


class Stack:
    def __init__(self, work: Path, build: Path, mode: str, segments: int):
        self.work, self.build, self.mode = work, build, mode
        self.cache = work / "cache"
        self.mnt = work / "mnt"
        self.mnt.mkdir()
        key = work / "key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        self.backends = [work / f"b{i}" for i in range(6)]
        cache = ["cache:", f"  dir: {self.cache}", "  segment_size: 128KiB",
                 "  max_segment_age: 0", "  gc_interval: 0", "  hook_timeout: 120"]
        if mode == "none":
            cache.append("  handoff: none")
        elif mode.endswith("hook"):
            cache.append(f"  hook: {self.src() / 'hooks' / 'qsfs-hook'}")

        def conf(sock):
            return "\n".join(
                ["volume: bench", f"key_file: {key}"] + cache +
                ["fs:", f"  mountpoint: {self.mnt}", "stor:", f"  socket: {sock}",
                 f"  state_dir: {work}/stor", "  workers: 2", "  backends:"] +
                [f"    - dir://{b}" for b in self.backends]) + "\n"
        self.stor_conf = work / "stor.yaml"
        self.stor_conf.write_text(conf(work / "stor.sock"))
        self.fs_conf = work / "fs.yaml"  # the same, but stor's socket is the proxy
        self.fs_conf.write_text(conf(work / "proxy.sock"))
        self.ctl = str(build / "stor" / "qsfs-ctl")
        subprocess.run([self.ctl, "-c", self.stor_conf, "format"], check=True,
                       capture_output=True)
        self.proxy = Proxy(work / "proxy.sock", work / "stor.sock")
        self.stor = None
        env = dict(os.environ, QSFS_CTL=self.ctl, QSFS_LOG="warn")
        if mode != "none":
            self.stor = subprocess.Popen([str(build / "stor" / "qsfs-stor"), "-c",
                                          self.stor_conf], env=env,
                                         stderr=open(work / "stor.log", "ab"))
            for _ in range(500):
                if (work / "stor.sock").exists():
                    break
                time.sleep(0.02)
        self.fs = subprocess.Popen([str(build / "fs" / "qsfs-fs"), "-c", self.fs_conf],
                                   env=env, stderr=open(work / "fs.log", "ab"))
        for _ in range(500):
            if os.path.ismount(self.mnt):
                break
            time.sleep(0.02)
        else:
            raise SystemExit(f"{mode}: qsfs-fs did not mount: {(work / 'fs.log').read_text()}")
        self.segments = segments

    def src(self):
        # the old build's hook is its own source tree's
        return Path(os.environ.get("BENCH_OLD_SRC", REPO)) if self.mode == "old hook" \
            else REPO

    def status(self):
        try:
            return json.loads((self.cache / "fs-status.json").read_text())
        except (OSError, ValueError):
            return {}

    def write(self, name):
        blk = os.urandom(64 << 10)
        with open(self.mnt / name, "wb") as f:
            for _ in range(self.segments):
                f.write(blk)
                f.flush()
                os.fsync(f.fileno())

    def cpu(self):
        return cpu(self.fs.pid) + (cpu(self.stor.pid) if self.stor else 0.0)

    def wait_fs(self, pred, timeout=600):
        t = time.monotonic() + timeout
        while time.monotonic() < t:
            st = self.status()
            if st and pred(st):
                return st
            time.sleep(0.2)
        raise SystemExit(f"{self.mode}: timed out; last status {self.status()}")

    def drain(self):
        if self.mode == "none":
            return
        subprocess.run([self.ctl, "-c", self.stor_conf, "drain", "--timeout", "600"],
                       check=True, capture_output=True)
        self.wait_fs(lambda s: s.get("segments_unconfirmed", 1) == 0 and
                     not s.get("hooks_pending", 1))

    def idle(self, seconds):
        c0 = self.proxy.count
        time.sleep(seconds)
        return (self.proxy.count - c0) * 60.0 / seconds

    def close(self):
        for p in (self.fs, self.stor):
            if p and p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True)
        self.proxy.close()


def store_floor(s, n=200):
    """The floor under a hand-off: STORE straight on stor's socket, one
    kept connection, no qsfs-fs (stor journals it: a hard link and two
    fsyncs). Mean ms."""
    f = s.work / "obj"
    f.write_bytes(os.urandom(128 << 10))
    c = socket.socket(socket.AF_UNIX)
    c.connect(str(s.work / "stor.sock"))
    t0 = time.monotonic()
    for i in range(n):
        c.sendall(f"STORE s{10_000_000 + i} {f}\n".encode())
        reply = b""
        while not reply.endswith(b"\n"):
            reply += c.recv(4096)
        assert reply == b"OK\n", reply
    el = time.monotonic() - t0
    c.close()
    return el * 1000 / n


def variant(parent, build, mode, a):
    work = Path(tempfile.mkdtemp(prefix="handoff-", dir=parent))
    s = Stack(work, build, mode, a.segments)
    try:
        c0 = s.cpu()
        t0 = time.monotonic()
        s.write("a")
        s.drain()
        wall = time.monotonic() - t0
        c1 = s.cpu()
        st = s.status()
        r = {"mode": mode, "cpu": c1 - c0, "wall": wall,
             "handoffs": st.get("handoffs_done"), "handoff_s": st.get("handoff_seconds"),
             "segments": st.get("segments")}
        if mode == "none":
            return r
        r["idle"] = s.idle(a.idle)
        # the backends go away: N more segments are handed off, none is confirmed
        for b in s.backends:  # a file in its place: a dir:// backend cannot recreate it
            b.rename(b.with_name(b.name + ".away"))
            b.write_text("away\n")
        s.write("b")
        s.wait_fs(lambda x: not x.get("hooks_pending", 1) and
                  x.get("segments_unconfirmed", 0) >= a.segments * 0.9)
        r["pending"] = s.idle(a.idle)
        r["unconfirmed"] = s.status().get("segments_unconfirmed")
        if mode == "stor":
            r["floor"] = store_floor(s)
        return r
    finally:
        s.close()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--old-build", help="a build of the code before (with its source "
                    "tree in BENCH_OLD_SRC for its hook)")
    ap.add_argument("--segments", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--dir", default="/var/tmp")
    a = ap.parse_args()
    variants = [("none", Path(a.build)), ("hook", Path(a.build)), ("stor", Path(a.build))]
    if a.old_build:
        variants.append(("old hook", Path(a.old_build)))
    res = [variant(a.dir, b, m, a) for m, b in variants]
    base = res[0]["cpu"]
    print(f"{a.segments} segments of 128 KiB written (64 KiB + fsync each) and drained; "
          f"idle windows of {a.idle:.0f} s")
    print(f"{'variant':10} {'hand-offs':>9} {'latency ms':>10} {'CPU ms/hand-off':>15} "
          f"{'write+drain s':>13} {'conn/min idle':>13} {'conn/min pending':>16}")
    for r in res:
        n = r["handoffs"] or a.segments
        lat = f"{r['handoff_s'] * 1000 / n:.2f}" if r.get("handoffs") else "-"
        extra = "-" if r["mode"] == "none" else f"{(r['cpu'] - base) * 1000 / n:.2f}"
        print(f"{r['mode']:10} {r['handoffs'] if r['handoffs'] is not None else '-':>9} "
              f"{lat:>10} {extra:>15} {r['wall']:>13.1f} "
              f"{r.get('idle', float('nan')):>13.1f} {r.get('pending', float('nan')):>16.1f}")
    fl = [r["floor"] for r in res if "floor" in r]
    if fl:
        print(f"floor: STORE on stor's socket alone (journal link + fsyncs): {fl[0]:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
