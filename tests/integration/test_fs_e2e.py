"""qsfs end to end: qsfs-fs, qsfs-stor and six real redis-servers (k=4,
m=2). Data written through the mount goes to the backends in sealed
segments, is evicted locally, and reads come back through the
segment-missing hook, byte-exact. A cold fetch blocks only its reader."""
import hashlib
import os
import subprocess
import threading
from pathlib import Path

import pytest

from qsfs_mount import Volume
from test_stor import redises  # noqa: F401  (the six redis-servers fixture)

MIB = 1 << 20


def drop_caches():
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def local_segments(vol):
    return sorted(p.name for p in vol.cache.glob("seg-*.qseg"))


def test_write_evict_read_back_through_redis(tmp_path, redises):
    slow_ctl = tmp_path / "slow-ctl"
    # through the hook (the extension point): its qsfs-ctl can be slowed
    vol = Volume(tmp_path, backends=[f"redis://127.0.0.1:{r.port}/0" for r in redises],
                 segment_size="4MiB", max_size="12MiB", hook=True)
    # qsfs-ctl behind a wrapper that makes every retrieve take 4 s while the
    # file /tmp/.../slow exists: a cold fetch we can watch
    slow_flag = tmp_path / "slow"
    slow_ctl.write_text(f"""#!/bin/sh
for a in "$@"; do [ "$a" = retrieve ] && [ -e {slow_flag} ] && sleep 4; done
exec {vol.ctl_bin} "$@"
""")
    slow_ctl.chmod(0o755)
    vol.ctl_bin_real = vol.ctl_bin
    try:
        vol.start_stor()
        env_ctl = vol.env

        def env():
            e = env_ctl()
            e["QSFS_CTL"] = str(slow_ctl)
            return e
        vol.env = env
        vol.mount()
        total = 300 * MIB
        sums = {}
        for i in range(6):  # 6 files of 50 MiB, half of each compressible
            p = vol.mnt / f"f{i}"
            h = hashlib.sha256()
            with open(p, "wb") as f:
                for _ in range(total // 6 // MIB):
                    chunk = os.urandom(MIB // 2) + bytes(MIB // 2)
                    f.write(chunk)
                    h.update(chunk)
            sums[p.name] = h.hexdigest()
        (vol.mnt / "local").write_bytes(b"the newest file, in the active segment")
        # wait until stor has everything and the log has evicted down to its limit
        vol.ctl("drain", "--timeout", "300")
        for _ in range(300):
            segs = local_segments(vol)
            if len(segs) <= 4:
                break
            threading.Event().wait(0.2)
        segs = local_segments(vol)
        assert len(segs) <= 4, f"still local: {segs}"  # 75+ segments were written
        drop_caches()
        # a cold read blocks on the (slowed) fetch; a stat and a read of a
        # local file meanwhile answer before it
        slow_flag.write_text("")
        done = {}

        def cold():
            with open(vol.mnt / "f0", "rb") as f:
                f.seek(10 * MIB)
                done["cold"] = f.read(MIB)
        t = threading.Thread(target=cold)
        t.start()
        threading.Event().wait(0.5)
        assert os.stat(vol.mnt / "local").st_size == 38
        assert (vol.mnt / "local").read_bytes().startswith(b"the newest file")
        assert "cold" not in done, "the cold read finished first: nothing was being fetched"
        slow_flag.unlink()
        t.join(60)
        assert "cold" in done
        # everything back, byte-exact, through stor and redis
        for name, want in sums.items():
            h = hashlib.sha256()
            with open(vol.mnt / name, "rb") as f:
                while chunk := f.read(4 * MIB):
                    h.update(chunk)
            assert h.hexdigest() == want, name
        assert "fetched back (segment-missing hand-off)" in vol.fs_log.read_text()
        assert vol.unmount() == 0
        assert "unmounted; log synced" in vol.fs_log.read_text()
    finally:
        vol.close()


@pytest.fixture
def tree():
    src = Path("/usr/include")
    if not src.is_dir():
        pytest.fail("/usr/include is missing (install libc6-dev)")
    return src


def test_untar_a_source_tree(tmp_path, tree):
    tarball = tmp_path / "include.tar"
    subprocess.run(["tar", "-C", str(tree.parent), "-cf", str(tarball), tree.name], check=True)
    vol = Volume(tmp_path, segment_size="16MiB")
    try:
        vol.start_stor()
        vol.mount()
        subprocess.run(["tar", "-C", str(vol.mnt), "-xf", str(tarball)], check=True)
        r = subprocess.run(["diff", "-r", "--no-dereference", str(tree), str(vol.mnt / tree.name)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        vol.remount()
        drop_caches()
        r = subprocess.run(["diff", "-r", "--no-dereference", str(tree), str(vol.mnt / tree.name)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        # and the tree goes away cleanly
        subprocess.run(["rm", "-rf", str(vol.mnt / tree.name)], check=True)
        assert os.listdir(vol.mnt) == []
        assert vol.unmount() == 0
    finally:
        vol.close()
