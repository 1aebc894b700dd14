"""qsfs on 0-db backends (zdb://, issue 20): six 0-db doubles (tests/zdbd.py,
user mode, an admin password, one password-protected namespace each), k=4
m=2, through the whole stack: format, files written through the mount,
drain, status with each namespace's use and limit, a wiped namespace found
and repaired by a scrub, a planted leak found and fixed by gc --check, and
a fresh node restoring the volume. A full namespace shows in status, its
backend gets no shards, and uploads go on once it has room."""
import hashlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from qsfs_mount import Volume, wait_for

MIB = 1 << 20
ADMIN = "zdb-admin-pw"
NS = "qsfs"


def resp_read(f):
    """One RESP reply from file f: str (status), int, bytes, None (nil),
    list, or RuntimeError for an error reply (returned, not raised)."""
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:n]
    if kind == b"*":
        return [resp_read(f) for _ in range(int(rest))]
    raise AssertionError(f"not a RESP reply: {line!r}")


class Zdb:
    """One 0-db double: its process, an admin's commands, and the
    namespace qsfs uses (password protected, not public)."""

    def __init__(self, tmp: Path, i: int):
        self.dir = tmp / f"zdb{i}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.password = f"ns-pw-{i}"
        self.log = self.dir / "commands"
        self.proc = None
        self.port = 0

    def start(self):
        pf = self.dir / "port"
        pf.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "tests" / "zdbd.py"), "--port", str(self.port),
             "--port-file", str(pf), "--admin", ADMIN, "--command-log", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: pf.exists() or self.proc.poll() is not None, 20, "zdbd.py to listen")
        assert self.proc.poll() is None, "zdbd.py exited"
        self.port = int(pf.read_text())

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def cmds(self, *cmds, admin=False, select=False):
        """Run commands (tuples) on one connection, as admin when admin, in
        the namespace when select: the list of replies."""
        with socket.create_connection(("127.0.0.1", self.port), 10) as s:
            f = s.makefile("rwb")
            pre = ([("AUTH", ADMIN)] if admin else []) + (
                [("SELECT", NS, self.password)] if select else [])
            out = []
            for c in pre + list(cmds):
                f.write(b"*%d\r\n" % len(c))
                for a in c:
                    a = a if isinstance(a, bytes) else str(a).encode()
                    f.write(b"$%d\r\n%s\r\n" % (len(a), a))
                f.flush()
                out.append(resp_read(f))
            for r in out[:len(pre)]:
                assert r == "OK", r
            return out[len(pre):]

    def ok(self, *cmd):
        r = self.cmds(cmd, admin=True)[0]
        assert r == "OK", (cmd, r)

    def make_namespace(self, maxsize=0):
        self.ok("NSNEW", NS)
        self.ok("NSSET", NS, "password", self.password)
        self.ok("NSSET", NS, "public", "0")
        if maxsize:
            self.ok("NSSET", NS, "maxsize", maxsize)

    def nsinfo(self):
        text = self.cmds(("NSINFO", NS))[0].decode()
        return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)

    def keys(self):
        """Every key of the namespace with its size (0-db's SCAN walk)."""
        out, cur = {}, None
        while True:
            r = self.cmds(("SCAN",) if cur is None else ("SCAN", cur), select=True)[0]
            if isinstance(r, RuntimeError):
                assert str(r) == "No more data", r
                return out
            cur = r[0]
            for key, size, _ts in r[1]:
                out[key.decode()] = size

    def url(self):
        return f"zdb://:{self.password}@127.0.0.1:{self.port}/{NS}"

    def logged(self, word):
        if not self.log.exists():
            return 0
        return sum(1 for line in self.log.read_text().splitlines()
                   if line.split(" ")[0] == word)


def start_zdbs(tmp_path_factory, n, maxsizes):
    base = tmp_path_factory.mktemp("zdb")
    zs = [Zdb(base, i) for i in range(n)]
    try:
        for z, m in zip(zs, maxsizes):
            z.start()
            z.make_namespace(m)
        yield zs
    finally:
        for z in zs:
            z.stop()


LIMIT = 256 * MIB


@pytest.fixture
def zdbs(tmp_path_factory):
    yield from start_zdbs(tmp_path_factory, 6, [LIMIT] * 6)


def status(vol):
    p = vol.ctl("status", "--json", check=False)
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout)


def problems(st):
    """Status's problems but a slow backend (a 1 MiB piece over 0.5 s, on
    a loaded test host with sanitizers)."""
    return [p for p in st["problems"] if " is slow: " not in p]


