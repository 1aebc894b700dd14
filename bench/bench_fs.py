#!/usr/bin/env python3
"""qsfs-fs against ext4 on the same disk: sequential write (ending in fsync)
and cold sequential read of one file, untar of /usr/include, a cold find +
cat of that tree and its rm -rf, random 4 KiB writes and cold random 4 KiB
reads (fio), write amplification of the segment log, and qsfs-fs's memory
after the untar. Medians over several runs. Not run in CI; needs root
(loop devices, drop_caches, FUSE).

    bench/bench_fs.py [--build DIR] [--runs N] [--size SIZE] [--rand-size SIZE]
                      [--rand-file SIZE] [--small-size SIZE] [--small-bs SIZE]
                      [--segment-size SIZE] [--dir PARENT] [--no-nohook]
                      [--backends dir|redis] [--keep]

Everything lives in a scratch directory made inside PARENT (default
/var/tmp): the ext4 image (loop-mounted with direct I/O, so that it has no
second page cache over the image file), the qsfs cache dir, qsfs-stor's
state dir and its six dir:// backends. So ext4 and qsfs write to the same
disk. qsfs-stor runs during the qsfs runs: the hook hands every sealed
segment to it and it compresses, encrypts, erasure-codes and writes it to
the six backends in the background, on the same CPUs and disk as the
measured work. The "qsfs no hook" column is qsfs-fs with no hook configured
and no qsfs-stor: the filesystem and log alone. With --backends redis the
six backends are in-memory redis-servers on loopback instead: they stand in
for the remote machines of a real deployment, so the shards no longer add
1.5x the data to the measured disk (their CPU is still this machine's).

Each run, for each filesystem (fresh mkfs / fresh volume), three groups, with
a remount (and for qsfs a drain of qsfs-stor) between groups:
  seq:    write SIZE in 1 MiB writes of random data, fsync, close (timed);
          sync, drop caches, read it back in 1 MiB reads (timed); then
          SMALL_SIZE written in SMALL_BS writes, fsync (timed).
  tree:   tar -x of a tar of /usr/include made beforehand outside both
          filesystems (timed to the end of a final sync: syncfs for ext4,
          fsync of the root dir for qsfs, which syncs the whole log);
          qsfs-fs VmRSS/VmHWM; sync, drop caches, find -type f | xargs cat
          (timed); rm -rf + final sync (timed).
  random: lay out a RAND_FILE file (untimed, fsynced); fio psync randwrite
          4 KiB, RAND_SIZE in all, then a timed fsync of the file (IOPS
          over fio's run time plus that fsync); sync, drop caches, fio psync
          randread 4 KiB, RAND_SIZE in all (cold; fio's IOPS).
Baselines in the same run: before each ext4 run, a raw write loop (the
seq write's SIZE in 1 MiB writes + fsync to a plain file in the scratch
dir, i.e. the disk and filesystem of the qsfs cache); in each tree group,
the mean time of one getxattr of a missing attribute on the fresh tree
dir (on qsfs one FUSE request and reply: the floor under each of the ~12
requests the kernel sends per untarred file).
Write amplification: growth of the segment files (seg-*.qseg) in the cache
dir over the timed writes, per byte the application wrote (for the untar:
per byte of file data in the tar). Checkpoints are not counted. Random data
is used throughout, so stor's zstd cannot shrink what it uploads.
"""
import argparse
import errno
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import wait_port

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20
CHUNK = MIB


# ---------------------------------------------------------------- helpers

def parse_size(s):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", s, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size '{s}' (e.g. 1GiB, 512MiB, 512M)")
    mult = {"": MIB, "K": 1 << 10, "M": MIB, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * mult)


def human(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:g} {unit}"
    return f"{n} B"


