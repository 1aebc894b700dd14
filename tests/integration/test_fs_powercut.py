"""Power cut during namespace changes: every create, link, unlink, rename
(replacing, exchanging, moving directories), mkdir, rmdir and truncate
(shrinking or growing) reaches the log as one atomic batch. The log of a run is cut at random byte offsets (what a
power cut leaves: any prefix of the unsynced tail) and each cut is mounted:
the tree must be exactly the tree after some whole operation, the last one
whose records end before the cut (or the one after it, when the cut only
lost the purge of an unlinked inode, which follows the batch), with every
nlink matching its names."""
import ctypes
import errno
import os
import random
import shutil
import stat

from qsfs_mount import Volume

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                            ctypes.c_uint]
AT_FDCWD = -100


def renameat2(a, b, flags):
    if _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(a))


def tree(root):
    """{relative path: (kind, ino, nlink, content)} and a consistency check:
    every file's nlink is its number of names, every directory's is 2 plus
    its subdirectories."""
    out, names = {}, {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISDIR(st.st_mode):
                sub = sum(1 for e in os.scandir(p) if e.is_dir(follow_symlinks=False))
                assert st.st_nlink == 2 + sub, f"{rel}: nlink {st.st_nlink}, {sub} subdirs"
                out[rel] = ("d", st.st_ino, st.st_nlink, None)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", st.st_ino, st.st_nlink, f.read())
                names.setdefault(st.st_ino, []).append(rel)
    for ino, ns in names.items():
        nl = out[ns[0]][2]
        assert nl == len(ns), f"inode {ino}: nlink {nl} but names {ns}"
    return out


def active_segment(cache):
    segs = sorted(p for p in cache.iterdir() if p.name.startswith("seg-"))
    return segs[-1]


def random_op(rng, mnt, state, serial):
    files = [p for p, v in state.items() if v[0] == "f"]
    dirs = [p for p, v in state.items() if v[0] == "d"]
    anydir = lambda: mnt / rng.choice(dirs + ["."])  # noqa: E731
    kind = rng.choice(["replace", "move", "movedir", "exchange", "noreplace", "link",
                       "unlink", "mkdir", "rmdir", "create", "truncate", "extend",
                       "append"])
    if kind == "replace" and len(files) >= 2:
        a, b = rng.sample(files, 2)
        os.rename(mnt / a, mnt / b)
    elif kind == "move" and files:
        os.rename(mnt / rng.choice(files), anydir() / f"m{serial}")
    elif kind == "movedir" and dirs:
        os.rename(mnt / rng.choice(dirs), anydir() / f"md{serial}")
    elif kind == "exchange" and len(files + dirs) >= 2:
        a, b = rng.sample(files + dirs, 2)
        renameat2(mnt / a, mnt / b, RENAME_EXCHANGE)
    elif kind == "noreplace" and files:
        renameat2(mnt / rng.choice(files), anydir() / f"n{serial}", RENAME_NOREPLACE)
    elif kind == "link" and files:
        os.link(mnt / rng.choice(files), anydir() / f"l{serial}")
    elif kind == "unlink" and files:
        os.unlink(mnt / rng.choice(files))
    elif kind == "mkdir":
        os.mkdir(anydir() / f"d{serial}")
    elif kind == "rmdir" and dirs:
        os.rmdir(mnt / rng.choice(dirs))
    elif kind == "create":
        os.mknod(anydir() / f"c{serial}", stat.S_IFREG | 0o644)
    elif kind == "truncate" and [f for f in files if state[f][3]]:
        # shrink: the new size and the drop of the data past it
        f = rng.choice([f for f in files if state[f][3]])
        os.truncate(mnt / f, rng.randrange(0, len(state[f][3])))
    elif kind == "append" and files:
        # not one batch: blocks first, then the size (a cut between leaves
        # data past the size, which must never show in a later hole)
        with open(mnt / rng.choice(files), "ab") as f:
            f.write(rng.randbytes(rng.randrange(1, 140000)))
    elif kind == "extend" and files:
        # grow: zeros, never the data a shrink dropped
        f = rng.choice(files)
        os.truncate(mnt / f, len(state[f][3]) + rng.randrange(1, 150000))
    else:
        return False
    return True


def test_power_cut_during_namespace_changes(tmp_path):
    rng = random.Random(int(os.environ.get("QSFS_TEST_SEED", "4")))
    # no stor and no seal by age: nothing sealed, nothing evicted
    vol = Volume(tmp_path, segment_size="64MiB", extra_cache="  max_segment_age: 0")
    try:
        vol.mount()
        mnt = vol.mnt
        for i in range(4):
            (mnt / f"dir{i}").mkdir()
        for i in range(12):
            p = mnt / f"dir{i % 4}" / f"file{i}"
            p.write_bytes(f"content of file {i}\n".encode() * (i + 1))
        os.link(mnt / "dir0" / "file0", mnt / "dir1" / "hard0")
        for i in range(3):  # several 64 KiB blocks: shrinking drops whole blocks too
            (mnt / f"dir{i}" / f"big{i}").write_bytes(rng.randbytes(150000 + 70000 * i))
        fd = os.open(mnt / "dir0" / "file0", os.O_RDONLY)
        os.fsync(fd)  # everything so far is durable
        os.close(fd)
        seg = active_segment(vol.cache)
        states = [tree(mnt)]
        ends = [seg.stat().st_size]
        serial = 0
        while len(states) < 60:
            serial += 1
            try:
                if not random_op(rng, mnt, states[-1], serial):
                    continue
            except OSError as e:
                # refused (ENOTEMPTY, EINVAL for a directory into itself...):
                # nothing was written
                assert e.errno in (errno.ENOTEMPTY, errno.EINVAL, errno.ENOTDIR,
                                   errno.EISDIR, errno.EEXIST, errno.ENOENT), e
                continue
            ends.append(seg.stat().st_size)  # before the walk (atime records)
            states.append(tree(mnt))
        assert active_segment(vol.cache) == seg, "a seal happened; use a larger segment"
        final = seg.stat().st_size
        vol.kill9()
        img = tmp_path / "image"
        shutil.copytree(vol.cache, img, ignore=shutil.ignore_patterns("fs.sock"))

        cuts = sorted({ends[0], final} | {rng.randrange(ends[0], final) for _ in range(30)}
                      | {e - 1 for e in ends[1:]})
        seen = set()
        for cut in cuts:
            shutil.rmtree(vol.cache)
            shutil.copytree(img, vol.cache)
            os.truncate(vol.cache / seg.name, cut)
            want = max(i for i, e in enumerate(ends) if e <= cut)
            vol.mount()
            try:
                got = tree(mnt)
                # growing any file (by truncate, fallocate or a write past
                # the end) shows zeros past its old end
                for how in ("fallocate", "write", "truncate"):
                    for p, v in got.items():
                        if v[0] != "f":
                            continue
                        end = len(v[3])
                        fd = os.open(mnt / p, os.O_RDWR)
                        try:
                            if how == "truncate":
                                os.truncate(fd, end + 200000)
                            elif how == "fallocate":
                                os.posix_fallocate(fd, end, 200000)
                            else:
                                os.pwrite(fd, b"\0", end + 199999)
                            assert os.pread(fd, 200001, end) == bytes(200000), \
                                f"{p}: not zeros past the end (grown by {how})"
                            os.truncate(fd, end)
                        finally:
                            os.close(fd)
            finally:
                assert vol.unmount() == 0, vol.fs_log.read_text()[-3000:]
            # an unlink's purge of the data, and a shrink's drop of the data
            # past the new size, come after their batch: a cut there leaves
            # the operation whole (the orphan or truncate key finishes it at
            # mount)
            if want + 1 < len(states) and got == states[want + 1]:
                want += 1
            assert got == states[want], (
                f"cut at {cut} (ops end at {ends}): not the tree after op {want}: "
                f"extra {sorted(set(got) - set(states[want]))}, "
                f"missing {sorted(set(states[want]) - set(got))}, "
                f"changed {sorted(p for p in got if p in states[want] and got[p] != states[want][p])}")
            seen.add(want)
        assert len(seen) >= 10, f"cuts landed after only {len(seen)} distinct ops"
    finally:
        vol.close()
