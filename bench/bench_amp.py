#!/usr/bin/env python3
"""Log bytes per written byte: how much the segment log grows for what an
application writes, for the write patterns of issue 17, with the time each
took and the cold read speed of a file fragmented by small overwrites.
Not run in CI; needs root (FUSE, drop_caches).

    bench/bench_amp.py [--build DIR] [--baseline-build DIR] [--runs N]
                       [--dir PARENT] [--file SIZE] [--small SIZE]

Each build given (--build, and --baseline-build for a second column, e.g.
the previous commit built in release) runs the same workloads on a fresh
volume (qsfs-fs alone, no stor: the log is what is measured), N times:
  seq 1 MiB:   FILE in 1 MiB writes, fsync
  seq 4 KiB:   SMALL in 4 KiB writes appended to a new file, fsync
  rand 4 KiB:  FILE laid out in 1 MiB writes (not counted), then SMALL in
               random aligned 4 KiB overwrites, fsync
  cold read:   after a remount and drop_caches, the fragmented file read
               in 1 MiB reads (MB/s), and the same for the seq 1 MiB file
  untar:       tar -x of /usr/include (made beforehand), fsync of the root
               (per byte of file data in the tar)
Log bytes are the growth of seg-*.qseg in the cache dir over the timed
writes (checkpoints not counted). Medians over the runs.
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fs import Qsfs, drop_caches, parse_size  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def write_seq(path, size, bs, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    mv = memoryview(data)
    t0 = time.monotonic()
    try:
        for off in range(0, size, bs):
            os.write(fd, mv[off % len(data):off % len(data) + bs])
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.monotonic() - t0


def write_rand(path, size, nbytes, data, rng):
    fd = os.open(path, os.O_WRONLY)
    slots = size // 4096
    mv = memoryview(data)
    t0 = time.monotonic()
    try:
        for i in range(nbytes // 4096):
            s = rng.randrange(slots)
            os.pwrite(fd, mv[(i * 4096) % len(data):(i * 4096) % len(data) + 4096], s * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.monotonic() - t0


def read_all(path):
    fd = os.open(path, os.O_RDONLY)
    t0 = time.monotonic()
    n = 0
    try:
        while True:
            b = os.read(fd, MIB)
            if not b:
                break
            n += len(b)
    finally:
        os.close(fd)
    return n / (time.monotonic() - t0) / 1e6


def fsync_root(mnt):
    fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def one_run(build, work, a, data, tarball, tar_data, seed):
    q = Qsfs(work, build, a.segment_size, hook=False)
    q.setup()
    out = {}
    try:
        m = q.mnt

        def measured(key, fn, written):
            before = q.log_bytes()
            t = fn()
            out[key + "_amp"] = (q.log_bytes() - before) / written
            out[key + "_mbs"] = written / t / 1e6

        measured("seq1m", lambda: write_seq(m / "seq1m", a.file, MIB, data), a.file)
        measured("seq4k", lambda: write_seq(m / "seq4k", a.small, 4096, data), a.small)
        write_seq(m / "rand", a.file, MIB, data)
        rng = random.Random(seed)
        measured("rand4k", lambda: write_rand(m / "rand", a.file, a.small, data, rng), a.small)
        q.remount()
        drop_caches()
        out["read_frag_mbs"] = read_all(m / "rand")
        drop_caches()
        out["read_seq_mbs"] = read_all(m / "seq1m")

        def untar():
            t0 = time.monotonic()
            (m / "tree").mkdir()
            subprocess.run(["tar", "-xf", tarball, "-C", m / "tree"], check=True)
            fsync_root(m)
            return time.monotonic() - t0

        measured("untar", untar, tar_data)
        q.unmount()
    finally:
        q.teardown()
    return out


ROWS = [("seq 1 MiB writes", "seq1m", 1.01), ("seq 4 KiB writes", "seq4k", 1.1),
        ("random 4 KiB overwrites", "rand4k", 1.5), ("untar /usr/include", "untar", 1.2)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, default=REPO / "build")
    ap.add_argument("--baseline-build", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"))
    ap.add_argument("--file", type=parse_size, default=64 * MIB)
    ap.add_argument("--small", type=parse_size, default=16 * MIB)
    ap.add_argument("--segment-size", type=parse_size, default=64 * MIB)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_amp: needs root (FUSE, drop_caches)")
    work = Path(tempfile.mkdtemp(prefix="qsfs-bench-amp-", dir=a.dir))
    data = os.urandom(64 * MIB)
    tarball = work / "include.tar"
    subprocess.run(["tar", "-cf", tarball, "-C", "/usr", "include"], check=True)
    with tarfile.open(tarball) as t:
        tar_data = sum(x.size for x in t.getmembers() if x.isfile())
    builds = [("this build", a.build)]
    if a.baseline_build:
        builds.append(("baseline", a.baseline_build))
    res = {name: [] for name, _ in builds}
    for r in range(a.runs):
        for name, b in builds:  # interleaved, so drift hits both alike
            res[name].append(one_run(b, work, a, data, tarball, tar_data, seed=r))
            print(f"run {r + 1}/{a.runs} {name}: done", file=sys.stderr)

    def med(name, key):
        return statistics.median(x[key] for x in res[name])

    names = [n for n, _ in builds]
    print(f"\nlog bytes per written byte (median of {a.runs}; file {a.file >> 20} MiB, "
          f"small {a.small >> 20} MiB, tar file data {tar_data / 1e6:.1f} MB)")
    print(f"| workload | goal | " + " | ".join(f"{n}: amp, MB/s" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for label, key, goal in ROWS:
        cells = [f"{med(n, key + '_amp'):.3f}, {med(n, key + '_mbs'):.1f}" for n in names]
        print(f"| {label} | <= {goal} | " + " | ".join(cells) + " |")
    for label, key in (("cold read, file after random 4 KiB overwrites", "read_frag_mbs"),
                       ("cold read, file written in 1 MiB writes", "read_seq_mbs")):
        print(f"| {label} (MB/s) | report | "
              + " | ".join(f"{med(n, key):.0f}" for n in names) + " |")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
