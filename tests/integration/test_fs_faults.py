"""qsfs-fs when qsfs-stor is away: writes go on locally and the hand-offs
wait (status says so); when the local cache is over its limit with nothing
evictable, new writes fail with ENOSPC, the mount stays up, and status says
why; once stor is back everything catches up."""
import errno
import json
import os
import signal
import subprocess
import time

from qsfs_mount import Volume, wait_for

MIB = 1 << 20


def status(vol):
    p = vol.ctl("status", "--json", check=False)
    return p.returncode, json.loads(p.stdout)


def test_stor_down_writes_go_on_then_catch_up(tmp_path):
    vol = Volume(tmp_path, segment_size="4MiB")
    try:
        vol.mount()  # stor is not running
        data = os.urandom(20 * MIB)
        (vol.mnt / "f").write_bytes(data)
        wait_for(lambda: (vol.cache / "fs-status.json").exists(), 30, "fs-status.json")
        wait_for(lambda: status(vol)[1]["fs"]["hooks_pending"] > 0, 30, "pending hand-offs")
        rc, st = status(vol)
        assert rc == 3 and st["state"] == "down"
        assert "qsfs-stor does not answer" in " ".join(st["fs"]["problems"])
        human = vol.ctl("status", check=False).stdout
        assert "qsfs-stor is not running" in human and "hand-offs wait" in human
        vol.start_stor()
        wait_for(lambda: status(vol)[1]["fs"]["hooks_pending"] == 0, 120, "hand-offs")
        vol.ctl("drain", "--timeout", "120")
        wait_for(lambda: status(vol)[1]["fs"]["segments_unconfirmed"] == 0, 60, "confirmation")
        assert (vol.mnt / "f").read_bytes() == data
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_full_cache_gives_enospc_and_recovers(tmp_path):
    vol = Volume(tmp_path, segment_size="4MiB", max_size="16MiB")
    try:
        vol.mount()  # no stor: nothing is confirmed, nothing can be evicted
        written = 0
        err = None
        chunk = os.urandom(MIB)
        with open(vol.mnt / "big", "wb") as f:
            end = time.monotonic() + 120
            while time.monotonic() < end:
                try:
                    f.write(chunk)
                    f.flush()
                except OSError as e:
                    err = e.errno
                    break
                written += MIB
                time.sleep(0.05)
        assert err == errno.ENOSPC, f"no ENOSPC after {written} bytes"
        # status explains it (the cache hovers at its limit: a checkpoint
        # merge can free a little, so keep pushing while looking)
        for _ in range(40):
            rc, st = status(vol)
            if st["fs"]["state"] == "full":
                break
            try:
                with open(vol.mnt / "push", "ab") as f:
                    f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
            time.sleep(0.5)
        assert st["fs"]["state"] == "full", st
        assert "new writes fail with ENOSPC" in " ".join(st["fs"]["problems"])
        # the mount is alive: reads, stats, deletes of other files work
        assert os.stat(vol.mnt / "big").st_size >= 16 * MIB
        (vol.mnt / "big").open("rb").read(MIB)
        assert "big" in os.listdir(vol.mnt)
        # stor comes back: segments are confirmed, evicted, writes resume
        vol.start_stor()
        wait_for(lambda: status(vol)[1]["fs"]["state"] != "full", 180, "the cache to drain")
        (vol.mnt / "after").write_bytes(b"room again")
        assert (vol.mnt / "after").read_bytes() == b"room again"
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_small_cache_under_pressure_never_eio(tmp_path):
    """Regression: a segment fetched for a read (read-modify-write of a
    block) was evicted again before the reader used it, four times, and the
    write failed with EIO. The fetch now pins it for its reader."""
    import random
    vol = Volume(tmp_path, segment_size="1MiB", max_size="6MiB")
    try:
        vol.start_stor()
        vol.mount()
        rng = random.Random(1)
        model = bytearray(8 << 20)
        fd = os.open(vol.mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            end = time.monotonic() + 25
            n = 0
            while time.monotonic() < end:
                ln = rng.choice([300, 100_000, 1_400_000])
                off = rng.randrange(0, len(model) - ln)
                data = rng.randbytes(ln)
                assert os.pwrite(fd, data, off) == ln, f"write #{n}"
                model[off:off + ln] = data
                n += 1
            size = os.fstat(fd).st_size
            assert os.pread(fd, size, 0) == bytes(model[:size])
        finally:
            os.close(fd)
        assert "keeps disappearing" not in vol.fs_log.read_text()
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_segment_too_small_for_blocks_is_refused(tmp_path):
    vol = Volume(tmp_path, segment_size="64KiB")
    p = vol.try_mount()
    assert p.returncode == 2
    assert "cache.segment_size 65536 is too small" in p.stderr and "128KiB" in p.stderr


def test_restart_after_kill9_detaches_the_dead_mount(tmp_path):
    """qsfs-fs killed with SIGKILL leaves its mount behind (ENOTCONN). A new
    qsfs-fs on the same mountpoint detaches it and mounts, as a supervisor's
    restart needs; what was fsync'd is there."""
    vol = Volume(tmp_path, segment_size="4MiB")
    try:
        vol.start_stor()
        vol.mount()
        data = os.urandom(3 * MIB)
        with open(vol.mnt / "f", "wb") as f:
            f.write(data)
            os.fsync(f.fileno())
        vol.fs.send_signal(signal.SIGKILL)
        vol.fs.wait(timeout=60)
        vol.fs = None
        try:
            os.stat(vol.mnt)
            raise AssertionError("the killed qsfs-fs left no dead mount")
        except OSError as e:
            assert e.errno == errno.ENOTCONN, e
        vol.mount()
        assert (vol.mnt / "f").read_bytes() == data
        assert "was the dead mount of a qsfs-fs that stopped without unmounting: detached it" \
            in vol.fs_log.read_text()
        assert vol.unmount() == 0
        # exactly one mount left behind on the mountpoint, and gone now
        assert str(vol.mnt) not in open("/proc/self/mounts").read()
    finally:
        vol.close()


def test_bit_flip_in_local_segment_heals_from_backends(tmp_path):
    """A bit flip in a local sealed segment that the backends hold: the read
    returns the right bytes (the copy fetched back), and status names the
    local disk trouble, instead of EIO for ever while status says ok."""
    vol = Volume(tmp_path, segment_size="4MiB")
    vol.start_stor()
    vol.mount()
    try:
        data = os.urandom(3 << 20)
        (vol.mnt / "f").write_bytes(data)
        vol.ctl("drain", "--timeout", "60")

        def status():
            return json.loads((vol.cache / "fs-status.json").read_text())
        deadline = time.monotonic() + 30  # the monitor learns confirmations every 2 s
        while status()["segments"] < 2 or status()["segments_unconfirmed"]:
            assert time.monotonic() < deadline, status()
            time.sleep(0.1)
        segs = sorted(vol.cache.glob("seg-*.qseg"), key=lambda p: p.stat().st_size)
        big = segs[-1]
        assert big.stat().st_size > 2 << 20
        with open(big, "r+b") as fh:  # sealed segments are 0444: root writes anyway
            fh.seek(1 << 20)
            b = fh.read(1)
            fh.seek(1 << 20)
            fh.write(bytes([b[0] ^ 0x10]))
        subprocess.run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], check=True)
        assert (vol.mnt / "f").read_bytes() == data
        assert (vol.cache / (big.name + ".corrupt")).exists()
        deadline = time.monotonic() + 30
        while not status().get("local_repairs"):
            assert time.monotonic() < deadline, status()
            time.sleep(0.1)
        st = status()
        assert st["state"] == "degraded", st
        assert any("failed their checks on local disk" in p for p in st["problems"]), st
    finally:
        if vol.fs:
            vol.unmount()
        vol.stop_stor()
