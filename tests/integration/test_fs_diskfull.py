"""qsfs-fs on a full cache disk (issue 19, "Local disk full"): the cache
directory is a small tmpfs. New data gets ENOSPC while the disk is low,
before it is full; once another program has filled it, deletes still work
(the log's reserve), status says the disk is full with its free bytes,
failing writes do not flood the log, the clean stop exits 0, qsfs-fs
starts again on the full disk, and writes work again once there is room.
With qsfs-stor up and no max_size, confirmed segments are evicted for room
on the disk, so writes go on past the disk's size."""
import errno
import hashlib
import json
import os
import subprocess
import time

from qsfs_mount import Volume, wait_for

MIB = 1 << 20
RESERVE = 4 * MIB


def free_bytes(d):
    st = os.statvfs(d)
    return st.f_bavail * st.f_frsize


def fill(path):
    """Another program fills the disk: path grows until not even a page
    more fits."""
    with open(path, "ab", buffering=0) as f:
        for chunk in (MIB, 64 << 10, 4096):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    assert free_bytes(path.parent) < 4096


def status(vol):
    p = vol.ctl("status", "--json", check=False)
    return json.loads(p.stdout)


def small_disk(vol, size="40m"):
    vol.cache.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(vol.cache)],
                   check=True)


def drop_disk(vol):
    vol.close()
    subprocess.run(["umount", "-l", str(vol.cache)], capture_output=True)


