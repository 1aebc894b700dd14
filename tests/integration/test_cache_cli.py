"""Integration tests of the qsfs-cache command-line tool.

Every test drives the binary through subprocesses on a fresh directory under
pytest's tmp_path, and asserts on exit codes, output and file contents.
"""
import os
import re
import selectors
import struct
import time

import pytest

SEG64K = ("-s", "64k")
SEG_HDR = 64
REC_HDR = 16
REC_PUT, REC_DEL, REC_SEAL = 1, 2, 3


# --- helpers ---------------------------------------------------------------


def fill_key(prefix, i):
    return f"{prefix}{i:08d}"


def fill_value(i, size):
    """The value `fill` writes for index i: byte j is (i*131 + j//7) & 0xff."""
    return bytes(((i * 131 + j // 7) & 0xFF) for j in range(size))


def seg_name(seg_id):
    return f"seg-{seg_id:016x}.qseg"


def ckpt_files(d):
    return sorted(p for p in d.iterdir() if re.fullmatch(r"ckpt-[0-9a-f]{16}\.qckp", p.name))


def seg_files(d):
    return sorted(p for p in d.iterdir() if re.fullmatch(r"seg-[0-9a-f]{16}\.qseg", p.name))


INSPECT_ROW = re.compile(
    r"^\s*(\d+)\s+(active|sealed|confirmed|evicted)\s+(yes|no)\s+(yes|no)\s+(\d+)\s+(\d+)\s+(\d+)\s*$"
)


def parse_inspect(stdout):
    """Segment table of `inspect`: {id: dict(state, local, handed, size)}."""
    segs = {}
    for line in stdout.decode().splitlines():
        m = INSPECT_ROW.match(line)
        if m:
            segs[int(m.group(1))] = dict(
                state=m.group(2),
                local=m.group(3) == "yes",
                handed=m.group(4) == "yes",
                size=int(m.group(5)),
            )
    return segs


def seg_records(path):
    """Walk a segment file: list of (offset, length, type, key)."""
    data = path.read_bytes()
    assert data[:8] == b"QSFSSEG1", f"{path} has no segment magic"
    recs, off = [], SEG_HDR
    while off + REC_HDR <= len(data):
        _, typ, klen, _, vlen = struct.unpack_from("<QBBHI", data, off)
        n = REC_HDR + klen + vlen
        if off + n > len(data):
            break
        recs.append((off, n, typ, data[off + REC_HDR : off + REC_HDR + klen].decode()))
        off += n
        if typ == REC_SEAL:
            break
    return recs


def flip_byte(path, off, mask=0x5A):
    os.chmod(path, 0o644)  # sealed segments are read-only files
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        assert len(b) == 1
        f.seek(off)
        f.write(bytes([b[0] ^ mask]))


def make_multi_segment_dir(qc, d, count=20, size=10000, prefix="k/"):
    """fill with 64 KiB segments: several sealed segments and an active one."""
    qc.ok(d, "fill", count, size, prefix, opts=SEG64K)
    segs = parse_inspect(qc.ok(d, "inspect", opts=SEG64K).stdout)
    sealed = [i for i, s in segs.items() if s["state"] == "sealed"]
    active = [i for i, s in segs.items() if s["state"] == "active"]
    assert len(sealed) >= 2 and len(active) == 1, f"unexpected layout: {segs}"
    assert max(segs) == active[0]
    return segs


def check_fill_data(qc, d, count, size, prefix, opts=SEG64K, env=None):
    for i in range(count):
        p = qc.run(d, "get", fill_key(prefix, i), opts=opts, env=env)
        assert p.returncode == 0, f"get {fill_key(prefix, i)}: exit {p.returncode}: {p.stderr}"
        assert p.stdout == fill_value(i, size), f"wrong bytes for {fill_key(prefix, i)}"


def scan_keys(qc, d, prefix=None, opts=SEG64K):
    args = ["scan"] + ([prefix] if prefix is not None else [])
    out = qc.ok(d, *args, opts=opts).stdout.decode()
    return [tuple(line.split("\t")) for line in out.splitlines()]


# --- put / get / del / scan -------------------------------------------------


def test_put_get_del_scan_round_trip(qc, tmp_path):
    d = tmp_path / "c"
    big = os.urandom(1 << 20) + bytes(range(256)) + b"\0\n\r\xff" * 7
    big = big[: 1 << 20]
    assert len(big) == 1 << 20
    big_file = tmp_path / "big.bin"
    big_file.write_bytes(big)

    qc.ok(d, "put", "a/one", input=b"first value\n")
    qc.ok(d, "put", "a/big", big_file)
    qc.ok(d, "put", "b/empty", input=b"")
    qc.ok(d, "put", "a/nul", input=b"\0\0\0x\0")

    assert qc.ok(d, "get", "a/one").stdout == b"first value\n"
    assert qc.ok(d, "get", "a/big").stdout == big
    assert qc.ok(d, "get", "b/empty").stdout == b""
    assert qc.ok(d, "get", "a/nul").stdout == b"\0\0\0x\0"

    # scan: every key in key order with its value size; prefix filters
    assert scan_keys(qc, d, opts=()) == [
        ("a/big", str(1 << 20)),
        ("a/nul", "5"),
        ("a/one", "12"),
        ("b/empty", "0"),
    ]
    assert scan_keys(qc, d, "a/", opts=()) == [("a/big", "1048576"), ("a/nul", "5"), ("a/one", "12")]
    assert scan_keys(qc, d, "zzz", opts=()) == []

    # overwrite
    qc.ok(d, "put", "a/one", input=b"second")
    assert qc.ok(d, "get", "a/one").stdout == b"second"

    # del, then the key is gone everywhere; deleting it again is "no such key"
    qc.ok(d, "del", "a/big")
    p = qc.run(d, "get", "a/big")
    assert p.returncode == 4 and p.stdout == b""
    assert [k for k, _ in scan_keys(qc, d, opts=())] == ["a/nul", "a/one", "b/empty"]
    p = qc.run(d, "del", "a/big")
    assert p.returncode == 4, p.stderr
    assert "a/big" in p.stderr

    # all of it survives further opens (put/del are durable)
    assert qc.ok(d, "get", "a/one").stdout == b"second"
    assert qc.ok(d, "get", "a/nul").stdout == b"\0\0\0x\0"


def test_fill_writes_documented_values(qc, tmp_path):
    d = tmp_path / "c"
    qc.ok(d, "fill", 7, 1000, "f/")
    assert scan_keys(qc, d, opts=()) == [(fill_key("f/", i), "1000") for i in range(7)]
    check_fill_data(qc, d, 7, 1000, "f/", opts=())
    # default prefix is demo/
    qc.ok(d, "fill", 2, 33)
    assert [k for k, _ in scan_keys(qc, d, "demo/", opts=())] == ["demo/00000000", "demo/00000001"]
    assert qc.ok(d, "get", "demo/00000001").stdout == fill_value(1, 33)


def test_get_missing_key_exits_4(qc, tmp_path):
    d = tmp_path / "c"
    qc.ok(d, "put", "present", input=b"x")
    p = qc.run(d, "get", "absent/key")
    assert p.returncode == 4, p.stderr
    assert p.stdout == b""
    assert "absent/key" in p.stderr
    # a key that is only a prefix of an existing one is missing too
    assert qc.run(d, "get", "pres").returncode == 4


def test_put_from_missing_file_fails(qc, tmp_path):
    d = tmp_path / "c"
    missing = tmp_path / "no-such-file"
    p = qc.run(d, "put", "k", missing)
    assert p.returncode == 1
    assert str(missing) in p.stderr
    assert qc.run(d, "get", "k").returncode == 4


# --- usage errors -------------------------------------------------------------


def test_unknown_command_exits_2(qc, tmp_path):
    d = tmp_path / "c"
    p = qc.run(d, "frobnicate", "x")
    assert p.returncode == 2
    assert "unknown command 'frobnicate'" in p.stderr
    assert "usage:" in p.stderr
    assert p.stdout == b""
    assert not d.exists(), "a usage error must not create the directory"


@pytest.mark.parametrize("args", [("get",), ("get", "a", "b"), ("put",), ("fill", "3"), ("seal", "x")])
def test_wrong_argument_count_exits_2(qc, tmp_path, args):
    d = tmp_path / "c"
    p = qc.run(d, *args)
    assert p.returncode == 2, p.stderr
    assert "usage:" in p.stderr
    assert not d.exists()


@pytest.mark.parametrize("bad", ["12q", "lots", "64XB", "1.5M", "-5", ""])
def test_bad_segment_size_exits_2(qc, tmp_path, bad):
    d = tmp_path / "c"
    p = qc.run(d, "put", "k", input=b"v", opts=("-s", bad))
    assert p.returncode == 2, p.stderr
    assert "--segment-size" in p.stderr
    assert f"'{bad}'" in p.stderr
    assert not d.exists()
    p = qc.run(d, "put", "k", input=b"v", opts=(f"--segment-size={bad}",))
    assert p.returncode == 2, p.stderr
    assert "--segment-size" in p.stderr and f"'{bad}'" in p.stderr


@pytest.mark.parametrize("bad", ["100", "4095", "8GiB"])
def test_out_of_range_segment_size_is_a_usage_error(qc, tmp_path, bad):
    """A size that parses but is outside 4 KiB..4 GiB is as bad a
    --segment-size as one that does not parse: exit 2 (usage), message naming
    the option or the value, and no directory created."""
    d = tmp_path / "c"
    p = qc.run(d, "put", "k", input=b"v", opts=("-s", bad))
    assert "out of range" in p.stderr or "--segment-size" in p.stderr, p.stderr
    assert not d.exists()
    assert p.returncode == 2, f"exit {p.returncode}, stderr: {p.stderr}"


def test_bad_max_size_and_confirm_id(qc, tmp_path):
    d = tmp_path / "c"
    p = qc.run(d, "evict", opts=("-m", "huge"))
    assert p.returncode == 2 and "--max-size" in p.stderr and "'huge'" in p.stderr
    qc.ok(d, "put", "k", input=b"v")
    p = qc.run(d, "confirm", "seven")
    assert p.returncode == 2 and "'seven' is not a segment id" in p.stderr
    p = qc.run(d, "confirm", "99")
    assert p.returncode == 1 and "no such segment" in p.stderr
    p = qc.run(d, "confirm", "1")  # the active segment
    assert p.returncode == 1 and "active segment cannot be confirmed" in p.stderr


# --- inspect / verify -------------------------------------------------------


def test_inspect_shows_segment_states(qc, tmp_path):
    d = tmp_path / "c"
    segs = make_multi_segment_dir(qc, d)
    ids = sorted(segs)
    assert ids == list(range(1, len(ids) + 1))
    assert [segs[i]["state"] for i in ids] == ["sealed"] * (len(ids) - 1) + ["active"]
    assert all(s["local"] for s in segs.values())
    for i in ids:
        assert segs[i]["size"] == (d / seg_name(i)).stat().st_size
        assert segs[i]["size"] <= 64 * 1024

    p = qc.ok(d, "seal", opts=SEG64K)
    assert p.stdout.decode().strip() == f"sealed segment {ids[-1]}"
    p = qc.ok(d, "seal", opts=SEG64K)
    assert "nothing to seal" in p.stdout.decode()
    qc.ok(d, "confirm", 1, opts=SEG64K)

    p = qc.ok(d, "inspect", opts=SEG64K)
    out = p.stdout.decode()
    segs = parse_inspect(p.stdout)
    assert segs[1]["state"] == "confirmed"
    assert all(segs[i]["state"] == "sealed" for i in ids[1:])
    assert segs[ids[-1] + 1]["state"] == "active"
    assert re.search(r"^keys:\s+20$", out, re.M), out
    # inspect is read-only: it must not have created anything
    before = sorted(x.name for x in d.iterdir())
    qc.ok(d, "inspect", opts=SEG64K)
    assert sorted(x.name for x in d.iterdir()) == before


def test_verify_clean_directory(qc, tmp_path):
    d = tmp_path / "c"
    segs = make_multi_segment_dir(qc, d)
    p = qc.run(d, "inspect", "--verify", opts=SEG64K)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr
    assert "verify: all checksums ok" in out
    assert "CORRUPT" not in out and "torn tail" not in out
    for i, s in segs.items():
        kind = "active" if s["state"] == "active" else "sealed"
        assert re.search(rf"^ok segment {i} \({seg_name(i)}\): \d+ records, {kind}$", out, re.M), out
    for c in ckpt_files(d):
        assert f"ok checkpoint {c.name}:" in out


def test_verify_finds_flipped_byte_in_sealed_segment(qc, tmp_path):
    d = tmp_path / "c"
    segs = make_multi_segment_dir(qc, d)
    victim = 2
    assert segs[victim]["state"] == "sealed"
    path = d / seg_name(victim)
    size = path.stat().st_size
    mid = size // 2
    rec = next(r for r in seg_records(path) if r[0] <= mid < r[0] + r[1])
    rec_off, rec_len, rec_type, rec_key = rec
    assert rec_type == REC_PUT and mid >= rec_off + REC_HDR + len(rec_key), "flip must hit a value"
    flip_byte(path, mid)

    p = qc.run(d, "inspect", "--verify", opts=SEG64K)
    out = p.stdout.decode()
    assert p.returncode == 3, out + p.stderr
    assert f"CORRUPT segment {victim} ({seg_name(victim)}) at offset {rec_off}:" in out, out
    assert "verify: CORRUPTION FOUND" in out
    # only that segment is reported
    assert len(re.findall(r"^CORRUPT", out, re.M)) == 1, out
    for i in segs:
        if i != victim:
            assert re.search(rf"^ok segment {i} ", out, re.M), out

    # reading the damaged record fails with EIO naming segment and offset;
    # its neighbours in the same segment still read back exactly
    p = qc.run(d, "get", rec_key, opts=SEG64K)
    assert p.returncode == 1, p.stderr
    assert p.stdout == b""
    assert f"segment {victim}" in p.stderr and f"offset {rec_off}" in p.stderr, p.stderr
    for off, _, typ, key in seg_records(path):
        if typ == REC_PUT and key != rec_key:
            i = int(key[len("k/"):])
            assert qc.ok(d, "get", key, opts=SEG64K).stdout == fill_value(i, 10000)


def _torn_tail_check_after_write(qc, d, active, torn, expect_size, tail_key):
    """The write command after a torn tail warns once with file and byte
    count, cuts the tail, appends after the last whole record."""
    name = seg_name(active)
    p = qc.run(d, "put", "after/tear", input=b"AFTER", opts=SEG64K)
    assert p.returncode == 0, p.stderr
    warn = [l for l in p.stderr.splitlines() if "torn tail" in l]
    assert len(warn) == 1, p.stderr
    assert name in warn[0] and f"{torn} bytes" in warn[0], warn[0]
    assert warn[0].startswith("qsfs warning:"), warn[0]
    assert (d / name).stat().st_size == expect_size + REC_HDR + len("after/tear") + len("AFTER")

    # every synced key is still there, byte for byte
    check_fill_data(qc, d, 20, 10000, "k/")
    assert qc.ok(d, "get", "after/tear", opts=SEG64K).stdout == b"AFTER"
    if tail_key:
        assert qc.run(d, "get", tail_key, opts=SEG64K).returncode == 4
    # and the directory is clean again: no more warnings, verify is happy
    p = qc.run(d, "inspect", "--verify", opts=SEG64K)
    assert p.returncode == 0 and "torn tail" not in p.stdout.decode() + p.stderr
    p = qc.ok(d, "put", "after/again", input=b"x", opts=SEG64K)
    assert "torn tail" not in p.stderr


def test_torn_tail_garbage_appended(qc, tmp_path):
    d = tmp_path / "c"
    segs = make_multi_segment_dir(qc, d)
    active = max(segs)
    path = d / seg_name(active)
    good = path.stat().st_size
    garbage = bytes((i * 37 + 11) & 0xFF for i in range(1234))
    with open(path, "ab") as f:
        f.write(garbage)

    p = qc.run(d, "inspect", "--verify", opts=SEG64K)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr
    line = next((l for l in out.splitlines() if l.startswith("torn tail")), None)
    assert line, out
    assert f"segment {active} ({seg_name(active)})" in line
    assert f"1234 bytes at offset {good}" in line, line
    assert "CORRUPT" not in out
    assert "verify: all checksums ok" in out
    # inspect is read-only: the torn tail is still there
    assert path.stat().st_size == good + 1234

    _torn_tail_check_after_write(qc, d, active, 1234, good, None)


def test_torn_tail_truncated_mid_record(qc, tmp_path):
    d = tmp_path / "c"
    segs = make_multi_segment_dir(qc, d)
    active = max(segs)
    path = d / seg_name(active)
    good = path.stat().st_size
    qc.ok(d, "put", "tail/last", input=b"T" * 3000, opts=SEG64K)
    full = path.stat().st_size
    assert full == good + REC_HDR + len("tail/last") + 3000
    os.truncate(path, full - 1000)
    torn = full - 1000 - good

    p = qc.run(d, "inspect", "--verify", opts=SEG64K)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr
    line = next((l for l in out.splitlines() if l.startswith("torn tail")), None)
    assert line, out
    assert f"segment {active} ({seg_name(active)})" in line
    assert f"{torn} bytes at offset {good}" in line, line

    _torn_tail_check_after_write(qc, d, active, torn, good, "tail/last")


# --- checkpoints --------------------------------------------------------------


@pytest.mark.parametrize("newest_kind", ["full", "delta"])
def test_corrupt_newest_checkpoint_is_skipped(qc, tmp_path, newest_kind):
    d = tmp_path / "c"
    make_multi_segment_dir(qc, d)
    expected = {fill_key("k/", i): fill_value(i, 10000) for i in range(20)}
    if newest_kind == "delta":
        qc.ok(d, "seal", opts=SEG64K)
        qc.ok(d, "fill", 5, 10000, "z/", opts=SEG64K)
        expected.update({fill_key("z/", i): fill_value(i, 10000) for i in range(5)})
    newest = ckpt_files(d)[-1]
    out = qc.ok(d, "inspect", "--verify", opts=SEG64K).stdout.decode()
    assert re.search(rf"^ok checkpoint {newest.name}: {newest_kind},", out, re.M), out

    flip_byte(newest, newest.stat().st_size // 2, 0x01)

    def check_all(p_scan):
        keys = [line.split("\t")[0] for line in p_scan.stdout.decode().splitlines()]
        assert keys == sorted(expected), keys
        for k, v in expected.items():
            p = qc.run(d, "get", k, opts=SEG64K)
            assert p.returncode == 0 and p.stdout == v, f"{k}: {p.returncode} {p.stderr}"

    # a read-only open warns and still sees everything
    p = qc.ok(d, "scan", opts=SEG64K)
    assert re.search(rf"qsfs warning: .*{re.escape(newest.name)}.*skipping", p.stderr), p.stderr
    check_all(p)

    # a write open warns too, keeps every key and adds the new one
    p = qc.ok(d, "put", "new/key", input=b"N", opts=SEG64K)
    assert re.search(rf"qsfs warning: .*{re.escape(newest.name)}.*skipping", p.stderr), p.stderr
    expected["new/key"] = b"N"
    p = qc.ok(d, "scan", opts=SEG64K)
    assert "skipping" not in p.stderr and "unusable" not in p.stderr, p.stderr
    check_all(p)
    p = qc.run(d, "inspect", "--verify", opts=SEG64K)
    assert p.returncode == 0, p.stdout.decode() + p.stderr


# --- hooks: hand-off, eviction, fetch ----------------------------------------


def _hooked_dir(qc, tmp_path, hook_dir):
    d = tmp_path / "c"
    remote = tmp_path / "remote"
    remote.mkdir()
    env = {"QSFS_REMOTE_DIR": remote}
    opts = SEG64K + ("-H", hook_dir)
    qc.ok(d, "fill", 20, 10000, "k/", opts=opts, env=env)
    p = qc.ok(d, "seal", opts=opts, env=env)
    m = re.fullmatch(r"sealed segment (\d+)\n", p.stdout.decode())
    assert m, p.stdout
    last_sealed = int(m.group(1))
    vol = (d / "VOLUME").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", vol)
    return d, remote / vol, env, opts, list(range(1, last_sealed + 1))


def test_hook_dir_copies_evicts_and_fetches(qc, tmp_path, hook_dir):
    d, rvol, env, opts, sealed = _hooked_dir(qc, tmp_path, hook_dir)
    assert len(sealed) >= 3

    # every sealed segment was handed off: identical copy in the remote dir
    for i in sealed:
        copy = rvol / seg_name(i)
        assert copy.is_file(), f"{copy} missing; remote has {sorted(os.listdir(rvol))}"
        assert copy.read_bytes() == (d / seg_name(i)).read_bytes()
    assert not (rvol / seg_name(sealed[-1] + 1)).exists(), "the active segment must not be copied"
    assert any(p.name.startswith("ckpt-") for p in rvol.iterdir()), "checkpoints are handed off too"
    segs = parse_inspect(qc.ok(d, "inspect", opts=SEG64K).stdout)
    assert all(segs[i]["handed"] and segs[i]["state"] == "sealed" for i in sealed), segs

    for i in sealed:
        qc.ok(d, "confirm", i, opts=opts, env=env)
    segs = parse_inspect(qc.ok(d, "inspect", opts=SEG64K).stdout)
    assert all(segs[i]["state"] == "confirmed" and segs[i]["local"] for i in sealed), segs

    p = qc.ok(d, "evict", opts=opts + ("-m", "16k"), env=env)
    assert re.fullmatch(r"evicted \d+ segments\n", p.stdout.decode()), p.stdout
    for i in sealed:
        assert not (d / seg_name(i)).exists(), f"{seg_name(i)} still on local disk"
    assert (d / seg_name(sealed[-1] + 1)).exists(), "the active segment must stay"
    segs = parse_inspect(qc.ok(d, "inspect", opts=SEG64K).stdout)
    for i in sealed:
        assert segs[i]["state"] == "evicted" and not segs[i]["local"], segs
    assert segs[sealed[-1] + 1]["state"] == "active"

    # scan needs only the index: still lists everything
    assert [k for k, _ in scan_keys(qc, d)] == [fill_key("k/", i) for i in range(20)]

    # get through the hook brings each segment back, byte-exact
    check_fill_data(qc, d, 20, 10000, "k/", opts=opts, env=env)
    for i in sealed:
        assert (d / seg_name(i)).read_bytes() == (rvol / seg_name(i)).read_bytes()
    segs = parse_inspect(qc.ok(d, "inspect", opts=SEG64K).stdout)
    assert all(segs[i]["state"] == "confirmed" and segs[i]["local"] for i in sealed), segs
    p = qc.run(d, "inspect", "--verify", opts=SEG64K)
    assert p.returncode == 0, p.stdout.decode() + p.stderr


def test_evict_reports_how_many_segments_it_evicted(qc, tmp_path, hook_dir):
    d, rvol, env, opts, sealed = _hooked_dir(qc, tmp_path, hook_dir)
    for i in sealed:
        qc.ok(d, "confirm", i, opts=opts, env=env)
    p = qc.ok(d, "evict", opts=opts + ("-m", "16k"), env=env)
    gone = [i for i in sealed if not (d / seg_name(i)).exists()]
    assert len(gone) == len(sealed)
    assert p.stdout.decode() == f"evicted {len(gone)} segments\n", (
        f"evict removed {len(gone)} segment files but printed {p.stdout.decode()!r}"
    )


def test_fetch_fails_when_remote_copy_is_gone(qc, tmp_path, hook_dir):
    d, rvol, env, opts, sealed = _hooked_dir(qc, tmp_path, hook_dir)
    for i in sealed:
        qc.ok(d, "confirm", i, opts=opts, env=env)
    qc.ok(d, "evict", opts=opts + ("-m", "16k"), env=env)
    victim = 2
    assert not (d / seg_name(victim)).exists()
    key = next(k for _, _, t, k in seg_records(rvol / seg_name(victim)) if t == REC_PUT)
    (rvol / seg_name(victim)).unlink()

    p = qc.run(d, "get", key, opts=opts, env=env)
    assert p.returncode == 1, p.stderr
    assert p.stdout == b""
    assert f"segment {victim}" in p.stderr, p.stderr
    assert not (d / seg_name(victim)).exists()
    assert not any(x.name.startswith(seg_name(victim)) for x in d.iterdir()), "no partial file left"

    # without a hook the read fails the same way, naming the segment
    p = qc.run(d, "get", key, opts=SEG64K)
    assert p.returncode == 1 and f"segment {victim}" in p.stderr, p.stderr

    # other evicted segments still come back
    other = next(i for i in sealed if i != victim)
    k2 = next(k for _, _, t, k in seg_records(rvol / seg_name(other)) if t == REC_PUT)
    i2 = int(k2[len("k/"):])
    assert qc.ok(d, "get", k2, opts=opts, env=env).stdout == fill_value(i2, 10000)


# --- exclusive access -------------------------------------------------------


def _wait_for_stderr(proc, pattern, timeout=10.0):
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    while pattern not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not sel.select(0):
            break
        if sel.select(left):
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
    sel.close()
    return buf


def test_second_writer_is_refused(qc, tmp_path):
    import subprocess

    d = tmp_path / "c"
    qc.ok(d, "put", "existing", input=b"old")
    holder = qc.popen(d, "put", "held/key", stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = _wait_for_stderr(holder, b"opened")
        assert b"opened" in seen, f"first writer did not open the directory: {seen!r}"
        assert holder.poll() is None, "the first writer must still be waiting for stdin"

        for args, kw in [(("put", "other"), {"input": b"x"}), (("del", "existing"), {}),
                         (("fill", "2", "10"), {}), (("seal",), {})]:
            p = qc.run(d, *args, **kw)
            assert p.returncode == 1, f"{args}: exit {p.returncode}: {p.stderr}"
            assert "in use" in p.stderr, f"{args}: {p.stderr}"
            assert str(d) in p.stderr, p.stderr

        holder.stdin.write(b"held value")
        holder.stdin.close()
        assert holder.wait(timeout=20) == 0, holder.stderr.read().decode()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for f in (holder.stdout, holder.stderr):
            f.close()

    assert qc.ok(d, "get", "held/key").stdout == b"held value"
    assert qc.ok(d, "get", "existing").stdout == b"old"
    assert qc.run(d, "get", "other").returncode == 4
    assert [k for k, _ in scan_keys(qc, d, opts=())] == ["existing", "held/key"]
    # the lock is gone with the process
    qc.ok(d, "put", "later", input=b"y")


# --- a directory keeps its segment size ---------------------------------------


def test_segment_size_can_change_between_opens(qc, tmp_path):
    """The segment size is a setting of each open (as in the config file), not
    stored in the directory: a directory written with 64 KiB segments and
    reopened with 256 KiB ones keeps every old value readable, and the new
    segments follow the new size."""
    d = tmp_path / "c"
    make_multi_segment_dir(qc, d)
    old = {p.name for p in seg_files(d)}
    qc.ok(d, "fill", 60, 10000, "more/", opts=("-s", "256k"))
    new = {p.name: p.stat().st_size for p in seg_files(d) if p.name not in old}
    assert new and all(s <= 256 * 1024 for s in new.values()), new
    assert any(s > 64 * 1024 for s in new.values()), new
    out = qc.ok(d, "stats", opts=("-s", "256k")).stdout.decode()
    assert re.search(r"^segment size:\s+262144 bytes$", out, re.M), out
    check_fill_data(qc, d, 60, 10000, "more/", opts=())


# --- clean -------------------------------------------------------------------


def test_clean_moves_live_records_and_keeps_data(qc, tmp_path):
    """`clean` empties the segments whose records were mostly overwritten:
    they become dead (nothing live), every value still reads, before and
    after a reopen, and `inspect --verify` finds every checksum good."""
    d = tmp_path / "c"
    qc.ok(d, "fill", 40, 10000, "k/", opts=SEG64K)          # segments 1..7
    for i in range(40):                                        # 3 of 4 overwritten
        if i % 4:
            qc.ok(d, "put", fill_key("k/", i), input=b"new %d" % i, opts=SEG64K)
    qc.ok(d, "seal", opts=SEG64K)
    before = qc.ok(d, "stats", opts=SEG64K).stdout.decode()
    out = qc.ok(d, "clean", "0.2", opts=SEG64K).stdout.decode()
    m = re.search(r"cleaned (\d+) segments: moved (\d+) records", out)
    assert m and int(m.group(1)) >= 6 and int(m.group(2)) >= 10, out
    after = qc.ok(d, "stats", opts=SEG64K).stdout.decode()
    dead = lambda s: int(re.search(r"dead segments:\s+(\d+)", s).group(1))
    assert dead(after) >= dead(before) + 6, (before, after)
    for i in range(40):
        got = qc.ok(d, "get", fill_key("k/", i), opts=SEG64K).stdout
        assert got == (fill_value(i, 10000) if i % 4 == 0 else b"new %d" % i), i
    qc.ok(d, "inspect", "--verify", opts=SEG64K)
    # a second pass finds nothing worth it
    out = qc.ok(d, "clean", "0.2", opts=SEG64K).stdout.decode()
    assert "cleaned 0 segments" in out, out


def test_clean_bad_target_exits_2(qc, tmp_path):
    d = tmp_path / "c"
    qc.ok(d, "fill", 2, 10, "k/")
    for bad in ("1.5", "x", "-0.1", "1"):
        p = qc.run(d, "clean", bad)
        assert p.returncode == 2, (bad, p.returncode, p.stderr)
        assert "TARGET" in p.stderr and bad in p.stderr, p.stderr
