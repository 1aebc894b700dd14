"""qsfs-ctl warmup on a fresh node, where every segment is remote: warming a
directory fetches exactly what its files need (they then read with qsfs-stor
stopped, while a file outside it cannot); warming the whole volume makes
every file local; bad paths and a missing qsfs-fs get clear errors."""
import hashlib
import os
import random
import subprocess

from qsfs_mount import Volume


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def fresh_node_with_tree(tmp_path):
    vol = Volume(tmp_path, segment_size="1MiB")
    vol.start_stor()
    vol.mount()
    rnd = random.Random(11)
    want = {}
    for d in ("hot", "cold"):
        (vol.mnt / d / "sub").mkdir(parents=True)
        for i in range(4):  # files of several segments each
            rel = f"{d}/sub/f{i}" if i % 2 else f"{d}/f{i}"
            data = rnd.randbytes(rnd.randrange(1_500_000, 3_000_000))
            (vol.mnt / rel).write_bytes(data)
            want[rel] = hashlib.sha256(data).hexdigest()
    assert vol.unmount() == 0
    vol.ctl("drain", "--timeout", "120")
    assert vol.stop_stor() == 0
    # a fresh node: only the config and the key
    vol.mount_as_fresh_node()
    return vol, want


def test_warmup_paths_then_whole_volume(tmp_path):
    vol, want = fresh_node_with_tree(tmp_path)
    try:
        p = vol.ctl("warmup", vol.mnt / "hot")
        assert "0 failed" in p.stdout, p.stdout
        fetched = int(p.stdout.split(" fetched")[0].rsplit(" ", 1)[1])
        assert fetched > 0, p.stdout
        # again: nothing left to fetch for those files
        p = vol.ctl("warmup", vol.mnt / "hot")
        assert "0 segments were not local, 0 fetched" in p.stdout, p.stdout
        # with qsfs-stor gone the warmed files still read; a cold one cannot
        assert vol.stop_stor() == 0
        for rel, h in want.items():
            if rel.startswith("hot/"):
                assert sha(vol.mnt / rel) == h, rel
        cold = [rel for rel in want if rel.startswith("cold/")]
        failures = 0
        for rel in cold:
            try:
                sha(vol.mnt / rel)
            except OSError:
                failures += 1
        assert failures > 0  # their segments are remote: proves the warmup did the work
        vol.start_stor()
        p = vol.ctl("warmup")
        assert "whole volume" in p.stdout and "0 failed" in p.stdout, p.stdout
        assert vol.stop_stor() == 0
        for rel, h in want.items():
            assert sha(vol.mnt / rel) == h, rel
        assert vol.unmount() == 0
    finally:
        vol.close()


def test_warmup_bad_input(tmp_path):
    vol = Volume(tmp_path)
    try:
        p = vol.ctl("warmup", check=False)
        assert p.returncode == 3 and "qsfs-fs is not running" in p.stderr, p.stderr
        vol.start_stor()
        vol.mount()
        (vol.mnt / "f").write_bytes(b"x" * 1000)
        p = vol.ctl("warmup", tmp_path / "qsfs.yaml", check=False)
        assert p.returncode == 2 and "is not on the qsfs mount" in p.stderr, p.stderr
        p = vol.ctl("warmup", vol.mnt / "nope", check=False)
        assert p.returncode == 2 and "No such file" in p.stderr, p.stderr
        p = vol.ctl("warmup", vol.mnt / "f")  # local already: nothing to do
        assert "0 segments were not local" in p.stdout, p.stdout
        # a raw client sending garbage gets an error, the filesystem goes on
        sock = tmp_path / "cache" / "fs.sock"
        out = subprocess.run(["python3", "-c", f"""
import socket
s = socket.socket(socket.AF_UNIX); s.connect({str(sock)!r})
s.sendall(b"WARMUP\\n12x\\n"); s.shutdown(socket.SHUT_WR)
print(s.makefile().read())"""], capture_output=True, text=True)
        assert "ERR WARMUP: '12x' is not an inode number" in out.stdout, out
        assert (vol.mnt / "f").read_bytes() == b"x" * 1000
        assert vol.unmount() == 0
    finally:
        vol.close()
        os.sync()
