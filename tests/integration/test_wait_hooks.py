"""qsfs-wait-hooks, the container's shutdown waiter, on its own: it returns
only once qsfs-fs has let go of the cache and no hook process is left (an
orphan of a killed qsfs-fs included), hands off what fs could not (stor was
away), exits 1 naming what is left when stor does not answer, and exits 0
when there is nothing to do."""
import os
import signal
import subprocess
import time

from conftest import _build_dir, _require_executable
from qsfs_mount import Volume, wait_for

MIB = 1 << 20

# A hook that, while SLOW exists, sleeps first and leaves DONE behind once
# the real hook returned: an orphan that outlives a killed qsfs-fs.
SLOW_HOOK = """#!/bin/sh
if [ -e {slow} ] && [ "$1" = segment-sealed ]; then
    sleep 4
    {hook} "$@"; rc=$?
    echo "$2" >> {done}
    exit $rc
fi
exec {hook} "$@"
"""


def waiter(vol, *args):
    exe = str(_require_executable(_build_dir() / "hooks" / "qsfs-wait-hooks",
                                  "qsfs-wait-hooks"))
    return subprocess.Popen([exe, "-c", str(vol.conf), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=vol.env())


def sealed(vol):
    return sorted(int(p.name[4:-5], 16) for p in vol.cache.glob("seg-*.qseg"))


def unconfirmed(vol):
    return [s for s in sealed(vol)
            if vol.ctl("confirmed", f"s{s}", check=False).returncode != 0]


def test_waits_for_fs_then_for_an_orphaned_hook(tmp_path):
    vol = Volume(tmp_path, segment_size="1MiB", hook=True)
    slow, done = tmp_path / "slow", tmp_path / "done"
    hook = tmp_path / "slow-hook"
    hook.write_text(SLOW_HOOK.format(slow=slow, hook=vol.hook, done=done))
    hook.chmod(0o755)
    vol.conf.write_text(vol.conf.read_text().replace(f"hook: {vol.hook}", f"hook: {hook}"))
    try:
        vol.start_stor()
        vol.mount()
        (vol.mnt / "a").write_bytes(os.urandom(3 * MIB))
        vol.ctl("drain", "--timeout", "60")
        # while qsfs-fs runs, the waiter waits for it
        w = waiter(vol, "--now")
        time.sleep(1.5)
        assert w.poll() is None, w.communicate()
        # a sealed segment whose hook is still sleeping when fs is killed
        slow.touch()
        with open(vol.mnt / "b", "wb") as f:
            f.write(os.urandom(3 * MIB))
            os.fsync(f.fileno())
        wait_for(lambda: subprocess.run(["pgrep", "-f", f"sh {hook} segment-sealed"],
                                        capture_output=True).returncode == 0, 30,
                 "a slow hook to run")
        vol.kill9()
        slow.unlink()  # only the orphan is slow (and writes DONE)
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        # it returned only after the orphan finished its hand-off
        assert done.exists() and done.read_text().strip(), err
        assert "waiting for qsfs-fs to stop" in err and "waiting for the running hooks" in err
        assert "every sealed segment is in qsfs-stor's journal" in err
        # everything sealed reaches the backends
        vol.ctl("drain", "--timeout", "60")
        assert unconfirmed(vol) in ([], sealed(vol)[-1:])
        vol.mount()
        assert len((vol.mnt / "b").read_bytes()) == 3 * MIB
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_stor_down_exit_1_then_hands_off(tmp_path):
    vol = Volume(tmp_path, segment_size="1MiB")
    try:
        vol.mount()  # no stor: the hand-offs wait
        data = os.urandom(5 * MIB)
        (vol.mnt / "f").write_bytes(data)
        assert vol.unmount() == 0
        w = waiter(vol, "--now")
        out, err = w.communicate(timeout=300)
        assert w.returncode == 1, err
        assert "could not be handed to qsfs-stor (is it running?)" in err, err
        assert "handed off at the next start" in err
        vol.start_stor()
        w = waiter(vol, "--now")
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        vol.ctl("drain", "--timeout", "60")
        assert unconfirmed(vol) in ([], sealed(vol)[-1:])
        # a fresh node gets the data from the backends alone
        assert vol.stop_stor() == 0
        vol.mount_as_fresh_node()
        assert (vol.mnt / "f").read_bytes() == data
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_signal_starts_the_wait_and_bad_input(tmp_path):
    vol = Volume(tmp_path, segment_size="1MiB")
    try:
        # nothing happens until SIGTERM; a cache fs never created is nothing to do
        w = waiter(vol)

        def in_sigwait():
            assert w.poll() is None
            with open(f"/proc/{w.pid}/wchan") as f:
                return "sigtimedwait" in f.read()
        wait_for(in_sigwait, 30, "qsfs-wait-hooks to wait for SIGTERM")
        time.sleep(0.5)
        assert w.poll() is None
        w.send_signal(signal.SIGTERM)
        out, err = w.communicate(timeout=60)
        assert w.returncode == 0, err
        assert "holds no segment log (qsfs-fs never opened one there): nothing to hand off" \
            in err
        # nor is one made there
        assert not (vol.cache / "VOLUME").exists()
        p = waiter(vol, "--bogus")
        assert p.wait(timeout=30) == 2 and "usage: qsfs-wait-hooks" in p.stderr.read()
        bad = tmp_path / "bad.yaml"
        bad.write_text("volume: [\n")
        p = subprocess.run([w.args[0], "-c", str(bad), "--now"], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 2 and "bad.yaml:" in p.stderr, p.stderr
    finally:
        vol.close()
