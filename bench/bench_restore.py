#!/usr/bin/env python3
"""Fresh-node restore time: how long qsfs-fs takes from start to a usable
mount when its cache directory and stor's state directory are empty and
the volume (of 50 or 500 sealed segments) exists only on the backends.
Baseline in the same run: a normal start of the same volume with its local
cache intact. Medians over --runs. Not run in CI; needs root (FUSE).

    bench/bench_restore.py [--build DIR] [--runs N] [--segments 50,500] [--deltas N]
                           [--redis] [--rtt-ms MS]

Backends are six dir:// directories on the measured disk; segments are
256 KiB so that 500 segments stay quick to write. The volume holds files
of 64 KiB (four per segment) written through the mount; a clean stop seals
the last segment and `qsfs-ctl drain` waits for every upload. A restore
fetches the catalog's checkpoints and the segments after them; it must not
depend on the number of segments (the other segments come back on first
read), which is what the two sizes show.

--deltas N adds a volume whose restore is mostly checkpoints: 20,000 files
of 1 KiB (a full checkpoint of some MiB), then N rounds of one small write
and a `qsfs-ctl drain` (a seal, so a delta checkpoint each). The deltas add
up to less than the full, so none is merged away and a restore fetches
every one of them: small objects, where a restore waits on round trips.

--redis puts the backends on six loopback redis-servers instead of dir://
directories; --rtt-ms MS (with --redis, root) makes each of them MS
milliseconds of round trip away (each behind a proxy that holds requests
that long, tests/integration/tcpproxy.py): backends on other machines, as in
production.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--segments", default="50,500")
    ap.add_argument("--deltas", type=int, default=0)
    ap.add_argument("--redis", action="store_true")
    ap.add_argument("--rtt-ms", type=float, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    from benchutil import Proxy, free_port, wait_port  # noqa: E402
    redises = []
    if args.redis:
        for _ in range(6):
            port = free_port()
            d = tempfile.mkdtemp(prefix="qsfs-bench-redis-", dir="/var/tmp")
            redises.append((port, d, subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", d],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            wait_port(port)
        args.backends = [f"redis://127.0.0.1:{p}/0" for p, _, _ in redises]
    else:
        args.backends = None
    args.redis_ports = [p for p, _, _ in redises]
    try:
        if args.rtt_ms:
            assert args.redis, "--rtt-ms needs --redis"
            proxies = [Proxy(p, delay=args.rtt_ms / 1000) for p, _, _ in redises]
            args.backends = [f"redis://127.0.0.1:{x.port}/0" for x in proxies]
            print(f"backends: 6 redis-servers {args.rtt_ms} ms of round trip away "
                  f"(each behind a delaying proxy)", flush=True)
        run(args)
    finally:
        for _, d, proc in redises:
            proc.kill()
            proc.wait()
            shutil.rmtree(d, ignore_errors=True)


def run(args):
    os.environ["QSFS_BUILD_DIR"] = args.build
    os.environ.setdefault("QSFS_LOG", "warn")
    from qsfs_mount import Volume  # noqa: E402

    if args.deltas:
        bench_deltas(args, Volume)
    for nseg in [int(x) for x in args.segments.split(",") if x]:
        tmp = Path(tempfile.mkdtemp(prefix="qsfs-bench-restore-", dir="/var/tmp"))
        vol = Volume(tmp, segment_size="256KiB", **backends_kw(args))
        try:
            vol.start_stor()
            vol.mount()
            block = os.urandom(64 << 10)
            for i in range(nseg * 4):
                d = vol.mnt / f"d{i // 100}"
                d.mkdir(exist_ok=True)
                (d / f"f{i}").write_bytes(block[:-8] + i.to_bytes(8, "little"))
            assert vol.unmount() == 0
            vol.ctl("drain", "--timeout", "600")
            segs = len([p for p in vol.cache.iterdir() if p.name.startswith("seg-")])
            want = block[:-8] + (7).to_bytes(8, "little")
            normal, restore = measure(vol, tmp, args.runs, lambda: (
                (vol.mnt / "d0" / "f7").read_bytes() == want))
            ck = sum(p.stat().st_size for p in vol.cache.iterdir() if p.name.startswith("ckpt-"))
            report(f"{nseg} segments ({segs} local files before the first restore, "
                   f"{ck / 1024:.0f} KiB of checkpoints)", normal, restore)
        finally:
            vol.close()
            shutil.rmtree(tmp, ignore_errors=True)
            flush_redis(args)


def measure(vol, tmp, runs, intact):
    """runs x (a normal start of vol, then a fresh-node restore of it), each
    timed to a mount that answers a stat; intact() must hold after every
    restore. vol: stopped, drained. Returns the two lists of seconds."""
    normal, restore = [], []
    for _ in range(runs):
        t = time.monotonic()
        vol.mount()
        os.stat(vol.mnt / "d0" / "f0")
        normal.append(time.monotonic() - t)
        assert vol.unmount() == 0
        vol.ctl("drain", "--timeout", "600")
        vol.stop_stor()
        shutil.rmtree(vol.cache)
        shutil.rmtree(tmp / "stor")
        vol.start_stor()
        t = time.monotonic()
        vol.mount(timeout=600)
        os.stat(vol.mnt / "d0" / "f0")
        restore.append(time.monotonic() - t)
        assert intact()
        assert vol.unmount() == 0
        vol.ctl("drain", "--timeout", "600")
    return normal, restore


def report(what, normal, restore):
    print(f"{what}: restore to a usable mount {statistics.median(restore) * 1000:.0f} ms "
          f"(median of {len(restore)}; runs {', '.join(f'{x * 1000:.0f}' for x in restore)}), "
          f"normal start {statistics.median(normal) * 1000:.0f} ms", flush=True)


def backends_kw(args):
    return {"backends": args.backends} if args.backends else {}


def flush_redis(args):
    """A volume's objects gone from the redis backends (between volumes)."""
    import socket
    for port in args.redis_ports:
        with socket.create_connection(("127.0.0.1", port), 10) as c:
            c.sendall(b"FLUSHALL\r\n")
            c.recv(100)


