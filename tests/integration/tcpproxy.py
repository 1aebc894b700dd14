"""Socket proxies for tests and benchmarks: a peer that is not next door.

relay() copies one direction of a connection; Proxy puts a TCP proxy in
front of a server on 127.0.0.1 that can hold requests (`delay`: a distant
machine's round trip) and trickle replies (`rate`: a congested link, a
failing disk that still answers its PING in time). Both may change while
it runs. bench/ uses it too (bench/benchutil.py)."""
import socket
import threading
import time


def relay(src, dst, delay=lambda: 0, rate=lambda: None):
    """Copy src to dst until either side ends, then shut both down. Before
    each chunk is passed on, delay() seconds are waited (a pipelined batch
    pays it once, as on a real link); with rate() bytes a second, chunks of
    a tenth of it go ten times a second (None: as they come)."""
    try:
        while True:
            r = rate()
            data = src.recv(max(1, r // 10) if r else 1 << 20)
            if not data:
                break
            d = delay()
            if d:
                time.sleep(d)
            dst.sendall(data)
            if r:
                time.sleep(0.1)
    except OSError:
        pass
    for x in (src, dst):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Proxy:
    """A TCP proxy on 127.0.0.1 to a server at 127.0.0.1:upstream: requests
    wait `delay` seconds before they go on, replies pass at `rate` bytes a
    second (None: as they come). One thread pair per connection; close()
    ends the listener and every connection."""

    def __init__(self, upstream, delay=0.0, rate=None):
        self.upstream, self.delay, self.rate = upstream, delay, rate
        self.socks = []
        self.lock = threading.Lock()
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
            with self.lock:
                self.socks += [c, u]
            threading.Thread(target=relay, args=(c, u), daemon=True,
                             kwargs={"delay": lambda: self.delay}).start()
            threading.Thread(target=relay, args=(u, c), daemon=True,
                             kwargs={"rate": lambda: self.rate}).start()

    def close(self):
        try:
            self.srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.srv.close()
        with self.lock:
            for x in self.socks:
                x.close()
