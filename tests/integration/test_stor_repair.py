"""Scrub and repair on six real redis-servers (k=4, m=2): FLUSHALL one
backend, a scrub finds every shard it held missing and repairs each object
back to full redundancy (status says so); then two other backends are
killed, and a fresh node still reads every byte back."""
import hashlib
import json
import os
import socket

from qsfs_mount import Volume
from test_stor import redises  # noqa: F401  (the six redis-servers fixture)

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
