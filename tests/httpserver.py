"""The tests' one HTTP server: real sockets on 127.0.0.1, answers from a table of routes
(path → handler), optionally files from a folder, optionally TLS. Every test that needs a
remote host (an archive URL, a redirect chain, a fake Hub, a trickling host) uses it."""

from __future__ import annotations

import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

Route = Callable[[BaseHTTPRequestHandler], None]


class App:
    """What the server answers: `routes` first, then files under `root` (if set)."""

    def __init__(self, root: Path | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list = []  # (path, headers), headers looked up in any case
        self.stop = threading.Event()  # handlers that stream forever watch it
        self.root = root
        self.port = 0

    def url(self, path: str = "", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def serve(self, body: bytes, suffix: str = ".tar.gz", **kwargs) -> str:
        """A new unique path answering body; returns its URL."""
        path = f"/{uuid.uuid4().hex}/model{suffix}"
        self.routes[path] = respond(body, **kwargs)
        return self.url(path)


def respond(body: bytes, status: int = 200, headers: dict | None = None) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(body)

    return route


def redirect(location: str, headers: dict | None = None) -> Route:
    return respond(b"", 302, {"Location": location, **(headers or {})})


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        app: App = self.server.app
        app.requests.append((self.path, self.headers))
        route = app.routes.get(self.path.split("?")[0]) or self._file(app)
        if route is None:
            self.send_error(404)
            return
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up, as it should when it refuses a download

    def _file(self, app: App) -> Route | None:
        if app.root is None:
            return None
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        path = app.root.joinpath(*parts) if parts and ".." not in parts else None
        if path is None or not path.is_file():
            return None
        return respond(path.read_bytes())

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn): not needed here.
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = self.server_address[:2]


@contextmanager
def running(app: App, tls: ssl.SSLContext | None = None) -> Iterator[App]:
    """Serve app on a free 127.0.0.1 port (app.port) until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.app, app.port = app, server.server_address[1]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        app.stop.set()
        server.shutdown()
        server.server_close()
