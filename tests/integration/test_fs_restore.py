"""Fresh-node restore: a node with only the configuration and the key (empty
cache directory, empty stor state directory) mounts a volume that exists on
the backends and gets the whole tree back, byte-identical: content, modes,
owners, times, symlinks, hard links, xattrs, inode numbers. Backends are six
real redis-servers."""
import hashlib
import os
import shutil
import stat

from qsfs_mount import REPO_ROOT, Volume, wait_for
from test_stor import redises  # noqa: F401  (the six redis-servers fixture)

MIB = 1 << 20


def snapshot(root):
    """Everything a restore must bring back, per path."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            xattrs = {}
            if not stat.S_ISLNK(st.st_mode):
                for x in sorted(os.listxattr(p, follow_symlinks=False)):
                    xattrs[x] = os.getxattr(p, x, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    body = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(p)
            else:
                body = None
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_nlink, st.st_ino,
                        st.st_mtime_ns, body, tuple(xattrs.items()))
    return out


def make_tree(mnt, rng_seed=5):
    import random
    rng = random.Random(rng_seed)
    for d in range(5):
        (mnt / f"dir{d}" / "sub").mkdir(parents=True)
        for i in range(40):
            p = mnt / f"dir{d}" / f"small{i}"
            p.write_bytes(rng.randbytes(rng.randrange(0, 20000)))
            os.chmod(p, 0o600 + i % 8)
            os.chown(p, 1000 + i % 3, 2000 + i % 5)
            os.utime(p, ns=(1_600_000_000_000_000_000 + i, 1_500_000_000_123_456_789 + i))
    (mnt / "big").write_bytes(rng.randbytes(9 * MIB))
    os.symlink("dir0/small1", mnt / "link")
    os.symlink("/nowhere/at/all", mnt / "dir1" / "dangling")
    os.link(mnt / "dir2" / "small3", mnt / "dir3" / "hard")
    os.setxattr(mnt / "dir4" / "small7", "user.note", b"kept across hosts")
    os.setxattr(mnt / "dir4", "user.dirnote", b"\x00\x01binary")
    os.mkfifo(mnt / "dir0" / "fifo")
    os.chmod(mnt / "dir3", 0o2750)


def test_fresh_node_restores_the_tree(tmp_path, redises):  # noqa: F811
    backends = [f"redis://127.0.0.1:{r.port}/0" for r in redises]
    vol = Volume(tmp_path, backends=backends, segment_size="1MiB")
    try:
        vol.start_stor()
        vol.mount()
        make_tree(vol.mnt)
        want = snapshot(vol.mnt)
        assert vol.unmount() == 0  # clean stop: seal, checkpoint, hand-offs
        vol.ctl("drain", "--timeout", "120")
        assert vol.stop_stor() == 0
        cat = vol.ctl("catalog", check=False)  # stor is down: refused, named
        assert cat.returncode == 3

        # the old host is gone: only the configuration and the key remain
        vol.mount_as_fresh_node()
        log = vol.fs_log.read_text()
        assert "restored the volume" in log, log[-2000:]
        got = snapshot(vol.mnt)
        assert got.keys() == want.keys()
        for p in want:
            assert got[p] == want[p], p
        # the restored node goes on writing; a remount keeps everything
        (vol.mnt / "after-restore").write_bytes(b"new data on the new host")
        vol.remount()
        assert (vol.mnt / "after-restore").read_bytes() == b"new data on the new host"
        assert snapshot(vol.mnt)["big"] == want["big"]
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_new_volume_needs_no_stor_and_restore_needs_it(tmp_path):
    vol = Volume(tmp_path, segment_size="1MiB", extra_cache="")
    vol.conf.write_text(vol.conf.read_text().replace("fs:\n", "fs:\n  restore_wait: 2\n"))
    try:
        # a new volume (no catalog on the backends): mounts without stor
        vol.mount()
        (vol.mnt / "f").write_bytes(b"x" * 300000)
        vol.start_stor()
        assert vol.unmount() == 0  # the clean stop hands everything off
        vol.ctl("drain", "--timeout", "120")
        assert vol.stop_stor() == 0
        # the catalog now lists data: an empty cache directory cannot start
        # as a new volume over it
        shutil.rmtree(vol.cache)
        p = vol.try_mount()
        assert p.returncode == 1
        assert "qsfs-stor does not answer" in p.stderr and "start qsfs-stor first" in p.stderr
        assert not (vol.cache / "VOLUME").exists()
        vol.start_stor()
        vol.mount()
        assert (vol.mnt / "f").read_bytes() == b"x" * 300000
        assert vol.unmount() == 0
    finally:
        vol.close()


def hide(vol, obj):
    """obj's shards gone from three of six backends (fewer than k=4 left):
    unreadable until unhide. The paths moved."""
    moved = []
    for b in vol.backends[:3]:
        for d, dirs, _ in os.walk(b[len("dir://"):]):
            if os.path.basename(d) == "o" and obj in dirs:
                os.rename(os.path.join(d, obj), os.path.join(d, obj) + ".away")
                moved.append(os.path.join(d, obj))
    assert len(moved) == 3, (obj, moved)
    return moved


def unhide(moved):
    for src in moved:
        os.rename(src + ".away", src)


def test_restore_of_many_objects_names_the_one_it_cannot_fetch(tmp_path):
    """A volume of many checkpoints (a delta per seal) and, after the newest
    one the backends hold, many sealed segments (the host died while its
    checkpoints' uploads failed): a restore fetches them several at once.
    The catalog keeps two chains (the previous full and its deltas, for a
    newest full that cannot be read). Objects made unreadable (fewer than
    k=4 shards left): with the newest full, the oldest checkpoint and a
    later segment gone, the restore falls back to the older chain and fails
    naming the oldest checkpoint (the first in catalog order), leaving no
    volume behind; with it back, it names the segment; with that back, it
    restores everything from the older chain. With the newest full back,
    a restore needs nothing of the older chain: it succeeds with the
    oldest checkpoint gone, fetching fewer checkpoints."""
    import json
    import re
    # a hook that refuses checkpoints while the flag file exists
    flag = tmp_path / "refuse-checkpoints"
    wrapper = tmp_path / "hook"
    wrapper.write_text("#!/bin/sh\n"
                       f"[ \"$1\" = checkpoint-written ] && [ -e {flag} ] && exit 75\n"
                       f"exec {REPO_ROOT / 'hooks' / 'qsfs-hook'} \"$@\"\n")
    wrapper.chmod(0o755)
    vol = Volume(tmp_path, segment_size="256KiB",
                 extra_cache=f"  hook: {wrapper}\n  max_segment_age: 1")
    try:
        vol.start_stor()
        vol.mount()
        want = {}
        for i in range(40):  # one seal each: a delta checkpoint each
            data = os.urandom(3000 + i)
            (vol.mnt / f"f{i}").write_bytes(data)
            want[f"f{i}"] = hashlib.sha256(data).hexdigest()
            vol.ctl("drain", "--timeout", "120")
        # now checkpoints fail to go; segments go on
        flag.touch()
        late = os.urandom(3 * MIB)
        with open(vol.mnt / "late", "wb") as f:
            f.write(late)
            os.fsync(f.fileno())
        want["late"] = hashlib.sha256(late).hexdigest()

        def sealed_stored():
            # older than max_segment_age: sealed by the monitor, then
            # stored (confirmed); only the checkpoints wait
            fs = json.loads(vol.ctl("status", "--json", check=False).stdout).get("fs") or {}
            return fs.get("active_records") == 0 and fs.get("segments_unconfirmed") == 0
        wait_for(sealed_stored, 60, "every record sealed and stored")
        cat = json.loads(vol.ctl("catalog").stdout)
        cks = cat["checkpoints"]
        assert len(cks) >= 10, cat
        later = [i for i in range(max(c["upto"] for c in cks) + 1, cat["segments_upto"] + 1)]
        assert len(later) >= 8, (later, cat)
        vol.kill9()  # the host dies
        assert vol.stop_stor() == 0
        flag.unlink()

        fulls = [i for i, c in enumerate(cks) if c["kind"] == "full"]
        assert fulls and fulls[-1] > 0, cks  # an older chain before the newest full
        newest_full, oldest = f"c{cks[fulls[-1]]['id']}", f"c{cks[0]['id']}"
        seg_victim = f"s{later[len(later) // 2]}"

        def fresh_node():
            shutil.rmtree(vol.cache, ignore_errors=True)
            shutil.rmtree(vol.tmp / "stor", ignore_errors=True)
            vol.start_stor()

        def restored():
            log = vol.fs_log.read_text()
            m = re.findall(r"restored the volume .*?: (\d+) checkpoints .*? and (\d+) later",
                           log)
            assert m, log[-2000:]
            return int(m[-1][0]), int(m[-1][1])

        full_moved, old_moved = hide(vol, newest_full), hide(vol, oldest)
        seg_moved = hide(vol, seg_victim)
        fresh_node()
        # the dead host's lease is still live: a fresh node takes it over
        p = vol.try_mount("--takeover")
        assert p.returncode == 1, p.stderr
        assert f"fetching {oldest}" in p.stderr, p.stderr
        assert f"the newest full checkpoint {newest_full} cannot be used" in p.stderr, p.stderr
        assert not (vol.cache / "VOLUME").exists()
        unhide(old_moved)
        p = vol.try_mount("--takeover")
        assert p.returncode == 1, p.stderr
        assert f"fetching {seg_victim}" in p.stderr, p.stderr
        assert not (vol.cache / "VOLUME").exists()

        unhide(seg_moved)  # the older chain, and every delta after it
        vol.mount("--takeover")
        nck, nseg = restored()
        assert nck == len(cks) - 1 and nseg >= 8, (nck, nseg, cks)
        vol.assert_files(want)
        assert vol.unmount() == 0  # which stores checkpoints of its own
        vol.ctl("drain", "--timeout", "120")
        unhide(full_moved)  # the newest full: nothing before it is fetched
        cks = json.loads(vol.ctl("catalog").stdout)["checkpoints"]
        fulls = [i for i, c in enumerate(cks) if c["kind"] == "full"]
        assert fulls and fulls[-1] > 0, cks
        assert vol.stop_stor() == 0
        old_moved = hide(vol, f"c{cks[0]['id']}")
        fresh_node()
        vol.mount()
        nck, _ = restored()
        assert nck == len(cks) - fulls[-1], (nck, cks)
        vol.assert_files(want)
        assert vol.unmount() == 0
        unhide(old_moved)
    finally:
        vol.close()
