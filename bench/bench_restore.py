#!/usr/bin/env python3
"""Fresh-node restore time: how long qsfs-fs takes from start to a usable
mount when its cache directory and stor's state directory are empty and
the volume (of 50 or 500 sealed segments) exists only on the backends.
Baseline in the same run: a normal start of the same volume with its local
cache intact. Medians over --runs. Not run in CI; needs root (FUSE).

    bench/bench_restore.py [--build DIR] [--runs N] [--segments 50,500]

Backends are six dir:// directories on the measured disk; segments are
256 KiB so that 500 segments stay quick to write. The volume holds files
of 64 KiB (four per segment) written through the mount; a clean stop seals
the last segment and `qsfs-ctl drain` waits for every upload. A restore
fetches the catalog's checkpoints and the segments after them; it must not
depend on the number of segments (the other segments come back on first
read), which is what the two sizes show.
"""
import argparse
import os
import shutil
import statistics
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
    args = ap.parse_args()
    os.environ["QSFS_BUILD_DIR"] = args.build
    os.environ.setdefault("QSFS_LOG", "warn")
    from qsfs_mount import Volume  # noqa: E402

    for nseg in [int(x) for x in args.segments.split(",")]:
        tmp = Path(tempfile.mkdtemp(prefix="qsfs-bench-restore-", dir="/var/tmp"))
        vol = Volume(tmp, segment_size="256KiB")
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
            normal, restore = [], []
            for _ in range(args.runs):
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
                vol.mount()
                os.stat(vol.mnt / "d0" / "f0")
                restore.append(time.monotonic() - t)
                want = block[:-8] + (7).to_bytes(8, "little")
                assert (vol.mnt / "d0" / "f7").read_bytes() == want
                assert vol.unmount() == 0
                vol.ctl("drain", "--timeout", "600")
            ck = sum(p.stat().st_size for p in vol.cache.iterdir() if p.name.startswith("ckpt-"))
            print(f"{nseg} segments ({segs} local files before the first restore, "
                  f"{ck / 1024:.0f} KiB of checkpoints): "
                  f"restore to a usable mount {statistics.median(restore) * 1000:.0f} ms "
                  f"(median of {args.runs}; runs {', '.join(f'{x * 1000:.0f}' for x in restore)}), "
                  f"normal start {statistics.median(normal) * 1000:.0f} ms", flush=True)
        finally:
            vol.close()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
