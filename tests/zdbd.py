#!/usr/bin/env python3
"""zdbd.py - a small 0-db (zdb v2.0.7, user mode) double for qsfs's tests.

0-db is not packaged in Debian; this speaks its RESP dialect closely enough
for qsfs's zdb:// backends to be tested against it. Python 3 standard
library only. It was written from 0-db's documented and observed behaviour
and its command handlers (zdbd/commands_*.c); no 0-db code is in it.

    python3 tests/zdbd.py [--port N] [--port-file PATH] [--admin PASSWORD]
                          [--scan-batch N] [--command-log PATH]

It listens on 127.0.0.1 (port N, or one the kernel picks), prints
"zdbd.py listening on 127.0.0.1:PORT", and writes PORT to --port-file
(written whole, then renamed into place) once it accepts connections. Data
lives in memory only: a restart starts empty. --command-log appends one
line per request received, "NAME ARGC" (never the arguments: they hold
passwords), so a test can tell what a client sent.

What it does as 0-db does (docs/ZDB.md lists what it does not):
- requests are RESP arrays of bulk strings; a value over 8 MiB is answered
  "-Payload too big" and the connection closed;
- a command word selects the first command of 0-db's table that it is a
  prefix of, case-insensitively (0-db's strncasecmp rule); no match is
  "-Command not supported";
- AUTH password (the admin password; "-Access denied" otherwise,
  "-Authentication disabled" without one), AUTH SECURE CHALLENGE and
  AUTH SECURE hash; without an admin password every client is admin;
- SELECT namespace [password | SECURE hash]: "-Namespace not found",
  "-Access denied", "-Namespace protected and private" (no password, not
  public); a public namespace selected without its password is read-only;
- NSNEW, NSDEL, NSLIST, NSSET (maxsize, password, public, worm, lock,
  freeze; admin only), NSINFO (anyone; 0-db's `key: value` lines), DBSIZE;
- SET key value: the key as a bulk reply; "$-1" when the value is the same
  as the one stored (0-db skips the write); "-No space left on this
  namespace" when the namespace's maxsize would be exceeded (an overwrite
  may use the space of the value it replaces); "-Namespace is in read-only
  mode"; "-Key too large" over 255 bytes;
- GET key: bulk or "$-1"; DEL key: "+OK" or "-Key not found"; EXISTS key:
  ":1" or ":0";
- SCAN [cursor]: "*2" of a 17-byte binary cursor and entries [key, size,
  timestamp] in the order keys were last written, "-No more data" at the
  end, "-Invalid key format" for a cursor it did not give;
- PING: "+PONG".
"""
import argparse
import asyncio
import hashlib
import os
import struct
import sys
import time
import zlib

MAX_PAYLOAD = 8 * 1024 * 1024   # zdbd/redis.h REDIS_MAX_PAYLOAD
MAX_KEY = 255                   # libzdb/index.h MAX_KEY_LENGTH
NS_MAX = 128                    # libzdb/namespace.h NAMESPACE_MAX_LENGTH
COMMAND_MAXLEN = 256            # zdbd/commands.h

# 0-db's command table, in its order (zdbd/commands.c): a request's word
# picks the first name it is a prefix of.
TABLE = ["*", "WAIT", "MIRROR", "MASTER", "PING", "TIME", "AUTH", "HOOKS", "INDEX",
         "DATA", "SET", "SETX", "GET", "MGET", "DEL", "EXISTS", "CHECK", "SCAN", "SCANX",
         "RSCAN", "KSCAN", "HISTORY", "KEYCUR", "LENGTH", "KEYTIME", "INFO", "STOP",
         "DBSIZE", "NSNEW", "NSDEL", "NSLIST", "NSSET", "NSINFO", "NSJUMP", "SELECT",
         "RELOAD", "FLUSH"]


class Close(Exception):
    """Answer this error line, then close the connection."""


