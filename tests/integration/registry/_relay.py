"""A TCP relay on 127.0.0.1 in front of a registry that pulls a trigger after N bytes.

It forwards bytes unchanged (the registry builds its ``Location`` URLs from the ``Host`` the client
sent, so uploads keep going through the relay). Once ``after`` bytes have gone one way, summed over
all connections, it calls ``trip`` once (the tests kill the registry there) and drops the
connections it holds; afterwards it keeps relaying, so a rerun reaches a restarted registry.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Callable, Literal

Direction = Literal["up", "down"]  # up: client → registry (pushes), down: registry → client (pulls)


class Relay:
    def __init__(self, upstream: str, *, direction: Direction, after: int, trip: Callable[[], None]) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._direction = direction
        self._after = after
        self._trip = trip
        self._lock = threading.Lock()
        self._counted = 0
        self.tripped = threading.Event()
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self._drop()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()  # the registry is down: the client sees the connection drop
                continue
            server.settimeout(None)
            with self._lock:
                self._socks += [client, server]
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: Direction) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
                if direction == self._direction and self._count(len(data)):
                    self._trip()
                    self.tripped.set()
                    self._drop()
                    return
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def _count(self, n: int) -> bool:
        """Add ``n`` bytes; return True exactly once, when the total first passes ``after``."""
        with self._lock:
            if self.tripped.is_set() or self._counted > self._after:
                return False
            self._counted += n
            return self._counted > self._after

    def _drop(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
