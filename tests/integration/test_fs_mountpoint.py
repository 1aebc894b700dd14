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
