"""POSIX behaviour of a qsfs mount, as a user of a local disk expects it.
One volume (six dir:// backends, qsfs-stor running) is mounted for the
module; each test works in its own directory. Permission checks run as the
user nobody through default_permissions (the mount has allow_other)."""
import ctypes
import errno
import fcntl
import mmap
import os
import socket
import stat
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from qsfs_mount import Volume

libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2
SEEK_DATA, SEEK_HOLE = 3, 4
BLOCK = 64 * 1024


def renameat2(a, b, flags):
    r = libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), flags)
    if r:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def fallocate(fd, mode, off, length):
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    r = libc.fallocate(fd, mode, off, length)
    if r:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


@pytest.fixture(scope="module")
def vol():
    # not under pytest's 0700 tmp dir: the user nobody must reach the mount
    base = Path(tempfile.mkdtemp(prefix="qsfs-posix-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    v = Volume(base, allow_other=True, fs_size="10GiB")
    v.start_stor()
    v.mount()
    os.chmod(v.mnt, 0o755)
    yield v
    v.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def d(vol, request):
    p = vol.mnt / request.node.name.replace("[", "_").replace("]", "")
    p.mkdir()
    return p


def errno_of(fn, *a):
    try:
        fn(*a)
    except OSError as e:
        return e.errno
    return 0


def as_nobody(*cmd):
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "--", *cmd], capture_output=True, text=True, timeout=60)


def test_file_types(d):
    (d / "f").write_bytes(b"data")
    (d / "sub").mkdir()
    os.symlink("f", d / "l")
    os.link(d / "f", d / "h")
    os.mkfifo(d / "fifo")
    os.mknod(d / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / "sock"))
    s.close()
    kinds = {e.name: e for e in os.scandir(d)}
    assert sorted(kinds) == ["dev", "f", "fifo", "h", "l", "sock", "sub"]
    assert stat.S_ISREG(os.lstat(d / "f").st_mode)
    assert stat.S_ISDIR(os.lstat(d / "sub").st_mode)
    assert stat.S_ISLNK(os.lstat(d / "l").st_mode) and os.readlink(d / "l") == "f"
    assert (d / "l").read_bytes() == b"data"
    assert stat.S_ISFIFO(os.lstat(d / "fifo").st_mode)
    st = os.lstat(d / "dev")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_ISSOCK(os.lstat(d / "sock").st_mode)
    assert kinds["sub"].is_dir() and kinds["l"].is_symlink() and not kinds["fifo"].is_file()
    # hard link: one inode, two names, nlink 2; the dir counts its subdir
    assert os.stat(d / "h").st_ino == os.stat(d / "f").st_ino
    assert os.stat(d / "f").st_nlink == 2
    assert os.stat(d).st_nlink == 3
    os.unlink(d / "f")
    assert os.stat(d / "h").st_nlink == 1 and (d / "h").read_bytes() == b"data"
    # the mount is nodev (a container's data directory): device nodes exist
    # with their numbers but do not open
    assert errno_of(open, d / "dev", "wb") == errno.EACCES
    # a fifo works across processes
    pid = os.fork()
    if pid == 0:
        with open(d / "fifo", "wb") as f:
            f.write(b"through the pipe")
        os._exit(0)
    with open(d / "fifo", "rb") as f:
        assert f.read() == b"through the pipe"
    os.waitpid(pid, 0)
    long = "x" * 255
    (d / long).write_bytes(b"1")
    assert long in os.listdir(d) and (d / long).read_bytes() == b"1"
    assert errno_of((d / ("y" * 256)).write_bytes, b"1") == errno.ENAMETOOLONG
    target = "t" * 4000
    os.symlink(target, d / "longlink")
    assert os.readlink(d / "longlink") == target


def test_mkdir_rmdir_errors(d):
    (d / "a").mkdir()
    assert errno_of(os.mkdir, d / "a") == errno.EEXIST
    (d / "a" / "x").write_bytes(b"")
    assert errno_of(os.rmdir, d / "a") == errno.ENOTEMPTY
    assert errno_of(os.rmdir, d / "a" / "x") == errno.ENOTDIR
    assert errno_of(os.unlink, d / "a") in (errno.EISDIR, errno.EPERM)
    assert errno_of(os.link, d / "a", d / "b") == errno.EPERM
    os.unlink(d / "a" / "x")
    os.rmdir(d / "a")
    assert not (d / "a").exists()
    assert os.stat(d).st_nlink == 2


