"""HTTP GET for untrusted URLs that cannot be pointed at the inside of our network.

Standard library only (http.client, ssl, socket), so every connection goes through one
place: the hostname is resolved once, every address it resolves to is vetted, and the
socket connects to a vetted address (no second lookup, so DNS rebinding cannot swap it)
while the Host header and TLS (SNI and certificate check) still use the hostname.
Redirects are followed by hand and every hop is checked the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import json
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

from evaluator.allowlist import Allowed
from evaluator.ratemeter import Meter, MeteredSocket, TooSlow

CHUNK = 1024 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}
_HOSTNAME = re.compile(r"[a-z0-9_.-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CheckpointError(Exception):
    """A checkpoint cannot be used; the message is shown to the submitter as it is.

    `transient` is True when trying again later may succeed (timeouts, 5xx, dropped
    connections), so the worker retries those and fails the rest at once.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class HTTPStatusError(CheckpointError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, transient=status == 429 or status >= 500)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_download_bytes: int = 8 * 1024**3
    max_archive_members: int = 2000
    max_expanded_bytes: int = 8 * 1024**3
    connect_timeout: float = 10
    read_timeout: float = 60
    max_redirects: int = 5
    # A download must end within deadline_s, and over any min_rate_window_s it must bring
    # min_rate bytes/s: a host trickling a byte every few seconds never trips read_timeout.
    deadline_s: float = 2 * 3600
    min_rate: int = 64 * 1024
    min_rate_window_s: float = 60
    # Expanded / compressed, per archive member and over the whole archive.
    max_ratio: float = 200
    max_tokenizer_bytes: int = 64 * 1024**2
    # Parameters and buffers the model may allocate when loaded (checked on the meta device).
    max_params: int = 4 * 10**9


@dataclass(frozen=True)
class Downloaded:
    sha256: str
    size: int
    linked_sha256: str | None  # the Hub's X-Linked-Etag: the LFS file's sha256, when given


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def is_public(ip: IPAddress) -> bool:
    """False for anything but a global unicast address, looking inside IPv6 wrappers."""
    if ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local:
        return False
    if ip.is_unspecified or ip.is_private or not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # These embed an IPv4 address that the network may route to: vet that one too.
        wrapped = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64:
            wrapped.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return all(is_public(inner) for inner in wrapped if inner is not None)
    return True


