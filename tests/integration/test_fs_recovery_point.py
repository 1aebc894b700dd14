"""The recovery point: what a host that dies uncleanly (kill -9 of every
process, its disk lost) leaves on the backends. Data reaches the backends
when its segment is sealed: when full, at a clean stop, on `qsfs-ctl drain`,
or once it holds data older than cache.max_segment_age. A fresh node with
only the configuration and the key gets all of that back. Also: `qsfs-ctl
ready`, the container healthcheck, says yes only when the mount and
qsfs-stor both answer."""
import json
import os
import shutil

from qsfs_mount import Volume, wait_for
from test_fs_restore import make_tree, snapshot
from test_stor import redises  # noqa: F401  (the six redis-servers fixture)


def kill_everything(vol):
    """The host dies: kill -9 of qsfs-fs and qsfs-stor, then its disk is lost."""
    vol.kill9()
    vol.stor.kill()
    vol.stor.wait(timeout=60)
    vol.stor = None
    shutil.rmtree(vol.cache)
    shutil.rmtree(vol.tmp / "stor")


def fs_request(vol, line):
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(vol.cache / "fs.sock"))
    s.sendall(line.encode() + b"\n")
    out = b""
    while not out.endswith(b"\n"):
        b = s.recv(4096)
        if not b:
            break
        out += b
    s.close()
    return out.decode().strip()


def test_drain_seals_and_a_sigkilled_host_keeps_what_was_sealed(tmp_path, redises):  # noqa: F811
    backends = [f"redis://127.0.0.1:{r.port}/0" for r in redises]
    # no age-based seal in this test: only the drain seals the partial segment
    vol = Volume(tmp_path, backends=backends, segment_size="4MiB",
                 extra_cache="  max_segment_age: 0")
    try:
        vol.start_stor()
        vol.mount()
        make_tree(vol.mnt)
        want = snapshot(vol.mnt)
        st = json.loads(fs_request(vol, "STATUS"))
        assert st["active_records"] > 0
        p = vol.ctl("drain", "--timeout", "120")
        assert "sealed the active segment" in p.stdout, p.stdout
        assert "drained: nothing pending" in p.stdout
        st = json.loads(fs_request(vol, "STATUS"))
        assert st["active_records"] == 0 and st["hooks_pending"] == 0, st
        # a drain with nothing new to seal says so by not sealing
        p = vol.ctl("drain", "--timeout", "120")
        assert "sealed the active segment" not in p.stdout, p.stdout
        # written after the drain, never sealed: lost with the host
        (vol.mnt / "unsealed").write_bytes(b"in the active segment only")
        kill_everything(vol)

        vol.start_stor()
        # the dead host's writer lease has not expired: refused, then taken
        p = vol.try_mount()
        assert p.returncode == 1 and "held by another writer" in p.stderr, p.stderr
        vol.mount("--takeover")
        assert "restored the volume" in vol.fs_log.read_text()
        got = snapshot(vol.mnt)
        assert got == want
        assert not (vol.mnt / "unsealed").exists()
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_max_segment_age_seals_idle_data(tmp_path):
    vol = Volume(tmp_path, segment_size="4MiB", extra_cache="  max_segment_age: 2")
    try:
        vol.start_stor()
        vol.mount()
        (vol.mnt / "small").write_bytes(b"a little data that never fills a segment")
        os.sync()
        # no drain, no unmount: the age alone seals it and stor uploads it
        wait_for(lambda: json.loads(vol.ctl("catalog").stdout)["segments_upto"] >= 1, 60,
                 "the aged segment in the catalog")
        kill_everything(vol)
        vol.start_stor()
        vol.mount("--takeover")
        assert (vol.mnt / "small").read_bytes() == b"a little data that never fills a segment"
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_ready_needs_the_mount_and_stor(tmp_path):
    vol = Volume(tmp_path, segment_size="4MiB")
    try:
        p = vol.ctl("ready", check=False)
        assert p.returncode == 1 and "qsfs-fs does not answer" in p.stdout, p.stdout
        vol.mount()
        p = vol.ctl("ready", check=False)
        assert p.returncode == 1 and "qsfs-stor does not answer" in p.stdout, p.stdout
        vol.start_stor()
        p = vol.ctl("ready", check=False)
        assert p.returncode == 0 and "ready: testfs mounted on" in p.stdout, p.stdout
        assert fs_request(vol, "PING") == f"OK {vol.mnt}"
        assert fs_request(vol, "BOGUS").startswith("ERR unknown request")
        assert vol.unmount() == 0
        assert not (vol.cache / "fs.sock").exists()
        p = vol.ctl("ready", check=False)
        assert p.returncode == 1 and "qsfs-fs does not answer" in p.stdout
        # drain without a mounted filesystem still drains stor
        p = vol.ctl("drain", "--timeout", "60")
        assert "qsfs-fs is not running" in p.stdout
    finally:
        vol.close()