def test_rename(d):
    (d / "a").write_bytes(b"A")
    (d / "b").write_bytes(b"B")
    ino_a = os.stat(d / "a").st_ino
    os.rename(d / "a", d / "b")  # replaces b
    assert (d / "b").read_bytes() == b"A" and os.stat(d / "b").st_ino == ino_a
    assert not (d / "a").exists()
    (d / "x").mkdir()
    (d / "y").mkdir()
    (d / "y" / "f").write_bytes(b"")
    assert errno_of(os.rename, d / "x", d / "y") == errno.ENOTEMPTY
    assert errno_of(os.rename, d / "b", d / "x") == errno.EISDIR
    assert errno_of(os.rename, d / "x", d / "b") == errno.ENOTDIR
    assert errno_of(os.rename, d / "y", d / "y" / "inside") == errno.EINVAL
    os.unlink(d / "y" / "f")
    os.rename(d / "x", d / "y")  # a directory over an empty one
    assert (d / "y").is_dir() and not (d / "x").exists()
    # a directory moved to another parent: its ".." and both link counts
    (d / "p1").mkdir()
    (d / "p2").mkdir()
    (d / "p1" / "c").mkdir()
    os.rename(d / "p1" / "c", d / "p2" / "c")
    assert os.stat(d / "p2" / "c" / "..").st_ino == os.stat(d / "p2").st_ino
    assert os.stat(d / "p1").st_nlink == 2 and os.stat(d / "p2").st_nlink == 3
    # NOREPLACE and EXCHANGE
    (d / "m").write_bytes(b"M")
    (d / "n").write_bytes(b"N")
    with pytest.raises(OSError) as e:
        renameat2(d / "m", d / "n", RENAME_NOREPLACE)
    assert e.value.errno == errno.EEXIST
    renameat2(d / "m", d / "fresh", RENAME_NOREPLACE)
    renameat2(d / "fresh", d / "n", RENAME_EXCHANGE)
    assert (d / "n").read_bytes() == b"M" and (d / "fresh").read_bytes() == b"N"
    renameat2(d / "fresh", d / "p2" / "c", RENAME_EXCHANGE)  # a file and a dir, across dirs
    assert (d / "fresh").is_dir() and (d / "p2" / "c").read_bytes() == b"N"
    assert os.stat(d / "fresh" / "..").st_ino == os.stat(d).st_ino
    with pytest.raises(OSError) as e:
        renameat2(d / "nothing", d / "n", RENAME_EXCHANGE)
    assert e.value.errno == errno.ENOENT
    # renaming a link onto another link of the same inode does nothing
    os.link(d / "n", d / "n2")
    os.rename(d / "n", d / "n2")
    assert (d / "n").exists() and (d / "n2").exists()


def test_unlinked_open_file_stays_readable(d, vol):
    p = d / "tmp"
    p.write_bytes(b"still here" * 1000)
    f = open(p, "r+b")
    os.unlink(p)
    assert not p.exists()
    assert f.read() == b"still here" * 1000
    f.seek(0)
    f.write(b"STILL")
    f.flush()
    f.seek(0)
    assert f.read(10) == b"STILL here"
    assert os.fstat(f.fileno()).st_nlink == 0
    f.close()
    assert sorted(os.listdir(d)) == []


def test_truncate_sparse_and_seek(d):
    p = d / "s"
    with open(p, "wb") as f:
        f.write(b"a" * 100)
    os.truncate(p, 10)
    assert p.read_bytes() == b"a" * 10
    os.truncate(p, 5000)  # grown: zeros, not the old bytes
    assert p.read_bytes() == b"a" * 10 + b"\0" * 4990
    with open(p, "r+b") as f:
        f.seek(10 * BLOCK + 7)
        f.write(b"tail")
        f.flush()
        os.ftruncate(f.fileno(), 10 * BLOCK + 9)
    data = p.read_bytes()
    assert len(data) == 10 * BLOCK + 9
    assert data[:10] == b"a" * 10 and data[10:10 * BLOCK + 7] == bytes(10 * BLOCK - 3)
    assert data[-2:] == b"ta"
    fd = os.open(p, os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, SEEK_DATA) == 0
        hole = os.lseek(fd, 0, SEEK_HOLE)
        assert 0 < hole <= 10 * BLOCK
        assert os.lseek(fd, hole, SEEK_DATA) == 10 * BLOCK
        assert os.lseek(fd, 10 * BLOCK, SEEK_HOLE) == 10 * BLOCK + 9
        assert errno_of(os.lseek, fd, 10 * BLOCK + 9, SEEK_DATA) == errno.ENXIO
    finally:
        os.close(fd)


