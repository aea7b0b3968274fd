"""Downloads end: an overall deadline and a minimum rate, held while the status line and
headers arrive as well as the body, against a real server on 127.0.0.1 that trickles.
Small limits keep each test to a second or two; the defaults cut a trickler off in about
a minute (CHECKPOINT_MIN_RATE_WINDOW_S). Then what is downloaded: archives whose members
expand too far for their compressed size, and the members a model does not need."""

from __future__ import annotations

import io
import logging
import tarfile
import time
import zipfile
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import pytest

from evaluator import safehttp
from evaluator.checkpoint import CheckpointError, Limits, fetch, parse_source
from evaluator.tinymodel import build_tiny_model
from tests.httpserver import App, running


def allow(url: str) -> list[str]:
    """Exactly the test server's host and port."""
    return [f"127.0.0.1:{urlsplit(url).port}"]


SLOW = "the host sent too slowly"


def trickle_body(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "100000")
    h.end_headers()
    while not h.server.app.stop.is_set():
        h.wfile.write(b"\0")
        h.wfile.flush()
        time.sleep(0.1)


def trickle_headers(h: BaseHTTPRequestHandler) -> None:
    # Byte by byte, a status line and headers that never end: http.client reads lines, so a
    # per-read timeout would never fire.
    for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 10000:
        if h.server.app.stop.is_set():
            return
        h.wfile.write(bytes([byte]))
        h.wfile.flush()
        time.sleep(0.1)


def steady(h: BaseHTTPRequestHandler) -> None:
    # Fast enough for the rate rule (10 KB/s), too long for the deadline.
    h.send_response(200)
    h.send_header("Content-Length", str(10**9))
    h.end_headers()
    while not h.server.app.stop.is_set():
        h.wfile.write(b"\0" * 1000)
        h.wfile.flush()
        time.sleep(0.1)


