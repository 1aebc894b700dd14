"""Data-integrity tests of qsfs-fs through a real mount.

test_random_ops_against_model: thousands of seeded random file operations
(pwrite across 64 KiB block boundaries and far past EOF, O_APPEND and O_TRUNC
writes, truncate/ftruncate up and down, fallocate and punch hole, mmap
writes, rename over another file, fsync/fdatasync, SEEK_DATA/SEEK_HOLE)
checked step by step against an in-memory model (size and a random range
after every step, whole files periodically), and fully after a clean
unmount + mount every 1000 steps and at the end.

test_crash_kill9_keeps_fsynced: rounds of a writer process doing appends and
overwrites with fsyncs at random points, qsfs-fs killed with SIGKILL at a
random moment, remounted: every file must hold a state the writer produced at
or after its last successful fsync (the write in flight at the kill may be
torn at page granularity; nothing else may differ).

The seed is printed; QSFS_SEED=<n> replays a run (the crash test's kill
moments depend on timing, so it replays the choices, not the exact kills).
QSFS_STEPS and QSFS_CRASH_ROUNDS change the amount of work.
"""
import collections
import ctypes
import ctypes.util
import json
import mmap
import os
import random
import subprocess
import sys
import time

import pytest

from qsfs_mount import Volume

BLOCK = 64 * 1024
PAGE = mmap.PAGESIZE
MiB = 1024 * 1024

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.fallocate.restype = ctypes.c_int


def punch_hole(fd, off, length):
    r = _libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, length)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"fallocate(PUNCH_HOLE, {off}, {length}): {os.strerror(e)}")


def get_seed():
    s = os.environ.get("QSFS_SEED")
    return int(s) if s else random.SystemRandom().randrange(1 << 32)


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def first_diff(a, b):
    n = min(len(a), len(b))
    lo, hi = 0, n
    if a[:n] == b[:n]:
        return n
    # binary search for the first differing byte
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] != b[lo:mid]:
            hi = mid
        else:
            lo = mid
    return lo


@pytest.fixture
def vol(tmp_path):
    v = Volume(tmp_path)
    try:
        v.start_stor()
        v.mount()
        yield v
    finally:
        v.close()


# --------------------------------------------------------------------------
# 1. random operations against an in-memory model
# --------------------------------------------------------------------------

NFILES = 4
NSTEPS = int(os.environ.get("QSFS_STEPS", "3000"))
MAX_FILE = 12 * MiB          # writes/truncates keep files below this
FULL_FILE_EVERY = 25         # full check of the affected file
FULL_ALL_EVERY = 250         # full check of all files
REMOUNT_EVERY = 1000         # clean unmount + mount + full check in between


