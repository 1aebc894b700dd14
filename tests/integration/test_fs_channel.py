"""The channel between qsfs-fs and qsfs-stor (issue 18): a configuration
without cache.hook uploads out of the box (qsfs-fs hands segments to stor
itself); a mount learns confirmations without a connection per segment and
opens none while idle; a stor that accepts and never answers cannot stall
the writer lease's heartbeat; `qsfs-ctl status` is current right after a
drain and its top state is never ok while the filesystem is not."""
import json
import os
import signal
import time

from qsfs_mount import Volume, wait_for
from test_fs_lease import hosts


def status(vol):
    p = vol.ctl("status", "--json", check=False)
    return p.returncode, json.loads(p.stdout)


def fs_file(vol):
    return json.loads((vol.cache / "fs-status.json").read_text())


def test_no_hook_uploads_evicts_and_fetches_back(tmp_path):
    vol = Volume(tmp_path, segment_size="1MiB", max_size="4MiB")
    assert "hook:" not in vol.conf.read_text() and "handoff:" not in vol.conf.read_text()
    try:
        vol.start_stor()
        vol.mount()
        files = {f"f{i}": os.urandom(1 << 20) for i in range(16)}  # 4 x the cache limit
        t0 = time.monotonic()
        for name, data in files.items():
            (vol.mnt / name).write_bytes(data)
        vol.ctl("drain", "--timeout", "120")
        assert time.monotonic() - t0 < 120  # never the 300 s stall of a cache nobody empties
        rc, st = status(vol)
        assert rc == 0, st
        assert st["fs"]["handoff"] == "stor"
        assert st["fs"]["hooks_pending"] == 0, st
        assert st["fs"]["handoffs_done"] >= 16, st
        # the monitor learns the confirmations at its next round (2 s)
        wait_for(lambda: status(vol)[1]["fs"]["segments_unconfirmed"] == 0, 10, "confirmations")
        wait_for(lambda: fs_file(vol)["local_bytes"] <= (4 << 20) + (1 << 20), 60,
                 "eviction down to the limit")
        for name, data in files.items():  # evicted ones come back through stor
            assert (vol.mnt / name).read_bytes() == data
        assert "fetched back (segment-missing hand-off)" in vol.fs_log.read_text()
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_an_idle_mount_opens_no_connections(tmp_path):
    vol = Volume(tmp_path, segment_size="1MiB")
    try:
        vol.start_stor()
        vol.mount()
        for i in range(20):
            (vol.mnt / f"f{i}").write_bytes(os.urandom(900 << 10))
        vol.ctl("drain", "--timeout", "120")
        wait_for(lambda: fs_file(vol)["segments_unconfirmed"] == 0, 30, "confirmations")
        c0 = fs_file(vol)["stor_connections"]
        assert 1 <= c0 <= 5, c0  # one kept connection (a RETRIEVE would add its own)
        time.sleep(7)  # three rounds of the monitor
        assert fs_file(vol)["stor_connections"] == c0
        # segments that stay unconfirmed (the backends fail): still none
        for b in vol.backends:
            path = b.split("://", 1)[1]
            os.rename(path, path + ".away")
            open(path, "w").close()  # a file where the directory was
        for i in range(5):
            (vol.mnt / f"g{i}").write_bytes(os.urandom(900 << 10))
        wait_for(lambda: fs_file(vol)["segments_unconfirmed"] >= 3 and
                 fs_file(vol)["hooks_pending"] == 0, 60, "hand-offs of unconfirmable segments")
        c1 = fs_file(vol)["stor_connections"]
        time.sleep(7)
        assert fs_file(vol)["stor_connections"] == c1
        for b in vol.backends:
            path = b.split("://", 1)[1]
            os.unlink(path)
            os.rename(path + ".away", path)
        vol.ctl("drain", "--timeout", "120")
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_a_hung_stor_does_not_stall_the_lease(tmp_path):
    a, b = hosts(tmp_path, timeout=3)
    try:
        a.start_stor()
        a.mount()
        (a.mnt / "f").write_bytes(b"before")
        a.ctl("drain", "--timeout", "60")
        a.stor.send_signal(signal.SIGSTOP)  # accepts (the kernel's backlog), never answers
        try:
            (a.mnt / "g").write_bytes(os.urandom(2 << 20))  # hand-offs now wait on stor
            time.sleep(8)  # well past the lease's 3 s timeout
            b.start_stor()
            p = b.try_mount()
            assert p.returncode == 1 and "held by another writer" in p.stderr, p.stderr
            assert (a.mnt / "f").read_bytes() == b"before"
        finally:
            a.stor.send_signal(signal.SIGCONT)
        a.ctl("drain", "--timeout", "120")
        assert a.unmount() == 0
    finally:
        a.close()
        b.close()


