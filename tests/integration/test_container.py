"""The container's shutdown guarantee, end to end, without Docker: the
image's entrypoint (`zinit init --container`) with the real service files
(zinit/qsfs/*.yaml) as PID 1 of a fresh PID and mount namespace
(`unshare --pid --fork --mount-proc`), on six loopback redis-servers.

1. SIGTERM: an app writes (large files, many small ones, some fsync'd,
   links, owners, times, xattrs) while two backends are SIGSTOPped for a few
   seconds; SIGTERM to PID 1 exits 0; stor's journal is empty and every
   sealed segment is confirmed; a fresh node (only the config and the key)
   gets a byte-identical tree.
2. SIGKILL of every process mid-way: after a restart on the same node and a
   drain, nothing that was fsync'd is missing.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, _build_dir, _require_executable
from qsfs_mount import wait_for
from test_stor import redises  # noqa: F401  (six redis-servers)

# Runs inside the container (nsenter -m -p): the app.
WRITER = textwrap.dedent("""
    import hashlib, json, os, random, sys, time
    root, manifest, seconds, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    rnd = random.Random(seed)
    done = {}   # fsync'd files: path -> sha256
    end = time.monotonic() + seconds
    i = 0
    os.makedirs(f"{root}/big", exist_ok=True)
    os.makedirs(f"{root}/small/a/b", exist_ok=True)
    while time.monotonic() < end:
        if i % 10 == 0:
            path = f"{root}/big/f{i}"
            data = rnd.randbytes(rnd.randrange(1 << 20, 4 << 20))
        else:
            path = f"{root}/small/{'a/b/' if i % 3 else ''}s{i}"
            data = rnd.randbytes(rnd.randrange(0, 20000))
        with open(path, "wb") as f:
            f.write(data)
            if i % 4 == 0:
                f.flush()
                os.fsync(f.fileno())
                done[path] = hashlib.sha256(data).hexdigest()
        if i % 7 == 0:
            os.chown(path, 1000 + i % 5, 2000 + i % 3)
            os.chmod(path, 0o600 | (i % 8) << 3)
            os.utime(path, ns=(1_600_000_000_000_000_000 + i, 1_500_000_000_123_456_789 + i))
        if i % 11 == 0:
            os.setxattr(path, b"user.qsfs", f"v{i}".encode())
        if i % 13 == 0:
            os.symlink(f"../target-{i}", f"{root}/small/l{i}")
        if i % 17 == 0:
            os.link(path, f"{root}/small/h{i}")
        i += 1
        if i % 50 == 0:
            with open(manifest + ".tmp", "w") as m:
                json.dump(done, m)
            os.replace(manifest + ".tmp", manifest)
    with open(manifest + ".tmp", "w") as m:
        json.dump(done, m)
    os.replace(manifest + ".tmp", manifest)
    print(i)
""")

# A tree's full description: content, modes, owners, times, links, xattrs.
TREE = textwrap.dedent("""
    import hashlib, json, os, sys
    root = sys.argv[1]
    out, inodes = {}, {}
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            e = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
                 "mtime": st.st_mtime_ns, "nlink": st.st_nlink}
            if os.path.islink(p):
                e["target"] = os.readlink(p)
            else:
                e["xattr"] = {k: os.getxattr(p, k).hex() for k in sorted(os.listxattr(p))}
                if os.path.isfile(p):
                    e["sha"] = hashlib.sha256(open(p, "rb").read()).hexdigest()
                    e["size"] = st.st_size
                    if st.st_nlink > 1:
                        e["link_group"] = inodes.setdefault(st.st_ino, rel)
            out[rel] = e
    json.dump(out, open(sys.argv[2], "w"), sort_keys=True)
