"""One writer per volume: two hosts (two cache and stor state directories,
one set of backends, the same key) and the writer lease between them.
A second writer is refused while the first holds the lease, with a message
naming the holder and the lease age; a move after a clean stop needs no
wait; --takeover takes a live lease and fences the old holder (its writes
fail with EROFS, its stor stops uploading); an expired lease is taken
without --takeover; a cache another writer has moved past is refused as
stale."""
import errno
import json
import os
import shutil
import socket
import time


from qsfs_mount import Volume, wait_for


def hosts(tmp_path, timeout=3):
    backends = [f"dir://{tmp_path}/backend{i}" for i in range(6)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Volume(tmp_path / "a", backends=backends, extra_fs=f"  lease_timeout: {timeout}")
    b = Volume(tmp_path / "b", backends=backends, extra_fs=f"  lease_timeout: {timeout}", key=a.key,
               format=False)
    return a, b


def stor_status(vol):
    return json.loads(vol.ctl("status", "--json").stdout)


def test_second_writer_refused_and_a_clean_move_needs_no_wait(tmp_path):
    a, b = hosts(tmp_path)
    try:
        a.start_stor()
        a.mount()
        (a.mnt / "f1").write_bytes(b"written on host a" * 1000)
        b.start_stor()
        p = b.try_mount()
        assert p.returncode == 1, p.stderr
        err = p.stderr
        assert "held by another writer" in err and f"on host {socket.gethostname()}" in err
        assert "last heartbeat" in err and "--takeover" in err, err
        assert not (b.cache / "VOLUME").exists()  # nothing restored behind a's back
        # waiting is not enough while a renews its lease
        time.sleep(4)
        assert b.try_mount().returncode == 1
        # a clean stop on a, drained: b starts at once, without --takeover
        assert a.unmount() == 0
        a.ctl("drain", "--timeout", "60")
        assert stor_status(a)["lease"] == "released"
        b.mount()
        assert (b.mnt / "f1").read_bytes() == b"written on host a" * 1000
        wait_for(lambda: stor_status(b)["lease"] == "mounted", 10, "stor to see the lease")
        # and now a is the second writer
        p = a.try_mount()
        assert p.returncode == 1 and "held by another writer" in p.stderr, p.stderr
        assert b.unmount() == 0
    finally:
        a.close()
        b.close()


def test_second_start_on_the_same_node_leaves_the_lease_alone(tmp_path):
    """A second qsfs-fs on the node that holds the lease (same cache, same
    holder id) is refused before it touches the lease: it used to take it,
    fail on the busy cache and clear the mounted flag, after which stor
    released the lease of the running mount and another host could start."""
    a, b = hosts(tmp_path, timeout=30)
    try:
        a.start_stor()
        a.mount()
        (a.mnt / "f1").write_bytes(b"a is mounted")
        wait_for(lambda: stor_status(a)["lease"] == "mounted", 10, "stor to see the lease")
        p = a.try_mount(str(tmp_path / "elsewhere"))
        assert p.returncode == 1, p.stderr
        assert f"{a.cache} is in use by another process" in p.stderr, p.stderr
        time.sleep(5)  # stor looks at the lease every 2 s
        assert stor_status(a)["lease"] == "mounted"
        b.start_stor()
        p = b.try_mount()
        assert p.returncode == 1 and "held by another writer" in p.stderr, p.stderr
        assert (a.mnt / "f1").read_bytes() == b"a is mounted"
        assert a.unmount() == 0
    finally:
        a.close()
        b.close()


def test_takeover_fences_the_old_writer_and_expiry(tmp_path):
    a, b = hosts(tmp_path, timeout=10)
    try:
        a.start_stor()
        a.mount()
        (a.mnt / "f1").write_bytes(b"from a")
        a.ctl("drain", "--timeout", "60")
        b.start_stor()
        b.mount("--takeover")
        assert (b.mnt / "f1").read_bytes() == b"from a"
        # a finds out at its next renewal (every lease_timeout/3 s)
        deadline = time.monotonic() + 30
        while True:
            try:
                (a.mnt / "late").write_bytes(b"x")
                with open(a.mnt / "late2", "wb") as f:
                    f.write(b"y")
                    f.flush()
            except OSError as e:
                assert e.errno == errno.EROFS, e
                break
            assert time.monotonic() < deadline, "a was not fenced"
            time.sleep(0.2)
        st = stor_status(a)
        assert st["fs"]["state"] == "fenced", st["fs"]
        assert any("another writer has taken the volume" in x for x in st["fs"]["problems"])
        assert st["fenced"] and any("uploads stopped" in x for x in st["problems"]), st
        assert (a.mnt / "f1").read_bytes() == b"from a"  # reads go on
        a.kill9()
        a.stop_stor(signal_kill())
        # b writes and seals, then dies without a clean stop
        (b.mnt / "f2").write_bytes(b"from b")
        b.ctl("drain", "--timeout", "60")
        b.kill9()
        b.stop_stor(signal_kill())
        # a comes back: b's lease is live for lease_timeout, then expires
        a.start_stor()
        p = a.try_mount()
        assert p.returncode == 1 and "held by another writer" in p.stderr, p.stderr
        time.sleep(10.5)
        # expired, but a's cache is behind what b sealed: refused as stale
        p = a.try_mount()
        assert p.returncode == 1 and "is stale" in p.stderr, p.stderr
        shutil.move(str(a.cache), str(a.tmp / "old-cache"))
        a.mount()
        assert (a.mnt / "f2").read_bytes() == b"from b"
        assert (a.mnt / "f1").read_bytes() == b"from a"
        assert a.unmount() == 0
    finally:
        a.close()
        b.close()


def signal_kill():
    import signal
    return signal.SIGKILL


def test_a_stop_with_hand_offs_left_keeps_the_lease(tmp_path):
    """qsfs-fs stopped while stor was down: its last sealed segments exist
    only on this node until qsfs-wait-hooks (or the next qsfs-fs) hands them
    off. stor used to release the lease as soon as its own queue was empty,
    and a host taking the volume then never saw that data."""
    from test_wait_hooks import waiter
    a, b = hosts(tmp_path, timeout=3)
    try:
        a.start_stor()
        a.mount()
        (a.mnt / "f0").write_bytes(b"uploaded before")
        a.ctl("drain", "--timeout", "60")
        assert a.stop_stor() == 0
        data = os.urandom(3 << 20)
        (a.mnt / "f1").write_bytes(data)
        assert a.unmount() == 0  # its last seal cannot be handed off
        assert "could not be handed to qsfs-stor" in a.fs_log.read_text()
        # nobody renews the lease now, yet it does not expire: the data is only on a
        time.sleep(4)
        b.start_stor()
        p = b.try_mount()
        assert p.returncode == 1 and "held by another writer" in p.stderr, p.stderr
        assert "stopped with segments not handed off" in p.stderr, p.stderr
        assert "the lease does not expire" in p.stderr, p.stderr
        a.start_stor()
        time.sleep(5)  # stor looks at the lease every 2 s
        st = stor_status(a)
        assert st["lease"] == "stopping", st
        assert st["handoffs_left"] >= 1, st
        assert any("not handed off" in p for p in st["problems"]), st
        assert "not handed off" in a.ctl("status", check=False).stdout
        p = b.try_mount()
        assert p.returncode == 1 and "held by another writer" in p.stderr, p.stderr
        p = a.ctl("drain", "--timeout", "3", check=False)
        assert p.returncode == 1, p.stdout + p.stderr
        assert "segments not handed off; waiting for qsfs-wait-hooks" in p.stderr, p.stderr
        # the waiter hands them off: stor uploads them, then lets go
        w = waiter(a, "--now")
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        a.ctl("drain", "--timeout", "60")
        wait_for(lambda: stor_status(a)["lease"] == "released", 20, "stor to release the lease")
        assert stor_status(a)["handoffs_left"] == 0
        b.mount()
        assert (b.mnt / "f1").read_bytes() == data
        assert (b.mnt / "f0").read_bytes() == b"uploaded before"
        assert b.unmount() == 0
    finally:
        a.close()
        b.close()
