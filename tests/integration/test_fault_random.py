"""Randomized faults during a write workload (issue 19's closing test).

Six real redis-servers (k=4, m=2) and a cache on a small tmpfs. While an app
writes and fsyncs files, a seeded random sequence injects, one after the
other: a backend killed (its machine gone for a while), a backend stopped
(SIGSTOP: hung, not gone), a backend wiped (FLUSHALL), shards corrupted on a
backend, shards swapped between keys, a bit flipped in a local sealed
segment, and the local disk filled up. After each fault the test checks that
qsfs said so (status, a scrub's report, or the log naming the thing), then
undoes the fault and lets qsfs heal. The app sees no error but ENOSPC while
the disk is full. At the end every fsync'd file must read back intact on a
fresh node, with two backends gone.

QSFS_FAULT_SEED picks the sequence (default: fixed); QSFS_FAULTS limits the
kinds (comma-separated names below), e.g. to reproduce one.
"""
import hashlib
import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from qsfs_mount import Volume, wait_for
from test_stor_faults import servers, url  # noqa: F401  (eight redis-servers)
from test_stor_repair import redis_cmd

MIB = 1 << 20
KINDS = ["kill", "stop", "wipe", "corrupt", "swap", "bitflip", "diskfull"]


def status(vol):
    return json.loads(vol.ctl("status", "--json").stdout)


def problems(st):
    return st["problems"] + (st.get("fs") or {}).get("problems", [])


