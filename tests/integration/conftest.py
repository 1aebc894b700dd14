"""Fixtures for the qsfs integration tests.

The tests drive the built programs as a user would, through subprocesses.
The build directory comes from $QSFS_BUILD_DIR, or <repo>/build when unset.
A missing binary is a test failure with a clear message, never a skip.
"""
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _build_dir() -> Path:
    env = os.environ.get("QSFS_BUILD_DIR")
    return Path(env).resolve() if env else REPO_ROOT / "build"


def _require_executable(path: Path, what: str) -> Path:
    if not path.is_file():
        pytest.fail(
            f"{what} not found at {path}: build it first (ninja -C {_build_dir()}) "
            f"or point QSFS_BUILD_DIR at the build directory",
            pytrace=False,
        )
    if not os.access(path, os.X_OK):
        pytest.fail(f"{what} at {path} is not executable", pytrace=False)
    return path


@pytest.fixture(scope="session")
def build_dir() -> Path:
    return _build_dir()


@pytest.fixture(scope="session")
def bin_cache(build_dir) -> Path:
    """Path of the qsfs-cache binary (<build>/cache/qsfs-cache)."""
    return _require_executable(build_dir / "cache" / "qsfs-cache", "qsfs-cache")


@pytest.fixture(scope="session")
def hook_dir() -> Path:
    """Path of the directory-copy hook (<repo>/hooks/qsfs-hook-dir)."""
    return _require_executable(REPO_ROOT / "hooks" / "qsfs-hook-dir", "qsfs-hook-dir")


class CacheCLI:
    """Runs `qsfs-cache [OPTIONS] DIR COMMAND [ARGS]` and returns the result.

    stdout is kept as bytes (values are binary), stderr is decoded text.
    The log level is forced to `info` so that warnings always reach stderr.
    """

    def __init__(self, binary: Path):
        self.binary = str(binary)

    def env(self, extra=None):
        env = dict(os.environ)
        env["QSFS_LOG"] = "info"
        env.pop("QSFS_REMOTE_DIR", None)
        if extra:
            env.update({k: str(v) for k, v in extra.items()})
        return env

    def argv(self, directory, *args, opts=()):
        return [self.binary, *map(str, opts), str(directory), *map(str, args)]

    def run(self, directory, *args, opts=(), input=None, env=None, timeout=30):
        p = subprocess.run(
            self.argv(directory, *args, opts=opts),
            input=input,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(env),
            timeout=timeout,
        )
        p.stderr = p.stderr.decode("utf-8", "replace")
        return p

    def ok(self, directory, *args, **kw):
        """Run and require exit status 0."""
        p = self.run(directory, *args, **kw)
        assert p.returncode == 0, (
            f"qsfs-cache {' '.join(map(str, args))} exited {p.returncode}\n"
            f"stdout: {p.stdout[:2000]!r}\nstderr: {p.stderr}"
        )
        return p

    def popen(self, directory, *args, opts=(), env=None, **kw):
        return subprocess.Popen(self.argv(directory, *args, opts=opts), env=self.env(env), **kw)


@pytest.fixture
def qc(bin_cache) -> CacheCLI:
    return CacheCLI(bin_cache)
