"""qsfs-stor and qsfs-ctl against six real redis-server instances on
127.0.0.1 (started and stopped here), k=4 m=2: store and retrieve byte-exact,
lose or corrupt any two backends, lose three and get a clear error, survive
kill -9 with queued jobs, drain on SIGTERM, refuse a wrong key, and reject
bad configurations with the file, line and key."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import _build_dir, _require_executable
from qsfs_mount import wait_for

REDIS = shutil.which("redis-server")
STRIPE = 1 << 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    """A redis-server with an append-only file, so a restart keeps its data
    (a stop is a machine going away for a while, not losing its disk)."""

    def __init__(self, port, datadir: Path):
        self.port = port
        self.dir = datadir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def start_redises(tmp_path_factory, n):
    """n redis-servers on free loopback ports, each with its own directory
    (a generator for fixtures: yields the list, stops them all after)."""
    assert REDIS, "redis-server is not installed (scripts/install-deps.sh installs it)"
    base = tmp_path_factory.mktemp("redis")
    ports = set()
    while len(ports) < n:  # a port freed by bind(0) may come back at once
        ports.add(free_port())
    rs = [Redis(port, base / str(i)) for i, port in enumerate(sorted(ports))]
    try:
        for r in rs:
            r.start()
        yield rs
    finally:
        for r in rs:
            r.stop()


@pytest.fixture
def redises(tmp_path_factory):
    yield from start_redises(tmp_path_factory, 6)


class Stor:
    """A volume: config, key, and the daemon's life cycle."""

    def __init__(self, tmp: Path, backends, build: Path):
        self.tmp = tmp
        self.ctl_bin = str(_require_executable(build / "stor" / "qsfs-ctl", "qsfs-ctl"))
        self.stor_bin = str(_require_executable(build / "stor" / "qsfs-stor", "qsfs-stor"))
        self.key = tmp / "key"
        self.key.write_bytes(os.urandom(32))
        self.key.chmod(0o600)
        self.conf = tmp / "qsfs.yaml"
        self.write_conf(backends)
        self.proc = None
        self.log = tmp / "stor.log"

    def write_conf(self, backends, extra=""):
        lines = [
            "volume: testvol",
            f"key_file: {self.key}",
            "cache:",
            f"  dir: {self.tmp}/cache",
            "stor:",
            f"  socket: {self.tmp}/stor.sock",
            f"  state_dir: {self.tmp}/state",
            "  compression: zstd:1",
            "  workers: 2",
            "  backends:",
        ] + [f"    - {b}" for b in backends]
        self.conf.write_text("\n".join(lines) + "\n" + extra)

    def ctl(self, *args, check=True):
        p = subprocess.run([self.ctl_bin, "-c", str(self.conf), *map(str, args)],
                           capture_output=True, text=True, timeout=120)
        if check:
            assert p.returncode == 0, f"qsfs-ctl {args}: {p.returncode}: {p.stderr}"
        return p

    def start(self):
        self.proc = subprocess.Popen([self.stor_bin, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        for _ in range(300):
            if self.ctl("status", check=False).returncode == 0:
                return
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.02)
        raise RuntimeError("qsfs-stor did not become ready")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if not self.proc:
            return None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.proc = None
        return rc


@pytest.fixture
def stor(tmp_path, redises):
    s = Stor(tmp_path, [f"redis://127.0.0.1:{r.port}/0" for r in redises], _build_dir())
    s.ctl("format")
    yield s
    if s.proc:
        s.proc.kill()
        s.proc.wait()


def make(path: Path, size: int, compressible: bool):
    if compressible:
        data = bytearray(os.urandom(size))
        for i in range(0, size - 63, 64):
            data[i + 32:i + 64] = b"q" * 32
        data = bytes(data)
    else:
        data = os.urandom(size)
    path.write_bytes(data)
    return data


def test_store_retrieve_sizes(stor, tmp_path):
    stor.start()
    sizes = [0, 1, 4095, STRIPE, 3 * STRIPE, 3 * STRIPE + 17]
    datas = {}
    for i, size in enumerate(sizes):
        for comp in (False, True):
            name = f"s{i * 2 + comp + 1}"
            datas[name] = make(tmp_path / name, size, comp)
            stor.ctl("store", name, tmp_path / name)
    stor.ctl("drain", "--timeout", "60")
    for name, data in datas.items():
        assert stor.ctl("confirmed", name).stdout.strip() == "yes"
        out = tmp_path / f"{name}.back"
        stor.ctl("retrieve", name, out)
        assert out.read_bytes() == data, name
    assert stor.stop() == 0


def test_two_backends_lost_or_corrupt_three_fail(stor, redises, tmp_path):
    stor.start()
    data = make(tmp_path / "obj", 5 * STRIPE + 3, True)
    stor.ctl("store", "s1", tmp_path / "obj")
    stor.ctl("store", "c1", tmp_path / "obj")
    stor.ctl("drain", "--timeout", "60")
    # corrupt shard pieces of s1 on two servers
    for r in redises[:2]:
        keys = subprocess.run(["redis-cli", "-p", str(r.port), "--scan", "--pattern", "*/o/s1/*"],
                              capture_output=True, text=True).stdout.split()
        assert keys
        for k in keys:
            subprocess.run(["redis-cli", "-p", str(r.port), "SETRANGE", k, "100", "garbage"],
                           capture_output=True, check=True)
    # the damage is reported: the object is readable but lost redundancy.
    # A read takes the first k good shards that arrive (hedged reads): a
    # corrupt shard that comes after them is left behind unchecked, so a
    # read names the corrupt shards it met - never a good one - and may,
    # rarely, meet none (read again); the scrub below finds both.
    for attempt in range(10):
        stor.ctl("retrieve", "s1", tmp_path / "a")
        assert (tmp_path / "a").read_bytes() == data
        st = json.loads(stor.ctl("status", "--json").stdout)
        if st["degraded_objects"]:
            break
    assert st["state"] == "degraded"
    assert st["degraded_objects"] == 1
    assert st["degraded"][0]["object"] == "s1"
    why = st["degraded"][0]["why"]
    assert any(f"127.0.0.1:{r.port}" in why for r in redises[:2]), why
    assert not any(f"127.0.0.1:{r.port}" in why for r in redises[2:]), why
    assert "checksum mismatch" in why
    human = stor.ctl("status").stdout
    assert "state:           degraded" in human
    assert "1 objects have missing or corrupt shards" in human
    # remembered across a restart of the daemon, which repairs it by itself
    assert stor.stop() == 0
    assert "s1 " in (stor.tmp / "state" / "degraded").read_text()
    stor.start()
    wait_for(lambda: json.loads(stor.ctl("status", "--json").stdout)["scrub"]["repaired"] == 1,
             60, "the degraded object repaired after the restart")
    st = json.loads(stor.ctl("status", "--json").stdout)
    assert st["degraded_objects"] == 0 and st["state"] == "ok"
    # the repair verified every shard: both corrupt ones are good again
    out = stor.ctl("scrub").stdout
    assert ", 0 bad shards found" in out, out
    stor.ctl("retrieve", "s1", tmp_path / "a2")
    assert (tmp_path / "a2").read_bytes() == data
    assert json.loads(stor.ctl("status", "--json").stdout)["degraded_objects"] == 0
    # two servers gone
    redises[2].stop()
    redises[3].stop()
    stor.ctl("retrieve", "c1", tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == data
    # a third gone: a clear error naming the object and what failed
    redises[4].stop()
    p = stor.ctl("retrieve", "c1", tmp_path / "c", check=False)
    assert p.returncode == 1
    assert "usable shards, 4 needed" in p.stderr
    assert f"127.0.0.1:{redises[4].port}" in p.stderr
    assert not (tmp_path / "c").exists()
    st = stor.ctl("status").stdout
    assert f"backend redis://127.0.0.1:{redises[4].port}/0 is down" in st
    assert "only 3 backends usable for 6 shards: uploads wait" in st
    assert "objects with shards on the down backends may be unreadable" in st


def test_status_ok_when_healthy(stor, tmp_path):
    stor.start()
    make(tmp_path / "o", 1000, True)
    stor.ctl("store", "s1", tmp_path / "o")
    stor.ctl("drain", "--timeout", "60")
    stor.ctl("retrieve", "s1", tmp_path / "back")
    st = json.loads(stor.ctl("status", "--json").stdout)
    assert st["state"] == "ok" and st["problems"] == [] and st["degraded_objects"] == 0
    assert [b["state"] for b in st["backends"]] == ["up"] * 6
    assert stor.stop() == 0


def test_drain_timeout_keeps_journal(stor, redises, tmp_path):
    stor.conf.write_text(stor.conf.read_text().replace("  workers: 2",
                                                       "  workers: 2\n  drain_timeout: 1"))
    stor.start()
    for r in redises:
        r.stop()
    data = make(tmp_path / "o", 70_000, True)
    stor.ctl("store", "s7", tmp_path / "o")
    t0 = time.monotonic()
    rc = stor.stop(signal.SIGTERM, timeout=30)
    assert rc == 1
    assert time.monotonic() - t0 < 15
    assert "drain_timeout (1 s) reached: exiting with 1 jobs kept" in stor.log.read_text()
    (tmp_path / "o").unlink()
    for r in redises:
        r.start()
    stor.start()
    stor.ctl("drain", "--timeout", "60")
    stor.ctl("retrieve", "s7", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data
    assert stor.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root)")
def test_retrieve_into_full_disk(stor, tmp_path):
    stor.start()
    data = make(tmp_path / "o", 3 * STRIPE, False)
    stor.ctl("store", "s3", tmp_path / "o")
    stor.ctl("drain", "--timeout", "60")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        p = stor.ctl("retrieve", "s3", small / "seg", check=False)
        assert p.returncode == 1
        assert f"into {small}/seg" in p.stderr
        assert "No space left on device" in p.stderr
        assert os.listdir(small) == []  # no partial file left behind
    finally:
        subprocess.run(["umount", str(small)], check=True)
    stor.ctl("retrieve", "s3", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data
    assert stor.stop() == 0


@pytest.mark.skipif(os.environ.get("QSFS_SKIP_SLOW") == "1", reason="slow")
def test_kill9_with_queued_jobs_then_drain(stor, redises, tmp_path):
    stor.start()
    for r in redises:
        r.stop()  # uploads cannot go anywhere: jobs stay queued
    datas = {}
    for i in range(1, 21):
        datas[f"s{i}"] = make(tmp_path / f"o{i}", 100_000 + i, True)
        stor.ctl("store", f"s{i}", tmp_path / f"o{i}")
    st = json.loads(stor.ctl("status", "--json").stdout)
    assert st["pending_jobs"] == 20
    assert st["pending_bytes"] == sum(len(d) for d in datas.values())
    stor.stop(signal.SIGKILL)
    for i in range(1, 21):
        (tmp_path / f"o{i}").unlink()  # the journal must hold the bytes itself
    for r in redises:
        r.start()
    stor.start()
    stor.ctl("drain", "--timeout", "120")
    for name, data in datas.items():
        assert stor.ctl("confirmed", name).stdout.strip() == "yes"
        stor.ctl("retrieve", name, tmp_path / f"{name}.back")
        assert (tmp_path / f"{name}.back").read_bytes() == data
    assert stor.stop() == 0


def test_sigterm_exits_only_after_upload(stor, redises, tmp_path):
    stor.start()
    for r in redises:
        r.stop()
    for i in range(1, 6):
        make(tmp_path / f"o{i}", 50_000, True)
        stor.ctl("store", f"s{i}", tmp_path / f"o{i}")
    stor.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert stor.proc.poll() is None, "exited with uploads pending"
    for r in redises:
        r.start()
    rc = stor.proc.wait(timeout=120)
    stor.proc = None
    assert rc == 0
    assert "queue drained" in stor.log.read_text()
    stor.start()
    for i in range(1, 6):
        assert stor.ctl("confirmed", f"s{i}").stdout.strip() == "yes"
    stor.stop()


def redis_keys(r, pattern):
    """The keys of redis-server r matching pattern (SCAN)."""
    p = subprocess.run(["redis-cli", "-p", str(r.port), "--scan", "--pattern", pattern],
                       capture_output=True, text=True, check=True)
    return p.stdout.split()


def object_keys(redises, name):
    """Every key of object name (shard pieces of any generation, metadata)
    on any of the servers."""
    return [k for r in redises for pat in (f"*/o/{name}/*", f"*/m/{name}")
            for k in redis_keys(r, pat)]


def send(stor, line):
    """One request on qsfs-stor's control socket; the reply line."""
    with socket.socket(socket.AF_UNIX) as c:
        c.connect(str(stor.tmp / "stor.sock"))
        c.sendall(line.encode() + b"\n")
        return c.makefile().readline().strip()


def status(stor):
    return json.loads(stor.ctl("status", "--json").stdout)


def wait_deleted(stor, timeout=60):
    """Poll STATUS until no deletion is pending."""
    wait_for(lambda: status(stor)["deletes_pending"] == 0, timeout, "deletions to finish")


def checkpoint(path: Path, kind: int, upto: int, size=5000):
    """A checkpoint file: its clear header (magic, version 1, kind, upto at
    48) is all the catalog reads; the rest is opaque."""
    hdr = bytearray(64)
    hdr[0:8] = b"QSFSCKP1"
    hdr[8:12] = (1).to_bytes(4, "little")
    hdr[12:16] = kind.to_bytes(4, "little")
    hdr[48:56] = upto.to_bytes(8, "little")
    path.write_bytes(bytes(hdr) + os.urandom(size))


def test_delete_segment(stor, redises, tmp_path):
    stor.start()
    data = {}
    for name in ("s1", "s2", "s3"):
        data[name] = make(tmp_path / name, 3 * STRIPE + 11, True)
        stor.ctl("store", name, tmp_path / name)
    stor.ctl("drain", "--timeout", "60")
    assert len(object_keys(redises, "s1")) >= 6 + 6  # shards and metadata copies
    stor.ctl("delete", "s1")
    stor.ctl("delete", "s3")
    wait_deleted(stor)
    assert object_keys(redises, "s1") == [] and object_keys(redises, "s3") == []
    cat = json.loads(stor.ctl("catalog").stdout)
    assert cat["segments_removed"] == [[1, 1], [3, 3]]
    assert stor.ctl("confirmed", "s1", check=False).stdout.strip() == "no"
    st = status(stor)
    assert st["deleted"] == 2 and st["pending_jobs"] == 0 and st["state"] == "ok"
    # the other object is whole; a deleted segment is not stored again
    stor.ctl("retrieve", "s2", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data["s2"]
    p = stor.ctl("store", "s1", tmp_path / "s1", check=False)
    assert p.returncode == 1 and "was deleted" in p.stderr
    # s2 then s1 again: ranges merge
    stor.ctl("delete", "s2")
    wait_deleted(stor)
    assert json.loads(stor.ctl("catalog").stdout)["segments_removed"] == [[1, 3]]
    assert object_keys(redises, "s2") == []
    # bad names are refused by qsfs-ctl and by the daemon
    assert stor.ctl("delete", "x1", check=False).returncode == 2
    assert stor.stop() == 0
    # the removal is in the catalog on the backends: a restart keeps it
    stor.start()
    assert json.loads(stor.ctl("catalog").stdout)["segments_removed"] == [[1, 3]]
    assert stor.stop() == 0


def test_delete_resumes_after_kill9_and_waits_for_a_backend(stor, redises, tmp_path):
    stor.start()
    for name in ("s1", "s2"):
        make(tmp_path / name, 2 * STRIPE, True)
        stor.ctl("store", name, tmp_path / name)
    stor.ctl("drain", "--timeout", "60")
    redises[0].stop()  # holds a shard and a metadata copy of each
    stor.ctl("delete", "s1")
    # the deletion waits for the backend, and says so
    wait_for(lambda: status(stor)["deletes_failing"], 60, "the deletion to fail")
    st = status(stor)
    assert st["deletes_pending"] == 1 and st["pending_jobs"] == 0
    assert f"127.0.0.1:{redises[0].port}" in st["delete_last_error"]
    assert any("deletions are failing" in p for p in st["problems"])
    human = stor.ctl("status", check=False).stdout
    assert "deletions pending: 1; failing and retried: object s1" in human
    # an upload that cannot go (one backend of six down) blocks a DELETE of it
    make(tmp_path / "s5", 1000, True)
    stor.ctl("store", "s5", tmp_path / "s5")
    p = stor.ctl("delete", "s5", check=False)
    assert p.returncode == 1 and "s5 has an upload queued; retry later" in p.stderr
    # acknowledged deletions survive kill -9: the journal holds them
    stor.ctl("delete", "s2")
    stor.stop(signal.SIGKILL)
    spool = stor.tmp / "state" / "spool"
    assert (spool / "s1.del").exists() and (spool / "s2.del").exists()
    redises[0].start()
    stor.start()
    wait_deleted(stor)
    assert object_keys(redises, "s1") == [] and object_keys(redises, "s2") == []
    assert not (spool / "s1.del").exists() and not (spool / "s2.del").exists()
    cat = json.loads(stor.ctl("catalog").stdout)
    assert cat["segments_removed"] == [[1, 2]]
    stor.ctl("drain", "--timeout", "60")
    assert stor.ctl("confirmed", "s5").stdout.strip() == "yes"
    assert stor.stop() == 0


def test_delete_kill9_right_after_ack(stor, redises, tmp_path):
    """kill -9 as soon as the DELETEs are acknowledged: whatever was not
    finished is resumed from the journal by the next start."""
    stor.start()
    names = [f"s{i}" for i in range(1, 13)]
    for name in names:
        make(tmp_path / name, 2 * STRIPE, False)
        stor.ctl("store", name, tmp_path / name)
    stor.ctl("drain", "--timeout", "60")
    for name in names:
        assert send(stor, f"DELETE {name}") == "OK"
    stor.stop(signal.SIGKILL)
    left = sorted(p.name for p in (stor.tmp / "state" / "spool").glob("*.del"))
    print("deletions left in the journal at kill -9:", left)
    stor.start()
    wait_deleted(stor)
    for name in names:
        assert object_keys(redises, name) == [], name
    assert list((stor.tmp / "state" / "spool").glob("*.del")) == []
    assert json.loads(stor.ctl("catalog").stdout)["segments_removed"] == [[1, 12]]
    assert stor.stop() == 0


def test_delete_backend_back_while_running(stor, redises, tmp_path):
    stor.start()
    make(tmp_path / "s1", 2 * STRIPE, True)
    stor.ctl("store", "s1", tmp_path / "s1")
    stor.ctl("drain", "--timeout", "60")
    redises[3].stop()
    stor.ctl("delete", "s1")
    wait_for(lambda: status(stor)["deletes_failing"], 60, "the deletion to fail")
    assert status(stor)["deletes_pending"] == 1
    redises[3].start()  # the probe sees it back and retries at once
    wait_deleted(stor)
    assert object_keys(redises, "s1") == []
    assert not any("deletions" in p for p in status(stor)["problems"])
    assert stor.stop() == 0


def test_delete_during_scrub_leaves_nothing(stor, redises, tmp_path):
    """A scrub pass (slowed down) runs while its objects are deleted: a
    deletion waits while the pass is on its object, the pass skips what the
    catalog no longer lists, and no repair brings keys back."""
    stor.conf.write_text(stor.conf.read_text().replace(
        "  workers: 2", "  workers: 2\n  scrub_rate: 1MiB"))
    stor.start()
    names = [f"s{i}" for i in range(1, 9)]
    for name in names:
        make(tmp_path / name, STRIPE, False)
        stor.ctl("store", name, tmp_path / name)
    stor.ctl("drain", "--timeout", "60")
    # one shard of each gone: the pass would repair every object
    for name in names:
        for k in redis_keys(redises[2], f"*/o/{name}/*"):
            subprocess.run(["redis-cli", "-p", str(redises[2].port), "DEL", k],
                           capture_output=True, check=True)
    assert send(stor, "SCRUB") == "OK"  # qsfs-ctl scrub would wait for the end
    wait_for(lambda: status(stor)["scrub"]["running"], 30, "the scrub to start")
    for name in names[1:]:
        stor.ctl("delete", name)
    wait_deleted(stor, 120)
    wait_for(lambda: not status(stor)["scrub"]["running"], 120, "the scrub to end")
    for name in names[1:]:
        assert object_keys(redises, name) == [], name
    sc = status(stor)["scrub"]
    assert sc["failed"] == 0 and sc["checked"] == 8, sc  # deleted ones skipped
    assert json.loads(stor.ctl("catalog").stdout)["segments_removed"] == [[2, 8]]
    assert stor.stop() == 0


def segments(stor, tmp_path, first, last):
    """Store segments s<first>..s<last> (small files of random bytes)."""
    for i in range(first, last + 1):
        p = tmp_path / f"seg{i}"
        p.write_bytes(os.urandom(100))
        stor.ctl("store", f"s{i}", p)
    stor.ctl("drain", "--timeout", "60")


def test_checkpoint_waits_for_its_segments(stor, tmp_path):
    """A checkpoint is stored only once the backends hold every segment it
    covers: a restore from it never meets a segment that is not there."""
    stor.start()
    segments(stor, tmp_path, 1, 2)
    checkpoint(tmp_path / "c1", 1, 4)
    stor.ctl("store", "c1", tmp_path / "c1")
    p = stor.ctl("drain", "--timeout", "3", check=False)
    assert p.returncode != 0  # the checkpoint is still queued
    cat = json.loads(stor.ctl("catalog").stdout)
    assert cat["checkpoints"] == [] and cat["segments_upto"] == 2, cat
    segments(stor, tmp_path, 3, 4)  # drains: the checkpoint went after them
    cat = json.loads(stor.ctl("catalog").stdout)
    assert [c["id"] for c in cat["checkpoints"]] == [1] and cat["segments_upto"] == 4, cat
    assert stor.stop() == 0


def test_superseded_checkpoints_deleted_and_gc_floor(stor, redises, tmp_path):
    stor.start()

    def put(name, kind, upto):
        checkpoint(tmp_path / name, kind, upto)
        stor.ctl("store", name, tmp_path / name)
        stor.ctl("drain", "--timeout", "60")

    def floor():
        return int(stor.ctl("gcfloor").stdout)

    assert stor.ctl("gcfloor").stdout.strip() == "0"
    segments(stor, tmp_path, 1, 30)  # a checkpoint waits for the segments it covers
    put("c1", 1, 10)
    assert floor() == 0  # one full: nothing to spare
    put("c2", 2, 12)
    put("c3", 1, 20)
    assert floor() == 10  # two fulls: the older one's coverage
    put("c4", 2, 22)
    assert object_keys(redises, "c1") != []
    put("c5", 1, 30)  # c1 and c2 leave the window: their objects go
    wait_deleted(stor)
    assert floor() == 20
    assert object_keys(redises, "c1") == [] and object_keys(redises, "c2") == []
    for name in ("c3", "c4", "c5"):
        assert object_keys(redises, name) != []
    cat = json.loads(stor.ctl("catalog").stdout)
    assert [(c["id"], c["kind"], c["upto"]) for c in cat["checkpoints"]] == \
        [(3, "full", 20), (4, "delta", 22), (5, "full", 30)]
    assert cat["gc_floor"] == 20
    # a checkpoint in the window is not deleted on request
    p = stor.ctl("delete", "c4", check=False)
    assert p.returncode == 1 and "checkpoint window" in p.stderr
    assert status(stor)["deleted"] == 2
    assert stor.stop() == 0


def test_wrong_key_and_missing_volume(stor, tmp_path):
    stor.key.write_bytes(os.urandom(32))
    p = subprocess.run([stor.stor_bin, "-c", str(stor.conf)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1
    assert "does not open volume 'testvol'" in p.stderr
    stor.conf.write_text(stor.conf.read_text().replace("volume: testvol", "volume: other"))
    p = subprocess.run([stor.stor_bin, "-c", str(stor.conf)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1
    assert "volume 'other' does not exist" in p.stderr and "qsfs-ctl format" in p.stderr
    p = stor.ctl("format", check=False)
    assert p.returncode == 0
    p = stor.ctl("format", check=False)
    assert p.returncode == 1 and "already exists" in p.stderr and "--force" in p.stderr


def test_mix_of_dir_and_redis(tmp_path, redises):
    backends = [f"dir://{tmp_path}/d{i}" for i in range(3)] + \
               [f"redis://127.0.0.1:{r.port}/0" for r in redises[:3]]
    s = Stor(tmp_path, backends, _build_dir())
    s.ctl("format")
    s.start()
    data = make(tmp_path / "x", 2 * STRIPE + 5, False)
    s.ctl("store", "c9", tmp_path / "x")
    s.ctl("drain", "--timeout", "60")
    shutil.rmtree(tmp_path / "d0")
    redises[0].stop()
    s.ctl("retrieve", "c9", tmp_path / "y")
    assert (tmp_path / "y").read_bytes() == data
    assert s.stop() == 0


@pytest.mark.parametrize("edit,want", [
    (("    - redis", "    - ftp"), "bad backend URL: unknown scheme"),
    (("  workers: 2", "  workers: many"), "stor.workers: expected a whole number"),
    (("  workers: 2", "  workers: 2\n  colour: red"), "unknown key 'stor.colour'"),
    (("key_file:", "kee_file:"), "unknown key 'kee_file'"),
])
def test_config_errors(stor, edit, want):
    stor.conf.write_text(stor.conf.read_text().replace(*edit, 1))
    for binary in (stor.stor_bin, stor.ctl_bin):
        args = [binary, "-c", str(stor.conf)] + (["status"] if binary == stor.ctl_bin else [])
        p = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, p.stderr
        assert want in p.stderr and "qsfs.yaml:" in p.stderr


def test_config_from_the_environment(stor, tmp_path):
    """Without -c, qsfs-stor and qsfs-ctl read $QSFS_CONFIG (what the
    container sets for every service and shell), else /etc/qsfs/qsfs.yaml."""
    env = dict(os.environ, QSFS_CONFIG=str(stor.conf))
    log = tmp_path / "stor-env.log"
    p = subprocess.Popen([stor.stor_bin], stderr=open(log, "w"), env=env)
    try:
        wait_for(lambda: subprocess.run([stor.ctl_bin, "status"], env=env,
                                        capture_output=True).returncode == 0, 30, "qsfs-stor")
        out = subprocess.run([stor.ctl_bin, "status"], env=env, capture_output=True,
                             text=True).stdout
        assert "testvol" in out, out
    finally:
        p.terminate()
        assert p.wait(timeout=60) == 0, log.read_text()
    missing = tmp_path / "nowhere.yaml"
    for binary in (stor.stor_bin, stor.ctl_bin):
        args = [binary] + (["status"] if binary == stor.ctl_bin else [])
        q = subprocess.run(args, capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, QSFS_CONFIG=str(missing)))
        assert q.returncode == 2 and str(missing) in q.stderr, q.stderr
        # and it says how to name another one
        assert "-c CONFIG" in q.stderr and "QSFS_CONFIG" in q.stderr, q.stderr


def test_help_is_not_an_error(tmp_path):
    """--help and -h print the usage on stdout and exit 0; a wrong option is
    a usage error (exit 2, on stderr)."""
    build = _build_dir()
    for binary in (build / "stor" / "qsfs-stor", build / "stor" / "qsfs-ctl"):
        for flag in ("--help", "-h"):
            p = subprocess.run([str(binary), flag], capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, (binary, flag, p.stderr)
            assert p.stdout.startswith("usage: " + binary.name), p.stdout
        p = subprocess.run([str(binary), "--bogus"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and "usage: " + binary.name in p.stderr, p.stderr


def test_too_few_backends(tmp_path, redises):
    s = Stor(tmp_path, [f"redis://127.0.0.1:{r.port}/0" for r in redises[:5]], _build_dir())
    p = s.ctl("format", check=False)
    assert p.returncode == 2
    assert "5 configured" in p.stderr and "at least 6" in p.stderr


def test_unreachable_backends_at_start(stor, redises, tmp_path):
    # one down: the daemon starts, says which, and still stores (k+m needs all
    # six, so the upload waits) -- status names the backend
    redises[5].stop()
    stor.start()
    make(tmp_path / "o", 1000, True)
    stor.ctl("store", "s1", tmp_path / "o")
    for _ in range(100):
        st = stor.ctl("status").stdout
        if "is down" in st and "uploads are failing" in st:  # the job fails after its shards
            break
        time.sleep(0.05)
    assert f"backend redis://127.0.0.1:{redises[5].port}/0 is down" in st
    assert "uploads are failing and being retried" in st
    # the upload cannot complete: a second signal exits 1 with the job kept
    stor.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert stor.stop(signal.SIGTERM) == 1
    assert "exiting with 1 jobs kept in the journal" in stor.log.read_text()
    # all down: a clear error naming them, exit 1
    for r in redises[:5]:
        r.stop()
    p = subprocess.run([stor.stor_bin, "-c", str(stor.conf)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1
    assert "no backend answers" in p.stderr
    for r in redises:
        assert f"127.0.0.1:{r.port}/0: cannot connect: Connection refused" in p.stderr


def test_other_user_is_told_permission_denied(stor, tmp_path):
    """A user who may not use stor's control socket (mode 0600) is told so,
    not that qsfs-stor is not running."""
    stor.start()
    pub = Path(tempfile.mkdtemp(prefix="qsfs-pub-"))
    try:
        os.chmod(pub, 0o755)
        conf = pub / "qsfs.yaml"
        conf.write_text(stor.conf.read_text())
        os.chmod(conf, 0o644)
        os.chmod(tmp_path, 0o755)  # so nobody reaches the socket itself
        p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            stor.ctl_bin, "-c", str(conf), "status"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
        out = p.stdout + p.stderr
        assert "permission denied" in out and "stor.sock" in out, out
        assert "not running" not in out, out
    finally:
        shutil.rmtree(pub)


def test_format_says_where_the_head_went(tmp_path, redises):
    """format with two backends down creates the volume (a majority holds
    the head) and says so: 4 of 6, naming the two that miss it and why."""
    s = Stor(tmp_path, [f"redis://127.0.0.1:{r.port}/0" for r in redises], _build_dir())
    redises[1].stop()
    redises[4].stop()
    p = s.ctl("format")
    assert "on 4 of 6 backends" in p.stdout, p.stdout
    for r in (redises[1], redises[4]):
        assert f"redis://127.0.0.1:{r.port}/0 (" in p.stderr, p.stderr
    assert "missing on" in p.stderr and "Connection refused" in p.stderr, p.stderr
    redises[1].start()
    redises[4].start()
    p = s.ctl("format", "--force")
    assert "on 6 of 6 backends" in p.stdout and "missing" not in p.stderr, (p.stdout, p.stderr)


def rcli(r, *args):
    return subprocess.run(["redis-cli", "-p", str(r.port), *map(str, args)],
                          capture_output=True, text=True, check=True).stdout.strip()


def gccheck(stor, *args):
    p = stor.ctl("gc", "--check", *args, "--json", check=False)
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout)


def test_gc_check_finds_and_fixes_planted_leaks(stor, redises, tmp_path):
    stor.start()
    data = {}
    for i in range(1, 5):
        data[f"s{i}"] = make(tmp_path / f"s{i}", 2 * STRIPE + 11, True)
        stor.ctl("store", f"s{i}", tmp_path / f"s{i}")
    stor.ctl("drain", "--timeout", "60")
    assert status(stor)["remote_bytes_as_of"] == 0
    rc, rep = gccheck(stor)
    assert rc == 0 and rep["leaked_objects"] == 0 and rep["complete"], rep
    st = status(stor)
    assert st["remote_bytes_as_of"] > 0 and all(b["bytes"] > 0 for b in st["backends"])
    assert [b["bytes"] for b in st["backends"]] == [b["bytes"] for b in rep["backends"]]
    assert "stored:" in stor.ctl("status").stdout
    stor.ctl("delete", "s1")
    stor.ctl("delete", "s4")
    wait_deleted(stor)
    rc, rep = gccheck(stor)
    assert rc == 0 and rep["leaked_objects"] == 0, rep
    vol = st["volume_id"]
    # plant one leak of each class
    rcli(redises[0], "SET", f"{vol}/m/s1", "junkmeta")           # deleted, still there
    rcli(redises[0], "SET", f"{vol}/o/s1/0.0", "junkshard")
    r0 = next(r for r in redises if redis_keys(r, f"{vol}/o/s2/0.0"))
    rcli(r0, "SET", f"{vol}/o/s2/0.0.g7", "x" * 100)             # another generation
    r2 = next(r for r in redises if f"{vol}/o/s2/3.0" not in redis_keys(r, f"{vol}/o/s2/*"))
    rcli(r2, "SET", f"{vol}/o/s2/3.0", "y" * 50)                  # not placed there
    rcli(redises[3], "SET", f"{vol}/o/s4/1.0", "z" * 10)          # deleted, no metadata
    rcli(redises[4], "SET", f"{vol}/o/s99/0.0", "w" * 20)         # no metadata, above seg_hi
    rcli(redises[5], "SET", f"{vol}/whatever", "u")               # not a qsfs key
    rc, rep = gccheck(stor)
    assert rc == 1
    got = {o["object"]: o for o in rep["objects"]}
    assert set(got) == {"s1", "s2", "s4", "s99"}, rep
    assert got["s1"]["class"] == "unreferenced" and got["s1"]["keys"] == 2
    assert got["s1"]["backends"] == [st["backends"][0]["name"]]
    assert got["s2"]["class"] == "stale" and got["s2"]["keys"] == 2 and got["s2"]["bytes"] == 150
    assert "generation 7" in got["s2"]["why"]
    assert got["s4"]["class"] == "orphan" and got["s99"]["class"] == "orphan"
    assert rep["leaks"]["orphan"] == {"objects": 2, "keys": 2, "bytes": 30}
    assert rep["backends"][redises.index(r0)]["leaks"]["stale"] == {"keys": 1, "bytes": 100}
    assert rep["backends"][0]["leaks"]["unreferenced"] == {"keys": 2, "bytes": 17}
    assert rep["unknown_keys"] == 1
    st = status(stor)
    assert st["leaked_objects"] == 4
    assert any("referenced by nothing" in p for p in st["problems"])
    words = stor.ctl("gc", "--check", check=False)
    assert words.returncode == 1 and "orphan" in words.stdout and "s99" in words.stdout
    # fix: everything but s99 (no metadata, above seg_hi: maybe an upload)
    rc, rep = gccheck(stor, "--fix")
    assert rc == 1
    got = {o["object"]: o for o in rep["objects"]}
    assert [o for o in got if got[o]["removed"]] == ["s1", "s2", "s4"] or \
        sorted(o for o in got if got[o]["removed"]) == ["s1", "s2", "s4"]
    assert "upload in flight" in got["s99"]["kept"]
    assert rcli(redises[4], "EXISTS", f"{vol}/o/s99/0.0") == "1"
    assert rcli(redises[5], "EXISTS", f"{vol}/whatever") == "1"
    rc, rep = gccheck(stor)
    assert rc == 1 and [o["object"] for o in rep["objects"]] == ["s99"]
    rcli(redises[4], "DEL", f"{vol}/o/s99/0.0")
    rc, rep = gccheck(stor)
    assert rc == 0 and rep["leaked_objects"] == 0
    assert stor.ctl("gc", "--check").returncode == 0
    for n in ("s2", "s3"):
        stor.ctl("retrieve", n, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == data[n]
    assert stor.stop() == 0


def test_gc_check_leaves_a_queued_upload_alone(stor, redises, tmp_path):
    stor.start()
    data = make(tmp_path / "s1", 3 * STRIPE + 5, False)
    redises[5].stop()
    stor.ctl("store", "s1", tmp_path / "s1")
    wait_for(lambda: status(stor)["failures"] >= 1 or status(stor)["backends_usable"] < 6, 60,
             "the upload to fail or wait")
    assert status(stor)["pending_jobs"] == 1
    before = sorted(object_keys(redises[:5], "s1"))
    rc, rep = gccheck(stor, "--fix")
    assert rep["in_flight"] == 1 and rep["removed_keys"] == 0, rep
    assert all(o["object"] != "s1" for o in rep["objects"])
    assert sorted(object_keys(redises[:5], "s1")) == before
    redises[5].start()
    stor.ctl("drain", "--timeout", "120")
    stor.ctl("retrieve", "s1", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data
    assert stor.stop() == 0


def test_gc_check_dir_backends(tmp_path, redises):
    backends = [f"dir://{tmp_path}/d{i}" for i in range(3)] + \
               [f"redis://127.0.0.1:{r.port}/0" for r in redises[:3]]
    s = Stor(tmp_path, backends, _build_dir())
    s.ctl("format")
    s.start()
    data = {}
    for n in ("s1", "s2"):
        data[n] = make(tmp_path / n, STRIPE + 7, False)
        s.ctl("store", n, tmp_path / n)
    s.ctl("drain", "--timeout", "60")
    s.ctl("delete", "s1")
    wait_deleted(s)
    vol = status(s)["volume_id"]
    rc, rep = gccheck(s)
    assert rc == 0 and rep["complete"], rep
    d0 = tmp_path / "d0" / vol
    assert rep["backends"][0]["bytes"] == sum(
        f.stat().st_size for f in d0.rglob("*") if f.is_file()) > 0
    (d0 / "o" / "s1").mkdir(parents=True, exist_ok=True)
    (d0 / "o" / "s1" / "2.0").write_bytes(b"o" * 33)              # deleted segment's shard
    tmp = d0 / "o" / "s2" / "0.0.tmp-AbCdEf"                      # a put in flight: no key
    tmp.write_bytes(b"t" * 5)
    rc, rep = gccheck(s)
    assert rc == 1 and [(o["object"], o["class"], o["bytes"]) for o in rep["objects"]] == \
        [("s1", "orphan", 33)]
    assert rep["unknown_keys"] == 0
    assert rep["objects"][0]["backends"] == [rep["backends"][0]["name"]]
    rc, rep = gccheck(s, "--fix")
    assert rc == 0 and rep["removed_objects"] == 1 and rep["left_objects"] == 0, rep
    assert not (d0 / "o" / "s1" / "2.0").exists() and tmp.exists()
    assert gccheck(s)[0] == 0
    s.ctl("retrieve", "s2", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data["s2"]
    assert s.stop() == 0


def resp(r, *args):
    """One command to redis-server r over RESP, binary-safe: the reply
    (bytes for a bulk string, None for nil, int, or str for a status)."""
    with socket.create_connection(("127.0.0.1", r.port), 10) as c:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        c.sendall(b"*%d\r\n" % len(parts) +
                  b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        f = c.makefile("rb")
        line = f.readline()
        if line[:1] == b"$":
            n = int(line[1:])
            return None if n < 0 else f.read(n + 2)[:n]
        if line[:1] == b":":
            return int(line[1:])
        assert line[:1] == b"+", line
        return line[1:].strip().decode()


def test_gc_check_object_the_catalog_never_listed(stor, redises, tmp_path):
    """The catalog rolled back by hand (every copy) so that a stored object
    is listed nowhere: an unreferenced object, removed by --fix; the
    automatic check after a scrub pass measures the backends."""
    stor.start()
    data = {}
    for n in ("s1", "s2"):
        data[n] = make(tmp_path / n, STRIPE + 3, True)
        stor.ctl("store", n, tmp_path / n)
    stor.ctl("drain", "--timeout", "60")
    vol = status(stor)["volume_id"]
    old = [resp(r, "GET", f"{vol}/catalog") for r in redises]
    assert all(old)
    make(tmp_path / "s3", STRIPE + 3, True)
    stor.ctl("store", "s3", tmp_path / "s3")
    stor.ctl("drain", "--timeout", "60")
    assert stor.stop() == 0
    for r, v in zip(redises, old):
        assert resp(r, "SET", f"{vol}/catalog", v) == "OK"
    stor.start()
    assert status(stor)["remote_bytes_as_of"] == 0
    stor.ctl("scrub", check=False)
    wait_for(lambda: status(stor)["remote_bytes_as_of"] > 0, 120, "the check after the scrub")
    st = status(stor)
    assert st["leaked_objects"] == 1 and all(b["bytes"] > 0 for b in st["backends"])
    assert "referenced by nothing" in stor.ctl("status").stdout
    rc, rep = gccheck(stor)
    assert rc == 1 and [(o["object"], o["class"]) for o in rep["objects"]] == \
        [("s3", "unreferenced")]
    assert "never listed" in rep["objects"][0]["why"]
    assert rep["leaks"]["unreferenced"]["keys"] == 6 + 6  # shards and metadata copies
    rc, rep = gccheck(stor, "--fix")
    assert rc == 0 and rep["removed_objects"] == 1, rep
    assert object_keys(redises, "s3") == []
    assert gccheck(stor)[0] == 0 and status(stor)["leaked_objects"] == 0
    for n in ("s1", "s2"):
        stor.ctl("retrieve", n, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == data[n]
    assert stor.stop() == 0