def content(i):
    return hashlib.sha256(str(i).encode()).digest() * (MIB // 32)


def test_full_cache_disk(tmp_path):
    vol = Volume(tmp_path, segment_size="1MiB", extra_cache=f"  disk_reserve: {RESERVE}")
    small_disk(vol)
    try:
        # room the test gives back at the end
        (vol.cache / "ballast").write_bytes(b"\0" * (12 * MIB))
        vol.mount()  # stor is not running: nothing is confirmed, nothing evicted
        n = 0
        with_err = None
        while n < 100:
            try:
                (vol.mnt / f"f{n}").write_bytes(content(n))
            except OSError as e:
                with_err = e
                break
            n += 1
        assert with_err is not None and with_err.errno == errno.ENOSPC, with_err
        assert 12 <= n <= 24, n
        # refused before the disk was full: the reserve and about a
        # reserve's worth of room are left
        assert (vol.cache / "reserve").stat().st_size == RESERVE
        assert free_bytes(vol.cache) >= RESERVE // 2, free_bytes(vol.cache)

        fill(vol.cache / "filler")
        # deletes work on the full disk
        for i in range(10):
            os.unlink(vol.mnt / f"f{i}")
        assert not any((vol.mnt / f"f{i}").exists() for i in range(10))
        assert not (vol.cache / "reserve").exists()  # the deletes used it

        # status says so, with units and bytes
        st = status(vol)
        fs = st["fs"]
        assert fs["state"] == "full", fs
        assert fs["disk"]["low"] is True, fs["disk"]
        assert fs["disk"]["free_bytes"] < 2 * RESERVE, fs["disk"]
        assert 39 * MIB <= fs["disk"]["total_bytes"] <= 40 * MIB, fs["disk"]
        assert fs["disk"]["reserve_bytes"] == RESERVE and fs["disk"]["reserve_held"] is False
        problem = " ".join(fs["problems"])
        assert "the cache disk is full" in problem and str(vol.cache) in problem, problem
        assert "of 40.0 MiB" in problem and "ENOSPC" in problem, problem
        human = vol.ctl("status", check=False).stdout
        assert "cache disk:" in human and "of 40.0 MiB" in human and "FULL" in human, human

        # a few seconds of failing writes (a minute of them used to log
        # thousands of lines): each fails at once, and says nothing
        before = len(vol.fs_log.read_text().splitlines())
        tries = 0
        end = time.monotonic() + 4
        while time.monotonic() < end:
            try:
                with open(vol.mnt / f"h{tries % 7}", "wb") as f:
                    f.write(os.urandom(64 << 10))
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
            else:
                raise AssertionError("a write went through on a full disk")
            tries += 1
        assert tries > 100, tries
        lines = vol.fs_log.read_text().splitlines()[before:]
        assert len(lines) < 100, f"{len(lines)} log lines:\n" + "\n".join(lines[-30:])

        # the clean stop seals and writes its checkpoint: exit 0
        assert vol.unmount() == 0, vol.fs_log.read_text()[-3000:]

        # not even the reserve left: qsfs-fs starts all the same
        fill(vol.cache / "filler2")
        vol.mount()
        fs = status(vol)["fs"]
        assert fs["state"] == "full" and fs["disk"]["low"], fs

        # the status file cannot be written the usual way (a temp file and
        # a rename) now: still, what it says is this qsfs-fs's word, or it
        # is gone (never an older "ok")
        def file_state():
            try:
                j = json.loads((vol.cache / "fs-status.json").read_text())
                return j["state"] if j["pid"] == vol.fs.pid else "stale"
            except (OSError, ValueError):
                return None
        wait_for(lambda: file_state() in ("full", None), 10, "fs-status.json to say full")
        for i in range(10, n):
            assert (vol.mnt / f"f{i}").read_bytes() == content(i), i
        try:
            (vol.mnt / "new").write_bytes(b"x" * 4096)
            raise AssertionError("a write went through on a full disk")
        except OSError as e:
            assert e.errno == errno.ENOSPC, e

        # changes the log cannot take now fail in it, each logging why:
        # repeats are rate-limited (a line says how many were left out)
        before = len(vol.fs_log.read_text().splitlines())
        tries = failed = 0
        end = time.monotonic() + 4
        while time.monotonic() < end:
            try:
                os.chmod(vol.mnt / "f10", 0o600 | (tries % 2) * 0o44)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                failed += 1
            tries += 1
        assert failed > 100, (tries, failed)
        lines = vol.fs_log.read_text().splitlines()[before:]
        assert len(lines) < 200, f"{len(lines)} log lines:\n" + "\n".join(lines[-30:])

        # room again: writes work, the reserve is made again
        for name in ("ballast", "filler", "filler2"):
            os.unlink(vol.cache / name)

        def can_write():
            try:
                (vol.mnt / "new").write_bytes(b"room again")
                return True
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                return False
        wait_for(can_write, 10, "writes to work again")
        wait_for(lambda: (vol.cache / "reserve").exists(), 20, "the reserve to be made again")
        fs = status(vol)["fs"]
        assert fs["state"] != "full" and not fs["disk"]["low"], fs
        assert (vol.mnt / "new").read_bytes() == b"room again"
        assert vol.unmount() == 0, vol.fs_log.read_text()[-3000:]
    finally:
        drop_disk(vol)


def test_evicts_for_room_without_max_size(tmp_path):
    """No max_size: the disk's free space alone makes confirmed segments go,
    and writers wait for uploads instead of failing."""
    vol = Volume(tmp_path, segment_size="1MiB", extra_cache=f"  disk_reserve: {RESERVE}")
    small_disk(vol)
    try:
        vol.start_stor()
        vol.mount()
        n = 60  # half as much again as the disk holds
        for i in range(n):
            with open(vol.mnt / f"f{i}", "wb") as f:
                f.write(content(i))
                os.fsync(f.fileno())
        fs = status(vol)["fs"]
        assert fs["disk"]["evicted_for_room"] > 0, fs
        assert fs["local_bytes"] < 40 * MIB, fs
        for i in range(n):  # the evicted ones come back from the backends
            assert (vol.mnt / f"f{i}").read_bytes() == content(i), i
        assert vol.unmount() == 0, vol.fs_log.read_text()[-3000:]
    finally:
        drop_disk(vol)
        vol.stop_stor()