def atoi(b: bytes) -> int:
    """C's atoi: optional sign and leading digits, 0 when none."""
    s = b.strip()
    sign, i = 1, 0
    if s[:1] in (b"-", b"+"):
        sign = -1 if s[:1] == b"-" else 1
        i = 1
    n = 0
    while i < len(s) and 48 <= s[i] <= 57:
        n = n * 10 + s[i] - 48
        i += 1
    return sign * n


def bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


def err(msg: str) -> bytes:
    return b"-" + msg.encode() + b"\r\n"


OK = b"+OK\r\n"
NIL = b"$-1\r\n"


class Record:
    """One index entry: 0-db's index is append-only; an overwritten or
    deleted key's entry is flagged deleted and SCAN skips it."""
    __slots__ = ("key", "length", "crc", "ts", "deleted")

    def __init__(self, key, length, crc, ts):
        self.key, self.length, self.crc, self.ts, self.deleted = key, length, crc, ts, False


class Namespace:
    def __init__(self, name):
        self.name = name
        self.password = None
        self.public = True      # 0-db's default: public, no password, no limit
        self.worm = False
        self.lock = 0           # 1: read-only (NSSET lock), 2: frozen (NSSET freeze)
        self.maxsize = 0
        self.records = []       # the index, in write order
        self.live = {}          # key -> (record number, value)
        self.datasize = 0       # bytes of the live values
        self.removed = False


class Client:
    def __init__(self, server):
        self.ns = server.namespaces["default"]
        self.writable = True
        self.admin = server.admin is None
        self.nonce = None


def sha1_hex(salt: str, password: str) -> str:
    return hashlib.sha1(f"{salt}:{password}".encode()).hexdigest()


