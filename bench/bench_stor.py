#!/usr/bin/env python3
"""Store pipeline to six loopback redis-servers (k=4, m=2), 2:1 compressible
64 MiB objects: store throughput with 1 and 2 workers, retrieve throughput,
time to a complete 64 MiB retrieve (the first byte a cache read can use), and
qsfs-stor's peak RSS. Baselines in the same run: bench-codec's single-core
stage speeds. Medians over several runs. Not run in CI.

    bench/bench_stor.py [--build DIR] [--objects N] [--runs N] [--level L]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchutil import free_port, make_object, wait_port

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def cpu_seconds(pid):
    """user + system CPU time of a process so far"""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--objects", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--level", type=int, default=1)
    a = ap.parse_args()
    build = Path(a.build)
    ctl, stord = build / "stor" / "qsfs-ctl", build / "stor" / "qsfs-stor"
    work = Path(tempfile.mkdtemp(prefix="qsfs-bench-stor-", dir="/var/tmp"))
    redis = []
    try:
        for i in range(6):
            port = free_port()
            redis.append((port, subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--maxmemory", "0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        for port, _ in redis:
            wait_port(port)
        key = work / "key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        objs = []
        for i in range(a.objects):
            p = work / f"obj{i}"
            make_object(p, 64 * MIB)
            objs.append(p)
        total = a.objects * 64 * MIB
        codec = subprocess.run([str(build / "bench" / "bench-codec"), "--mib", "64", "--runs",
                                "3", "--level", str(a.level)], capture_output=True, text=True)
        print(codec.stdout.strip())
        results = {}
        for workers in (1, 2):
            st, rt, ttfb, rss, cpu = [], [], [], [], []
            for run in range(a.runs):
                conf = work / f"q{workers}{run}.yaml"
                conf.write_text("\n".join([
                    f"volume: bench{workers}{run}", f"key_file: {key}", "cache:",
                    f"  dir: {work}/cache", "stor:", f"  socket: {work}/s{workers}{run}.sock",
                    f"  state_dir: {work}/state{workers}{run}", f"  compression: zstd:{a.level}",
                    f"  workers: {workers}", "  backends:",
                ] + [f"    - redis://127.0.0.1:{p}/0" for p, _ in redis]) + "\n")
                c = lambda *x: subprocess.run([str(ctl), "-c", str(conf), *map(str, x)],
                                              capture_output=True, text=True, check=True)
                c("format")
                d = subprocess.Popen([str(stord), "-c", str(conf)], stderr=subprocess.DEVNULL)
                while subprocess.run([str(ctl), "-c", str(conf), "status"],
                                     capture_output=True).returncode:
                    time.sleep(0.02)
                cpu0 = cpu_seconds(d.pid)
                t0 = time.monotonic()
                for i, p in enumerate(objs):
                    c("store", f"s{run * 1000 + i + 1}", p)
                c("drain")
                st.append(total / (time.monotonic() - t0) / 1e6)
                cpu.append(total / (cpu_seconds(d.pid) - cpu0) / 1e6)
                t0 = time.monotonic()
                for i in range(a.objects):
                    t1 = time.monotonic()
                    c("retrieve", f"s{run * 1000 + i + 1}", work / "back")
                    ttfb.append(time.monotonic() - t1)
                rt.append(total / (time.monotonic() - t0) / 1e6)
                with open(f"/proc/{d.pid}/status") as f:
                    rss += [int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM")]
                d.terminate()
                d.wait()
                assert (work / "back").read_bytes() == objs[-1].read_bytes()
            results[workers] = (statistics.median(st), statistics.median(rt),
                                statistics.median(ttfb), max(rss), statistics.median(cpu))
        print(f"\nbench-stor: {a.objects} x 64 MiB 2:1 objects, k=4 m=2 on 6 loopback "
              f"redis-servers, zstd:{a.level}, medians of {a.runs}, {os.cpu_count()} cores")
        for w, (s, r, t, m, u) in results.items():
            print(f"  {w} worker{'s' if w > 1 else ' '}: store {s:4.0f} MB/s ({u:4.0f} MB per "
                  f"qsfs-stor CPU-second), retrieve {r:4.0f} MB/s, 64 MiB retrieve "
                  f"{t * 1000:4.0f} ms, peak RSS {m:4.0f} MiB")
        print("  goals: store >= 250 MB/s per core used; a 64 MiB cold read under 0.5 s")
    finally:
        for _, p in redis:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
