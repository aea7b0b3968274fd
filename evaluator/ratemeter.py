"""A socket for http.client whose every read is held to an overall deadline and a minimum
rate. Per-read timeouts alone let a host that sends a byte every few seconds hold a worker
forever, and http.client reads the status line and headers a line at a time, so the rule
has to sit under it, at the socket: it then holds for headers and body alike."""

from __future__ import annotations

import io
import socket
import time
from collections import deque


class TooSlow(Exception):
    """The host broke the deadline or the minimum rate; the message says which."""


class Meter:
    def __init__(self, read_timeout: float, deadline_s: float, deadline: float) -> None:
        """deadline: time.monotonic() by which everything must have arrived (deadline_s is
        how long that was, for the message)."""
        self.read_timeout, self.deadline_s, self.deadline = read_timeout, deadline_s, deadline
        self.min_rate, self.window = 0, 0.0
        self.start = time.monotonic()
        self.recent: deque[tuple[float, int]] = deque()
        self.recent_bytes = 0

    def rate(self, min_rate: int, window_s: float) -> Meter:
        """Also require min_rate bytes/s over every window_s once window_s has passed."""
        self.min_rate, self.window = min_rate, window_s
        return self

    def timeout(self) -> float:
        """The timeout for the next read; raises TooSlow once the deadline has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TooSlow(f"the download did not finish within {self.deadline_s:g} s")
        return min(self.read_timeout, left)

    def got(self, nbytes: int) -> None:
        now = time.monotonic()
        self.recent.append((now, nbytes))
        self.recent_bytes += nbytes
        while self.recent[0][0] < now - self.window:
            self.recent_bytes -= self.recent.popleft()[1]
        if now - self.start >= self.window and self.recent_bytes < self.min_rate * self.window:
            raise TooSlow(
                f"{self.recent_bytes} bytes in the last {self.window:g} s, under the "
                f"minimum of {self.min_rate} bytes/s"
            )


class _MeteredReader(io.RawIOBase):
    def __init__(self, owner: MeteredSocket, sock: socket.socket, meter: Meter) -> None:
        self.owner, self.sock, self.meter = owner, sock, meter

    def close(self) -> None:
        if not self.closed:
            self.owner._release()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.sock.settimeout(self.meter.timeout())
        try:
            nbytes = self.sock.recv_into(buffer)
        except TimeoutError:
            self.meter.timeout()  # TooSlow if it was the deadline that ran out
            raise
        self.meter.got(nbytes)
        return nbytes


class MeteredSocket:
    """A connected socket (plain or TLS) whose responses are read under the meter.

    Like socket.makefile's files, an open reader keeps the socket open after close():
    http.client closes the connection as soon as a response says it will close, and goes
    on reading that response from the file."""

    def __init__(self, sock: socket.socket, meter: Meter) -> None:
        self._sock, self._meter = sock, meter
        self._readers, self._closed = 0, False

    def makefile(self, mode: str = "rb", *args, **kwargs) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_MeteredReader(self, self._sock, self._meter))

    def close(self) -> None:
        self._closed = True
        if not self._readers:
            self._sock.close()

    def _release(self) -> None:
        self._readers -= 1
        if self._closed and not self._readers:
            self._sock.close()

    def __getattr__(self, name: str):  # sendall, close ...: the socket's own
        return getattr(self._sock, name)
