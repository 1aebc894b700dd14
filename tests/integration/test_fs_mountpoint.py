"""qsfs-fs and its mountpoint: a mount would hide what the directory holds,
so a non-empty one is refused unless --nonempty is given; a missing one is
created."""
import os

from qsfs_mount import Volume


def test_nonempty_mountpoint_is_refused(tmp_path):
    vol = Volume(tmp_path)
    vol.start_stor()
    try:
        (vol.mnt / "app-data.db").write_bytes(b"written before the mount")
        p = vol.try_mount()
        assert p.returncode == 1, p.stderr
        assert "not empty" in p.stderr and "app-data.db" in p.stderr, p.stderr
        assert "--nonempty" in p.stderr, p.stderr
        assert not os.path.ismount(vol.mnt)
        # the refusal released the lease: a mount that is allowed goes on
        vol.mount("--nonempty")
        assert not (vol.mnt / "app-data.db").exists()  # hidden while mounted
        (vol.mnt / "f").write_text("x")
        assert vol.unmount() == 0
        assert (vol.mnt / "app-data.db").read_bytes() == b"written before the mount"
        # an empty one mounts as always
        (vol.mnt / "app-data.db").unlink()
        vol.mount()
        assert (vol.mnt / "f").read_text() == "x"
        assert vol.unmount() == 0
        # a missing one is created (a container's first start), and mounted
        os.rmdir(vol.mnt)
        vol.mount()
        assert (vol.mnt / "f").read_text() == "x"
        assert vol.unmount() == 0
    finally:
        if vol.fs:
            vol.unmount()
        vol.stop_stor()


def test_idle_control_client_does_not_block_the_stop(tmp_path):
    """A client that connects to qsfs-fs's control socket and never sends
    anything (or never reads) must not hold up the clean stop: it used to
    wait for the connection to end, forever."""
    import socket
    import subprocess
    vol = Volume(tmp_path)
    vol.start_stor()
    try:
        vol.mount()
        (vol.mnt / "f").write_bytes(b"data")
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        idle.connect(str(vol.cache / "fs.sock"))
        # a request whose reply nobody reads: a WARMUP of the whole volume
        slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        slow.connect(str(vol.cache / "fs.sock"))
        slow.sendall(b"WARMUP\n")
        subprocess.run(["fusermount3", "-u", str(vol.mnt)], check=True)
        assert vol.fs.wait(timeout=60) == 0, vol.fs_log.read_text()[-2000:]
        vol.fs = None
        assert idle.recv(100) == b""  # cut off, not left hanging
        idle.close()
        slow.close()
        vol.mount()
        assert (vol.mnt / "f").read_bytes() == b"data"
        assert vol.unmount() == 0
    finally:
        if vol.fs:
            vol.unmount()
        vol.stop_stor()
