#!/usr/bin/env python3
"""Cold read latency with one slow backend (issue 19): six loopback
redis-servers (k=4, m=2), the sixth behind a proxy that relays its replies
either as they come or trickled at --rate bytes/s (it still answers its PING
in time: the health probe sees nothing wrong). For each build, the time of
`qsfs-ctl retrieve` of a 64 MiB 2:1 object (eight pieces per shard) and of a
256 KiB one (one piece per shard), the proxy at full speed (the baseline)
and trickling; reads --gap seconds apart (the old code marked the backend
down after each read, and its probe brought it back within 2 s). Medians of
--reads reads (a failed read counts with its time, and is reported); the
state status gives the backend afterwards.

    bench/bench_slow_backend.py [--build DIR] [--baseline-build DIR] [--reads N]
                                [--rate BYTES] [--gap S]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchutil import Proxy, free_port, make_object, wait_port

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def measure(build, label, ports, slow, work, key, objs, a):
    ctl, stord = build / "stor" / "qsfs-ctl", build / "stor" / "qsfs-stor"
    conf = work / f"{label}.yaml"
    conf.write_text("\n".join([
        f"volume: {label}", f"key_file: {key}", "cache:", f"  dir: {work}/cache-{label}",
        "stor:", f"  socket: {work}/{label}.sock", f"  state_dir: {work}/state-{label}",
        "  compression: zstd:1", "  workers: 1", "  backends:",
    ] + [f"    - redis://127.0.0.1:{p}/0" for p in ports[:5]] +
        [f"    - redis://127.0.0.1:{slow.port}/0"]) + "\n")

    def c(*x, check=True):
        return subprocess.run([str(ctl), "-c", str(conf), *map(str, x)], capture_output=True,
                              text=True, check=check, timeout=300)
    slow.rate = None
    c("format")
    d = subprocess.Popen([str(stord), "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        while c("status", check=False).returncode:
            time.sleep(0.02)
        for name, (p, _) in objs.items():
            c("store", name, p)
        c("drain")
        out = {}
        for rate in (None, a.rate):
            slow.rate = rate
            for name, (p, size) in objs.items():
                ts, failed = [], []
                for _ in range(a.reads):
                    time.sleep(a.gap)
                    t0 = time.monotonic()
                    r = c("retrieve", name, work / "back", check=False)
                    ts.append(time.monotonic() - t0)
                    if r.returncode:
                        failed.append(r.stderr.strip())
                    else:
                        assert (work / "back").read_bytes() == p.read_bytes()
                st = json.loads(c("status", "--json").stdout)
                state = st["backends"][5]["state"]
                out[(size, rate)] = (statistics.median(ts), min(ts), max(ts), state, failed)
        return out
    finally:
        slow.rate = None
        d.terminate()
        d.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--baseline-build", help="another build (the old code) to compare")
    ap.add_argument("--reads", type=int, default=5)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--gap", type=float, default=2.5)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qsfs-bench-slow-", dir="/var/tmp"))
    procs = []
    try:
        ports = [free_port() for _ in range(6)]
        for port in ports:
            procs.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            wait_port(port)
        slow = Proxy(ports[5])
        key = work / "key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        objs = {}
        for i, size in enumerate((64 * MIB, 256 << 10)):
            p = work / f"obj{i}"
            make_object(p, size)
            objs[f"s{i + 1}"] = (p, size)
        builds = [("new", Path(a.build))]
        if a.baseline_build:
            builds.insert(0, ("old", Path(a.baseline_build)))
        print(f"bench-slow-backend: k=4 m=2 on 6 loopback redis-servers, the sixth behind a "
              f"proxy; median (min-max) of {a.reads} cold retrieves, {a.gap} s apart, "
              f"{os.cpu_count()} cores")
        for label, build in builds:
            res = measure(build, label, ports, slow, work, key, objs, a)
            for (size, rate), (med, lo, hi, state, failed) in res.items():
                what = f"trickling {rate} B/s" if rate else "full speed (baseline)"
                print(f"  {label:3} {size // 1024:6} KiB, sixth backend {what:22}: "
                      f"{med * 1000:7.0f} ms ({lo * 1000:.0f}-{hi * 1000:.0f}); status: {state}"
                      + (f"; {len(failed)} of {a.reads} FAILED, e.g. {failed[0]}" if failed
                         else ""))
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