def test_file_over_4gib(d):
    p = d / "big"
    off = 5 << 30
    with open(p, "wb") as f:
        f.seek(off)
        f.write(b"beyond 4 GiB")
    assert os.stat(p).st_size == off + 12
    with open(p, "rb") as f:
        f.seek(off - 4)
        assert f.read() == b"\0" * 4 + b"beyond 4 GiB"
        f.seek(1 << 32)
        assert f.read(8) == bytes(8)
    os.truncate(p, (4 << 30) + 1)
    assert os.stat(p).st_size == (4 << 30) + 1


def test_open_flags(d):
    p = d / "o"
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, b"first")
    os.close(fd)
    assert errno_of(os.open, p, os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"+second")
    os.close(fd)
    assert p.read_bytes() == b"first+second"
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert p.read_bytes() == b""
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644 & ~_umask()


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_times_and_ownership(d):
    p = d / "t"
    p.write_bytes(b"x")
    st0 = os.stat(p)
    time.sleep(0.02)
    os.chmod(p, 0o640)
    st1 = os.stat(p)
    assert stat.S_IMODE(st1.st_mode) == 0o640
    assert st1.st_ctime_ns > st0.st_ctime_ns and st1.st_mtime_ns == st0.st_mtime_ns
    time.sleep(0.02)
    with open(p, "ab") as f:
        f.write(b"y")
    st2 = os.stat(p)
    assert st2.st_mtime_ns > st1.st_mtime_ns and st2.st_ctime_ns >= st2.st_mtime_ns
    os.chown(p, 1234, 5678)
    st3 = os.stat(p)
    assert (st3.st_uid, st3.st_gid) == (1234, 5678) and st3.st_ctime_ns > st2.st_ctime_ns
    os.utime(p, ns=(1_000_000_000_123, 2_000_000_000_456))
    st4 = os.stat(p)
    assert st4.st_atime_ns == 1_000_000_000_123 and st4.st_mtime_ns == 2_000_000_000_456
    # the parent's mtime moves when an entry comes or goes; a link changes ctime
    dst0 = os.stat(d)
    time.sleep(0.02)
    os.link(p, d / "t2")
    assert os.stat(d).st_mtime_ns > dst0.st_mtime_ns
    assert os.stat(p).st_ctime_ns > st4.st_ctime_ns
    # atime moves on a read after a write (relatime)
    os.utime(p, ns=(1_000_000_000_000, 2_000_000_000_000))
    p.read_bytes()
    assert os.stat(p).st_atime_ns > 2_000_000_000_000


def test_xattrs(d):
    p = d / "x"
    p.write_bytes(b"")
    os.setxattr(p, "user.colour", b"blue")
    os.setxattr(p, "user.empty", b"")
    assert os.getxattr(p, "user.colour") == b"blue"
    assert os.getxattr(p, "user.empty") == b""
    assert sorted(os.listxattr(p)) == ["user.colour", "user.empty"]
    assert errno_of(os.setxattr, p, "user.colour", b"red", os.XATTR_CREATE) == errno.EEXIST
    assert errno_of(os.setxattr, p, "user.none", b"x", os.XATTR_REPLACE) == errno.ENODATA
    os.setxattr(p, "user.colour", b"red", os.XATTR_REPLACE)
    assert os.getxattr(p, "user.colour") == b"red"
    os.removexattr(p, "user.colour")
    assert errno_of(os.getxattr, p, "user.colour") == errno.ENODATA
    assert errno_of(os.removexattr, p, "user.colour") == errno.ENODATA
    big = os.urandom(60000)
    os.setxattr(p, "user.big", big)
    assert os.getxattr(p, "user.big") == big
    (d / "dir").mkdir()
    os.setxattr(d / "dir", "user.on_dir", b"1")
    assert os.getxattr(d / "dir", "user.on_dir") == b"1"
    # and with the tools a user has (Debian's attr: scripts/install-deps.sh)
    subprocess.run(["setfattr", "-n", "user.tool", "-v", "by-setfattr", str(p)], check=True)
    assert os.getxattr(p, "user.tool") == b"by-setfattr"
    got = subprocess.run(["getfattr", "-n", "user.tool", "--only-values", str(p)],
                         capture_output=True, check=True).stdout
    assert got == b"by-setfattr", got
    subprocess.run(["setfattr", "-x", "user.tool", str(p)], check=True)
    assert errno_of(os.getxattr, p, "user.tool") == errno.ENODATA