def bench_deltas(args, Volume):
    tmp = Path(tempfile.mkdtemp(prefix="qsfs-bench-restore-", dir="/var/tmp"))
    vol = Volume(tmp, segment_size="1MiB", **backends_kw(args))
    level = os.environ.get("QSFS_LOG")
    os.environ["QSFS_LOG"] = "info"  # the restore's line says how many it fetched
    try:
        vol.start_stor()
        vol.mount()
        for i in range(20000):
            d = vol.mnt / f"d{i // 1000}"
            d.mkdir(exist_ok=True)
            (d / f"f{i}").write_bytes(i.to_bytes(8, "little") * 128)
        vol.ctl("drain", "--timeout", "600")
        for i in range(args.deltas):
            (vol.mnt / "d0" / f"f{i}").write_bytes(b"x" * 1024)
            vol.ctl("drain", "--timeout", "600")
        assert vol.unmount() == 0
        vol.ctl("drain", "--timeout", "600")
        normal, restore = measure(vol, tmp, args.runs, lambda: (
            (vol.mnt / "d1" / "f1001").read_bytes() == (1001).to_bytes(8, "little") * 128))
        nck = re.findall(r"(\d+) checkpoints \(up to segment", vol.fs_log.read_text())[-1]
        report(f"20,000 files and {args.deltas} seals after them ({nck} checkpoints fetched)",
               normal, restore)
    finally:
        vol.close()
        shutil.rmtree(tmp, ignore_errors=True)
        flush_redis(args)
        if level is None:
            del os.environ["QSFS_LOG"]
        else:
            os.environ["QSFS_LOG"] = level


if __name__ == "__main__":
    main()