def run(cmd, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {p.returncode}: "
                           f"{p.stderr.strip()[-2000:]}")
    return p


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def cpu_seconds(pid):
    """user + system CPU time of a process so far (threads included)"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_busy(interval=1.0):
    """share of all CPUs busy over interval, from /proc/stat"""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = snap()
    time.sleep(interval)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_idle(max_wait, threshold=0.25):
    """Wait up to max_wait seconds for the machine to be mostly idle;
    returns the last busy share seen."""
    deadline = time.monotonic() + max_wait
    while True:
        b = cpu_busy()
        if b < threshold or time.monotonic() >= deadline:
            return b


def proc_mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) * 1024
    return out


def dir_bytes(path, pattern=None):
    """sum of st_size of the files in path (matching pattern), not recursive"""
    total = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                if pattern and not re.fullmatch(pattern, e.name):
                    continue
                try:
                    if e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    pass
    except FileNotFoundError:
        pass
    return total


def tree_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


# ---------------------------------------------------------------- filesystems

class Ext4:
    label = "ext4"

    def __init__(self, work: Path, img_size):
        self.work = work
        self.img = work / "ext4.img"
        self.mnt = work / "ext4-mnt"
        self.mnt.mkdir(exist_ok=True)
        self.loop = None
        self.img_size = img_size

    def setup(self):
        if self.img.exists():
            self.img.unlink()
        with open(self.img, "wb") as f:
            f.truncate(self.img_size)
        p = run(["losetup", "--find", "--show", "--direct-io=on", str(self.img)], check=False)
        if p.returncode != 0:  # an old losetup or a backing fs without O_DIRECT
            p = run(["losetup", "--find", "--show", str(self.img)])
            self.dio = False
        else:
            self.dio = True
        self.loop = p.stdout.strip()
        run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
             self.loop])
        self.mount()

    def mount(self):
        run(["mount", "-t", "ext4", self.loop, str(self.mnt)])

    def unmount(self):
        run(["umount", str(self.mnt)])

    def remount(self):
        self.unmount()
        self.mount()

    def sync(self):
        run(["sync", "-f", str(self.mnt)])

    def drain(self):
        return 0.0

    def log_bytes(self):
        return None

    def pids(self):
        return {}

    def teardown(self):
        if os.path.ismount(self.mnt):
            run(["umount", str(self.mnt)], check=False)
        if self.loop:
            run(["losetup", "-d", self.loop], check=False)
            self.loop = None
        if self.img.exists():
            self.img.unlink()


class Qsfs:
    """A volume on six dir:// backends under work, qsfs-stor (unless
    hook=False) and a mounted qsfs-fs; set up like tests/integration's
    qsfs_mount.Volume."""

    def __init__(self, work: Path, build: Path, segment_size, hook=True, redis_ports=None,
                 extra_cache=()):
        self.label = "qsfs" if hook else "qsfs no hook"
        self.redis_ports = redis_ports or []
        self.base = work / ("qsfs" if hook else "qsfs-nohook")
        self.build = build
        self.hook = hook
        self.segment_size = segment_size
        self.extra_cache = list(extra_cache)  # more "  key: value" lines for cache:
        self.fs_bin = build / "fs" / "qsfs-fs"
        self.stor_bin = build / "stor" / "qsfs-stor"
        self.ctl_bin = build / "stor" / "qsfs-ctl"
        for b in (self.fs_bin, self.stor_bin, self.ctl_bin):
            if not os.access(b, os.X_OK):
                raise SystemExit(f"{b} not found: build first (ninja -C {build})")
        self.fs = self.stor = None
        self.problems = []

    def env(self):
        e = dict(os.environ)
        e["QSFS_CTL"] = str(self.ctl_bin)
        e["QSFS_LOG"] = "info"
        return e

    def setup(self):
        if self.base.exists():
            shutil.rmtree(self.base)
        self.base.mkdir()
        b = self.base
        self.mnt = b / "mnt"
        self.mnt.mkdir()
        self.cache = b / "cache"
        self.backends = [b / f"backend{i}" for i in range(6)]
        key = b / "key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        lines = ["volume: bench", f"key_file: {key}", "cache:", f"  dir: {self.cache}",
                 f"  segment_size: {self.segment_size}"]
        if self.hook:  # qsfs-fs hands segments straight to qsfs-stor (the default)
            lines += ["  hook_timeout: 120"]
        else:  # nothing leaves the host
            lines += ["  handoff: none"]
        lines += self.extra_cache
        lines += ["fs:", f"  mountpoint: {self.mnt}", "stor:", f"  socket: {b}/stor.sock",
                  f"  state_dir: {b}/stor", "  compression: zstd:1", "  workers: 2",
                  "  backends:"]
        if self.redis_ports:
            for port in self.redis_ports:  # a fresh volume each setup
                run(["redis-cli", "-p", str(port), "flushall"])
            lines += [f"    - redis://127.0.0.1:{port}/0" for port in self.redis_ports]
        else:
            lines += [f"    - dir://{p}" for p in self.backends]
        self.conf = b / "qsfs.yaml"
        self.conf.write_text("\n".join(lines) + "\n")
        self.fs_log = b / "fs.log"
        self.stor_log = b / "stor.log"
        # qsfs-fs refuses a volume the backends do not hold, hook or not
        run([self.ctl_bin, "-c", self.conf, "format"], timeout=120)
        if self.hook:
            self.start_stor()
        self.mount()

    def start_stor(self):
        self.stor = subprocess.Popen([self.stor_bin, "-c", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.stor_log, "ab"), env=self.env())
        for _ in range(500):
            if run([self.ctl_bin, "-c", self.conf, "status"], check=False).returncode == 0:
                return
            if self.stor.poll() is not None:
                raise RuntimeError("qsfs-stor exited: " + self.stor_log.read_text()[-2000:])
            time.sleep(0.02)
        raise RuntimeError("qsfs-stor did not become ready")

    def mount(self):
        self.fs = subprocess.Popen([self.fs_bin, "-c", self.conf],
                                   stdout=subprocess.DEVNULL,
                                   stderr=open(self.fs_log, "ab"), env=self.env())
        for _ in range(1000):
            if os.path.ismount(self.mnt):
                return
            if self.fs.poll() is not None:
                raise RuntimeError(f"qsfs-fs exited {self.fs.returncode}: "
                                   + self.fs_log.read_text()[-2000:])
            time.sleep(0.02)
        raise RuntimeError("qsfs-fs did not mount")

    def unmount(self):
        for _ in range(100):
            p = run(["fusermount3", "-u", str(self.mnt)], check=False)
            if p.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"fusermount3 -u failed: {p.stderr}")
        t0 = time.monotonic()
        rc = self.fs.wait(timeout=600)
        self.stop_s = time.monotonic() - t0
        self.fs = None
        if rc != 0:
            self.problems.append(f"qsfs-fs exited {rc} at unmount (see {self.fs_log})")

    def remount(self):
        self.unmount()
        self.mount()

    def sync(self):
        # fsync of any file or dir of qsfs syncs the whole log
        fd = os.open(self.mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def drain(self):
        """Wait until qsfs-stor has nothing pending (the log's worker may
        still be about to hand a just-sealed segment off: drain twice)."""
        if not self.stor:
            return 0.0
        t0 = time.monotonic()
        for _ in range(2):
            run([self.ctl_bin, "-c", self.conf, "drain", "--timeout", "600"], timeout=700)
            time.sleep(0.3)
        return time.monotonic() - t0

    def log_bytes(self):
        return dir_bytes(self.cache, r"seg-[0-9a-f]{16}\.qseg(\.tmp)?")

    def pids(self):
        p = {}
        if self.fs:
            p["fs"] = self.fs.pid
        if self.stor:
            p["stor"] = self.stor.pid
        return p

    def check_alive(self):
        if self.fs and self.fs.poll() is not None:
            raise RuntimeError(f"qsfs-fs died ({self.fs.returncode}): "
                               + self.fs_log.read_text()[-3000:])
        if self.stor and self.stor.poll() is not None:
            raise RuntimeError(f"qsfs-stor died ({self.stor.returncode}): "
                               + self.stor_log.read_text()[-3000:])

    def log_problems(self):
        out = []
        for log in (self.fs_log, self.stor_log):
            if log.exists():
                for line in log.read_text(errors="replace").splitlines():
                    if re.search(r"\b(warn|warning|error|err)\b", line, re.I):
                        out.append(f"{log.name}: {line}")
        return out

    def teardown(self):
        if self.fs:
            if os.path.ismount(self.mnt):
                run(["fusermount3", "-u", "-z", str(self.mnt)], check=False)
            try:
                self.fs.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.fs.kill()
                self.fs.wait()
            self.fs = None
        if self.stor:
            self.stor.send_signal(signal.SIGKILL)
            self.stor.wait()
            self.stor = None


def start_redises(work: Path, n=6):
    """n in-memory redis-servers on free loopback ports: [(port, Popen)]."""
    out = []
    for i in range(n):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        d = work / f"redis{i}"
        d.mkdir()
        out.append((port, subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(d)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    for port, _ in out:
        wait_port(port)
    return out


# ---------------------------------------------------------------- workloads

def seq_write(path, size, data, chunk=CHUNK):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    mv = memoryview(data)
    n = len(data) // chunk
    t0 = time.monotonic()
    try:
        done = 0
        i = 0
        while done < size:
            want = min(chunk, size - done)
            off = (i % n) * chunk
            w = os.write(fd, mv[off:off + want])
            done += w
            i += 1
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.monotonic() - t0


def seq_read(path):
    buf = bytearray(CHUNK)
    fd = os.open(path, os.O_RDONLY)
    total = 0
    t0 = time.monotonic()
    try:
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                total += n
    finally:
        os.close(fd)
    return time.monotonic() - t0, total


def fio(path, rw, size, io_size, runtime):
    """fio psync 4 KiB random I/O on an existing file. For writes, the file
    is then fsynced separately and timed: IOPS count that time too."""
    cmd = ["fio", "--name=r", f"--filename={path}", f"--rw={rw}", "--bs=4k",
           f"--size={size}", f"--io_size={io_size}", "--ioengine=psync", "--iodepth=1",
           "--numjobs=1", "--fallocate=none", "--randrepeat=1", f"--runtime={runtime}",
           "--output-format=json"]
    p = run(cmd, timeout=runtime + 300)
    j = json.loads(p.stdout[p.stdout.index("{"):])
    side = j["jobs"][0]["write" if rw == "randwrite" else "read"]
    out = {"ios": side["total_ios"], "bytes": side["io_bytes"], "fio_iops": side["iops"],
           "runtime": side["runtime"] / 1000.0, "fsync": 0.0}
    if rw == "randwrite":
        fd = os.open(path, os.O_WRONLY)
        t0 = time.monotonic()
        os.fsync(fd)
        out["fsync"] = time.monotonic() - t0
        os.close(fd)
    out["iops"] = out["ios"] / (out["runtime"] + out["fsync"])
    return out


class Phase:
    """CPU seconds of qsfs-fs / qsfs-stor over a block."""

    def __init__(self, fs):
        self.fs = fs

    def __enter__(self):
        self.pids = self.fs.pids()
        self.c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        return self

    def __exit__(self, *a):
        self.cpu = {k: cpu_seconds(p) - self.c0[k] for k, p in self.pids.items()}
        return False


def getxattr_round_trip(path, n=20000):
    """Mean time of one getxattr of a missing attribute: on qsfs one FUSE
    request and its reply (the kernel caches no xattrs), the floor under
    every metadata operation; on ext4 the syscall alone."""
    t0 = time.monotonic()
    for _ in range(n):
        try:
            os.getxattr(path, "user.qsfs-bench-none")
        except OSError as e:
            if e.errno != errno.ENODATA:
                raise
    return (time.monotonic() - t0) / n


def one_run(fs, a, data, tarball, tar_entries, tar_data, work):
    r = {}
    if isinstance(fs, Ext4):
        # the raw write loop: the same writes to a plain file on the disk
        # and filesystem that hold the qsfs cache
        raw = work / "raw-write-loop"
        r["raw_write_MBps"] = a.size / seq_write(raw, a.size, data) / 1e6
        os.unlink(raw)
    fs.setup()
    try:
        mnt = fs.mnt
        # -- seq
        f = mnt / "big"
        b0 = fs.log_bytes()
        with Phase(fs) as ph:
            t = seq_write(f, a.size, data)
        r["seq_write_MBps"] = a.size / t / 1e6
        if b0 is not None:
            r["wa_seq"] = (fs.log_bytes() - b0) / a.size
        r["cpu_fs_seqw"] = ph.cpu.get("fs")
        r["cpu_stor_seqw"] = ph.cpu.get("stor")
        r["drain_after_seqw_s"] = fs.drain() if fs.pids().get("stor") else None
        drop_caches()
        with Phase(fs) as ph:
            t, n = seq_read(f)
        if n != a.size:
            raise RuntimeError(f"{fs.label}: read back {n} bytes of {a.size}")
        r["seq_read_MBps"] = a.size / t / 1e6
        r["cpu_fs_seqr"] = ph.cpu.get("fs")
        os.unlink(f)
        fs.sync()
        fs.drain()
        f4 = mnt / "small-writes"
        b0 = fs.log_bytes()
        t = seq_write(f4, a.small_size, data, chunk=a.small_bs)
        r["seq_small_MBps"] = a.small_size / t / 1e6
        if b0 is not None:
            r["wa_small"] = (fs.log_bytes() - b0) / a.small_size
        os.unlink(f4)
        fs.sync()
        if isinstance(fs, Qsfs):
            fs.check_alive()
        fs.remount()
        fs.drain()

        # -- tree
        d = mnt / "tree"
        d.mkdir()
        r["rtt_us"] = getxattr_round_trip(d) * 1e6
        b0 = fs.log_bytes()
        with Phase(fs) as ph:
            t0 = time.monotonic()
            run(["tar", "-xf", str(tarball), "-C", str(d)])
            t1 = time.monotonic()
            fs.sync()
            t2 = time.monotonic()
        r["untar_s"] = t2 - t0
        r["untar_nosync_s"] = t1 - t0
        r["cpu_fs_untar"] = ph.cpu.get("fs")
        r["cpu_stor_untar"] = ph.cpu.get("stor")
        if b0 is not None:
            r["untar_log_MiB"] = (fs.log_bytes() - b0) / MIB
            r["wa_untar"] = (fs.log_bytes() - b0) / tar_data
        if fs.pids().get("fs"):
            m = proc_mem(fs.pids()["fs"])
            r["rss_MiB"] = m["VmRSS"] / MIB
            r["hwm_MiB"] = m["VmHWM"] / MIB
        fs.drain()
        drop_caches()
        t0 = time.monotonic()
        p = subprocess.run(f"find {d} -type f -print0 | xargs -0 cat | wc -c", shell=True,
                           capture_output=True, text=True, check=True)
        r["findcat_s"] = time.monotonic() - t0
        r["findcat_bytes"] = int(p.stdout.strip())
        nent = int(run(["sh", "-c", f"find {d} | wc -l"]).stdout) - 1
        if nent != tar_entries:
            fs.problems.append(f"{fs.label}: tree has {nent} entries, tar has {tar_entries}")
        t0 = time.monotonic()
        run(["rm", "-rf", str(d)])
        fs.sync()
        r["rm_s"] = time.monotonic() - t0
        if isinstance(fs, Qsfs):
            fs.check_alive()
        fs.remount()
        fs.drain()

        # -- random
        rf = mnt / "rand"
        seq_write(rf, a.rand_file, data)
        fs.drain()
        b0 = fs.log_bytes()
        with Phase(fs) as ph:
            w = fio(rf, "randwrite", a.rand_file, a.rand_size, 120)
        r["randw_iops"] = w["iops"]
        r["randw_fio_iops"] = w["fio_iops"]
        r["randw_fsync_s"] = w["fsync"]
        r["cpu_fs_randw"] = ph.cpu.get("fs")
        if b0 is not None:
            r["wa_rand"] = (fs.log_bytes() - b0) / w["bytes"]
        fs.drain()
        drop_caches()
        rd = fio(rf, "randread", a.rand_file, a.rand_size, 120)
        r["randr_iops"] = rd["iops"]
        if isinstance(fs, Qsfs):
            fs.check_alive()
            fs.unmount()
            r["final_stop_s"] = fs.stop_s
    finally:
        fs.teardown()
    return r


# ---------------------------------------------------------------- report

def med(runs, key):
    v = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("QSFS_BUILD_DIR", str(REPO / "build")))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=parse_size, default=1 << 30,
                    help="sequential file size (default 1GiB; plain numbers are MiB)")
    ap.add_argument("--rand-file", type=parse_size, default=256 * MIB,
                    help="file for the random I/O (default 256MiB)")
    ap.add_argument("--rand-size", type=parse_size, default=32 * MIB,
                    help="bytes of random 4 KiB writes, and of reads (default 32MiB)")
    ap.add_argument("--small-size", type=parse_size, default=64 * MIB,
                    help="file written sequentially in small writes (default 64MiB)")
    ap.add_argument("--small-bs", type=parse_size, default=4096,
                    help="write size of that file (default 4K)")
    ap.add_argument("--segment-size", default="64MiB")
    ap.add_argument("--dir", default="/var/tmp", help="parent of the scratch directory")
    ap.add_argument("--no-nohook", action="store_true",
                    help="skip the qsfs variant without hook and qsfs-stor")
    ap.add_argument("--wait-idle", type=float, default=30, metavar="S",
                    help="before each filesystem's run, wait up to S seconds for the "
                         "CPUs to be under 25%% busy (default 30; 0: do not wait)")
    ap.add_argument("--backends", choices=("dir", "redis"), default="dir",
                    help="stor's six backends: dir:// directories in the scratch dir, on "
                         "the measured disk (default), or in-memory redis-servers on "
                         "loopback, standing in for remote machines (their CPU is still "
                         "this machine's)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_fs.py needs root (loop devices, drop_caches)")
    for tool in ("fio", "fusermount3", "losetup", "mkfs.ext4", "tar"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install -y {tool})")
    build = Path(a.build).resolve()

    work = Path(tempfile.mkdtemp(prefix="qsfs-bench-fs-", dir=a.dir))
    fss = []
    redis = []
    try:
        dev = os.stat(work).st_dev
        print(f"scratch dir {work} (device {os.major(dev)}:{os.minor(dev)}, "
              f"{run(['findmnt', '-n', '-o', 'SOURCE,FSTYPE', '-T', str(work)]).stdout.strip()})")
        tarball = work / "include.tar"
        run(["tar", "-cf", str(tarball), "-C", "/usr", "include"])
        tar_entries = int(run(["sh", "-c", f"tar -tf {tarball} | wc -l"]).stdout)
        tar_size = tarball.stat().st_size
        tar_data = int(run(["sh", "-c", "find /usr/include -type f -print0 | "
                            "xargs -0 cat | wc -c"]).stdout)
        print(f"tar of /usr/include: {tar_entries} entries, {human(tar_size)}")
        # random data: not compressible, so stor's zstd cannot shrink it
        data = os.urandom(64 * MIB)

        img = max(4 << 30, 2 * (a.size + a.rand_file) + 4 * tar_size)
        if a.backends == "redis":
            redis = start_redises(work)
        fss = [Ext4(work, img), Qsfs(work, build, a.segment_size, hook=True,
                                     redis_ports=[p for p, _ in redis])]
        if not a.no_nohook:
            fss.append(Qsfs(work, build, a.segment_size, hook=False))
        results = {f.label: [] for f in fss}
        load0 = os.getloadavg()
        busy_seen = []
        t_start = time.monotonic()
        for i in range(a.runs):
            for f in fss:
                busy = wait_idle(a.wait_idle) if a.wait_idle > 0 else cpu_busy()
                busy_seen.append(busy)
                t0 = time.monotonic()
                r = one_run(f, a, data, tarball, tar_entries, tar_data, work)
                results[f.label].append(r)
                print(f"run {i + 1}/{a.runs} {f.label:13s} {time.monotonic() - t0:6.1f} s "
                      f"(CPUs {100 * busy:.0f}% busy before, load {os.getloadavg()[0]:.1f}): "
                      + ", ".join(f"{k}={v:.4g}" for k, v in r.items() if v is not None),
                      flush=True)
        total = time.monotonic() - t_start
        load1 = os.getloadavg()
    finally:
        for f in fss:
            try:
                f.teardown()
            except Exception as e:  # keep cleaning up
                print(f"teardown {f.label}: {e}", file=sys.stderr)
        for _, proc in redis:
            proc.kill()
            proc.wait()
        problems = []
        for f in fss:
            if isinstance(f, Qsfs):
                problems += f.problems
                try:
                    problems += [f"{f.label}: {p}" for p in f.log_problems()]
                except OSError:
                    pass
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    ext4 = fss[0].label
    labels = [f.label for f in fss]
    dio = "direct-io loop" if fss[0].dio else "buffered loop"

    # metric key, title, format, higher_is_better, goal (% of ext4)
    rows = [
        ("seq_write_MBps", f"seq write {human(a.size)} + fsync, MB/s", ".0f", True, 70),
        ("seq_read_MBps", "seq read cold, MB/s", ".0f", True, 60),
        ("seq_small_MBps", f"seq write {human(a.small_size)} in {human(a.small_bs)} "
         "writes + fsync, MB/s", ".0f", True, None),
        ("untar_s", f"untar /usr/include ({tar_entries} entries) + sync, s", ".2f", False, 50),
        ("untar_nosync_s", "  of which tar -x alone, s", ".2f", False, None),
        ("findcat_s", "find + cat cold, s", ".2f", False, None),
        ("rm_s", "rm -rf + sync, s", ".2f", False, None),
        ("randw_iops", "rand write 4K IOPS (incl. final fsync)", ".0f", True, None),
        ("randw_fio_iops", "  rand write 4K IOPS before the fsync", ".0f", True, None),
        ("randw_fsync_s", "  the final fsync, s", ".2f", None, None),
        ("randr_iops", "rand read 4K IOPS cold", ".0f", True, None),
        ("rtt_us", "one getxattr (qsfs: a FUSE round trip), us", ".1f", False, None),
    ]
    w0 = max(len(r[1]) for r in rows) + 2
    cols = []
    for lab in labels:
        cols.append(lab)
        if lab != ext4:
            cols.append("% ext4")
    head = f"{'':{w0}s}" + "".join(f"{c:>14s}" for c in cols) + f"{'goal':>8s}"
    print()
    where = ("backends: six dir:// directories, also there" if a.backends == "dir"
             else "backends: six in-memory redis-servers on loopback")
    print(f"medians of {a.runs} runs; ext4 on a {dio} image and the qsfs cache dir and stor "
          f"state in {work.parent} (same disk), {where}; qsfs segment_size "
          f"{a.segment_size}; random file {human(a.rand_file)}, {human(a.rand_size)} of "
          f"4 KiB I/O per test (fio psync, iodepth 1)")
    print(head)
    print("-" * len(head))
    for key, title, spec, higher, goal in rows:
        base = med(results[ext4], key)
        line = f"{title:{w0}s}"
        for lab in labels:
            v = med(results[lab], key)
            line += f"{fmt(v, spec):>14s}"
            if lab != ext4:
                if v and base and higher is not None:
                    pct = 100 * (v / base if higher else base / v)
                    ok = "" if goal is None else (" ok" if pct >= goal else " LOW")
                    line += f"{pct:10.0f}%{ok:3s}"
                else:
                    line += f"{'-':>14s}"
        line += f"{'>=' + str(goal) + '%' if goal else '':>8s}"
        print(line)
    raw = med(results[ext4], "raw_write_MBps")
    qs = med(results[labels[1]], "seq_write_MBps")
    if raw and qs:
        print(f"baseline: raw write loop ({human(a.size)} in 1 MiB writes + fsync to a plain "
              f"file beside the qsfs cache): {raw:.0f} MB/s; {labels[1]} seq write is "
              f"{100 * qs / raw:.0f}% of it")
    rtt = med(results[labels[1]], "rtt_us")
    ut = med(results[labels[1]], "untar_nosync_s")
    if rtt and ut:
        print(f"{labels[1]}: tar -x took {ut / tar_entries * 1e6:.0f} us per entry, "
              f"{ut / tar_entries * 1e6 / rtt:.1f} FUSE round trips' worth")
    print()
    extra = [
        ("wa_seq", "log bytes appended / byte written, seq", ".3f"),
        ("wa_small", "log bytes appended / byte written, seq small writes", ".2f"),
        ("wa_rand", "log bytes appended / byte written, rand 4K", ".2f"),
        ("untar_log_MiB", "log MiB appended by the untar", ".1f"),
        ("wa_untar", "  per byte of file data in the tar", ".2f"),
        ("rss_MiB", "qsfs-fs VmRSS after untar, MiB", ".1f"),
        ("hwm_MiB", "qsfs-fs VmHWM after untar, MiB", ".1f"),
        ("cpu_fs_seqw", "qsfs-fs CPU s during seq write", ".2f"),
        ("cpu_stor_seqw", "qsfs-stor CPU s during seq write", ".2f"),
        ("drain_after_seqw_s", "stor drain after seq write fsync, s", ".2f"),
        ("cpu_fs_seqr", "qsfs-fs CPU s during seq read", ".2f"),
        ("cpu_fs_untar", "qsfs-fs CPU s during untar", ".2f"),
        ("cpu_stor_untar", "qsfs-stor CPU s during untar", ".2f"),
        ("cpu_fs_randw", "qsfs-fs CPU s during rand write", ".2f"),
        ("final_stop_s", "clean stop (unmount) at the end, s", ".2f"),
    ]
    qlabels = [l for l in labels if l != ext4]
    print(f"{'qsfs details (medians)':{w0}s}" + "".join(f"{l:>14s}" for l in qlabels))
    print("-" * (w0 + 14 * len(qlabels)))
    for key, title, spec in extra:
        print(f"{title:{w0}s}" + "".join(f"{fmt(med(results[l], key), spec):>14s}"
                                         for l in qlabels))
    print()
    print(f"total bench time {total:.0f} s; load average before {load0[0]:.2f}, "
          f"after {load1[0]:.2f} ({os.cpu_count()} CPUs); CPUs busy (other work) just "
          f"before each filesystem's run: "
          + " ".join(f"{100 * b:.0f}%" for b in busy_seen))
    if max(busy_seen) >= 0.25:
        print("WARNING: other processes were using the CPUs during the bench; the "
              "figures are noisy")
    if problems:
        print(f"problems / warnings ({len(problems)}):")
        for p in problems[:40]:
            print("  " + p)
    else:
        print("no qsfs-fs / qsfs-stor warnings or errors logged")


if __name__ == "__main__":
    main()