def resp(port, *args):
    """One RESP command with binary-safe arguments; the raw reply bytes."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), 10)
    out = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in
        (x if isinstance(x, bytes) else str(x).encode() for x in args))
    s.sendall(out)
    buf = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
        if buf.startswith(b"$"):
            n = int(buf[1:buf.index(b"\r\n")])
            if n < 0 or len(buf) >= buf.index(b"\r\n") + 2 + n + 2:
                break
        elif buf.endswith(b"\r\n"):
            break
    s.close()
    return buf


def get_value(port, key):
    b = resp(port, "GET", key)
    hdr = b.index(b"\r\n")
    n = int(b[1:hdr])
    return b[hdr + 2:hdr + 2 + n]


def shard_keys(r):
    return [k for k in redis_cmd(r.port, "KEYS", "*/o/*").split("\r\n") if "/o/" in k]


class Workload:
    """Writes new files (never overwrites: a flipped byte stays in a live
    record) and fsyncs them; a file counts once fsync returned. ENOSPC is
    allowed while the disk is full; any other error fails the test."""

    def __init__(self, mnt, seed):
        self.mnt, self.rnd = mnt, random.Random(seed)
        self.want, self.errors, self.enospc = {}, [], 0
        self.disk_full = threading.Event()
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.t = threading.Thread(target=self.run)

    def run(self):
        i = 0
        while not self.stop.is_set():
            if self.paused.is_set():
                time.sleep(0.05)
                continue
            name = f"f{i:05d}"
            data = self.rnd.randbytes(self.rnd.randrange(1000, 200_000))
            try:
                with open(self.mnt / name, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                self.want[name] = hashlib.sha256(data).hexdigest()
            except OSError as e:
                if e.errno == 28 and self.disk_full.is_set():
                    self.enospc += 1
                    try:
                        os.unlink(self.mnt / name)  # deletes always work
                    except FileNotFoundError:
                        pass  # the create itself was refused
                    except OSError as e2:
                        self.errors.append(f"rm {name} on a full disk: {e2}")
                        return
                    time.sleep(0.05)
                else:
                    self.errors.append(f"{name}: {e}")
                    return
            i += 1
            time.sleep(0.05)


def test_random_faults_during_writes(tmp_path, servers):  # noqa: F811
    seed = int(os.environ.get("QSFS_FAULT_SEED", "1906"))
    kinds = [k for k in os.environ.get("QSFS_FAULTS", ",".join(KINDS)).split(",") if k]
    rnd = random.Random(seed)
    order = kinds[:]
    rnd.shuffle(order)
    print(f"seed {seed}: faults in order {order}")
    rs = servers[:6]
    disk = tmp_path / "cache"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(disk)], check=True)
    vol = Volume(tmp_path, backends=[url(r) for r in rs], segment_size="1MiB",
                 max_size="48MiB", extra_cache="  max_segment_age: 2" + (
                     "\n  disk_reserve: 8MiB" if "diskfull" in kinds else ""),
                 extra_stor="  check_interval: 5")
    wl = Workload(vol.mnt, seed)
    seen = {}
    try:
        vol.start_stor()
        vol.mount()
        wl.t.start()
        wait_for(lambda: status(vol)["stored"] > 5, 60, "first uploads")
        for kind in order:
            assert not wl.errors, wl.errors
            victim = rnd.randrange(len(rs))
            r, u = rs[victim], url(rs[victim])
            t0 = time.time()
            if kind == "kill":
                r.stop()
                wait_for(lambda: any(u in p and "down" in p for p in problems(status(vol))),
                         60, f"status naming {u} down")
                seen[kind] = True
                time.sleep(2)
                r.start()
            elif kind == "stop":
                r.proc.send_signal(signal.SIGSTOP)
                try:
                    wait_for(lambda: any(u in p for p in problems(status(vol))), 120,
                             f"status naming the hung {u}")
                    seen[kind] = True
                finally:
                    r.proc.send_signal(signal.SIGCONT)
            elif kind in ("wipe", "corrupt", "swap"):
                wait_for(lambda: len(shard_keys(r)) >= 2, 60, "shards on the victim")
                if kind == "wipe":
                    assert redis_cmd(r.port, "FLUSHALL") == "+OK"
                elif kind == "corrupt":
                    for k in rnd.sample(shard_keys(r), 2):
                        v = bytearray(get_value(r.port, k))
                        v[len(v) // 2] ^= 0x5A
                        resp(r.port, "SET", k, bytes(v))
                else:  # two shards of one object, on two backends, swapped
                    other = rs[(victim + 1) % len(rs)]
                    mine = {k.split("/o/")[1].split("/")[0]: k for k in shard_keys(r)}
                    pair = None
                    for k in shard_keys(other):
                        obj = k.split("/o/")[1].split("/")[0]
                        if obj in mine and mine[obj] != k:
                            pair = (mine[obj], k)
                            break
                    assert pair, "no object with shards on both backends"
                    a, b = get_value(r.port, pair[0]), get_value(other.port, pair[1])
                    resp(r.port, "SET", pair[0], b)
                    resp(other.port, "SET", pair[1], a)
                p = vol.ctl("scrub", check=False)
                out = p.stdout + p.stderr
                assert p.returncode == 0, out
                assert ", 0 bad shards found" not in out and "repaired" in out, out
                seen[kind] = True
            elif kind == "bitflip":
                # the newest stored segment (the least likely to be evicted
                # meanwhile), its files read first, with no new writes
                wl.paused.set()
                cat = json.loads(vol.ctl("catalog").stdout)
                local = sorted(int(f.name[4:20], 16) for f in vol.cache.glob("seg-*.qseg"))
                stored = [i for i in local if i <= cat["segments_upto"]
                          and i not in cat["segments_lost"]]
                assert stored, (local, cat)
                seg = vol.cache / f"seg-{stored[-1]:016x}.qseg"
                size = seg.stat().st_size
                with open(seg, "r+b") as f:
                    off = rnd.randrange(4096, max(4097, size - 4096))
                    f.seek(off)
                    b = f.read(1)
                    f.seek(off)
                    f.write(bytes([b[0] ^ 0x01]))
                print(f"bitflip: {seg.name} at {off} of {size}")
                before = (status(vol).get("fs") or {}).get("local_repairs", 0)
                # the files' pages are cached by the kernel: read through qsfs
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("1\n")
                for name, h in sorted(wl.want.items(), reverse=True):
                    got = hashlib.sha256((vol.mnt / name).read_bytes()).hexdigest()
                    assert got == h, name  # the good copy was used
                    if (status(vol).get("fs") or {}).get("local_repairs", 0) > before:
                        break
                wait_for(lambda: (status(vol).get("fs") or {}).get("local_repairs", 0) >
                         before, 30, "the bad local copy reported")
                assert any("failed their checks on local disk" in p
                           for p in problems(status(vol)))
                wl.paused.clear()
                seen[kind] = True
            elif kind == "diskfull":
                wl.disk_full.set()
                filler = vol.cache / "filler"

                def fill():
                    """Another program takes every free byte, again and
                    again: qsfs evicts stored segments to make room, which
                    would end a single fill before status could be asked."""
                    try:
                        with open(filler, "ab", buffering=0) as f:
                            while True:
                                f.write(b"\0" * MIB)
                    except OSError:
                        pass
                    return True

                wait_for(lambda: fill() and any("disk" in p and "full" in p
                                                for p in problems(status(vol))), 60,
                         "status saying the disk is full")
                time.sleep(2)
                filler.unlink()
                seen[kind] = True
                wait_for(lambda: not any("disk" in p and "full" in p
                                         for p in problems(status(vol))), 60,
                         "the full disk cleared")
                wl.disk_full.clear()
            print(f"{kind} on backend {victim}: named in {time.time() - t0:.1f} s")
            # heal: every backend back, full redundancy again
            vol.ctl("scrub", check=False)
            wait_for(lambda: status(vol)["backends_usable"] == len(rs), 120, "backends back")
        wl.stop.set()
        wl.t.join()
        assert not wl.errors, wl.errors
        assert seen.keys() == set(order), seen
        assert len(wl.want) > 50, len(wl.want)
        assert vol.unmount() == 0, vol.fs_log.read_text()[-3000:]
        vol.ctl("drain", "--timeout", "300")
        p = vol.ctl("scrub")
        assert "0 failed" in p.stdout, p.stdout
        assert vol.stop_stor() == 0
        # a fresh node, two backends gone: every fsync'd file intact
        gone = rnd.sample(rs, 2)
        for r in gone:
            r.stop()
        subprocess.run(["umount", str(disk)], check=True)
        vol.mount_as_fresh_node(timeout=300)  # every checkpoint is fetched first
        vol.assert_files(wl.want)
        assert vol.unmount() == 0
    finally:
        wl.stop.set()
        if wl.t.is_alive():
            wl.t.join()
        for r in rs:
            if r.proc:
                r.proc.send_signal(signal.SIGCONT)
        vol.close()
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
