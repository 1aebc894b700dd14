"""Garbage collection end to end (issue 17): space is given back locally and
on the backends, a fresh node restores what the model says at every point,
and a collection survives kill -9 and backends that are away.

Every stack here is real: qsfs-stor, qsfs-fs on FUSE, six dir:// backends
(k=4, m=2), small segments so that a few MiB make many of them."""
import hashlib
import json
import os
import random
import shutil
import signal

import pytest

from qsfs_mount import Volume, wait_for

MIB = 1 << 20
BLOCK = 4096


def remote_bytes(vol):
    """Bytes of every object under the backends (shards and metadata)."""
    total = 0
    for b in vol.backends:
        root = b[len("dir://"):]
        for d, _, files in os.walk(root):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(d, f))
                except FileNotFoundError:
                    pass
    return total


def segment_objects(vol):
    """Names of the segment objects whose metadata some backend holds."""
    names = set()
    for b in vol.backends:
        for d, _, files in os.walk(b[len("dir://"):]):
            if os.path.basename(d) == "m":
                names.update(f for f in files if f.startswith("s") and "." not in f)
    return names


def fs_status(vol):
    return json.loads(vol.ctl("status", "--json", check=False).stdout)["fs"]


def overwrite(path, model, rounds_rng, n):
    """n random 4 KiB overwrites of path, mirrored in model (a bytearray)."""
    with open(path, "r+b") as f:
        for _ in range(n):
            off = rounds_rng.randrange(len(model) // BLOCK) * BLOCK
            data = rounds_rng.randbytes(BLOCK)
            f.seek(off)
            f.write(data)
            model[off:off + BLOCK] = data
        f.flush()
        os.fsync(f.fileno())


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


def make_volume(tmp_path, **kw):
    # gc_interval 0: only `qsfs-ctl gc` collects, so every figure below is
    # taken at a known point
    return Volume(tmp_path, segment_size="1MiB",
                  extra_cache="  gc_interval: 0\n  max_segment_age: 1", **kw)


def test_overwrites_stay_bounded_and_rm_gives_space_back(tmp_path):
    vol = make_volume(tmp_path)
    vol.start_stor()
    vol.mount()
    rng = random.Random(17)
    try:
        a = vol.mnt / "a"
        model = bytearray(rng.randbytes(8 * MIB))
        a.write_bytes(model)
        b = vol.mnt / "b"
        b.write_bytes(rng.randbytes(8 * MIB))
        os.sync()
        vol.ctl("drain")
        live0 = remote_bytes(vol)
        figures = []
        for _ in range(6):
            overwrite(a, model, rng, 1024)  # 4 MiB of 4 KiB writes
            vol.ctl("drain")
            out = vol.ctl("gc", "--timeout", "120").stdout
            assert "gc: folded" in out and "removed" in out, out
            figures.append(remote_bytes(vol))
        print("remote bytes: first write %d, after each round %s" % (live0, figures))
        # bounded: not growing round after round (without collection each
        # round adds about 4 MiB x 1.5 plus the blocks it re-wrote)
        assert figures[-1] <= 1.15 * figures[1], figures
        # and close to what the live data needs: 16 MiB live x (k+m)/k
        assert figures[-1] <= 1.3 * 1.5 * 16 * MIB + 2 * MIB, figures
        assert a.read_bytes() == model
        peak = max(figures + [live0])

        # everything deleted: one pass brings the backends down to metadata
        os.unlink(a)
        os.unlink(b)
        vol.ctl("drain")
        out = vol.ctl("gc", "--timeout", "120").stdout
        after = remote_bytes(vol)
        print("after rm and gc: %d bytes (peak %d)" % (after, peak))
        assert after <= 0.02 * peak, (after, peak, out)
        # fs-status.json is rewritten every 2 s
        wait_for(lambda: fs_status(vol)["removes_pending"] == 0
                 and fs_status(vol)["dead_bytes"] < MIB, timeout=30,
                 what="fs-status.json to show the removal")
        st = fs_status(vol)
        assert st["removed_segments"] > 0, st

        # a fresh node sees exactly the model (here: an empty volume, and
        # then a file written after all that)
        c = vol.mnt / "c"
        cm = rng.randbytes(3 * MIB)
        c.write_bytes(cm)
        assert vol.unmount() == 0, vol.fs_log.read_text()[-3000:]
        vol.stop_stor()
        vol.mount_as_fresh_node()
        assert sorted(os.listdir(vol.mnt)) == ["c"]
        assert c.read_bytes() == cm
    finally:
        vol.close()


def test_background_collector_keeps_the_backends_bounded(tmp_path):
    """No `qsfs-ctl gc` at all: the collector's own passes (every second
    here) fold, clean and remove, so the backends come back to about what
    the live data needs after overwrite rounds, and status shows its
    passes."""
    vol = Volume(tmp_path, segment_size="1MiB",
                 extra_cache="  gc_interval: 1\n  max_segment_age: 1")
    vol.start_stor()
    vol.mount()
    rng = random.Random(29)
    try:
        a = vol.mnt / "a"
        model = bytearray(rng.randbytes(8 * MIB))
        a.write_bytes(model)
        for _ in range(4):
            overwrite(a, model, rng, 1024)
            vol.ctl("drain")
        bound = 1.3 * 1.5 * 8 * MIB + 2 * MIB
        try:
            wait_for(lambda: remote_bytes(vol) <= bound, timeout=180,
                     what=f"the backends to hold at most {bound} bytes")
        except AssertionError as e:
            st = fs_status(vol)
            st_stor = json.loads(vol.ctl("status", "--json", check=False).stdout)
            st_stor.pop("fs", None)
            raise AssertionError(f"{e}: they hold {remote_bytes(vol)} bytes in "
                                 f"{len(segment_objects(vol))} segment objects; fs status "
                                 f"{json.dumps(st)}; stor status {json.dumps(st_stor)}; "
                                 f"fs log: {vol.fs_log.read_text()[-4000:]}; stor log: "
                                 f"{vol.stor_log.read_text()[-4000:]}") from None
        assert a.read_bytes() == model
        st = fs_status(vol)
        assert st["gc"]["passes"] > 0 and st["removed_segments"] > 0, st
    finally:
        vol.close()


def test_fresh_node_restores_after_collection(tmp_path):
    """Collect while files change, then restore on a fresh node: every file
    equals the model, though most of the segments it was written in are
    gone."""
    vol = make_volume(tmp_path)
    vol.start_stor()
    vol.mount()
    rng = random.Random(23)
    model = {}
    try:
        for step in range(5):
            for i in range(6):
                name = f"f{i}"
                if rng.random() < 0.2 and name in model:
                    os.unlink(vol.mnt / name)
                    del model[name]
                    continue
                data = bytearray(model.get(name, b"")) or bytearray(rng.randbytes(MIB))
                if name in model:
                    overwrite(vol.mnt / name, data, rng, 64)
                else:
                    (vol.mnt / name).write_bytes(data)
                model[name] = bytes(data)
            vol.ctl("drain")
            vol.ctl("gc", "--timeout", "120")
        removed = fs_status(vol)["removed_segments"]
        assert removed > 0
        assert vol.unmount() == 0
        vol.stop_stor()
        vol.mount_as_fresh_node()
        assert sorted(os.listdir(vol.mnt)) == sorted(model)
        for name, data in model.items():
            assert (vol.mnt / name).read_bytes() == data, name
    finally:
        vol.close()


def test_collection_with_one_backend_away_and_with_m_plus_one(tmp_path):
    """One backend away (stores go on with 5 of 6 shards, min_shards): the
    deletions on it wait (status says so) and finish once it is back;
    nothing is lost. m+1 away: nothing can be stored or confirmed, so
    nothing that died meanwhile is removed, and reads stay right."""
    vol = make_volume(tmp_path, extra_stor="  min_shards: 5")
    vol.start_stor()
    vol.mount()
    rng = random.Random(5)
    try:
        a = vol.mnt / "a"
        model = bytearray(rng.randbytes(4 * MIB))
        a.write_bytes(model)
        for _ in range(3):
            overwrite(a, model, rng, 512)
        vol.ctl("drain")

        away = vol.backends[0][len("dir://"):]
        os.rename(away, away + ".away")
        open(away, "w").close()  # a file where the directory was: every access fails
        try:
            vol.ctl("gc", "--timeout", "20", check=False)
            st = json.loads(vol.ctl("status", "--json", check=False).stdout)
            assert st["fs"]["removed_segments"] > 0, st["fs"]
            assert st.get("deletes_pending", 0) > 0, st
            assert a.read_bytes() == model
        finally:
            os.unlink(away)
            os.rename(away + ".away", away)
        # back: the deletions finish, and no removed segment keeps an object
        wait_for(lambda: json.loads(vol.ctl("status", "--json", check=False).stdout)
                 .get("deletes_pending", 1) == 0, timeout=180, what="deletions to finish")
        cat = json.loads(vol.ctl("catalog").stdout)
        removed = set()
        for first, last in cat.get("segments_removed", []):
            removed.update(f"s{i}" for i in range(first, last + 1))
        assert removed
        assert not removed & segment_objects(vol), removed & segment_objects(vol)

        # m+1 = 3 backends away: uploads stop, so does removal
        moved = [b[len("dir://"):] for b in vol.backends[:3]]
        for d in moved:
            os.rename(d, d + ".away")
            open(d, "w").close()
        try:
            before = fs_status(vol)["removed_segments"]
            overwrite(a, model, rng, 512)
            p = vol.ctl("gc", "--timeout", "5", check=False)
            assert fs_status(vol)["removed_segments"] == before, p.stdout
            assert a.read_bytes() == model
        finally:
            for d in moved:
                os.unlink(d)
                os.rename(d + ".away", d)
        vol.ctl("drain")
        vol.ctl("gc", "--timeout", "120")
        assert a.read_bytes() == model
    finally:
        vol.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_kill9_during_collection(tmp_path, seed):
    """kill -9 of qsfs-fs at a random moment of a collection: the next mount
    reads the model, collects again, and a fresh node restores it."""
    vol = make_volume(tmp_path)
    vol.start_stor()
    vol.mount()
    rng = random.Random(seed)
    try:
        a = vol.mnt / "a"
        model = bytearray(rng.randbytes(6 * MIB))
        a.write_bytes(model)
        for _ in range(4):
            overwrite(a, model, rng, 768)
        vol.ctl("drain")
        import subprocess
        import time
        gc = subprocess.Popen([vol.ctl_bin, "-c", str(vol.conf), "gc", "--timeout", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.0, 1.5))  # a random point of the pass, on purpose
        vol.kill9()
        gc.wait(timeout=60)
        vol.mount()
        assert a.read_bytes() == model
        vol.ctl("drain")
        vol.ctl("gc", "--timeout", "120")
        assert a.read_bytes() == model
        assert vol.unmount() == 0
        vol.stop_stor()
        vol.mount_as_fresh_node()
        assert (vol.mnt / "a").read_bytes() == model
    finally:
        vol.close()