def answering(states):
    return all(s in ("up", "slow") for s in states)


def write_tree(mnt, rng):
    want = {}
    (mnt / "d").mkdir()
    for i in range(30):
        data = rng.randbytes(rng.randrange(0, 200_000))
        (mnt / "d" / f"f{i}").write_bytes(data)
        want[f"d/f{i}"] = hashlib.sha256(data).hexdigest()
    data = os.urandom(3 * MIB) + bytes(MIB)
    (mnt / "big").write_bytes(data)
    want["big"] = hashlib.sha256(data).hexdigest()
    return want


def test_volume_on_zdb_backends(tmp_path, zdbs):
    auths = [z.logged("AUTH") for z in zdbs]  # the admin's, making the namespaces
    vol = Volume(tmp_path, backends=[z.url() for z in zdbs], segment_size="1MiB")
    try:
        vol.start_stor()
        vol.mount()
        want = write_tree(vol.mnt, random.Random(20))
        assert vol.unmount() == 0
        vol.ctl("drain", "--timeout", "120")
        for z in zdbs:
            assert z.nsinfo()["data_size_bytes"] != "0"

        # status: every namespace's use and limit, as NSINFO tells (the
        # probe reads it every 2 s)
        def space_matches():
            st = status(vol)
            return all(b["space"] and b["space"]["limit_bytes"] == LIMIT and
                       b["space"]["used_bytes"] == int(z.nsinfo()["data_size_bytes"])
                       for b, z in zip(st["backends"], zdbs))
        wait_for(space_matches, 30, "status to show each namespace's use")
        st = status(vol)
        assert problems(st) == [], st["problems"]
        assert answering(b["state"] for b in st["backends"]), st["backends"]
        assert not any(b["full"] for b in st["backends"])
        human = vol.ctl("status").stdout
        assert human.count("of its 256.0 MiB limit used") == 6, human

        # a namespace wiped while its 0-db kept answering: a scrub finds
        # and repairs the shards
        vol_id = st["volume_id"]
        wiped = {k for k in zdbs[0].keys() if k.startswith(f"{vol_id}/o/")}
        assert wiped
        zdbs[0].cmds(*[("DEL", k) for k in wiped], select=True)
        p = vol.ctl("scrub", check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        assert " 0 bad shards found" not in p.stdout and "0 failed" in p.stdout, p.stdout
        p = vol.ctl("scrub")
        assert " 0 bad shards found, 0 objects repaired, 0 failed" in p.stdout, p.stdout

        # gc --check lists 0-db's keys (SCAN) and removes a planted leak
        assert vol.ctl("gc", "--check", check=False).returncode == 0
        shard = next(k for k in zdbs[1].keys() if k.startswith(f"{vol_id}/o/"))
        planted = re.sub(r"\.g[0-9]+$", "", shard) + ".g9"  # another generation
        assert zdbs[1].cmds(("SET", planted, "stale"), select=True)[0] == planted.encode()
        p = vol.ctl("gc", "--check", "--json", check=False)
        assert p.returncode == 1, p.stdout + p.stderr
        rep = json.loads(p.stdout)
        assert rep["leaks"]["stale"]["keys"] == 1, rep
        p = vol.ctl("gc", "--check", "--fix", "--json", check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        assert planted not in zdbs[1].keys()
        assert vol.ctl("gc", "--check", check=False).returncode == 0
        assert vol.stop_stor() == 0

        # a fresh node: only the configuration and the key
        vol.mount_as_fresh_node()
        assert "restored the volume" in vol.fs_log.read_text()
        vol.assert_files(want)
        assert vol.unmount() == 0
        # qsfs never sent AUTH (0-db's admin password) nor Redis-only commands
        assert [z.logged("AUTH") for z in zdbs] == auths
        assert all(z.logged("SELECT") > 0 for z in zdbs)
        assert not any(z.logged("STRLEN") for z in zdbs)
    finally:
        vol.close()


@pytest.fixture
def zdbs_one_small(tmp_path_factory):
    # the last namespace takes 2 MiB: less than one object's shard
    yield from start_zdbs(tmp_path_factory, 6, [0] * 5 + [2 * MIB])


def test_full_namespace_in_status(tmp_path, zdbs_one_small):
    zdbs = zdbs_one_small
    small = zdbs[5]
    vol = Volume(tmp_path, backends=[z.url() for z in zdbs])
    try:
        vol.start_stor()
        obj = tmp_path / "obj"
        data = os.urandom(40 * MIB)  # 10 MiB a shard
        obj.write_bytes(data)
        vol.ctl("store", "s1", obj)
        name = vol.backends[5].replace(small.password, "***")

        def full_shown():
            st = status(vol)
            b = st["backends"][5]
            return b["state"] == "full" and b["full"] and any(
                p.startswith(f"backend {name} is full: ") for p in st["problems"])
        wait_for(full_shown, 60, "the full namespace in status")
        st = status(vol)
        assert st["stor_state"] == "degraded"
        assert st["backends"][5]["space"]["limit_bytes"] == 2 * MIB
        assert problems(st), st
        assert "only 5 backends usable for 6 shards (1 full): uploads wait" in \
            "\n".join(st["problems"]), st["problems"]
        # the other five: up, no limit set
        assert answering(b["state"] for b in st["backends"][:5]), st["backends"]
        assert all(b["space"]["limit_bytes"] == 0 for b in st["backends"][:5])
        human = vol.ctl("status", check=False).stdout
        assert f"backend {name} is full: " in human and "no limit set" in human, human
        wait_for(lambda: f"backend {name} is full" in vol.stor_log.read_text(), 10,
                 "the probe to log the full backend")
        log = vol.stor_log.read_text()
        # the upload's failure names the backend and says why
        assert f"to {name}: SET " in log and "the 0-db namespace qsfs is full" in log, log
        # full is not down: not taken for down and back (each time a check pass)
        assert f"backend {name} is down" not in log and "answers again" not in log, log
        # while it is full, no new shards go there: it stays as it is
        used = small.nsinfo()["data_size_bytes"]
        time.sleep(5)
        assert small.nsinfo()["data_size_bytes"] == used
        assert status(vol)["pending_jobs"] == 1
        assert "answers again" not in vol.stor_log.read_text()

        # room again: the upload goes on by itself
        small.ok("NSSET", NS, "maxsize", 64 * MIB)
        vol.ctl("drain", "--timeout", "120")
        assert f"backend {name} has room again" in vol.stor_log.read_text()
        wait_for(lambda: problems(status(vol)) == [], 30, "status ok again")
        vol.ctl("retrieve", "s1", tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == data

        # nearly full: 90% of the limit used, more than a piece left
        z0 = zdbs[0]
        used = int(z0.nsinfo()["data_size_bytes"])
        assert used > 9 * MIB
        z0.ok("NSSET", NS, "maxsize", used + MIB + MIB // 20)
        name0 = vol.backends[0].replace(z0.password, "***")

        def nearly():
            st = status(vol)
            return any(p.startswith(f"backend {name0} is nearly full: ")
                       for p in st["problems"]) and answering([st["backends"][0]["state"]])
        wait_for(nearly, 30, "nearly full in status")
        # full by its use alone (NSINFO, no write refused)
        z0.ok("NSSET", NS, "maxsize", used)
        wait_for(lambda: status(vol)["backends"][0]["state"] == "full", 30,
                 "full by NSINFO in status")
        z0.ok("NSSET", NS, "maxsize", 0)
        wait_for(lambda: problems(status(vol)) == [], 30, "status ok again")
        assert vol.stop_stor() == 0
    finally:
        vol.close()


def test_format_names_what_a_zdb_backend_refuses(tmp_path, zdbs):
    """Issue 20's report: format saying only "only 0 of 6 backends answer".
    Wrong namespace passwords are named with 0-db's answer."""
    urls = [z.url() for z in zdbs]
    urls[2] = urls[2].replace(zdbs[2].password, "wrong")
    vol = Volume(tmp_path, backends=urls, format=False)
    p = vol.ctl("format", check=False)
    assert p.returncode == 0, p.stderr  # 5 of 6: a majority
    name = f"zdb://:***@127.0.0.1:{zdbs[2].port}/{NS}"
    assert f"the volume's head is missing on {name} (SELECT {NS} refused: Access denied " \
        "(the namespace password in the URL is wrong))" in p.stderr, p.stderr
    # all wrong, as redis:// to a 0-db: nothing answers, and each says why
    urls = [f"redis://:{z.password}@127.0.0.1:{z.port}/{NS}" for z in zdbs]
    (tmp_path / "redis").mkdir()
    vol = Volume(tmp_path / "redis", backends=urls, format=False)
    p = vol.ctl("format", check=False)
    assert p.returncode == 1
    assert "only 0 of 6 backends answer" in p.stderr, p.stderr
    assert p.stderr.count(": AUTH refused: Access denied") == 6, p.stderr
