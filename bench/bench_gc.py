#!/usr/bin/env python3
"""Garbage collection figures (issue 17): remote bytes under an overwrite
workload, after deleting everything, and what the collector costs the
writes. Not run in CI; needs root (FUSE) and, for the plot,
python3-matplotlib.

    bench/bench_gc.py [--build DIR] [--rounds N] [--file SIZE]
                      [--dir PARENT] [--png FILE]

The workload of the issue, on six dir:// backends (k=4, m=2), 4 MiB
segments: a FILE of random bytes, then N rounds of random 4 KiB overwrites
(a quarter of FILE each), each round fsync'd and drained. Three volumes:
  off:        cache.gc_interval 0 and no `qsfs-ctl gc` (the baseline: what
              the backends hold without collection)
  collected:  the same, with `qsfs-ctl gc` after each round (the collector
              settled); then `rm` of everything and one more `qsfs-ctl gc`
  background: the collector running every second during the rounds (for
              the throughput of the overwrites, against "off")
Printed: remote bytes after each round (all backends; shards and
metadata), the bound of the issue (1.3 x (k+m)/k x live), remote bytes
after rm + gc against the peak, overwrite MB/s with and without the
background collector, and the collector's own MB moved per CPU-second
(from bench-clean). --png draws remote bytes over the rounds.
"""
import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fs import Qsfs, parse_size, run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def remote_bytes(q):
    total = 0
    for b in q.backends:
        for d, _, files in os.walk(b):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(d, f))
                except FileNotFoundError:
                    pass
    return total


def overwrite(path, size, nbytes, rng):
    """Random aligned 4 KiB overwrites of nbytes in all; returns seconds."""
    fd = os.open(path, os.O_WRONLY)
    slots = size // 4096
    pool = memoryview(os.urandom(nbytes))  # incompressible, no two writes alike
    t0 = time.monotonic()
    try:
        for i in range(nbytes // 4096):
            os.pwrite(fd, pool[i * 4096:(i + 1) * 4096], rng.randrange(slots) * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.monotonic() - t0


def gc(q):
    run([q.ctl_bin, "-c", q.conf, "gc", "--timeout", "300"], timeout=400)


def workload(q, size, rounds, collect, rng):
    f = q.mnt / "f"
    with open(f, "wb") as fh:
        for _ in range(size // MIB):
            fh.write(os.urandom(MIB))
        fh.flush()
        os.fsync(fh.fileno())
    q.drain()
    if collect:
        gc(q)
    remote = [remote_bytes(q)]
    secs = []
    for _ in range(rounds):
        secs.append(overwrite(f, size, size // 4, rng))
        q.drain()
        if collect:
            gc(q)
        remote.append(remote_bytes(q))
    return remote, secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--file", default="64MiB")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--png")
    a = ap.parse_args()
    build = Path(a.build)
    size = parse_size(a.file)
    work = Path(tempfile.mkdtemp(prefix="qsfs-bench-gc-", dir=a.dir))
    rng = random.Random(17)
    res = {}
    for name, extra, collect in (("off", ["  gc_interval: 0"], False),
                                 ("collected", ["  gc_interval: 0"], True),
                                 ("background", ["  gc_interval: 1"], False)):
        q = Qsfs(work / name, build, "4MiB", extra_cache=extra)
        (work / name).mkdir(parents=True, exist_ok=True)
        q.setup()
        try:
            remote, secs = workload(q, size, a.rounds, collect, rng)
            after_rm = None
            if collect:
                os.unlink(q.mnt / "f")
                q.drain()
                gc(q)
                after_rm = remote_bytes(q)
            res[name] = (remote, secs, after_rm)
        finally:
            q.unmount()
            if q.stor:
                q.stor.terminate()
                q.stor.wait(timeout=600)
    bound = 1.3 * 6 / 4 * size
    print(f"# file {size // MIB} MiB, {a.rounds} rounds of {size // 4 // MIB} MiB of random "
          f"4 KiB overwrites; 6 dir:// backends, k=4 m=2, 4 MiB segments")
    print("| after | no collection, MB | qsfs-ctl gc each round, MB | x live x (k+m)/k |")
    print("|---|---|---|---|")
    for i in range(a.rounds + 1):
        off = res["off"][0][i] / 1e6
        col = res["collected"][0][i] / 1e6
        print(f"| {'write' if i == 0 else f'round {i}'} | {off:.0f} | {col:.0f} | "
              f"{res['collected'][0][i] / (1.5 * size):.2f} |")
    peak = max(res["collected"][0])
    print(f"bound (1.3 x (k+m)/k x live): {bound / 1e6:.0f} MB; after the last round: "
          f"{res['collected'][0][-1] / 1e6:.0f} MB "
          f"({'met' if res['collected'][0][-1] <= bound else 'NOT met'})")
    print(f"rm of everything + qsfs-ctl gc: {res['collected'][2] / 1e6:.2f} MB, "
          f"{100 * res['collected'][2] / peak:.2f} % of the peak {peak / 1e6:.0f} MB (goal 2 %)")
    mbps = lambda secs: statistics.median((size // 4) / s / 1e6 for s in secs)  # noqa: E731
    off_t, bg_t = mbps(res["off"][1]), mbps(res["background"][1])
    print(f"random 4 KiB overwrites, median MB/s: collector off {off_t:.1f}, running every "
          f"second {bg_t:.1f} ({100 * bg_t / off_t:.0f} %, goal >= 75 %)")
    print(f"background run, remote bytes per round: "
          f"{[round(x / 1e6) for x in res['background'][0]]}")
    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        xs = list(range(a.rounds + 1))
        plt.figure(figsize=(7, 4))
        for name, label in (("off", "no collection"), ("collected", "qsfs-ctl gc each round"),
                            ("background", "collector every 1 s")):
            plt.plot(xs, [x / 1e6 for x in res[name][0]], marker="o", label=label)
        plt.axhline(bound / 1e6, linestyle="--", color="grey",
                    label="1.3 x (k+m)/k x live")
        plt.xlabel("round (0: the first write)")
        plt.ylabel("remote bytes, MB (all backends)")
        plt.legend()
        plt.tight_layout()
        plt.savefig(a.png, dpi=100)
        print(f"plot: {a.png}")


if __name__ == "__main__":
    main()