class ModelFS:
    def __init__(self, vol, seed):
        self.vol = vol
        self.mnt = vol.mnt
        self.seed = seed
        self.rng = random.Random(seed)
        self.names = [f"f{i}" for i in range(NFILES)]
        self.model = {n: bytearray() for n in self.names}
        self.history = collections.deque(maxlen=40)
        self.step = 0
        self.counts = collections.Counter()
        self.on_step = None     # called after each step's checks (test_..._collector)
        for n in self.names:
            with open(self.path(n), "wb"):
                pass

    def path(self, name):
        return self.mnt / name

    def fail(self, msg):
        tail = "\n".join(self.history)
        pytest.fail(f"seed={self.seed} step={self.step}: {msg}\n"
                    f"(replay: QSFS_SEED={self.seed})\nlast operations:\n{tail}",
                    pytrace=False)

    # ---- random choices -------------------------------------------------
    def rand_len(self):
        r = self.rng.random()
        if r < 0.35:
            return self.rng.randint(1, 300)
        if r < 0.55:
            return self.rng.randint(1, 8192)
        if r < 0.85:
            return self.rng.randint(1, 3 * BLOCK)
        return self.rng.randint(BLOCK, 3 * MiB)

    def rand_off(self, size, length):
        r = self.rng.random()
        if r < 0.30 or size == 0:
            # near a 64 KiB block boundary
            b = self.rng.randint(0, max(1, (size + BLOCK) // BLOCK))
            off = b * BLOCK + self.rng.randint(-300, 300)
        elif r < 0.65:
            off = self.rng.randint(0, size)                 # inside / at EOF
        elif r < 0.80:
            off = size                                      # append
        elif r < 0.90:
            off = size + self.rng.randint(1, 4 * MiB)       # far past EOF: hole
        else:
            off = max(0, size - self.rng.randint(0, length))  # straddles EOF
        off = max(0, off)
        if off + length > MAX_FILE:
            off = self.rng.randint(0, max(0, MAX_FILE - length))
        return off

    def rand_bytes(self, n):
        return self.rng.randbytes(n)

    # ---- operations -----------------------------------------------------
    def op_pwrite(self, name):
        m = self.model[name]
        length = self.rand_len()
        off = self.rand_off(len(m), length)
        data = self.rand_bytes(length)
        self.history.append(f"{self.step}: pwrite {name} off={off} len={length}")
        fd = os.open(self.path(name), os.O_WRONLY)
        try:
            n = os.pwrite(fd, data, off)
        finally:
            os.close(fd)
        if n != length:
            self.fail(f"pwrite {name} off={off} len={length} returned {n}")
        if off > len(m):
            m.extend(bytes(off - len(m)))
        m[off:off + length] = data
        return name

    def op_truncate(self, name, use_fd):
        m = self.model[name]
        r = self.rng.random()
        if r < 0.4:
            new = self.rng.randint(0, len(m))                     # shrink
        elif r < 0.6:
            b = self.rng.randint(0, max(1, len(m) // BLOCK + 1))
            new = max(0, b * BLOCK + self.rng.randint(-2, 2))     # block edge
        else:
            new = min(MAX_FILE, len(m) + self.rng.randint(1, 3 * MiB))  # grow
        how = "ftruncate" if use_fd else "truncate"
        self.history.append(f"{self.step}: {how} {name} {len(m)} -> {new}")
        if use_fd:
            fd = os.open(self.path(name), os.O_RDWR)
            try:
                os.ftruncate(fd, new)
            finally:
                os.close(fd)
        else:
            os.truncate(self.path(name), new)
        if new < len(m):
            del m[new:]
        else:
            m.extend(bytes(new - len(m)))
        return name

    def op_punch(self, name):
        m = self.model[name]
        size = len(m)
        r = self.rng.random()
        if r < 0.3:
            off = self.rng.randint(0, max(0, size // BLOCK)) * BLOCK
            length = self.rng.randint(1, 4) * BLOCK               # whole blocks
        elif r < 0.8:
            off = self.rng.randint(0, size + 1000)
            length = self.rand_len()
        else:
            off = self.rng.randint(0, size + 1000)
            length = self.rng.randint(1, 4 * MiB)                  # past EOF
        self.history.append(f"{self.step}: punch {name} off={off} len={length} size={size}")
        fd = os.open(self.path(name), os.O_RDWR)
        try:
            punch_hole(fd, off, length)
        finally:
            os.close(fd)
        end = min(size, off + length)
        if off < end:
            m[off:end] = bytes(end - off)
        return name

    def op_mmap(self, name):
        m = self.model[name]
        size = len(m)
        if size == 0:
            return self.op_pwrite(name)
        # map a page-aligned window of the file and write a slice of it
        start = self.rng.randint(0, (size - 1) // PAGE) * PAGE
        maplen = min(size - start, self.rng.randint(1, 2 * MiB))
        woff = self.rng.randint(0, maplen - 1)
        wlen = self.rng.randint(1, min(maplen - woff, 300 * 1024))
        data = self.rand_bytes(wlen)
        self.history.append(f"{self.step}: mmap-write {name} map=[{start},+{maplen}) "
                            f"at={start + woff} len={wlen}")
        fd = os.open(self.path(name), os.O_RDWR)
        try:
            mm = mmap.mmap(fd, maplen, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                           offset=start)
            try:
                mm[woff:woff + wlen] = data
                mm.flush()
            finally:
                mm.close()
        finally:
            os.close(fd)
        m[start + woff:start + woff + wlen] = data
        return name

    def op_rename(self):
        src, dst = self.rng.sample(self.names, 2)
        self.history.append(f"{self.step}: rename {src} -> {dst} "
                            f"(sizes {len(self.model[src])}, {len(self.model[dst])})")
        os.rename(self.path(src), self.path(dst))
        self.model[dst] = self.model[src]
        # recreate src so that there are always NFILES files
        seed_data = self.rand_bytes(self.rng.choice([0, 1, 100, BLOCK + 7]))
        self.history.append(f"{self.step}: recreate {src} len={len(seed_data)}")
        with open(self.path(src), "xb") as f:
            f.write(seed_data)
        self.model[src] = bytearray(seed_data)
        return dst

    def op_fsync(self, name):
        self.history.append(f"{self.step}: fsync {name}")
        fd = os.open(self.path(name), os.O_RDWR)
        try:
            if self.rng.random() < 0.5:
                os.fsync(fd)
            else:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        return name

    def op_otrunc(self, name):
        data = self.rand_bytes(self.rand_len() if self.rng.random() < 0.8 else 0)
        self.history.append(f"{self.step}: open(O_TRUNC) {name} + write len={len(data)}")
        fd = os.open(self.path(name), os.O_WRONLY | os.O_TRUNC)
        try:
            n = os.write(fd, data) if data else 0
        finally:
            os.close(fd)
        if n != len(data):
            self.fail(f"write after O_TRUNC returned {n} of {len(data)}")
        self.model[name] = bytearray(data)
        return name

    def op_append(self, name):
        m = self.model[name]
        length = self.rand_len()
        if len(m) + length > MAX_FILE:
            return self.op_read(name)
        data = self.rand_bytes(length)
        self.history.append(f"{self.step}: O_APPEND write {name} len={length} at={len(m)}")
        fd = os.open(self.path(name), os.O_WRONLY | os.O_APPEND)
        try:
            n = os.write(fd, data)
        finally:
            os.close(fd)
        if n != length:
            self.fail(f"O_APPEND write returned {n} of {length}")
        m.extend(data)
        return name

    def op_falloc(self, name):
        m = self.model[name]
        size = len(m)
        keep = self.rng.random() < 0.5
        off = self.rng.randint(0, size + 2 * BLOCK)
        length = self.rng.randint(1, 3 * BLOCK if self.rng.random() < 0.7 else 2 * MiB)
        if off + length > MAX_FILE:
            off, length = 0, max(1, min(length, size))
        mode = FALLOC_FL_KEEP_SIZE if keep else 0
        self.history.append(f"{self.step}: fallocate({'KEEP_SIZE' if keep else 0}) {name} "
                            f"off={off} len={length} size={size}")
        fd = os.open(self.path(name), os.O_RDWR)
        try:
            if _libc.fallocate(fd, mode, off, length) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"fallocate({mode}, {off}, {length})")
        finally:
            os.close(fd)
        if not keep and off + length > size:
            m.extend(bytes(off + length - size))
        return name

    def op_seek(self, name):
        """SEEK_DATA/SEEK_HOLE must be consistent with the content: what
        SEEK_DATA skips reads as zeros; a hole SEEK_HOLE reports reads as
        zeros; both stay within the file."""
        m = self.model[name]
        size = len(m)
        off = self.rng.randint(0, size + 10)
        self.history.append(f"{self.step}: seek-check {name} off={off} size={size}")
        fd = os.open(self.path(name), os.O_RDONLY)
        try:
            for whence, wname in ((os.SEEK_DATA, "SEEK_DATA"), (os.SEEK_HOLE, "SEEK_HOLE")):
                try:
                    r = os.lseek(fd, off, whence)
                except OSError as e:
                    if e.errno != 6:  # ENXIO
                        raise
                    r = None
                if off >= size:
                    if r is not None:
                        self.fail(f"{name}: lseek({off}, {wname}) = {r} at/after EOF "
                                  f"(size {size}), want ENXIO")
                    continue
                if whence == os.SEEK_DATA:
                    end = size if r is None else r
                    if r is not None and not off <= r < size:
                        self.fail(f"{name}: lseek({off}, SEEK_DATA) = {r}, size {size}")
                    if any(m[off:end]):
                        self.fail(f"{name}: lseek({off}, SEEK_DATA) = {r} skips data "
                                  f"at {off + next(i for i, c in enumerate(m[off:end]) if c)}")
                else:
                    if r is None or not off <= r <= size:
                        self.fail(f"{name}: lseek({off}, SEEK_HOLE) = {r}, size {size}")
                    if r < size and m[r] != 0:
                        self.fail(f"{name}: lseek({off}, SEEK_HOLE) = {r}, but the byte "
                                  f"there is {m[r]:#x}")
        finally:
            os.close(fd)
        return name

    def op_read(self, name):
        self.history.append(f"{self.step}: read-check {name}")
        return name

    # ---- checks ---------------------------------------------------------
    def check_size(self, name):
        st = os.stat(self.path(name))
        if st.st_size != len(self.model[name]):
            self.fail(f"{name}: size {st.st_size}, model {len(self.model[name])}")

    def check_range(self, name):
        m = self.model[name]
        size = len(m)
        r = self.rng.random()
        if r < 0.3 and size:
            b = self.rng.randint(0, (size - 1) // BLOCK)
            off = max(0, b * BLOCK + self.rng.randint(-500, 500))
        else:
            off = self.rng.randint(0, size + 100)
        length = self.rng.randint(1, 256 * 1024)
        fd = os.open(self.path(name), os.O_RDONLY)
        try:
            got = os.pread(fd, length, off)
        finally:
            os.close(fd)
        want = bytes(m[off:off + length])
        if got != want:
            i = first_diff(got, want)
            self.fail(f"{name}: pread(off={off}, len={length}) differs from the model at "
                      f"file offset {off + i} (got {len(got)} bytes, want {len(want)}; "
                      f"got {got[i:i + 16].hex()} want {want[i:i + 16].hex()})")

    def check_full(self, name, when=""):
        m = self.model[name]
        try:
            got = read_all(self.path(name))
        except OSError as e:
            self.fail(f"{name}: cannot read{when}: {e}")
        if got != m:
            i = first_diff(got, m)
            self.fail(f"{name}: full content differs from the model{when} at offset {i} "
                      f"(file {len(got)} bytes, model {len(m)}; got {got[i:i + 16].hex()} "
                      f"want {bytes(m[i:i + 16]).hex()})")

    def check_all(self, when=""):
        names = sorted(os.listdir(self.mnt))
        if names != sorted(self.names):
            self.fail(f"directory{when}: {names}, model {sorted(self.names)}")
        for n in self.names:
            self.check_size(n)
            self.check_full(n, when)

    def run(self, nsteps):
        ops = [("pwrite", 34), ("read", 12), ("truncate", 6), ("ftruncate", 6),
               ("punch", 12), ("mmap", 10), ("rename", 4), ("fsync", 6),
               ("otrunc", 2), ("append", 5), ("falloc", 5), ("seek", 6)]
        kinds = [k for k, _ in ops]
        weights = [w for _, w in ops]
        for self.step in range(1, nsteps + 1):
            kind = self.rng.choices(kinds, weights)[0]
            name = self.rng.choice(self.names)
            self.counts[kind] += 1
            try:
                if kind == "pwrite":
                    affected = self.op_pwrite(name)
                elif kind == "truncate":
                    affected = self.op_truncate(name, use_fd=False)
                elif kind == "ftruncate":
                    affected = self.op_truncate(name, use_fd=True)
                elif kind == "punch":
                    affected = self.op_punch(name)
                elif kind == "mmap":
                    affected = self.op_mmap(name)
                elif kind == "rename":
                    affected = self.op_rename()
                elif kind == "fsync":
                    affected = self.op_fsync(name)
                elif kind == "otrunc":
                    affected = self.op_otrunc(name)
                elif kind == "append":
                    affected = self.op_append(name)
                elif kind == "falloc":
                    affected = self.op_falloc(name)
                elif kind == "seek":
                    affected = self.op_seek(name)
                else:
                    affected = self.op_read(name)
            except OSError as e:
                self.fail(f"{kind} failed: {e!r}")
            self.check_size(affected)
            self.check_range(affected)
            if self.step % FULL_FILE_EVERY == 0:
                self.check_full(affected)
            if self.step % FULL_ALL_EVERY == 0:
                self.check_all()
            if self.step % REMOUNT_EVERY == 0 and self.step < nsteps:
                self.remount_and_check()
            if self.on_step:
                self.on_step(self)

    def remount_and_check(self):
        self.history.append(f"{self.step}: unmount + mount")
        rc = self.vol.unmount()
        if rc != 0:
            self.fail(f"qsfs-fs exited {rc} on unmount: {self.vol.fs_log.read_text()[-3000:]}")
        self.vol.mount()
        self.check_all(" after remount")


def test_random_ops_against_model(vol):
    seed = get_seed()
    print(f"test_random_ops_against_model: seed={seed} (QSFS_SEED={seed} to replay)")
    t0 = time.monotonic()
    fs = ModelFS(vol, seed)
    fs.run(NSTEPS)
    fs.step = "end"
    fs.check_all(" at the end")
    fs.remount_and_check()
    print(f"ops: {dict(fs.counts)}; "
          f"sizes: {[len(fs.model[n]) for n in fs.names]}; {time.monotonic() - t0:.1f}s")


def test_random_ops_with_aggressive_collector(tmp_path):
    """The same random operations with garbage collection forced aggressive
    (1 MiB segments, a pass every second cleaning down to 5 % garbage, a
    small cache so that eviction runs), `qsfs-ctl gc` and kill -9 (after a
    sync, so the model is what fsync promised) at random points, and at the
    end a fresh node restored from the backends: every file equals the
    model throughout."""
    vol = Volume(tmp_path, segment_size="1MiB", max_size="12MiB",
                 extra_cache="  gc_interval: 1\n  gc_target: 0.05\n  max_segment_age: 1")
    seed = get_seed()
    print(f"test_random_ops_with_aggressive_collector: seed={seed} (QSFS_SEED={seed} to replay)")
    try:
        vol.start_stor()
        vol.mount()
        fs = ModelFS(vol, seed)
        kills = gcs = 0

        def between(m):
            nonlocal kills, gcs
            x = m.rng.random()
            if x < 0.01:
                m.history.append(f"{m.step}: qsfs-ctl gc")
                vol.ctl("gc", "--timeout", "30", check=False)
                gcs += 1
            elif x < 0.015:
                m.history.append(f"{m.step}: sync, kill -9, mount")
                os.sync()
                vol.kill9()
                vol.mount()
                m.check_all(" after kill -9 during collection")
                kills += 1

        fs.on_step = between
        fs.run(int(os.environ.get("QSFS_STEPS", "800")))
        fs.step = "end"
        fs.check_all(" at the end")
        vol.ctl("drain")
        vol.ctl("gc", "--timeout", "120")
        st = json.loads(vol.ctl("status", "--json").stdout)["fs"]
        print(f"ops: {dict(fs.counts)}; {gcs} gc, {kills} kill -9; removed segments "
              f"{st['removed_segments']}")
        assert st["removed_segments"] > 0, st
        assert vol.unmount() == 0, vol.fs_log.read_text()[-3000:]
        vol.stop_stor()
        vol.mount_as_fresh_node()
        fs.step = "fresh node"
        fs.check_all(" on a fresh node")
    finally:
        vol.close()


# --------------------------------------------------------------------------
# 2. kill -9 keeps what fsync promised
# --------------------------------------------------------------------------

CRASH_ROUNDS = int(os.environ.get("QSFS_CRASH_ROUNDS", "20"))
CRASH_FILES = 4
CRASH_MAX_FILE = 6 * MiB

# The writer: one process, one thread, so at most one operation is in flight
# when qsfs-fs dies. Each operation is logged (to a file outside the mount)
# before it is issued ("op") and after it returned ("done"); an fsync is
# logged as "fsync-ok" only after it returned 0. Data bytes are derived from
# a per-operation seed, so the log is small and the parent can replay it.
WRITER = r"""
import json, os, random, sys
mnt, log_path, seed, max_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
names = sys.argv[5:]
rng = random.Random(seed)
log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def rec(**kw):
    os.write(log, (json.dumps(kw) + "\n").encode())
try:
    fds = {n: os.open(os.path.join(mnt, n), os.O_RDWR) for n in names}
    size = {n: os.fstat(fds[n]).st_size for n in names}
    for n in names:                      # the base state is durable first
        os.fsync(fds[n])
        rec(ev="fsync-ok", f=n)
    dfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)
    rec(ev="ready")
    while True:
        n = rng.choice(names)
        r = rng.random()
        if r < 0.12:
            rec(ev="fsync-start", f=n)
            (os.fsync if rng.random() < 0.5 else os.fdatasync)(fds[n])
            rec(ev="fsync-ok", f=n)
            continue
        x = rng.random()
        length = (rng.randint(1, 512) if x < 0.4 else rng.randint(1, 200 * 1024) if x < 0.85
                  else rng.randint(64 * 1024, 1536 * 1024))
        if r < 0.55 and size[n] + length <= max_file:
            off = size[n]                                    # append
        else:
            off = rng.randint(0, max(0, min(size[n], max_file - length)))  # overwrite
        dseed = rng.randrange(1 << 62)
        rec(ev="op", f=n, off=off, len=length, seed=dseed)
        data = random.Random(dseed).randbytes(length)
        done = os.pwrite(fds[n], data, off)
        rec(ev="done", f=n, n=done)
        if done != length:
            rec(ev="short", f=n, n=done)
            break
        size[n] = max(size[n], off + length)
except OSError as e:
    rec(ev="error", err=repr(e))
"""


def apply_write(content, off, data):
    if off > len(content):
        content.extend(bytes(off - len(content)))
    content[off:off + len(data)] = data


def torn_ok(got, base, off, data):
    """Is got a page-granular mix of base and base+write(off, data)?  Used
    only for the one write in flight when qsfs-fs was killed."""
    new = bytearray(base)
    apply_write(new, off, data)
    if not (len(base) <= len(got) <= len(new)):
        return False
    end = len(got)
    for p in range(0, end, PAGE):
        q = min(end, p + PAGE)
        g = got[p:q]
        if g == new[p:q]:
            continue
        # all-old for this page: base content, zeros past base's end
        old = bytes(base[p:q]) + bytes(max(0, q - max(p, len(base))))
        if g != old:
            return False
    return True


def check_after_crash(round_no, seed, base, log_path, mnt):
    """base: {name: bytes} at the start of the round (durable). Replays the
    writer's log and requires every file to equal a state at or after its
    last successful fsync (or the torn in-flight write on top of the last
    state). Returns the new base and, per file, how many states behind the
    last one it came back ("in-flight" for the write in flight)."""
    got = {}
    for n in base:
        p = mnt / n
        if not p.exists():
            pytest.fail(f"seed={seed} round={round_no}: {n} is missing after kill -9 + "
                        f"remount (it was fsynced, and so was the directory)",
                        pytrace=False)
        got[n] = read_all(p)
    events = [json.loads(line) for line in log_path.read_text().splitlines()]
    ready = any(e["ev"] == "ready" for e in events)
    history = collections.deque(maxlen=12)
    cur = {n: bytearray(base[n]) for n in base}       # the writer's latest state
    nstates = {n: 1 for n in base}                     # states so far (base = 0)
    synced = {n: 0 for n in base}                      # state of the last fsync-ok
    synced_state = {n: bytes(base[n]) for n in base}
    matches = {n: [0] if got[n] == base[n] else [] for n in base}  # states == got
    inflight = None
    for e in events:
        if e["ev"] == "op":
            inflight = e
            history.append(f"write {e['f']} off={e['off']} len={e['len']}")
        elif e["ev"] == "done":
            if e["n"] != inflight["len"]:
                # a short write: the kill came while the kernel was sending
                # its pieces; the write counts as in flight (torn)
                history.append(f"short write: {e['n']} of {inflight['len']} bytes")
                continue
            op, inflight = inflight, None
            f = op["f"]
            apply_write(cur[f], op["off"], random.Random(op["seed"]).randbytes(op["len"]))
            if got[f] == cur[f]:
                matches[f].append(nstates[f])
            nstates[f] += 1
        elif e["ev"] == "fsync-ok":
            f = e["f"]
            synced[f] = nstates[f] - 1
            synced_state[f] = bytes(cur[f])
            history.append(f"fsync {f} ok (state {synced[f]})")
        elif e["ev"] == "fsync-start":
            history.append(f"fsync {e['f']} started")
        elif e["ev"] in ("error", "short"):
            history.append(f"writer: {e}")
    new_base, info = {}, {}
    for n in base:
        good = [i for i in matches[n] if i >= synced[n]]
        if good:
            info[n] = nstates[n] - 1 - good[-1]
        elif inflight is not None and inflight["f"] == n and torn_ok(
                got[n], cur[n], inflight["off"],
                random.Random(inflight["seed"]).randbytes(inflight["len"])):
            info[n] = "in-flight"
        else:
            diffs = []
            for label, want in (("the fsynced state", synced_state[n]),
                                ("the last state", cur[n])):
                i = first_diff(got[n], want)
                diffs.append(f"vs {label} ({len(want)} bytes) first difference at {i}: "
                             f"got {got[n][i:i + 16].hex()} want {bytes(want[i:i + 16]).hex()}")
            pytest.fail(f"seed={seed} round={round_no} file={n}: {nstates[n]} states, last "
                        f"fsync at state {synced[n]}, equal to states {matches[n][-5:]}, "
                        f"writer ready={ready}, in flight: {inflight}\n"
                        f"(replay: QSFS_SEED={seed})\nlast events:\n" + "\n".join(history)
                        + f"\ncontent after kill -9 + remount ({len(got[n])} bytes) matches no "
                        f"state at or after the last fsync;\n" + "\n".join(diffs),
                        pytrace=False)
        new_base[n] = got[n]
    return new_base, info


def fsync_all(mnt, names):
    """Make the current content of the files and the directory durable."""
    for n in names:
        fd = os.open(mnt / n, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_crash_kill9_keeps_fsynced(vol, tmp_path):
    seed = get_seed()
    print(f"test_crash_kill9_keeps_fsynced: seed={seed} (QSFS_SEED={seed} to replay)")
    rng = random.Random(seed)
    names = [f"c{i}" for i in range(CRASH_FILES)]
    for n in names:
        (vol.mnt / n).write_bytes(b"")
    fsync_all(vol.mnt, names)
    base = {n: b"" for n in names}
    writer_py = tmp_path / "writer.py"
    writer_py.write_text(WRITER)
    t0 = time.monotonic()
    stats = []
    for rnd in range(1, CRASH_ROUNDS + 1):
        log_path = tmp_path / f"writer{rnd}.log"
        wseed = rng.randrange(1 << 62)
        w = subprocess.Popen([sys.executable, str(writer_py), str(vol.mnt), str(log_path),
                              str(wseed), str(CRASH_MAX_FILE), *names],
                             cwd=str(tmp_path), stderr=subprocess.PIPE)
        delay = rng.uniform(0.05, 2.0)
        time.sleep(delay)
        assert w.poll() is None, (f"seed={seed} round={rnd}: the writer ended before the "
                                  f"kill: {w.stderr.read().decode()}\n"
                                  f"{log_path.read_text()[-2000:]}")
        vol.kill9()
        try:
            _, err = w.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
            pytest.fail(f"seed={seed} round={rnd}: the writer hung after kill -9 of qsfs-fs",
                        pytrace=False)
        assert w.returncode == 0, f"writer: {err.decode()}"
        vol.mount()
        base, lag = check_after_crash(rnd, seed, base, log_path, vol.mnt)
        # what came back is the next round's starting point: make it durable
        # (the writer's first step does so too, but the kill may come earlier)
        fsync_all(vol.mnt, names)
        nops = sum(1 for line in log_path.read_text().splitlines() if '"done"' in line)
        nsync = sum(1 for line in log_path.read_text().splitlines() if '"fsync-ok"' in line)
        stats.append((round(delay, 2), nops, nsync, [lag[n] for n in names]))
    # a clean unmount and remount keep the last state too
    assert vol.unmount() == 0, vol.fs_log.read_text()[-3000:]
    vol.mount()
    for n in names:
        got = read_all(vol.mnt / n)
        assert got == base[n], (f"seed={seed}: {n} changed across a clean remount after "
                                f"the crash rounds (first difference at "
                                f"{first_diff(got, base[n])})")
    print(f"rounds (delay s, writes, fsyncs, states lost per file): {stats}; sizes "
          f"{[len(base[n]) for n in names]}; {time.monotonic() - t0:.1f}s")