def vet(url: str, allowed: Allowed) -> tuple[str, int, list[str]]:
    """Check a URL and resolve its host once: (host, port, vetted addresses to connect to)."""
    if not url.isascii() or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise CheckpointError(f"refused {url[:200]!r}: URLs must be plain ASCII without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise CheckpointError(f"refused {url[:200]!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise CheckpointError(f"refused {url[:200]!r}: only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise CheckpointError("refused a URL with a user name or password in it: remove them")
    host = parts.hostname or ""
    if not _HOSTNAME.fullmatch(host) and not _ip_or_none(host):
        raise CheckpointError(f"refused {url[:200]!r}: the host name is missing or invalid")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        again = getattr(exc, "errno", None) == socket.EAI_AGAIN
        error = CheckpointError(f"cannot resolve the host {host}: check the URL", transient=again)
        raise error from None
    ips = list(dict.fromkeys(info[4][0] for info in infos))
    if not ips:
        raise CheckpointError(f"cannot resolve the host {host}: check the URL")
    for ip in ips:
        address = ipaddress.ip_address(ip)
        if not is_public(address) and not allowed.trusts(host, address, port):
            # No address in the message: it would turn this into an internal DNS oracle.
            raise CheckpointError(
                f"refused {host}: it resolves to a private, loopback, link-local, multicast "
                "or reserved address; the checkpoint must be on a public host"
            )
    if parts.scheme == "http" and not all(
        allowed.trusts(host, ipaddress.ip_address(ip), port) for ip in ips
    ):
        raise CheckpointError(f"refused http://{host}: use https")
    return host, port, ips


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _connect(ips: list[str], port: int, limits: Limits) -> socket.socket:
    error: OSError = OSError("no address to connect to")
    for ip in ips:
        try:
            sock = socket.create_connection((ip, port), timeout=limits.connect_timeout)
        except OSError as exc:
            error = exc
            continue
        sock.settimeout(limits.read_timeout)
        return sock
    raise error


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(
        self, host: str, port: int, ips: list[str], limits: Limits, deadline: float
    ) -> None:
        super().__init__(host, port, timeout=limits.read_timeout)
        self._ips, self._limits, self._deadline = ips, limits, deadline

    def _meter(self, sock: socket.socket) -> MeteredSocket:
        limits = self._limits
        meter = Meter(limits.read_timeout, limits.deadline_s, self._deadline)
        return MeteredSocket(sock, meter.rate(limits.min_rate, limits.min_rate_window_s))

    def connect(self) -> None:
        self.sock = self._meter(_connect(self._ips, self.port, self._limits))


class _PinnedHTTPS(_PinnedHTTP, http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int, ips: list[str], limits: Limits, deadline: float
    ) -> None:
        self._tls = tls_context()
        http.client.HTTPSConnection.__init__(
            self, host, port, timeout=limits.read_timeout, context=self._tls
        )
        self._ips, self._limits, self._deadline = ips, limits, deadline

    def connect(self) -> None:
        sock = _connect(self._ips, self.port, self._limits)
        self.sock = self._meter(self._tls.wrap_socket(sock, server_hostname=self.host))


def tls_context() -> ssl.SSLContext:
    """The system's CAs, certificate and hostname checks on (the tests swap this out)."""
    return ssl.create_default_context()


@contextlib.contextmanager
def _network_errors(host: str) -> Iterator[None]:
    """Turn socket, TLS and HTTP-protocol failures into errors a submitter can read."""
    try:
        yield
    except CheckpointError:
        raise
    except TooSlow as exc:
        # Not transient: trying again would hand the worker to the same host for as long.
        raise CheckpointError(f"the host sent too slowly ({host}: {exc})") from None
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message
        raise CheckpointError(f"the TLS certificate of {host} is not valid: {why}") from None
    except ssl.SSLError as exc:
        raise CheckpointError(f"TLS with {host} failed ({exc.reason}): check the URL") from None
    except TimeoutError:
        raise CheckpointError(f"{host} timed out; will try again", transient=True) from None
    except http.client.InvalidURL as exc:
        raise CheckpointError(f"refused an invalid URL: {exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        name = type(exc).__name__
        raise CheckpointError(f"connection to {host} failed ({name})", transient=True) from None


def _status_error(status: int, host: str) -> HTTPStatusError:
    if status in (401, 403):
        why = "access denied: the file must be public (or a token must be configured)"
    elif status in (404, 410):
        why = "not found: check the URL"
    elif status == 429 or status >= 500:
        why = "the server is busy or failing; will try again"
    else:
        why = "unexpected response"
    return HTTPStatusError(f"{host} answered HTTP {status}: {why}", status)


def open_url(
    url: str,
    *,
    allowed: Allowed,
    limits: Limits,
    headers: dict[str, str] | None = None,
    deadline: float | None = None,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, dict[str, str]]:
    """GET url, following redirects (each hop vetted); a 200 response and the hops' headers.

    deadline (time.monotonic()) bounds every hop and the body read after; by default
    limits.deadline_s from now."""
    deadline = deadline or time.monotonic() + limits.deadline_s
    headers = {"Accept-Encoding": "identity", **(headers or {})}
    origin = urlsplit(url)[:2]
    seen: dict[str, str] = {}
    for hop in range(limits.max_redirects + 1):
        host, port, ips = vet(url, allowed)
        parts = urlsplit(url)
        if parts[:2] != origin:  # credentials are for the first host only, like browsers do
            headers.pop("Authorization", None)
        cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
        conn = cls(host, port, ips, limits, deadline)
        with _network_errors(host):
            try:
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                conn.request("GET", target, headers=headers)
                resp = conn.getresponse()
            except BaseException:
                conn.close()
                raise
        for key, value in resp.getheaders():
            seen.setdefault(key.lower(), value)
        if resp.status == 200:
            return conn, resp, seen
        location = resp.getheader("Location")
        resp.close()
        conn.close()
        if resp.status not in _REDIRECTS:
            raise _status_error(resp.status, host)
        if not location:
            raise CheckpointError(f"{host} sent a redirect without a Location")
        if hop == limits.max_redirects:
            break
        url = urljoin(url, location.strip())
    raise CheckpointError(f"too many redirects (more than {limits.max_redirects}): check the URL")


def download(
    url: str,
    out: BinaryIO,
    *,
    allowed: Allowed,
    limits: Limits,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    tick: Callable[[int, int | None], None] | None = None,
    deadline: float | None = None,
) -> Downloaded:
    """Stream url into out, at most max_bytes, hashing as it goes.

    tick(bytes_in_chunk, content_length) runs after every chunk; it may raise to stop.
    deadline: see open_url (several files share one by passing the same).
    """
    conn, resp, seen = open_url(
        url, allowed=allowed, limits=limits, headers=headers, deadline=deadline
    )
    host = conn.host
    too_big = CheckpointError(
        f"the download from {host} is larger than the {human_bytes(max_bytes)} limit"
    )
    digest, size, length = hashlib.sha256(), 0, resp.length  # .length counts down as we read
    try:
        if length is not None and length > max_bytes:
            raise too_big
        while True:
            # Ask for one byte past the cap, so a server that lies about (or omits) its
            # Content-Length is stopped as soon as it crosses it.
            with _network_errors(host):
                chunk = resp.read(min(CHUNK, max_bytes + 1 - size))
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise too_big
            digest.update(chunk)
            out.write(chunk)
            if tick:
                tick(len(chunk), length)
    finally:
        resp.close()
        conn.close()
    if length is not None and size < length:
        # The connection dropped (http.client reads that as a quiet end): the file is not
        # bad, the transfer was. Refusing it as corrupt would blame the submitter.
        raise CheckpointError(
            f"the download from {host} ended early ({size} of {length} bytes); will try again",
            transient=True,
        )
    etag = seen.get("x-linked-etag", "").strip('"').removeprefix("W/").strip('"').lower()
    return Downloaded(digest.hexdigest(), size, etag if _SHA256.fullmatch(etag) else None)


def get_json(
    url: str,
    *,
    allowed: Allowed,
    limits: Limits,
    max_bytes: int = 32 * 1024**2,
    headers: dict[str, str] | None = None,
) -> object:
    """GET a small JSON document (an API answer), capped at max_bytes."""
    conn, resp, _ = open_url(url, allowed=allowed, limits=limits, headers=headers)
    try:
        with _network_errors(conn.host):
            body = resp.read(max_bytes + 1)
    finally:
        resp.close()
        conn.close()
    if len(body) > max_bytes:
        raise CheckpointError(f"the answer from {conn.host} is too large")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        error = CheckpointError(f"{conn.host} did not answer with valid JSON", transient=True)
        raise error from None