class Zdb:
    def __init__(self, admin, scan_batch, log):
        self.admin = admin
        self.scan_batch = scan_batch
        self.log = log
        self.namespaces = {"default": Namespace("default")}
        self.handlers = {
            "*": self.asterisk, "PING": self.ping, "AUTH": self.auth, "SET": self.set,
            "SETX": self.set, "GET": self.get, "DEL": self.delete, "EXISTS": self.exists,
            "SCAN": self.scan, "SCANX": self.scan, "DBSIZE": self.dbsize,
            "NSNEW": self.nsnew, "NSDEL": self.nsdel, "NSLIST": self.nslist,
            "NSSET": self.nsset, "NSINFO": self.nsinfo, "SELECT": self.select,
        }

    # -- dispatch ---------------------------------------------------------
    def dispatch(self, c: Client, argv):
        if self.log:
            self.log.write(f"{argv[0].decode('latin-1').upper()} {len(argv)}\n")
            self.log.flush()
        if c.ns is None or c.ns.removed:
            raise Close("Your active namespace is not available anymore (probably removed).")
        word = argv[0].decode("latin-1").upper()
        for name in TABLE:
            if name.startswith(word):
                h = self.handlers.get(name)
                if h is None:
                    return err(f"Command not supported by zdbd.py, the test double ({name})")
                return h(c, argv)
        return err("Command not supported")

    @staticmethod
    def validate(argv, n, null_ok=False):
        """0-db's command_args_validate: exactly n arguments, non-empty
        unless null_ok. An error reply, or None."""
        if len(argv) != n:
            return err("Unexpected arguments")
        if not null_ok and any(len(a) == 0 for a in argv):
            return err("Invalid argument")
        return None

    @staticmethod
    def admin_only(c):
        return None if c.admin else err("Permission denied")

    # -- system -----------------------------------------------------------
    def asterisk(self, c, argv):
        return err("This is not a valid command")

    def ping(self, c, argv):
        return b"+PONG\r\n"

    def auth(self, c, argv):
        if len(argv) == 2:
            if self.admin is None:
                return err("Authentication disabled")
            e = self.validate(argv, 2)
            if e:
                return e
            if len(argv[1]) > 128:
                return err("Password too long")
            if argv[1].decode("latin-1") == self.admin:
                c.admin = True
                return OK
            return err("Access denied")
        if len(argv) == 3:
            e = self.validate(argv, 3)
            if e:
                return e
            if not b"SECURE".startswith(argv[1].upper()):
                return err("Only SECURE extra method supported")
            if b"CHALLENGE".startswith(argv[2].upper()):
                c.nonce = os.urandom(8).hex()
                return b"+" + c.nonce.encode() + b"\r\n"
            if self.admin is None:
                return err("Authentication disabled")
            if c.nonce is None:
                return err("No CHALLENGE requested, secure authentication not available")
            if len(argv[2]) != 40:
                return err("Invalid hash length")
            ok = argv[2].decode("latin-1") == sha1_hex(c.nonce, self.admin)
            c.nonce = None
            if ok:
                c.admin = True
                return OK
            return err("Access denied")
        return err("Unexpected arguments")

    # -- namespaces -------------------------------------------------------
    def nsname(self, argv, i):
        if len(argv[i]) > NS_MAX:
            return None, err("Namespace too long")
        return argv[i].decode("latin-1"), None

    def nsnew(self, c, argv):
        e = self.admin_only(c) or self.validate(argv, 2)
        if e:
            return e
        name, e = self.nsname(argv, 1)
        if e:
            return e
        if name in (".", "..", "default") or "/" in name:
            return err("This name is not allowed")
        if name in self.namespaces:
            return err("This namespace is not available")
        self.namespaces[name] = Namespace(name)
        return OK

    def nsdel(self, c, argv):
        e = self.admin_only(c) or self.validate(argv, 2)
        if e:
            return e
        name, e = self.nsname(argv, 1)
        if e:
            return e
        if name == "default":
            return err("Cannot remove default namespace")
        ns = self.namespaces.get(name)
        if ns is None:
            return err("This namespace doesn't exists")
        if c.ns is ns:
            return err("Cannot remove namespace you're currently using.")
        ns.removed = True
        del self.namespaces[name]
        return OK

    def nslist(self, c, argv):
        return b"*%d\r\n" % len(self.namespaces) + b"".join(
            bulk(n.encode("latin-1")) for n in self.namespaces)

    def nsset(self, c, argv):
        e = self.admin_only(c) or self.validate(argv, 4)
        if e:
            return e
        name, e = self.nsname(argv, 1)
        if e:
            return e
        if len(argv[2]) > COMMAND_MAXLEN or len(argv[3]) > 63:
            return err("Argument too long")
        prop, value = argv[2].decode("latin-1"), argv[3].decode("latin-1")
        ns = self.namespaces.get(name)
        if ns is None:
            return err("Namespace not found")
        if prop == "mode":
            return err("This server instance is configured to use a single runtime mode")
        if prop == "lock":
            ns.lock = 1 if value[0] == "1" else 0
        elif prop == "freeze":
            ns.lock = 2 if value[0] == "1" else 0
        elif name == "default":
            return err("Cannot update default namespace")
        elif prop == "maxsize":
            ns.maxsize = max(0, atoi(value.encode()))
        elif prop == "password":
            ns.password = None if value == "*" else value
        elif prop == "public":
            ns.public = value[0] == "1"
        elif prop == "worm":
            ns.worm = value[0] == "1"
        else:
            return err("Invalid property")
        return OK

    def nsinfo(self, c, argv):
        e = self.validate(argv, 2)
        if e:
            return e
        name, e = self.nsname(argv, 1)
        if e:
            return e
        ns = self.namespaces.get(name)
        if ns is None:
            return err("Namespace not found")
        mb = 1024 * 1024
        isize = sum(40 + len(r.key) for r in ns.records if not r.deleted)
        nextid = int.from_bytes(len(ns.records).to_bytes(8, "little"), "big")  # bswap_64
        lines = [
            "# namespace",
            f"name: {ns.name}",
            f"entries: {len(ns.live)}",
            f"public: {'yes' if ns.public else 'no'}",
            f"worm: {'yes' if ns.worm else 'no'}",
            f"locked: {'yes' if ns.lock else 'no'}",
            f"password: {'yes' if ns.password is not None else 'no'}",
            f"data_size_bytes: {ns.datasize}",
            f"data_size_mb: {ns.datasize / mb:.2f}",
            f"data_limits_bytes: {ns.maxsize}",
            f"index_size_bytes: {isize}",
            f"index_size_kb: {isize / 1024:.2f}",
            f"next_internal_id: 0x{nextid:08x}",
            "mode: userkey",
            "stats_index_io_errors: 0",
            "stats_index_io_error_last: 0",
            "stats_index_faults: 0",
            "stats_data_io_errors: 0",
            "stats_data_io_error_last: 0",
            "stats_data_faults: 0",
        ]
        if ns.maxsize > 0:  # size_t arithmetic, as 0-db: wraps when over the limit
            lines.append(f"space_available: {(ns.maxsize - ns.datasize) % (1 << 64)}")
        st = os.statvfs("/")
        free = st.f_bsize * st.f_bavail
        for what in ("index", "data"):
            lines.append(f"{what}_disk_freespace_bytes: {free}")
            lines.append(f"{what}_disk_freespace_mb: {free / mb:.2f}")
        return bulk(("\n".join(lines) + "\n").encode("latin-1"))

    def dbsize(self, c, argv):
        return b":%d\r\n" % len(c.ns.live)

    def select(self, c, argv):
        if len(argv) < 2:
            return err("Invalid argument")
        name, e = self.nsname(argv, 1)
        if e:
            return e
        ns = self.namespaces.get(name)
        if ns is None:
            return err("Namespace not found")
        writable = True
        if ns.password is not None:
            if len(argv) < 3:
                if not ns.public:
                    return err("Namespace protected and private")
                writable = False
            else:
                if len(argv) > 4:
                    return err("Too many arguments")
                if len(argv) == 3:
                    if len(argv[2]) > 255:
                        return err("Password too long")
                    if argv[2].decode("latin-1") != ns.password:
                        return err("Access denied")
                else:
                    if not b"SECURE".startswith(argv[2].upper()):
                        return err("Only SECURE extra method supported")
                    if c.nonce is None:
                        return err("No CHALLENGE requested, secure authentication not "
                                   "available")
                    if len(argv[3]) != 40:
                        return err("Invalid hash length")
                    if argv[3].decode("latin-1") != sha1_hex(c.nonce, ns.password):
                        return err("Access denied")
        c.ns = ns
        c.writable = writable
        return OK

    # -- data -------------------------------------------------------------
    @staticmethod
    def locked(ns, write):
        if ns.lock == 2:
            return err("Namespace is temporarily frozen (read-write disabled)")
        if write and ns.lock == 1:
            return err("Namespace is temporarily locked (read-only)")
        return None

    def set(self, c, argv):
        if len(argv) == 4:  # a timestamp: admin only
            e = self.admin_only(c)
        else:
            e = self.validate(argv, 3, null_ok=True)
        if e:
            return e
        key, value = argv[1], argv[2]
        if len(key) > MAX_KEY:
            return err("Key too large")
        if not c.writable:
            return err("Namespace is in read-only mode")
        ns = c.ns
        e = self.locked(ns, True)
        if e:
            return e
        old = ns.live.get(key)
        floating = len(old[1]) if old else 0
        if old and ns.worm:
            return err("Namespace is protected by worm mode")
        if ns.maxsize and ns.datasize + len(value) > ns.maxsize + floating:
            return err("No space left on this namespace")
        if not key:
            return err("Invalid argument, key needed")
        if old and old[1] == value:
            return NIL  # the same data: 0-db does not write it again
        ts = atoi(argv[3]) if len(argv) == 4 else int(time.time())
        if old:
            ns.records[old[0]].deleted = True
            ns.datasize -= len(old[1])
        ns.records.append(Record(key, len(value), zlib.crc32(value), ts))
        ns.live[key] = (len(ns.records) - 1, value)
        ns.datasize += len(value)
        return bulk(key)

    def get(self, c, argv):
        e = self.validate(argv, 2)
        if e:
            return e
        if len(argv[1]) > MAX_KEY:
            return err("Invalid key")
        e = self.locked(c.ns, False)
        if e:
            return e
        v = c.ns.live.get(argv[1])
        return bulk(v[1]) if v else NIL

    def exists(self, c, argv):
        e = self.validate(argv, 2)
        if e:
            return e
        if len(argv[1]) > MAX_KEY:
            return err("Invalid key")
        e = self.locked(c.ns, False)
        if e:
            return e
        return b":1\r\n" if argv[1] in c.ns.live else b":0\r\n"

    def delete(self, c, argv):
        if len(argv) == 3:
            e = self.admin_only(c)
        else:
            e = self.validate(argv, 2)
        if e:
            return e
        if len(argv[1]) > MAX_KEY:
            return err("Invalid key")
        if not c.writable:
            return err("Namespace is in read-only mode")
        ns = c.ns
        e = self.locked(ns, True)
        if e:
            return e
        old = ns.live.get(argv[1])
        if old is None:
            return err("Key not found")
        if ns.worm:
            return err("Cannot delete a key when namespace is in worm mode")
        ns.records[old[0]].deleted = True
        ns.datasize -= len(old[1])
        del ns.live[argv[1]]
        return OK

    def scan(self, c, argv):
        ns = c.ns
        e = self.locked(ns, False)
        if e:
            return e
        if len(argv) == 1:
            start = 0
        else:
            cur = argv[1]
            if len(cur) != 17:
                return err("Invalid key format")
            idlen, fileid, length, seq, crc = struct.unpack("<BIIII", cur)
            if fileid != 0 or seq >= len(ns.records):  # one index file, id 0
                return err("Invalid key format")
            r = ns.records[seq]
            if r.length != length or r.crc != crc or len(r.key) != idlen:
                return err("Invalid key format")
            start = seq + 1
        found = []
        for i in range(start, len(ns.records)):
            if not ns.records[i].deleted:
                found.append(i)
                if len(found) == self.scan_batch:
                    break
        if not found:
            return err("No more data")
        last = ns.records[found[-1]]
        cursor = struct.pack("<BIIII", len(last.key), 0, last.length, found[-1], last.crc)
        out = [b"*2\r\n", bulk(cursor), b"*%d\r\n" % len(found)]
        for i in found:
            r = ns.records[i]
            out.append(b"*3\r\n" + bulk(r.key) + b":%d\r\n:%d\r\n" % (r.length, r.ts))
        return b"".join(out)


