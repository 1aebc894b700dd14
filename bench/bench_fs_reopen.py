#!/usr/bin/env python3
"""How long qsfs-fs takes to start on a volume of about 1 M keys, with its
checkpoint against a full replay of the segment log (the baseline: what a
start would cost without checkpoints). Medians over several starts. Not run
in CI; needs root (FUSE, drop_caches).

    bench/bench_fs_reopen.py [--build DIR] [--files N] [--runs N] [--dir PARENT] [--keep]

It makes a volume (no hook, no qsfs-stor: start-up does not talk to them),
creates N empty files in 1000 directories through the mount (each file is
two keys: its inode and its directory entry), stops
qsfs-fs cleanly (which seals and writes the checkpoint) and then, --runs
times each, with the page cache dropped before every start:
  ckpt:   starts qsfs-fs, timing until the mount answers stat() on a file;
  replay: the same after deleting the checkpoint files (ckpt-*.qckp), so
          the index is rebuilt by reading every segment.
The clean stops between starts write the checkpoint again.
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

REPO = Path(__file__).resolve().parents[1]


def drop_caches():
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


class Volume:
    def __init__(self, work: Path, build: Path):
        self.work, self.build = work, build
        self.mnt = work / "mnt"
        self.cache = work / "cache"
        self.mnt.mkdir()
        key = work / "key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        self.conf = work / "qsfs.yaml"
        self.conf.write_text("\n".join([
            "volume: reopen", f"key_file: {key}", "cache:", f"  dir: {self.cache}",
            "  segment_size: 64MiB", "  handoff: none", "fs:", f"  mountpoint: {self.mnt}", "stor:",
            f"  socket: {work}/stor.sock", f"  state_dir: {work}/stor", "  backends:"]
            + [f"    - dir://{work}/b{i}" for i in range(6)]) + "\n")
        self.log = open(work / "fs.log", "ab")
        self.proc = None

    def start(self, probe):
        t0 = time.monotonic()
        self.proc = subprocess.Popen([self.build / "fs" / "qsfs-fs", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"qsfs-fs exited {self.proc.returncode}: see {self.log.name}")
            if os.path.ismount(self.mnt):
                try:
                    os.stat(self.mnt / probe)
                    return time.monotonic() - t0
                except OSError:
                    pass
            time.sleep(0.002)

    def stop(self):
        t0 = time.monotonic()
        subprocess.run(["fusermount3", "-u", str(self.mnt)], check=True)
        rc = self.proc.wait(timeout=600)
        if rc != 0:
            raise SystemExit(f"qsfs-fs exited {rc} at unmount: see {self.log.name}")
        self.proc = None
        return time.monotonic() - t0

    def keys(self):
        return json.loads((self.cache / "fs-status.json").read_text())["keys"]

    def drop_ckpts(self):
        n = 0
        for p in self.cache.glob("ckpt-*.qckp"):
            p.unlink()
            n += 1
        return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("QSFS_BUILD_DIR", str(REPO / "build")))
    ap.add_argument("--files", type=int, default=500000,
                    help="empty files to create (2 keys each; default 500000, ~1 M keys)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default="/var/tmp", help="parent of the scratch directory")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_fs_reopen.py needs root (FUSE, drop_caches)")
    work = Path(tempfile.mkdtemp(prefix="qsfs-bench-reopen-", dir=a.dir))
    v = Volume(work, Path(a.build).resolve())
    try:
        v.start(".")
        t0 = time.monotonic()
        ndirs = 1000
        for d in range(ndirs):
            os.mkdir(v.mnt / f"d{d:03d}")
        for i in range(a.files):
            fd = os.open(v.mnt / f"d{i % ndirs:03d}" / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)
            if i % 20000 == 0:
                print(f"\rcreating files: {i}/{a.files}", end="", flush=True)
        fill = time.monotonic() - t0
        print(f"\rcreated {a.files} files in {ndirs} directories in {fill:.1f} s "
              f"({a.files / fill:.0f} creates/s)")
        probe = f"d{(a.files - 1) % ndirs:03d}/f{a.files - 1}"
        time.sleep(2.5)  # fs-status.json is rewritten every 2 s
        keys = v.keys()
        stop = v.stop()
        print(f"{keys} keys; clean stop (seal + checkpoint) {stop:.2f} s")
        res = {"ckpt": [], "replay": []}
        for i in range(a.runs):
            for mode in ("ckpt", "replay"):
                if mode == "replay":
                    v.drop_ckpts()
                drop_caches()
                t = v.start(probe)
                res[mode].append(t)
                v.stop()
                print(f"run {i + 1}/{a.runs} {mode:6s}: start to first stat {t * 1000:.0f} ms",
                      flush=True)
        ck, rp = statistics.median(res["ckpt"]), statistics.median(res["replay"])
        print()
        print(f"qsfs-fs start on {keys} keys, page cache dropped, medians of {a.runs}:")
        print(f"  with the checkpoint       {ck * 1000:8.0f} ms")
        print(f"  full replay (baseline)    {rp * 1000:8.0f} ms")
        print(f"  checkpoint speed-up       {rp / ck:8.1f} x")
    finally:
        if v.proc:
            subprocess.run(["fusermount3", "-u", str(v.mnt)])
            v.proc.wait(timeout=600)
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
