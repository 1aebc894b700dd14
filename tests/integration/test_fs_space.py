"""Space through the real mount (issue 17): a small write costs the log
about what it writes, whatever the kernel sends, and status tells live,
garbage and dead bytes in words and in --json."""
import json
import re
import os
import random
import time

from qsfs_mount import Volume

MIB = 1 << 20


def seg_bytes(vol):
    return sum(p.stat().st_size for p in vol.cache.glob("seg-*.qseg"))


def fs_status(vol, want, timeout=30):
    """fs-status.json once want(status) holds (qsfs-fs rewrites it every
    2 s when something changed)."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = json.loads((vol.cache / "fs-status.json").read_text())
            if want(last):
                return last
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"fs-status.json never matched: {last}")


def test_small_writes_cost_what_they_write(tmp_path):
    vol = Volume(tmp_path, segment_size="64MiB")
    vol.start_stor()
    vol.mount()
    try:
        f = vol.mnt / "db"
        data = os.urandom(8 * MIB)
        with open(f, "wb") as fh:
            fh.write(data)
            os.fsync(fh.fileno())
        model = bytearray(data)
        rng = random.Random(17)
        before = seg_bytes(vol)
        fd = os.open(f, os.O_WRONLY)
        n = 512
        for _ in range(n):
            off = rng.randrange(8 * MIB // 4096) * 4096
            b = os.urandom(4096)
            os.pwrite(fd, b, off)
            model[off:off + 4096] = b
        os.fsync(fd)
        os.close(fd)
        amp = (seg_bytes(vol) - before) / (n * 4096)
        # each 4 KiB write used to rewrite its 64 KiB block: 16
        assert amp < 1.2, f"{amp:.2f} log bytes per byte for random 4 KiB overwrites"
        # sequential 4 KiB appends
        before = seg_bytes(vol)
        with open(vol.mnt / "log", "wb") as fh:
            for i in range(1024):
                fh.write(bytes([i % 251]) * 4096)
            os.fsync(fh.fileno())
        amp = (seg_bytes(vol) - before) / (1024 * 4096)
        assert amp < 1.2, f"{amp:.2f} log bytes per byte for 4 KiB appends"
        assert f.read_bytes() == model
        vol.remount()
        assert f.read_bytes() == model
        assert (vol.mnt / "log").read_bytes() == b"".join(
            bytes([i % 251]) * 4096 for i in range(1024))
    finally:
        if vol.fs:
            vol.unmount()
        vol.stop_stor()


def test_status_tells_live_garbage_and_dead(tmp_path):
    vol = Volume(tmp_path, segment_size="1MiB")
    vol.start_stor()
    vol.mount()
    try:
        f = vol.mnt / "f"
        for _ in range(3):  # the same 3 MiB, three times: two thirds garbage
            with open(f, "wb") as fh:
                fh.write(os.urandom(3 * MIB))
                os.fsync(fh.fileno())
        st = fs_status(vol, lambda s: s.get("garbage_bytes", 0) > 4 * MIB
                       and s.get("dead_segments", 0) >= 2)
        assert 3 * MIB <= st["live_bytes"] < 4 * MIB, st
        assert st["dead_bytes"] <= st["garbage_bytes"], st
        out = vol.ctl("status").stdout
        line = next((ln for ln in out.splitlines() if "log space:" in ln), None)
        assert line, out
        assert "MiB live" in line and "dead segments" in line and "removed so far" in line, line
        assert "  collector:     " in out, out
        # every size in units, the lease and the redundancy in words
        assert "local cache:" in out and "MiB (no size limit;" in out, out
        assert "writer lease:    mounted" in out or "writer lease:" in out, out
        assert "redundancy:" in out, out
        assert not re.search(r"\d{4,} bytes", out), out  # raw counts are in units
        j = json.loads(vol.ctl("status", "--json").stdout)
        assert j["fs"]["garbage_bytes"] > 4 * MIB, j["fs"]
        assert j["fs"]["dead_segments"] >= 2, j["fs"]
    finally:
        if vol.fs:
            vol.unmount()
        vol.stop_stor()