async def read_request(reader):
    """One request: a list of bulk strings, or None at EOF. Raises Close
    for what 0-db refuses."""
    line = await reader.readline()
    if not line:
        return None
    if line[:1] != b"*":
        raise Close("Malformed request, array expected")
    argc = atoi(line[1:])
    if argc <= 0:
        raise Close("Missing arguments")
    if argc > 1024:
        raise Close("Too many arguments")
    argv = []
    for _ in range(argc):
        hdr = await reader.readline()
        if hdr[:1] != b"$":
            raise Close("Malformed query string")
        n = atoi(hdr[1:])
        if n > MAX_PAYLOAD:
            raise Close("Payload too big")
        if n < 0:
            raise Close("Malformed query string")
        data = await reader.readexactly(n + 2)
        argv.append(data[:n])
    return argv


async def serve_client(zdb, reader, writer):
    c = Client(zdb)
    try:
        while True:
            try:
                argv = await read_request(reader)
                if argv is None:
                    break
                reply = zdb.dispatch(c, argv)
            except Close as e:
                writer.write(err(str(e)))
                await writer.drain()
                break
            writer.write(reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser(description="a 0-db double for qsfs's tests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--admin", help="the admin password (none: every client is admin)")
    ap.add_argument("--scan-batch", type=int, default=100,
                    help="entries per SCAN reply at most (0-db: what 2 ms of index walk finds)")
    ap.add_argument("--command-log")
    a = ap.parse_args()
    log = open(a.command_log, "a") if a.command_log else None
    zdb = Zdb(a.admin, max(1, a.scan_batch), log)
    server = await asyncio.start_server(lambda r, w: serve_client(zdb, r, w), "127.0.0.1",
                                        a.port, limit=1 << 16)
    port = server.sockets[0].getsockname()[1]
    print(f"zdbd.py listening on 127.0.0.1:{port}", flush=True)
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, a.port_file)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