def test_permissions_as_nobody(d):
    secret = d / "secret"
    secret.write_bytes(b"root only")
    os.chmod(secret, 0o600)
    os.chmod(d, 0o755)
    (d / "public").write_bytes(b"for all")
    r = as_nobody("cat", str(d / "public"))  # nobody can reach the directory
    assert r.returncode == 0 and r.stdout == "for all", r.stderr
    r = as_nobody("cat", str(secret))
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_nobody("touch", str(d / "new"))
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # an ACL grants nobody read access (POSIX ACLs ride on xattrs)
    subprocess.run(["setfacl", "-m", "u:nobody:r", str(secret)], check=True)
    r = as_nobody("cat", str(secret))
    assert r.returncode == 0 and r.stdout == "root only"
    assert "user:nobody:r--" in subprocess.run(["getfacl", str(secret)], capture_output=True,
                                               text=True).stdout
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o640  # the group bits are the mask
    os.chmod(secret, 0o600)  # chmod rewrites the mask: nobody is out again
    assert "mask::---" in subprocess.run(["getfacl", str(secret)], capture_output=True,
                                         text=True).stdout
    r = as_nobody("cat", str(secret))
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # sticky directory: nobody may create but not delete root's file
    sticky = d / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    (sticky / "roots").write_bytes(b"")
    r = as_nobody("rm", "-f", str(sticky / "roots"))
    assert r.returncode != 0 and (sticky / "roots").exists()
    r = as_nobody("sh", "-c", f"echo mine > {sticky}/theirs && rm {sticky}/theirs")
    assert r.returncode == 0, r.stderr
    # a setgid directory passes its group on
    sg = d / "sg"
    sg.mkdir()
    os.chown(sg, 0, 4321)
    os.chmod(sg, 0o2775)
    (sg / "f").write_bytes(b"")
    (sg / "sub").mkdir()
    assert os.stat(sg / "f").st_gid == 4321
    assert os.stat(sg / "sub").st_gid == 4321 and os.stat(sg / "sub").st_mode & stat.S_ISGID


def test_mode_equivalent_acl_is_not_kept(d, tmp_path):
    """An access ACL that says no more than the mode (only user::, group::,
    other::) sets the mode and is not stored, as on other filesystems: `cp
    -a` (which copies the source's ACL) and `setfacl -b` leave no '+' in
    ls -l and no system.posix_acl_access xattr."""
    src = tmp_path / "src"
    src.write_bytes(b"x")
    os.chmod(src, 0o640)
    subprocess.run(["cp", "-a", str(src), str(d / "copy")], check=True)
    ls = subprocess.run(["ls", "-l", str(d / "copy")], capture_output=True, text=True).stdout
    assert ls.startswith("-rw-r----- "), ls  # no '+'
    assert "system.posix_acl_access" not in os.listxattr(d / "copy")
    f = d / "f"
    f.write_bytes(b"")
    subprocess.run(["setfacl", "-m", "u:nobody:r", str(f)], check=True)
    assert "system.posix_acl_access" in os.listxattr(f)
    subprocess.run(["setfacl", "-b", str(f)], check=True)  # back to the mode alone
    assert "system.posix_acl_access" not in os.listxattr(f)
    ls = subprocess.run(["ls", "-l", str(f)], capture_output=True, text=True).stdout
    assert "+" not in ls.split()[0], ls
    subprocess.run(["setfacl", "--set", "u::rwx,g::r-x,o::---", str(f)], check=True)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o750
    assert "system.posix_acl_access" not in os.listxattr(f)


def getfacl(path):
    return subprocess.run(["getfacl", "-cpE", str(path)], capture_output=True, text=True,
                          check=True).stdout.split()


