"""A whole qsfs stack for tests: a volume on real backends, qsfs-stor and a
mounted qsfs-fs, with the life-cycle operations the tests need (clean
unmount, kill -9, remount, eviction)."""
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from conftest import REPO_ROOT, _build_dir, _require_executable


def wait_for(pred, timeout=120, what="condition"):
    """Poll pred every 0.2 s until it is true; fail after timeout s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Volume:
    def __init__(self, tmp: Path, backends=None, segment_size="4MiB", max_size=None,
                 extra_cache="", allow_other=False, fs_size=None, extra_fs="", key=None,
                 format=True, extra_stor="", hook=False):
        """extra_cache, extra_fs, extra_stor: more YAML lines (indented two
        spaces) for the cache:, fs: and stor: sections. key: an existing key file (another host
        of the same volume); format=False: the volume exists already. hook: hand off through
        hooks/qsfs-hook (the extension point) instead of straight to qsfs-stor (the
        default)."""
        build = _build_dir()
        self.tmp = tmp
        self.fs_bin = str(_require_executable(build / "fs" / "qsfs-fs", "qsfs-fs"))
        self.stor_bin = str(_require_executable(build / "stor" / "qsfs-stor", "qsfs-stor"))
        self.ctl_bin = str(_require_executable(build / "stor" / "qsfs-ctl", "qsfs-ctl"))
        self.cache_bin = str(_require_executable(build / "cache" / "qsfs-cache", "qsfs-cache"))
        self.hook = str(REPO_ROOT / "hooks" / "qsfs-hook")
        self.mnt = tmp / "mnt"
        self.mnt.mkdir(exist_ok=True)
        self.cache = tmp / "cache"
        if key is None:
            key = tmp / "key"
            key.write_bytes(os.urandom(32))
            key.chmod(0o600)
        self.key = key
        if backends is None:
            backends = [f"dir://{tmp}/backend{i}" for i in range(6)]
        lines = [
            "volume: testfs", f"key_file: {key}", "cache:", f"  dir: {self.cache}",
            f"  segment_size: {segment_size}", "  hook_timeout: 60",
        ] + ([f"  hook: {self.hook}"] if hook else []) + extra_cache.splitlines()
        if max_size:
            lines.append(f"  max_size: {max_size}")
        lines += [
            "fs:", f"  mountpoint: {self.mnt}",
        ] + extra_fs.splitlines() + ([f"  size: {fs_size}"] if fs_size else []) + (
            ["  allow_other: true"] if allow_other else []) + [
            "stor:", f"  socket: {tmp}/stor.sock",
            f"  state_dir: {tmp}/stor", "  compression: zstd:1", "  workers: 2",
        ] + extra_stor.splitlines() + ["  backends:"] + [f"    - {b}" for b in backends]
        self.backends = list(backends)
        self.conf = tmp / "qsfs.yaml"
        self.conf.write_text("\n".join(lines) + "\n")
        self.fs = None
        self.stor = None
        self.fs_log = tmp / "fs.log"
        self.stor_log = tmp / "stor.log"
        if format:
            self.ctl("format")

    def env(self):
        e = dict(os.environ)
        e["QSFS_CTL"] = self.ctl_bin
        e.setdefault("QSFS_LOG", "info")
        return e

    def ctl(self, *args, check=True, timeout=300):
        p = subprocess.run([self.ctl_bin, "-c", str(self.conf), *map(str, args)],
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert p.returncode == 0, f"qsfs-ctl {args}: {p.returncode}: {p.stderr}"
        return p

    def start_stor(self):
        self.stor = subprocess.Popen([self.stor_bin, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.stor_log, "ab"), env=self.env())
        for _ in range(500):
            if self.ctl("status", check=False).returncode == 0:
                return
            assert self.stor.poll() is None, self.stor_log.read_text()
            time.sleep(0.02)
        raise RuntimeError("qsfs-stor did not become ready")

    def stop_stor(self, sig=signal.SIGTERM):
        if self.stor:
            self.stor.send_signal(sig)
            rc = self.stor.wait(timeout=300)
            self.stor = None
            return rc
        return None

    def mount(self, *args, timeout=10):
        self.fs = subprocess.Popen([self.fs_bin, "-c", str(self.conf), *args],
                                   stdout=subprocess.DEVNULL,
                                   stderr=open(self.fs_log, "ab"), env=self.env())
        for _ in range(int(timeout * 50)):
            if os.path.ismount(self.mnt):
                return
            assert self.fs.poll() is None, self.fs_log.read_text()
            time.sleep(0.02)
        raise RuntimeError("qsfs-fs did not mount")

    def try_mount(self, *args):
        """Run qsfs-fs expecting it to refuse: its CompletedProcess."""
        return subprocess.run([self.fs_bin, "-c", str(self.conf), *args], capture_output=True,
                              text=True, timeout=120, env=self.env())

    def unmount(self):
        """fusermount3 -u: a clean stop. Returns qsfs-fs's exit status."""
        for _ in range(100):
            p = subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True,
                               text=True)
            if p.returncode == 0:
                break
            time.sleep(0.1)  # busy: a file still open for a moment
        else:
            raise AssertionError(f"fusermount3 -u failed: {p.stderr}")
        rc = self.fs.wait(timeout=300)
        self.fs = None
        return rc

    def kill9(self):
        self.fs.send_signal(signal.SIGKILL)
        self.fs.wait(timeout=60)
        self.fs = None
        subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
        subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True)

    def remount(self):
        assert self.unmount() == 0, self.fs_log.read_text()[-3000:]
        self.mount()

    def mount_as_fresh_node(self, timeout=10):
        """Become a fresh node and mount: delete the cache and stor's state
        directory (stor and fs stopped), so only the configuration and the
        key remain, then start stor and mount (which restores the volume)."""
        shutil.rmtree(self.cache)
        shutil.rmtree(self.tmp / "stor")
        self.start_stor()
        self.mount(timeout=timeout)

    def assert_files(self, want):
        """Every file of want (path relative to the mount -> sha256 hex)
        reads back with that content."""
        for name, h in want.items():
            assert hashlib.sha256((self.mnt / name).read_bytes()).hexdigest() == h, name

    def close(self):
        if self.fs:
            if os.path.ismount(self.mnt):
                subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
            try:
                self.fs.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.fs.kill()
                self.fs.wait()
            self.fs = None
        if self.stor:
            self.stor.kill()
            self.stor.wait()
            self.stor = None