""")


class Container:
    """zinit init --container as PID 1 of new PID and mount namespaces."""

    def __init__(self, tmp: Path, backends, build: Path):
        self.tmp = tmp
        self.data = tmp / "data"
        self.data.mkdir(exist_ok=True)
        self.conf = self.data / "qsfs.yaml"
        self.mnt = tmp / "mnt"
        self.sock = tmp / "zinit.sock"
        self.svc = tmp / "services"
        shutil.copytree(REPO_ROOT / "zinit" / "qsfs", self.svc, dirs_exist_ok=True)
        key = self.data / "key"
        if not key.exists():
            key.write_bytes(os.urandom(32))
            key.chmod(0o600)
        self.conf.write_text("\n".join([
            "volume: appdata", f"key_file: {key}", "cache:", f"  dir: {self.data}/cache",
            "  segment_size: 1MiB",
            "  max_segment_age: 5", "fs:", f"  mountpoint: {self.mnt}",
            "stor:", f"  socket: {self.data}/stor.sock", f"  state_dir: {self.data}/stor",
            "  workers: 2", "  backends:"] + [f"    - {b}" for b in backends]) + "\n")
        self.zinit = str(_require_executable(build / "zinit" / "zinit", "zinit"))
        self.ctl_bin = str(_require_executable(build / "stor" / "qsfs-ctl", "qsfs-ctl"))
        self.stor_bin = str(build / "stor" / "qsfs-stor")
        _require_executable(build / "hooks" / "qsfs-wait-hooks", "qsfs-wait-hooks")
        self.env = dict(os.environ)
        self.env["PATH"] = ":".join([str(build / d) for d in ("stor", "fs", "cache", "hooks",
                                                              "zinit")] +
                                    [str(REPO_ROOT / "zinit"), os.environ["PATH"]])
        self.env.update(QSFS_CONFIG=str(self.conf), QSFS_FORMAT="1", QSFS_LOG="info")
        self.proc = None
        self.log = tmp / "zinit.log"

    def start(self):
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", self.zinit, "init", "--container",
             "-c", str(self.svc), "-s", str(self.sock)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=self.env)
        self.pid1 = None

        def child():
            p = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                               text=True)
            if p.stdout.strip():
                self.pid1 = int(p.stdout.split()[0])
            return self.pid1 is not None
        wait_for(child, 20, "zinit as PID 1")
        wait_for(lambda: self.proc.poll() is not None or
                 self.inside(self.ctl_bin, "ready").returncode == 0,  # $QSFS_CONFIG
                 120, "the stack to be ready")
        assert self.proc.poll() is None, self.log.read_text()[-4000:]

    def enter(self):
        """The command prefix that runs a process inside the container: in
        its mount namespace (where the mount is) and its PID namespace. Both:
        with only the mount namespace a process has no entry in the
        container's /proc, and the ASan runtime, which reads its options from
        /proc/self/environ, then ignores them and dies in LeakSanitizer."""
        return ["nsenter", "-t", str(self.pid1), "-m", "-p"]

    def inside(self, *cmd, timeout=300):
        """Run cmd inside the container."""
        return subprocess.run(self.enter() + list(map(str, cmd)), capture_output=True,
                              text=True, timeout=timeout, env=self.env)

    def python(self, script, *args, timeout=300):
        p = self.inside(sys.executable, "-c", script, *args, timeout=timeout)
        assert p.returncode == 0, p.stderr
        return p

    def stop(self, sig=signal.SIGTERM, timeout=600):
        os.kill(self.pid1, sig)
        rc = self.proc.wait(timeout=timeout)
        self.proc = None
        return rc

    def close(self):
        if self.proc and self.proc.poll() is None:
            if self.pid1:
                os.kill(self.pid1, signal.SIGKILL)
            self.proc.wait(timeout=60)


def sealed_segments(cache: Path):
    """Ids of the segments in the cache directory that hold data."""
    return sorted(int(p.name[4:-5], 16) for p in cache.glob("seg-*.qseg"))


def stor_alone(c: Container):
    """qsfs-stor on its own (no fs), to ask it about the journal and catalog."""
    p = subprocess.Popen([c.stor_bin, "-c", str(c.conf)], stdout=subprocess.DEVNULL,
                         stderr=open(c.tmp / "stor-alone.log", "ab"), env=c.env)
    wait_for(lambda: subprocess.run([c.ctl_bin, "-c", str(c.conf), "status"],
                                    capture_output=True).returncode == 0, 30, "qsfs-stor")
    return p


def ctl(c, *args):
    return subprocess.run([c.ctl_bin, "-c", str(c.conf), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def image_build(kind):
    """The binaries to run: "asan" is the test build (QSFS_BUILD_DIR);
    "release" is the image's unsanitized optimized build
    (QSFS_PLAIN_BUILD_DIR, which ./dev test makes)."""
    if kind == "asan":
        return _build_dir()
    plain = os.environ.get("QSFS_PLAIN_BUILD_DIR")
    if not plain:
        pytest.skip("QSFS_PLAIN_BUILD_DIR (the release build) is not set")
    return Path(plain)


@pytest.mark.parametrize("kind", ["asan", "release"])
def test_sigterm_drains_everything_fresh_node_identical(tmp_path, redises, kind):  # noqa: F811
    c = Container(tmp_path, [f"redis://127.0.0.1:{r.port}/0" for r in redises],
                  image_build(kind))
    try:
        c.start()
        wait_for(lambda: "fs: running" in subprocess.run(
            [c.zinit, "-s", str(c.sock), "list"], capture_output=True, text=True).stdout,
            60, "zinit to see fs ready")
        lst = subprocess.run([c.zinit, "-s", str(c.sock), "list"], capture_output=True,
                             text=True).stdout
        for want in ("prepare: success", "stor: running", "wait-hooks: running",
                     "fs: running"):
            assert want in lst, lst
        root = c.mnt / "app"
        writer = subprocess.Popen(c.enter() + [sys.executable, "-c", WRITER, str(root),
                                               str(tmp_path / "done.json"), "14", "1"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4)
        redises[1].proc.send_signal(signal.SIGSTOP)  # two backends hang for a while
        redises[4].proc.send_signal(signal.SIGSTOP)
        time.sleep(5)
        redises[1].proc.send_signal(signal.SIGCONT)
        redises[4].proc.send_signal(signal.SIGCONT)
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err  # no error reached the app
        assert int(out) > 50
        c.python(TREE, root, tmp_path / "before.json")

        assert c.stop(signal.SIGTERM) == 0, c.log.read_text()[-4000:]
        log = c.log.read_text()
        assert "queue drained" in log, log[-3000:]
        assert "every sealed segment is in qsfs-stor's journal" in log, log[-3000:]
        # shutdown order: fs, then wait-hooks, then stor
        assert log.index("fs: unmounted") < log.index("wait-hooks: every sealed segment") \
            < log.index("queue drained"), log[-3000:]
        # the journal is empty and every sealed segment is confirmed
        assert os.listdir(c.data / "stor" / "spool") == []
        segs = sealed_segments(c.data / "cache")
        assert len(segs) > 10
        stor = stor_alone(c)
        try:
            st = json.loads(ctl(c, "status", "--json").stdout)
            assert st["pending_jobs"] == 0
            unconfirmed = [s for s in segs if ctl(c, "confirmed", f"s{s}").returncode != 0]
            # the newest may be the empty active segment, never sealed
            assert unconfirmed in ([], [segs[-1]]), unconfirmed
        finally:
            stor.send_signal(signal.SIGTERM)
            assert stor.wait(timeout=60) == 0

        # a fresh node: only the config and the key
        shutil.rmtree(c.data / "cache")
        shutil.rmtree(c.data / "stor")
        c.start()
        c.python(TREE, root, tmp_path / "after.json")
        before = json.loads((tmp_path / "before.json").read_text())
        after = json.loads((tmp_path / "after.json").read_text())
        assert len(before) > 50
        diff = [k for k in set(before) | set(after) if before.get(k) != after.get(k)]
        assert not diff, [(k, before.get(k), after.get(k)) for k in sorted(diff)[:5]]
        assert c.stop(signal.SIGTERM) == 0, c.log.read_text()[-4000:]
    finally:
        for r in redises:
            if r.proc:
                r.proc.send_signal(signal.SIGCONT)
        c.close()


def test_sigkill_midway_keeps_fsynced(tmp_path, redises):  # noqa: F811
    c = Container(tmp_path, [f"redis://127.0.0.1:{r.port}/0" for r in redises],
                  image_build("asan"))
    try:
        c.start()
        root = c.mnt / "app"
        # qsfs-fs alone crashes: zinit restarts it, and the new one detaches
        # the dead mount it left and mounts again
        c.python("import os, sys; os.makedirs(sys.argv[1]); open(sys.argv[1] + '/x', 'w')",
                 root)
        fs_pid = subprocess.run(["pgrep", "-f", f"qsfs-fs -c {c.conf}"], capture_output=True,
                                text=True).stdout.split()
        assert len(fs_pid) == 1, fs_pid
        os.kill(int(fs_pid[0]), signal.SIGKILL)
        wait_for(lambda: "detached it" in c.log.read_text(), 60, "zinit to restart fs")
        wait_for(lambda: c.inside(c.ctl_bin, "-c", c.conf, "ready").returncode == 0, 120,
                 "the restarted fs to be ready")
        c.python("import os, sys; assert os.path.exists(sys.argv[1] + '/x')", root)
        c.python(WRITER, root, tmp_path / "done.json", "8", "2")
        # every process of the container dies at once (PID 1 killed)
        c.stop(signal.SIGKILL)
        done = json.loads((tmp_path / "done.json").read_text())
        assert len(done) > 10
        # restart on the same node, drain, and check every fsync'd file
        c.start()
        p = c.inside(c.ctl_bin, "-c", c.conf, "drain", "--timeout", "300")
        assert p.returncode == 0, p.stderr
        check = textwrap.dedent("""
            import hashlib, json, sys
            done = json.load(open(sys.argv[1]))
            bad = [p for p, h in done.items()
                   if hashlib.sha256(open(p, "rb").read()).hexdigest() != h]
            print(len(done), bad[:5])
            sys.exit(1 if bad else 0)
        """)
        c.python(check, tmp_path / "done.json")
        assert c.stop(signal.SIGTERM) == 0, c.log.read_text()[-4000:]
        assert os.listdir(c.data / "stor" / "spool") == []
    finally:
        c.close()


@pytest.fixture(autouse=True)
def _need_tools():
    for t in ("unshare", "nsenter", "pgrep"):
        assert shutil.which(t), f"{t} is needed (util-linux, procps)"
