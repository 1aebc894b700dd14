"""Helpers shared by the Python benchmarks in bench/."""
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from tcpproxy import Proxy, relay  # noqa: E402,F401  (for the benchmarks)


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