def test_umask_and_default_acl_inheritance(d):
    os.chmod(d, 0o755)
    old = os.umask(0o027)
    try:
        # no default ACL: the creator's umask applies
        (d / "plain").write_bytes(b"")
        (d / "plaindir").mkdir(0o777)
        os.mknod(d / "fifo", 0o666 | stat.S_IFIFO)
        assert stat.S_IMODE(os.stat(d / "plain").st_mode) == 0o640
        assert stat.S_IMODE(os.stat(d / "plaindir").st_mode) == 0o750
        assert stat.S_IMODE(os.stat(d / "fifo").st_mode) == 0o640
        # a default ACL replaces the umask and is inherited
        shared = d / "shared"
        shared.mkdir()
        subprocess.run(["setfacl", "-d", "-m", "u:nobody:rwx,g::r-x,o::---", str(shared)],
                       check=True)
        fd = os.open(shared / "f", os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)
        (shared / "sub").mkdir(0o777)
        os.symlink("f", shared / "link")
        assert getfacl(shared / "f") == ["user::rw-", "user:nobody:rwx", "group::r-x",
                                         "mask::rw-", "other::---"]
        assert stat.S_IMODE(os.stat(shared / "f").st_mode) == 0o660  # umask 027 ignored
        sub = getfacl(shared / "sub")
        assert "user:nobody:rwx" in sub and "default:user:nobody:rwx" in sub
        assert stat.S_IMODE(os.stat(shared / "sub").st_mode) == 0o770
        assert stat.S_IMODE(os.lstat(shared / "link").st_mode) == 0o777
        # ... and goes on down the tree, and grants what it says
        (shared / "sub" / "deep").write_bytes(b"inherited")
        assert "user:nobody:rwx" in getfacl(shared / "sub" / "deep")
        os.chmod(shared, 0o755)
        r = as_nobody("sh", "-c", f"echo more >> {shared}/sub/deep && cat {shared}/sub/deep")
        assert r.returncode == 0 and r.stdout == "inheritedmore\n", r.stderr
    finally:
        os.umask(old)


def test_statfs_reports_size_and_usage(d):
    sv0 = os.statvfs(d)
    assert sv0.f_blocks * sv0.f_frsize == 10 << 30
    assert sv0.f_namemax == 255
    (d / "fill").write_bytes(os.urandom(8 << 20))
    os.sync()
    sv1 = os.statvfs(d)
    assert (sv0.f_bfree - sv1.f_bfree) * sv1.f_frsize >= 8 << 20
    # df -i counts files, not the log's keys: an 8 MiB file (128 blocks, a
    # name, an inode) is one file; ten empty files and a directory are 11
    assert sv0.f_ffree - sv1.f_ffree == 1, (sv0.f_ffree, sv1.f_ffree)
    (d / "sub").mkdir()
    for i in range(10):
        (d / "sub" / f"e{i}").write_bytes(b"")
    sv2 = os.statvfs(d)
    assert sv1.f_ffree - sv2.f_ffree == 11, (sv1.f_ffree, sv2.f_ffree)
    (d / "fill").unlink()  # freed once the kernel forgets the inode (FORGET)
    deadline = time.monotonic() + 30
    while os.statvfs(d).f_ffree - sv2.f_ffree != 1:
        assert time.monotonic() < deadline, (os.statvfs(d).f_ffree, sv2.f_ffree)
        time.sleep(0.05)


def test_st_blocks_count_what_is_allocated(d):
    """du of a sparse file shows what it holds, not its size: a 1 GiB file
    with one 4 KiB write is one 64 KiB block, a punch frees it, a file
    written full shows its size (512-byte units, rounded up)."""
    p = d / "sparse"
    with open(p, "wb") as f:
        f.truncate(1 << 30)
    assert os.stat(p).st_blocks == 0
    fd = os.open(p, os.O_RDWR)
    try:
        os.pwrite(fd, os.urandom(4096), 500 << 20)
        os.fsync(fd)
        st = os.stat(p)
        assert st.st_size == 1 << 30
        assert 0 < st.st_blocks <= BLOCK // 512, st.st_blocks
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 500 << 20, BLOCK)
        assert os.stat(p).st_blocks == 0
    finally:
        os.close(fd)
    full = d / "full"
    size = 3 * BLOCK + 1000
    full.write_bytes(os.urandom(size))
    assert os.stat(full).st_blocks == (size + 511) // 512
    du = subprocess.run(["du", "-k", str(p), str(full)], capture_output=True, text=True,
                        check=True).stdout.split()
    assert du[0] == "0" and int(du[2]) == (size + 1023) // 1024, du