def test_status_is_current_and_never_ok_while_the_fs_is_not(tmp_path):
    vol = Volume(tmp_path, segment_size="1MiB")
    try:
        vol.start_stor()
        vol.mount()
        for round in range(3):
            (vol.mnt / f"f{round}").write_bytes(os.urandom(300 << 10))
            vol.ctl("drain", "--timeout", "60")
            rc, st = status(vol)  # at once: not a status file up to 2 s old
            assert rc == 0 and st["state"] == "ok", st
            assert st["fs"]["hooks_pending"] == 0, st["fs"]
            out = vol.ctl("status").stdout
            assert "0 hand-offs pending" in out, out
        assert vol.unmount() == 0
        # hand-offs that fail while stor is fine: the filesystem is degraded,
        # and so is the status as a whole
        vol.conf.write_text(vol.conf.read_text().replace("cache:\n", "cache:\n  hook: /bin/false\n"))
        vol.mount()
        (vol.mnt / "h").write_bytes(os.urandom(1500 << 10))  # seals a segment
        wait_for(lambda: status(vol)[1]["fs"]["hooks_pending"] > 0, 30, "a failing hand-off")
        rc, st = status(vol)
        assert st["stor_state"] == "ok" and st["fs"]["state"] == "degraded", st
        assert st["state"] == "degraded", st
        assert "state:           degraded" in vol.ctl("status", check=False).stdout
        vol.kill9()
    finally:
        vol.close()


def test_a_stop_cancels_a_cold_read(tmp_path):
    """A reader blocked on a segment coming back from slow backends (here:
    a stopped stor) does not hold up a SIGTERM for the fetch's timeout."""
    import threading
    vol = Volume(tmp_path, segment_size="1MiB", max_size="3MiB")
    try:
        vol.start_stor()
        vol.mount()
        for i in range(8):
            (vol.mnt / f"f{i}").write_bytes(os.urandom(900 << 10))
        vol.ctl("drain", "--timeout", "120")
        wait_for(lambda: fs_file(vol)["segments_local"] < fs_file(vol)["segments"], 60,
                 "eviction")
        vol.stor.send_signal(signal.SIGSTOP)
        got = {}

        def read():
            try:
                got["data"] = (vol.mnt / "f0").read_bytes()
            except OSError as e:
                got["err"] = e.errno

        t = threading.Thread(target=read)
        t.start()
        try:
            time.sleep(2)
            assert t.is_alive(), got  # blocked on the fetch (hook_timeout is 60 s)
            t0 = time.monotonic()
            vol.fs.send_signal(signal.SIGTERM)
            t.join(timeout=20)
            assert not t.is_alive(), "the read still waits after SIGTERM"
            assert time.monotonic() - t0 < 15
            assert got.get("err") is not None, got  # EIO: the fetch was cancelled
        finally:
            vol.stor.send_signal(signal.SIGCONT)
        assert vol.fs.wait(timeout=120) == 0
        vol.fs = None
        assert "cancelled: qsfs-fs is stopping" in vol.fs_log.read_text()
    finally:
        vol.close()
