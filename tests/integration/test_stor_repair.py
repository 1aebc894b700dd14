"""Scrub and repair on six real redis-servers (k=4, m=2): FLUSHALL one
backend, a scrub finds every shard it held missing and repairs each object
back to full redundancy (status says so); then two other backends are
killed, and a fresh node still reads every byte back. Shards swapped
between keys: the scrub repairs them too."""
import hashlib
import json
import os
import socket

from conftest import _build_dir
from qsfs_mount import Volume
from test_stor import Stor, redises  # noqa: F401  (the six redis-servers fixture)

MIB = 1 << 20


def redis_cmd(port, *args):
    """One RESP command; returns the raw reply line."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode())
                                             for a in args)
    s.sendall(out)
    reply = s.recv(4096)
    s.close()
    return reply.decode().strip()


def resp(port, *args):
    """One RESP command, binary-safe (arguments str or bytes). The reply:
    bytes (a bulk string), str (a status), int, None (nil) or a list."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    f = s.makefile("rb")
    enc = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    s.sendall(b"*%d\r\n" % len(enc) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in enc))

    def read():
        line = f.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if int(rest) < 0 else f.read(int(rest) + 2)[:-2]
        assert kind == b"*", line
        return [read() for _ in range(int(rest))]
    try:
        return read()
    finally:
        f.close()
        s.close()


def dbsize(port):
    return int(redis_cmd(port, "DBSIZE")[1:])


def test_flushall_scrub_repair_then_two_backends_down(tmp_path, redises):  # noqa: F811
    backends = [f"redis://127.0.0.1:{r.port}/0" for r in redises]
    vol = Volume(tmp_path, backends=backends, segment_size="1MiB")
    try:
        vol.start_stor()
        vol.mount()
        rnd = __import__("random").Random(9)
        want = {}
        for i in range(12):
            data = rnd.randbytes(rnd.randrange(100_000, 700_000))
            (vol.mnt / f"f{i}").write_bytes(data)
            want[f"f{i}"] = hashlib.sha256(data).hexdigest()
        assert vol.unmount() == 0
        vol.ctl("drain", "--timeout", "120")
        objects = len(json.loads(vol.ctl("catalog").stdout)["checkpoints"]) + \
            json.loads(vol.ctl("catalog").stdout)["segments_upto"]

        p = vol.ctl("scrub")
        assert ", 0 bad shards found" in p.stdout and "0 failed" in p.stdout, p.stdout
        st = json.loads(vol.ctl("status", "--json").stdout)
        assert st["redundancy"]["full"] == objects and st["redundancy"]["degraded"] == 0, st

        before = dbsize(redises[0].port)
        assert before > 0
        assert redis_cmd(redises[0].port, "FLUSHALL") == "+OK"
        p = vol.ctl("scrub", check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"{objects} objects repaired" in p.stdout, p.stdout
        assert ", 0 bad shards found" not in p.stdout
        st = json.loads(vol.ctl("status", "--json").stdout)
        assert st["redundancy"]["full"] == objects and st["redundancy"]["unreadable"] == 0, st
        assert dbsize(redises[0].port) > 0  # its shards are back
        # a second pass finds nothing left to do
        p = vol.ctl("scrub")
        assert ", 0 bad shards found" in p.stdout, p.stdout
        assert vol.stop_stor() == 0

        # two other backends die; a fresh node reads everything back
        redises[1].stop()
        redises[2].stop()
        vol.mount_as_fresh_node()
        vol.assert_files(want)
        assert vol.unmount() == 0
    finally:
        vol.close()
        os.sync()


def test_swapped_shards_are_repaired_by_a_scrub(tmp_path, redises):  # noqa: F811
    """The values of two pairs of an object's shard keys exchanged between
    backends (shard 0 with 1, 2 with 3): a read still decodes them (each
    fragment carries its index), but only two of six match the metadata's
    checksums, fewer than k. The scrub tries a full decode and stores the
    object whole again: repaired, not reported unreadable (before, it
    failed the object for good); a second scrub finds every shard good, and
    with two backends then down it still reads. Three shards really
    corrupt: that decode fails, and only then is the object unreadable."""
    s = Stor(tmp_path, [f"redis://127.0.0.1:{r.port}/0" for r in redises], _build_dir())
    try:
        s.ctl("format")
        s.start()
        datas = {}
        for n in ("s1", "s2"):
            datas[n] = os.urandom(2 * MIB + 5)
            (tmp_path / n).write_bytes(datas[n])
            s.ctl("store", n, tmp_path / n)
        s.ctl("drain", "--timeout", "60")
        where = {}  # shard -> (redis, key) of s1's piece 0
        for r in redises:
            for k in resp(r.port, "KEYS", "*/o/s1/*"):
                where[int(k.decode().rsplit("/", 1)[1].split(".")[0])] = (r, k)
        assert sorted(where) == list(range(6)), where
        for a, b in ((0, 1), (2, 3)):
            (ra, ka), (rb, kb) = where[a], where[b]
            va, vb = resp(ra.port, "GET", ka), resp(rb.port, "GET", kb)
            assert resp(ra.port, "SET", ka, vb) == "OK" and resp(rb.port, "SET", kb, va) == "OK"
        s.ctl("retrieve", "s1", tmp_path / "a")
        assert (tmp_path / "a").read_bytes() == datas["s1"]

        p = s.ctl("scrub", check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "4 bad shards found, 1 objects repaired, 0 failed" in p.stdout, p.stdout
        st = json.loads(s.ctl("status", "--json").stdout)
        rd = st["redundancy"]
        assert rd["full"] == 2 and rd["unreadable"] == 0 and rd["degraded"] == 0, st
        assert st["degraded_objects"] == 0, st
        p = s.ctl("scrub")
        assert ", 0 bad shards found" in p.stdout, p.stdout
        assert "s1 repaired: only 2 of 6 shards matched its metadata, but they decode" in \
            s.log.read_text()
        # three of s2's shards corrupt in every stripe: no decode, unreadable
        for r in redises[:3]:
            for k in resp(r.port, "KEYS", "*/o/s2/*"):
                v = bytearray(resp(r.port, "GET", k))
                for i in range(200, len(v), 1000):
                    v[i] ^= 0x55
                assert resp(r.port, "SET", k, bytes(v)) == "OK"
        p = s.ctl("scrub", check=False)
        assert p.returncode == 1 and "0 objects repaired, 1 failed" in p.stdout, p.stdout
        assert "s2: only 3 of 6 shards are good, 4 needed, and they do not decode" in p.stdout
        st = json.loads(s.ctl("status", "--json").stdout)
        assert st["redundancy"]["unreadable"] == 1 and st["redundancy"]["full"] == 1, st
        # all six shards of s1's new generation are whole: two backends may go
        redises[3].stop()
        redises[4].stop()
        s.ctl("retrieve", "s1", tmp_path / "s1.back")
        assert (tmp_path / "s1.back").read_bytes() == datas["s1"]
        assert s.stop() == 0
    finally:
        if s.proc:
            s.proc.kill()
            s.proc.wait()