def test_df_i_counts_files(d):
    """df -i: 100 new files are 100 more used inodes, and removing them
    gives them back (once the kernel forgets them)."""
    def used():
        sv = os.statvfs(d)
        return sv.f_files - sv.f_ffree
    before = used()
    for i in range(100):
        (d / f"f{i}").write_bytes(b"x" * 100)
    assert used() - before == 100
    for i in range(100):
        (d / f"f{i}").unlink()
    deadline = time.monotonic() + 30
    while used() != before:
        assert time.monotonic() < deadline, (used(), before)
        time.sleep(0.05)


def test_fallocate(d):
    p = d / "fa"
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fallocate(fd, 0, 0, 3 * BLOCK + 100)
        assert os.fstat(fd).st_size == 3 * BLOCK + 100
        os.pwrite(fd, b"\xff" * (3 * BLOCK + 100), 0)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 2 * BLOCK)
        assert os.fstat(fd).st_size == 3 * BLOCK + 100
        data = os.pread(fd, 3 * BLOCK + 100, 0)
        assert data[:100] == b"\xff" * 100
        assert data[100:100 + 2 * BLOCK] == bytes(2 * BLOCK)
        assert data[100 + 2 * BLOCK:] == b"\xff" * (BLOCK)
        # a whole block punched is a hole again
        assert os.lseek(fd, BLOCK, SEEK_HOLE) == BLOCK
    finally:
        os.close(fd)


def test_readdir_exactly_once_while_changing(d):
    names = {f"e{i:05d}" for i in range(3000)}
    for n in names:
        (d / n).write_bytes(b"")
    seen = []
    removed, added = set(), set()
    with os.scandir(d) as it:
        for i, e in enumerate(it):
            seen.append(e.name)
            if i % 7 == 0:  # change the directory under the listing
                victim = f"e{(i * 13) % 3000:05d}"
                if victim in names and victim not in removed:
                    os.unlink(d / victim)
                    removed.add(victim)
                new = f"n{i:05d}"
                (d / new).write_bytes(b"")
                added.add(new)
    assert len(seen) == len(set(seen)), "an entry came twice"
    stable = names - removed
    assert stable <= set(seen), f"missing: {sorted(stable - set(seen))[:5]}"
    assert set(seen) <= names | added


def test_locks_between_processes(d):
    p = d / "lock"
    p.write_bytes(b"")
    f = open(p, "r+b")
    fcntl.flock(f, fcntl.LOCK_EX)
    r = subprocess.run(["flock", "-n", str(p), "true"])
    assert r.returncode == 1  # held
    fcntl.flock(f, fcntl.LOCK_UN)
    assert subprocess.run(["flock", "-n", str(p), "true"]).returncode == 0
    fcntl.lockf(f, fcntl.LOCK_EX, 10, 0)
    code = ("import fcntl,sys\nf=open(sys.argv[1],'r+b')\n"
            "try:\n fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB, 10, 0)\nexcept OSError:\n"
            " sys.exit(3)\nsys.exit(0)\n")
    assert subprocess.run(["/usr/bin/python3", "-c", code, str(p)]).returncode == 3
    f.close()
    assert subprocess.run(["/usr/bin/python3", "-c", code, str(p)]).returncode == 0


def test_mmap_and_sync_calls(d):
    p = d / "m"
    p.write_bytes(bytes(3 * BLOCK))
    with open(p, "r+b") as f:
        m = mmap.mmap(f.fileno(), 0)
        m[BLOCK - 3:BLOCK + 3] = b"mapped"
        m.flush()
        m.close()
        os.fsync(f.fileno())
        os.fdatasync(f.fileno())
    assert p.read_bytes()[BLOCK - 3:BLOCK + 3] == b"mapped"
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)


def test_survives_remount_with_stable_inodes(vol, d):
    (d / "keep").write_bytes(b"kept" * 5000)
    (d / "sub").mkdir()
    os.symlink("../keep", d / "sub" / "link")
    os.setxattr(d / "keep", "user.k", b"v")
    before = {p: os.lstat(d / p).st_ino for p in ["keep", "sub", "sub/link"]}
    vol.remount()
    after = {p: os.lstat(d / p).st_ino for p in before}
    assert before == after
    assert (d / "sub" / "link").read_bytes() == b"kept" * 5000
    assert os.getxattr(d / "keep", "user.k") == b"v"
