"""Helpers shared by the Python benchmarks in bench/."""
import os
import socket
import threading
import time
from pathlib import Path


def wait_port(port, what="redis-server"):
    """Wait until something accepts connections on 127.0.0.1:port."""
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{what} on {port} did not start")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_object(path: Path, size: int):
    """size random bytes at path, 2:1 compressible (half of every 64 bytes
    is a run of 'q')."""
    data = bytearray(os.urandom(size))
    for i in range(0, size - 63, 64):
        data[i + 32:i + 64] = b"q" * 32
    path.write_bytes(data)


class Proxy:
    """A TCP proxy on 127.0.0.1 to a server at 127.0.0.1:upstream, for
    backends that are not next door: every chunk of requests waits `delay`
    seconds before it goes on (one round trip of a distant machine: a
    pipelined batch pays it once, as on a real link), and replies pass at
    `rate` bytes a second (None: as they come). Both may change while it
    runs. Threads, one pair per connection; lives as long as the program."""

    def __init__(self, upstream, delay=0.0, rate=None):
        self.upstream, self.delay, self.rate = upstream, delay, rate
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.srv.accept()
                u = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                return
            for src, dst, reply in ((c, u, False), (u, c, True)):
                threading.Thread(target=self.pipe, args=(src, dst, reply), daemon=True).start()

    def pipe(self, src, dst, reply):
        try:
            while True:
                rate = self.rate if reply else None
                data = src.recv(max(1, rate // 10) if rate else 1 << 20)
                if not data:
                    break
                if not reply and self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
                if rate:
                    time.sleep(0.1)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