def short(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.write(b"\0" * 10)  # and hang up


@pytest.fixture(scope="module")
def app():
    with running(App()) as app:
        app.routes.update({"/trickle-body.tar.gz": trickle_body, "/short.tar.gz": short})
        app.routes.update({"/trickle-headers.tar.gz": trickle_headers, "/steady.tar.gz": steady})
        yield app


def download(url: str, **limits) -> tuple[CheckpointError, float]:
    limits = Limits(**{"read_timeout": 5, "min_rate": 100, "min_rate_window_s": 1, **limits})
    started = time.monotonic()
    with pytest.raises(CheckpointError) as caught:
        safehttp.download(
            url, io.BytesIO(), allowed=safehttp.Allowed(allow(url)), limits=limits, max_bytes=10**9
        )
    return caught.value, time.monotonic() - started


def test_it_cuts_off_a_host_that_trickles_the_body(app):
    error, took = download(app.url("/trickle-body.tar.gz"))
    assert SLOW in str(error) and "under the minimum of 100 bytes/s" in str(error)
    assert not error.transient
    assert took < 3


def test_it_cuts_off_a_host_that_trickles_the_headers(app):
    error, took = download(app.url("/trickle-headers.tar.gz"))
    assert SLOW in str(error)
    assert took < 3


def test_it_stops_a_download_at_the_deadline_however_steady(app):
    error, took = download(app.url("/steady.tar.gz"), deadline_s=1.5, min_rate=1)
    assert f"{SLOW} (127.0.0.1: the download did not finish within 1.5 s)" == str(error)
    assert 1.4 < took < 3


def test_the_deadline_holds_for_headers_too(app):
    error, took = download(app.url("/trickle-headers.tar.gz"), deadline_s=1, min_rate=0)
    assert "did not finish within 1 s" in str(error)
    assert took < 2.5


def test_a_short_transfer_is_transient_not_a_bad_checkpoint(app):
    error, _ = download(app.url("/short.tar.gz"))
    assert "ended early (10 of 1000 bytes); will try again" in str(error)
    assert error.transient


def test_a_fetch_from_a_trickling_host_ends_with_the_message_and_leaves_nothing(app, tmp_path):
    dest = tmp_path / "models" / "m"
    limits = Limits(read_timeout=5, min_rate=100, min_rate_window_s=1)
    with pytest.raises(CheckpointError, match=SLOW):
        url = app.url("/trickle-body.tar.gz")
        fetch(parse_source(url), dest, allowed_hosts=allow(url), limits=limits)
    assert list((tmp_path / "models").iterdir()) == []


def test_the_defaults_cut_a_trickler_off_within_two_minutes():
    defaults = Limits()
    assert defaults.min_rate_window_s + defaults.read_timeout <= 120
    assert defaults.min_rate > 0


# --- archives: compression ratio, and only what a model needs ------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


def archive(tiny, kind: str, extra: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(tiny.iterdir()):
                zf.write(path, f"tiny/{path.name}")
            for name, data in extra.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(tiny, arcname="tiny")
            for name, data in extra.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fetched(app, body: bytes, kind: str, dest, **limits):
    url = app.serve(body, suffix=f".{'zip' if kind == 'zip' else 'tar.gz'}")
    limits = Limits(read_timeout=5, **limits)
    return fetch(parse_source(url), dest, allowed_hosts=allow(url), limits=limits)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_it_refuses_a_member_that_expands_too_far_for_its_size(app, tiny, tmp_path, kind):
    body = archive(tiny, kind, {"tiny/shard.safetensors": bytes(16 * 1024**2)})
    with pytest.raises(CheckpointError) as caught:
        fetched(app, body, kind, tmp_path / "m", max_ratio=50)
    assert "expands more than 50 times its compressed size (a decompression bomb?)" in str(
        caught.value
    )
    assert not caught.value.transient


def test_it_names_the_member_in_a_zip_bomb(app, tiny, tmp_path):
    body = archive(tiny, "zip", {"tiny/shard.safetensors": bytes(16 * 1024**2)})
    with pytest.raises(CheckpointError, match="the member 'tiny/shard.safetensors' expands"):
        fetched(app, body, "zip", tmp_path / "m")  # the default ratio


def test_an_ignored_member_counts_towards_the_ratio_too(app, tiny, tmp_path):
    body = archive(tiny, "tar.gz", {"tiny/zeros.bin": bytes(16 * 1024**2)})
    with pytest.raises(CheckpointError, match="expands more than 50 times"):
        fetched(app, body, "tar.gz", tmp_path / "m", max_ratio=50)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_it_writes_only_what_a_model_needs_and_logs_the_rest(app, tiny, tmp_path, kind, caplog):
    extra = {"tiny/README.md": b"# hi", "tiny/onnx/model.onnx": b"x" * 100, "notes.txt": b"n"}
    caplog.set_level(logging.INFO, logger="evaluator.checkpoint.archive")
    got = fetched(app, archive(tiny, kind, extra), kind, tmp_path / "m")
    assert sorted(got.files) == sorted(p.name for p in tiny.iterdir())
    logged = caplog.text
    assert "ignored archive members a model does not need:" in logged
    assert all(repr(name) in logged for name in extra)


def test_a_small_file_may_compress_as_well_as_it_likes(app, tiny, tmp_path):
    # A special_tokens_map.json of spaces: 500 KB to almost nothing, but under 1 MiB.
    body = archive(tiny, "zip", {"tiny/special_tokens_map.json": b"{}" + b" " * 500_000})
    assert "special_tokens_map.json" in fetched(app, body, "zip", tmp_path / "m", max_ratio=2).files


# --- the allow-list names ports ------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "url", "allowed"),
    [
        (["127.0.0.1"], "http://127.0.0.1/m.tar.gz", True),  # a bare host: ports 80 and 443
        (["127.0.0.1"], "https://127.0.0.1/m.tar.gz", True),
        (["127.0.0.1"], "http://127.0.0.1:6379/m.tar.gz", False),  # not the local Redis
        (["localhost"], "http://localhost:5432/m.tar.gz", False),  # nor PostgreSQL
        (["127.0.0.1:8765"], "http://127.0.0.1:8765/m.tar.gz", True),
        (["127.0.0.1:8765"], "http://127.0.0.1:8766/m.tar.gz", False),
        (["127.0.0.1:8765"], "http://127.0.0.1/m.tar.gz", False),
        (["[::1]:8765"], "http://[::1]:8765/m.tar.gz", True),
        (["::1"], "http://[::1]:8765/m.tar.gz", False),
        (["127.0.0.0/8:8765"], "http://127.0.0.2:8765/m.tar.gz", True),
        (["127.0.0.0/8"], "http://127.0.0.2:8765/m.tar.gz", False),
        (["localhost:*"], "http://localhost:1234/m.tar.gz", True),
    ],
)
def test_an_allow_list_entry_allows_its_port_or_only_80_and_443(entries, url, allowed):
    if allowed:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}[parts.scheme]
        assert safehttp.vet(url, safehttp.Allowed(entries))[1] == port
    else:
        with pytest.raises(CheckpointError, match="private, loopback"):
            safehttp.vet(url, safehttp.Allowed(entries))


@pytest.mark.parametrize("entry", ["127.0.0.1:http", "127.0.0.1:0", "127.0.0.1:70000"])
def test_a_bad_port_in_the_allow_list_fails_loudly(entry):
    with pytest.raises(ValueError, match="the port must be 1-65535 or"):
        safehttp.Allowed([entry])
