"""Helpers shared by the Python benchmarks in bench/."""
import socket
import time


def wait_port(port, what="redis-server"):
    """Wait until something accepts connections on 127.0.0.1:port."""
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{what} on {port} did not start")
