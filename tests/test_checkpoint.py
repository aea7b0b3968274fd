"""evaluator.checkpoint and evaluator.safehttp against a real HTTP server on 127.0.0.1.

Every network test goes through real sockets: a ThreadingHTTPServer serves archives,
redirects and a fake Hugging Face Hub. Name lookups for *.test hosts are answered by a
fake resolver, and every outgoing connection is checked: a connection to anything but
loopback fails the test, so refusals are proven to happen before connecting.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import math
import shutil
import socket
import ssl
import stat
import struct
import subprocess
import tarfile
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace

import pytest

from evaluator import safehttp
from evaluator.checkpoint import (
    CheckpointError,
    Limits,
    Source,
    content_hash,
    fetch,
    inspect,
    parse_source,
    resolve,
)
from evaluator.tinymodel import TinySpec, build_tiny_model
from tests.httpserver import App, redirect, respond, running

# The fake Hub below is reached through huggingface_hub, which HF_HUB_OFFLINE=1 would stop.
pytestmark = pytest.mark.usefixtures("hub_online")

ALLOW: list[str] = []  # the test server's own host and port: set by the app fixture
QUICK = Limits(connect_timeout=2, read_timeout=5)
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FAKE_DNS = {
    "models.test": ["127.0.0.1"],
    "cdn.test": ["127.0.0.1"],
    "internal.test": ["10.0.0.1"],
    "mixed.test": ["93.184.216.34", "10.0.0.1"],
    "public.test": ["93.184.216.34"],
    "v6.test": ["::ffff:127.0.0.1"],
}


# --- the server (tests/httpserver.py) ------------------------------------------------------


def endless(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.end_headers()  # no Content-Length: the body ends when the connection does
    while not h.server.app.stop.is_set():
        h.wfile.write(b"\0" * 65536)


def lies_about_length(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(10**12))
    h.end_headers()
    h.wfile.write(b"\0" * 1024)


def stalls(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.write(b"\0" * 10)
    h.wfile.flush()
    h.server.app.stop.wait(5)


@pytest.fixture(scope="session")
def app():
    with running(App()) as app:
        ALLOW[:] = [f"127.0.0.1:{app.port}"]
        yield app


def addrinfo(ip: str, port: int) -> tuple:
    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))


@pytest.fixture(autouse=True)
def network(monkeypatch):
    """Fake DNS for *.test names; record every connection and allow loopback only."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection
    net = SimpleNamespace(lookups=[], connections=[], dns=dict(FAKE_DNS))

    def getaddrinfo(host, port, *args, **kwargs):
        net.lookups.append(host)
        if host not in net.dns:
            return real_getaddrinfo(host, port, *args, **kwargs)
        answer = net.dns[host]
        return [addrinfo(ip, port) for ip in (answer() if callable(answer) else answer)]

    def create_connection(address, *args, **kwargs):
        net.connections.append(address[0])
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"tried to connect to {address[0]}")
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    yield net
    assert all(ipaddress.ip_address(ip).is_loopback for ip in net.connections)


# --- checkpoints and archives -------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), TinySpec())


@pytest.fixture(scope="session")
def untied(tmp_path_factory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("untied"), TinySpec(tied=False, share_repeats=2)
    )


def files_of(model_dir: Path, **changes) -> dict[str, bytes]:
    """The model's files; a change maps a name (dots as __) to new bytes, or None to drop it."""
    files = {p.name: p.read_bytes() for p in sorted(model_dir.iterdir())}
    for key, value in changes.items():
        files[key.replace("__", ".")] = value
    return {name: data for name, data in files.items() if data is not None}


def with_config(model_dir: Path, **updates) -> bytes:
    config = json.loads((model_dir / "config.json").read_text())
    config.update(updates)
    return json.dumps(config).encode()


def tar_bytes(members, mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return buf.getvalue()


def model_tar(files: dict[str, bytes], folder: str = "tiny/", extra=()) -> bytes:
    return tar_bytes([(folder + name, data) for name, data in files.items()] + list(extra))


def zip_bytes(files: dict[str, bytes], extra=()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for info, data in extra:
            zf.writestr(info, data)
    return buf.getvalue()


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.fixture
def dest(tmp_path) -> Path:
    (tmp_path / "models").mkdir()
    return tmp_path / "models" / "m1"


def refused(text_or_source, dest: Path, **kwargs) -> CheckpointError:
    """Fetch, expect a refusal, and check that nothing was left behind."""
    before = sorted(dest.parent.rglob("*"))
    source = text_or_source if isinstance(text_or_source, Source) else parse_source(text_or_source)
    kwargs.setdefault("limits", QUICK)
    with pytest.raises(CheckpointError) as caught:
        fetch(source, dest, **kwargs)
    assert sorted(dest.parent.rglob("*")) == before
    return caught.value


def get(url: str, dest: Path, **kwargs):
    kwargs.setdefault("limits", QUICK)
    kwargs.setdefault("allowed_hosts", ALLOW)
    return fetch(parse_source(url), dest, **kwargs)


# --- parse_source -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, repo_id, revision",
    [
        ("facebook/MobileLLM-125M", "facebook/MobileLLM-125M", "main"),
        ("org/name@v1.0", "org/name", "v1.0"),
        (" org/name@" + COMMIT + " ", "org/name", COMMIT),
        ("https://huggingface.co/org/name", "org/name", "main"),
        ("https://huggingface.co/org/name/", "org/name", "main"),
        ("https://huggingface.co/org/name/tree/dev", "org/name", "dev"),
        ("https://huggingface.co/org/name/tree/refs%2Fpr%2F3", "org/name", "refs/pr/3"),
    ],
)
def test_it_parses_hub_repo_ids_and_pages(text, repo_id, revision):
    source = parse_source(text)
    assert (source.kind, source.repo_id, source.revision) == ("hub", repo_id, revision)
    assert source.url == f"https://huggingface.co/{repo_id}"


@pytest.mark.parametrize(
    "text",
    [
        "https://example.org/m/model.tar.gz",
        "http://example.org/model.tgz?sig=abc&exp=1",
        "https://example.org/model.TAR",
        "https://example.org:8443/a/b/model.zip",
        "https://huggingface.co/org/name/resolve/main/model.tar.gz",
    ],
)
def test_it_parses_archive_urls(text):
    assert parse_source(text) == Source("archive", text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("ftp://example.org/model.tar.gz", "only http(s)"),
        ("file:///etc/passwd", "only http(s)"),
        ("javascript:alert(1)", "only http(s)"),
        ("data:application/zip;base64,UEsFBg==", "only http(s)"),
        ("gpt2", "is not a Hugging Face repo id"),
        ("org/name/extra", "is not a Hugging Face repo id"),
        ("../../etc/passwd", "is not a Hugging Face repo id"),
        ("org/name@../x", "not a valid branch"),
        ("https://user:pw@example.org/model.tar.gz", "user name and password"),
        ("https://example.org/model tar.gz", "without spaces"),
        ("https://example.org/model.tar.gz\r\nX: y", "without spaces"),
        ("https://exämple.org/model.tar.gz", "plain ASCII"),
        ("https://example.org/" + "a" * 2000 + ".tar.gz", "longer than 2000"),
        ("https://example.org/model.bin", "must point to a .tar.gz"),
        ("https://example.org/", "must point to a .tar.gz"),
        ("https://huggingface.co/org/name/resolve/main/model.safetensors", "repository page"),
        ("https://huggingface.co/datasets/org/name", "dataset"),
        ("https://:80/model.zip", "no host"),
        ("http://[::1/model.zip", "invalid host or port"),
        ("http://example.org:99999/model.zip", "invalid host or port"),
        ("", "enter a Hugging Face repo id"),
    ],
)
def test_it_refuses_what_it_cannot_fetch_with_a_clear_message(text, message):
    with pytest.raises(CheckpointError, match=None) as caught:
        parse_source(text)
    assert message in str(caught.value)
    assert caught.value.transient is False


# --- the network rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "localhost", "127.0.0.1", "[::1]", "10.0.0.1", "172.16.0.1", "192.168.1.1",
        "169.254.169.254", "224.0.0.1", "0.0.0.0", "[fe80::1]", "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]", "[2002:7f00:1::1]", "[64:ff9b::a00:1]", "[ff02::1]",
        "100.64.0.1", "2130706433", "0x7f.1", "internal.test", "mixed.test", "v6.test",
    ],
)  # fmt: skip
def test_it_refuses_private_addresses_before_connecting(host, dest, network):
    error = refused(f"https://{host}/model.tar.gz", dest)
    assert "private, loopback, link-local, multicast or reserved" in str(error)
    assert not error.transient
    assert network.connections == []


def test_it_refuses_plain_http_to_a_public_host(dest, network):
    error = refused("http://public.test/model.tar.gz", dest)
    assert "use https" in str(error)
    assert network.connections == []


def test_it_allows_only_what_the_allow_list_names(app, dest, network):
    url = app.url("/anything.tar.gz")
    refused(url, dest, allowed_hosts=["10.0.0.0/8", "models.test"])
    assert network.connections == []


def test_it_fetches_a_tar_gz_with_a_top_level_folder(app, tiny, dest):
    url = app.serve(model_tar(files_of(tiny)))
    fetched = get(url, dest)
    assert fetched.path == dest
    assert fetched.files == sorted(p.name for p in tiny.iterdir())
    assert (dest / "model.safetensors").read_bytes() == (tiny / "model.safetensors").read_bytes()
    assert fetched.sha256 == content_hash(tiny)
    assert fetched.size_bytes == sum(p.stat().st_size for p in tiny.iterdir())
    assert fetched.info == inspect(tiny)
    assert [p.name for p in dest.parent.iterdir()] == ["m1"]


def test_it_fetches_a_zip_with_files_at_its_root_into_an_empty_dest(app, tiny, dest):
    dest.mkdir()
    files = files_of(tiny)
    files["__MACOSX/._config.json"] = b"junk"
    fetched = get(app.serve(zip_bytes(files), suffix=".zip"), dest)
    assert fetched.sha256 == content_hash(tiny)


def test_it_keeps_only_the_files_a_model_needs(app, tiny, dest):
    files = files_of(tiny)
    files |= {"README.md": b"hi", "pytorch_model.bin": b"\x80\x04pickle", "modeling_x.py": b"1"}
    extra = [("tiny/onnx/model.onnx", b"onnx"), ("tiny/original/consolidated.pth", b"pt")]
    fetched = get(app.serve(model_tar(files, extra=extra)), dest)
    assert fetched.files == sorted(p.name for p in tiny.iterdir())
    assert sorted(p.name for p in dest.iterdir()) == fetched.files
    assert fetched.sha256 == content_hash(tiny)


def test_it_reports_progress_as_it_downloads(app, tiny, dest):
    body = model_tar(files_of(tiny))
    calls = []
    get(app.serve(body), dest, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(body), len(body))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_it_refuses_an_existing_non_empty_dest(app, tiny, dest):
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        get(app.serve(model_tar(files_of(tiny))), dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_it_follows_a_redirect_chain(app, tiny, dest):
    target = app.serve(model_tar(files_of(tiny)))
    hop = uuid.uuid4().hex
    app.routes[f"/{hop}/1.tar.gz"] = redirect(f"/{hop}/2.tar.gz")
    app.routes[f"/{hop}/2.tar.gz"] = redirect(app.url(f"/{hop}/3.tar.gz", host="models.test"))
    app.routes[f"/{hop}/3.tar.gz"] = redirect(target)
    assert get(app.url(f"/{hop}/1.tar.gz"), dest).sha256 == content_hash(tiny)


def test_it_refuses_too_many_redirects(app, dest):
    loop = f"/{uuid.uuid4().hex}/loop.tar.gz"
    app.routes[loop] = redirect(loop)
    error = refused(app.url(loop), dest, allowed_hosts=ALLOW)
    assert "too many redirects (more than 5)" in str(error)
    assert [path for path, _ in app.requests].count(loop) == 6


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/model.tar.gz",
        "https://internal.test/model.tar.gz",
        "http://[::1]:1/model.tar.gz",
    ],
)
def test_it_refuses_a_redirect_to_the_metadata_address_or_a_private_network(
    app, dest, network, location
):
    app.routes["/to-private.tar.gz"] = redirect(location)
    error = refused(app.url("/to-private.tar.gz"), dest, allowed_hosts=ALLOW)
    assert "private" in str(error)
    assert network.connections == ["127.0.0.1"]  # the first hop only


def test_it_refuses_a_redirect_to_another_scheme(app, dest, network):
    app.routes["/to-file.tar.gz"] = redirect("file:///etc/passwd")
    error = refused(app.url("/to-file.tar.gz"), dest, allowed_hosts=ALLOW)
    assert "only http and https" in str(error)


def test_it_connects_to_the_vetted_address_and_sends_the_hostname(app, tiny, dest, network):
    answers = iter([["127.0.0.1"]])  # a second lookup would get 10.0.0.1 (DNS rebinding)
    network.dns["rebind.test"] = lambda: next(answers, ["10.0.0.1"])
    url = app.serve(model_tar(files_of(tiny))).replace("127.0.0.1", "rebind.test")
    get(url, dest, allowed_hosts=[f"127.0.0.0/8:{app.port}"])
    assert network.lookups.count("rebind.test") == 1
    assert app.requests[-1][1]["Host"] == f"rebind.test:{app.port}"


def test_it_stops_an_endless_download_at_the_size_cap(app, dest):
    app.routes["/endless.tar.gz"] = endless
    limits = Limits(max_download_bytes=3 * 1024**2, read_timeout=5)
    error = refused(app.url("/endless.tar.gz"), dest, allowed_hosts=ALLOW, limits=limits)
    assert "larger than the 3.0 MiB limit" in str(error)
    assert not error.transient


def test_it_refuses_a_declared_length_over_the_cap_before_reading(app, dest):
    app.routes["/huge.tar.gz"] = lies_about_length
    calls = []
    error = refused(
        app.url("/huge.tar.gz"), dest, allowed_hosts=ALLOW, progress=lambda *a: calls.append(a)
    )
    assert "larger than the 8.0 GiB limit" in str(error)
    assert calls == []


def test_it_times_out_a_stalled_server_as_a_transient_error(app, dest):
    app.routes["/stall.tar.gz"] = stalls
    limits = Limits(read_timeout=0.3)
    error = refused(app.url("/stall.tar.gz"), dest, allowed_hosts=ALLOW, limits=limits)
    assert "timed out" in str(error)
    assert error.transient


@pytest.mark.parametrize("status, transient", [(500, True), (503, True), (429, True)])
def test_it_marks_server_errors_transient(app, dest, status, transient):
    url = app.serve(b"oops", status=status)
    error = refused(url, dest, allowed_hosts=ALLOW)
    assert f"HTTP {status}" in str(error)
    assert error.transient is transient


@pytest.mark.parametrize("status", [404, 403, 401, 418])
def test_it_marks_client_errors_permanent(app, dest, status):
    error = refused(app.serve(b"no", status=status), dest, allowed_hosts=ALLOW)
    assert f"HTTP {status}" in str(error)
    assert not error.transient


def test_it_marks_a_refused_connection_transient(dest):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = refused(
        f"http://127.0.0.1:{port}/model.tar.gz", dest, allowed_hosts=[f"127.0.0.1:{port}"]
    )
    assert "connection to 127.0.0.1 failed" in str(error)
    assert error.transient


def test_it_cancels_between_chunks_when_asked(app, dest):
    app.routes["/endless-cancel.tar.gz"] = endless
    chunks = []
    error = refused(
        app.url("/endless-cancel.tar.gz"),
        dest,
        allowed_hosts=ALLOW,
        progress=lambda done, total: chunks.append(done),
        should_stop=lambda: len(chunks) >= 2,
    )
    assert str(error) == "cancelled"
    assert len(chunks) == 2


def test_it_speaks_tls_to_https_urls(app, dest):
    error = refused(app.url("/x.tar.gz").replace("http:", "https:"), dest, allowed_hosts=ALLOW)
    assert "TLS with 127.0.0.1 failed" in str(error)


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory, tiny):
    """An HTTPS server with a certificate for models.test only, and what SNI it saw."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=models.test",
         "-addext", "subjectAltName=DNS:models.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    app = App()
    app.routes["/model.tar.gz"] = respond(model_tar(files_of(tiny)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    app.sni = []
    context.sni_callback = lambda sock, name, ctx: app.sni.append(name)
    with running(app, tls=context):
        yield app, cert


def test_it_verifies_the_certificate_against_the_hostname_not_the_address(
    tls_server, tiny, dest, monkeypatch
):
    app, cert = tls_server
    monkeypatch.setattr(safehttp, "tls_context", lambda: ssl.create_default_context(cafile=cert))
    url = f"https://models.test:{app.port}/model.tar.gz"
    assert get(url, dest, allowed_hosts=[f"models.test:{app.port}"]).sha256 == content_hash(tiny)
    assert app.sni[-1] == "models.test"
    other = url.replace("models.test", "cdn.test")
    error = refused(other, dest.with_name("m2"), allowed_hosts=[f"cdn.test:{app.port}"])
    assert "the TLS certificate of cdn.test is not valid" in str(error)


def test_it_refuses_certificates_it_cannot_verify(tls_server, dest):
    app, _ = tls_server
    url = f"https://models.test:{app.port}/model.tar.gz"
    error = refused(url, dest, allowed_hosts=[f"models.test:{app.port}"])
    assert "the TLS certificate of models.test is not valid" in str(error)
    assert not error.transient


# --- archives -----------------------------------------------------------------------------


def lie_about_sizes(data: bytes, real: int, claimed: int) -> bytes:
    """Rewrite a zip's declared uncompressed size (local and central headers)."""
    buf = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = buf.find(signature)
        while at != -1:
            if struct.unpack_from("<I", buf, at + offset)[0] == real:
                struct.pack_into("<I", buf, at + offset, claimed)
            at = buf.find(signature, at + 4)
    return bytes(buf)


def zip_symlink() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("tiny.link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "member, message",
    [
        (("../evil", b"x"), "'..' in its path"),
        (("tiny/../../evil", b"x"), "'..' in its path"),
        (("/tmp/evil", b"x"), "absolute or Windows-style path"),
        (("C:/evil", b"x"), "absolute or Windows-style path"),
        (("..\\evil", b"x"), "absolute or Windows-style path"),
        ((special("tiny/escape", tarfile.SYMTYPE, "/etc/passwd")), "a link"),
        ((special("tiny/hard", tarfile.LNKTYPE, "/etc/passwd")), "a link"),
        ((special("tiny/fifo", tarfile.FIFOTYPE)), "not a regular file"),
        ((special("tiny/null", tarfile.CHRTYPE)), "not a regular file"),
        ((special("tiny/disk", tarfile.BLKTYPE)), "not a regular file"),
        (("tiny/config.json", b"{}"), "duplicate"),
    ],
)
def test_it_refuses_dangerous_tar_members(app, tiny, dest, member, message):
    url = app.serve(model_tar(files_of(tiny), extra=[member]))
    error = refused(url, dest, allowed_hosts=ALLOW)
    assert message in str(error)
    assert not (dest.parent.parent / "evil").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        ([("../evil", b"x")], "'..' in its path"),
        ([("/evil", b"x")], "absolute or Windows-style path"),
        ([(zip_symlink(), "/etc/passwd")], "a link"),
    ],
)
def test_it_refuses_dangerous_zip_members(app, tiny, dest, extra, message):
    url = app.serve(zip_bytes(files_of(tiny), extra=extra), suffix=".zip")
    assert message in str(refused(url, dest, allowed_hosts=ALLOW))


def test_it_refuses_a_tar_with_too_many_members(app, tiny, dest):
    extra = [(f"tiny/junk/{i}.txt", b"") for i in range(30)]
    url = app.serve(model_tar(files_of(tiny), extra=extra))
    limits = Limits(max_archive_members=20, read_timeout=5)
    error = refused(url, dest, allowed_hosts=ALLOW, limits=limits)
    assert "more than 20 members" in str(error)


def test_it_refuses_a_zip_with_too_many_members(app, tiny, dest):
    files = files_of(tiny) | {f"junk/{i}.txt": b"" for i in range(30)}
    url = app.serve(zip_bytes(files), suffix=".zip")
    limits = Limits(max_archive_members=20, read_timeout=5)
    assert "more than 20 members" in str(refused(url, dest, allowed_hosts=ALLOW, limits=limits))


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_it_refuses_an_archive_that_expands_past_the_cap(app, tiny, dest, kind):
    files = files_of(tiny) | {"zeros.bin": b"\0" * (2 * 1024**2)}
    body = model_tar(files) if kind == "tar.gz" else zip_bytes(files)
    assert len(body) < 1024**2  # small to download, big once expanded
    limits = Limits(max_expanded_bytes=1024**2, read_timeout=5)
    error = refused(app.serve(body, suffix="." + kind), dest, allowed_hosts=ALLOW, limits=limits)
    assert "expands past the 1.0 MiB limit" in str(error)


def test_it_refuses_a_zip_that_lies_about_its_expanded_size(app, tiny, dest):
    real = 2 * 1024**2
    body = lie_about_sizes(zip_bytes(files_of(tiny) | {"zeros.bin": b"\0" * real}), real, 1000)
    limits = Limits(max_expanded_bytes=1024**2, read_timeout=5)
    error = refused(app.serve(body, suffix=".zip"), dest, allowed_hosts=ALLOW, limits=limits)
    assert "corrupt" in str(error) or "expands past" in str(error)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"this is not an archive", "the archive is corrupt, truncated"),
        (b"\x1f\x8b\x08\x00garbage", "the archive is corrupt, truncated"),
    ],
)
def test_it_refuses_a_corrupt_archive(app, dest, body, message):
    assert message in str(refused(app.serve(body), dest, allowed_hosts=ALLOW))


def flip_a_byte(body: bytes) -> bytes:
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]


@pytest.mark.parametrize(
    "damage",
    [lambda b: b[: len(b) // 2], lambda b: b[:-4], flip_a_byte],
    ids=["half", "end", "flip"],
)
def test_it_refuses_a_truncated_or_damaged_tar_gz(app, tiny, dest, damage):
    body = damage(model_tar(files_of(tiny)))
    error = refused(app.serve(body), dest, allowed_hosts=ALLOW)
    assert "the archive is corrupt, truncated" in str(error)


def test_it_refuses_an_archive_with_two_top_level_folders(app, tiny, dest):
    body = tar_bytes([("a/config.json", b"{}"), ("b/config.json", b"{}")])
    error = refused(app.serve(body), dest, allowed_hosts=ALLOW)
    assert "config.json not found" in str(error)


# --- what inspect() refuses, through fetch() ----------------------------------------------


def truncated(model_dir: Path) -> bytes:
    data = (model_dir / "model.safetensors").read_bytes()
    return data[: len(data) - 1000]


def with_header(model_dir: Path, change) -> bytes:
    data = (model_dir / "model.safetensors").read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    change(header)
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data[8 + length :]


def set_dtype(header: dict) -> None:
    header["model.norm.weight"]["dtype"] = "F7"


def shift_offsets(header: dict) -> None:
    header["model.norm.weight"]["data_offsets"][1] += 4


def grow_shape(header: dict) -> None:
    header["model.norm.weight"]["shape"] = [65]


BAD_CHECKPOINTS = {
    "pickle only": (
        lambda t: files_of(t, model__safetensors=None, pytorch_model__bin=b"\x80\x04."),
        "pickle weights are refused; publish safetensors",
    ),
    "no weights": (lambda t: files_of(t, model__safetensors=None), "no model.safetensors found"),
    "auto_map": (
        lambda t: files_of(t, config__json=with_config(t, auto_map={"AutoModel": "m.M"})),
        "config.json asks for custom code (auto_map)",
    ),
    "tokenizer auto_map": (
        lambda t: files_of(t, tokenizer_config__json=b'{"auto_map": {"AutoTokenizer": "t.T"}}'),
        "tokenizer_config.json asks for custom code",
    ),
    "bert": (
        lambda t: files_of(t, config__json=with_config(t, model_type="bert")),
        "'bert' is not a decoder-only causal language model",
    ),
    "t5": (
        lambda t: files_of(t, config__json=with_config(t, model_type="t5")),
        "is not a decoder-only causal language model",
    ),
    "unknown model_type": (
        lambda t: files_of(t, config__json=with_config(t, model_type="skynet")),
        "model_type 'skynet' is unknown to transformers",
    ),
    "no model_type": (
        lambda t: files_of(t, config__json=b'{"hidden_size": 64}'),
        "config.json has no model_type",
    ),
    "config not JSON": (
        lambda t: files_of(t, config__json=b'{"model_type": "llama",'),
        "config.json is not valid JSON",
    ),
    "config not an object": (
        lambda t: files_of(t, config__json=b"[1, 2]"),
        "config.json must hold a JSON object",
    ),
    "truncated safetensors": (
        lambda t: files_of(t, model__safetensors=truncated(t)),
        "model.safetensors is truncated",
    ),
    "header length": (
        lambda t: files_of(t, model__safetensors=b"\xff" * 8 + b"{}"),
        "model.safetensors is not a safetensors file (corrupted header)",
    ),
    "header past the end": (
        lambda t: files_of(t, model__safetensors=(10**6).to_bytes(8, "little") + b"{}"),
        "model.safetensors is truncated: its header runs past the end",
    ),
    "header not JSON": (
        lambda t: files_of(t, model__safetensors=(6).to_bytes(8, "little") + b"{nope}"),
        "model.safetensors has a corrupted header",
    ),
    "unknown dtype": (
        lambda t: files_of(t, model__safetensors=with_header(t, set_dtype)),
        "unknown dtype 'F7'",
    ),
    "offsets": (
        lambda t: files_of(t, model__safetensors=with_header(t, shift_offsets)),
        "size does not match its shape",
    ),
    "shape": (
        lambda t: files_of(t, model__safetensors=with_header(t, grow_shape)),
        "size does not match its shape",
    ),
    "missing tokenizer": (
        lambda t: files_of(t, tokenizer__json=None),
        "missing tokenizer: include tokenizer.json",
    ),
    "broken tokenizer": (
        lambda t: files_of(t, tokenizer__json=b'{"model": {"type": "Nope"}}'),
        "the tokenizer does not load",
    ),
    "untied without a head": (
        lambda t: files_of(t, config__json=with_config(t, tie_word_embeddings=False)),
        "the weights have no lm_head",
    ),
    "vocab mismatch": (
        lambda t: files_of(t, config__json=with_config(t, vocab_size=1000)),
        "model.embed_tokens.weight has 512 rows but config.json says vocab_size=1000",
    ),
    "bad config value": (
        lambda t: files_of(t, config__json=with_config(t, num_attention_heads=5)),
        "config.json is not a valid llama config",
    ),
    "layer_sharing not an object": (
        lambda t: files_of(t, config__json=with_config(t, layer_sharing=2)),
        '"layer_sharing" must be an object',
    ),
}


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_it_refuses_a_bad_checkpoint_and_leaves_nothing_behind(app, tiny, dest, case):
    make, message = BAD_CHECKPOINTS[case]
    error = refused(app.serve(model_tar(make(tiny))), dest, allowed_hosts=ALLOW)
    assert message in str(error)
    assert not error.transient


# --- inspect() on good models -------------------------------------------------------------


def stored_params(model_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(model_dir / "model.safetensors", "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def test_it_describes_a_tied_model(tiny):
    info = inspect(tiny)
    assert (info.model_type, info.architecture) == ("llama", "LlamaForCausalLM")
    assert (info.layers, info.hidden_size, info.vocab_size) == (2, 64, 512)
    assert info.tied_embeddings and info.layer_sharing is None and info.dtype == "float32"
    assert info.params_total == stored_params(tiny)
    assert info.params_non_embedding == info.params_total - 512 * 64


def test_it_counts_an_untied_head_as_embedding_and_passes_layer_sharing_through(untied):
    info = inspect(untied)
    assert not info.tied_embeddings
    assert info.params_total == stored_params(untied)
    assert info.params_non_embedding == info.params_total - 2 * 512 * 64
    assert info.layer_sharing == {"scheme": "immediate_block_wise", "repeats": 2}


def test_it_does_not_count_a_stored_copy_of_a_tied_head(untied, tmp_path):
    model = shutil.copytree(untied, tmp_path / "m")
    (model / "config.json").write_bytes(with_config(untied, tie_word_embeddings=True))
    info = inspect(model)
    assert info.tied_embeddings
    assert info.params_total == stored_params(untied) - 512 * 64


def test_it_reads_sharded_checkpoints(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    model = shutil.copytree(tiny, tmp_path / "m")
    tensors = load_file(model / "model.safetensors")
    (model / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[:5],
        "model-00002-of-00002.safetensors": names[5:],
    }
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, model / shard)
        weight_map |= dict.fromkeys(keys, shard)
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert inspect(model).params_total == inspect(tiny).params_total
    (model / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="listed in model.safetensors.index.json, is missing"):
        inspect(model)


def test_it_never_opens_pickles_in_a_directory(tiny, tmp_path):
    model = shutil.copytree(tiny, tmp_path / "m")
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle weights are refused"):
        inspect(model)


def test_the_content_hash_ignores_extra_files_and_follows_content(tiny, tmp_path):
    model = shutil.copytree(tiny, tmp_path / "m")
    (model / "README.md").write_text("hello")
    assert content_hash(model) == content_hash(tiny)
    (model / "generation_config.json").write_text("{}")
    assert content_hash(model) != content_hash(tiny)


# --- the Hub ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hub(app, tiny):
    """A fake Hub: the revision API, and resolve/ answering 302 to a CDN path."""
    files = files_of(tiny)

    def add_repo(repo: str, names: dict[str, bytes], cdn_host: str = "", etag=None) -> None:
        siblings = [{"rfilename": n, "size": len(b)} for n, b in names.items()]
        siblings += [{"rfilename": "README.md"}, {"rfilename": "onnx/model.onnx"}]
        answer = respond(json.dumps({"id": repo, "sha": COMMIT, "siblings": siblings}).encode())
        app.routes[f"/api/models/{repo}/revision/main"] = answer
        app.routes[f"/api/models/{repo}/revision/{COMMIT}"] = answer
        for name, body in names.items():
            cdn = f"/cdn/{repo}/{name}"
            sha = etag or hashlib.sha256(body).hexdigest()
            headers = {"X-Linked-Etag": f'"{sha}"'} if name.endswith(".safetensors") else {}
            location = app.url(cdn, host=cdn_host) if cdn_host else cdn
            app.routes[f"/{repo}/resolve/{COMMIT}/{name}"] = redirect(location, headers)
            app.routes[cdn] = respond(body)

    add_repo("org/tiny", files)
    add_repo("org/cdn", files, cdn_host="cdn.test")
    add_repo("org/badsum", files, etag="0" * 64)
    pickles = files_of(tiny, model__safetensors=None, pytorch_model__bin=b"\x80\x04.")
    add_repo("org/pickled", pickles)
    return app.url("")


def test_it_resolves_a_revision_to_its_commit(app, hub):
    source = resolve(parse_source("org/tiny"), hub_endpoint=hub, allowed_hosts=ALLOW, token="t")
    assert source.commit == COMMIT
    assert source.url == f"{hub}/org/tiny"
    path, headers = app.requests[-1]
    assert path == "/api/models/org/tiny/revision/main?blobs=true"
    assert headers["Authorization"] == "Bearer t"


def test_it_leaves_an_archive_source_as_it_is():
    source = parse_source("https://example.org/model.zip")
    assert resolve(source) is source


def test_it_fetches_only_the_needed_files_from_the_hub_at_the_commit(app, hub, tiny, dest):
    source = resolve(parse_source("org/tiny"), hub_endpoint=hub, allowed_hosts=ALLOW)
    start = len(app.requests)
    calls = []

    def progress(done: int, total: int | None) -> None:
        calls.append((done, total))

    fetched = fetch(source, dest, hub_endpoint=hub, allowed_hosts=ALLOW, progress=progress)
    assert fetched.files == sorted(p.name for p in tiny.iterdir())
    assert fetched.sha256 == content_hash(tiny)
    paths = [path for path, _ in app.requests[start:]]
    assert paths[0] == f"/api/models/org/tiny/revision/{COMMIT}?blobs=true"
    assert f"/org/tiny/resolve/{COMMIT}/model.safetensors" in paths
    assert "/cdn/org/tiny/model.safetensors" in paths
    assert not any("README" in p or "onnx" in p for p in paths)
    assert calls[-1] == (fetched.size_bytes, fetched.size_bytes)


def test_it_hashes_the_same_checkpoint_the_same_from_the_hub_and_an_archive(
    app, hub, tiny, tmp_path
):
    from_hub = fetch(
        parse_source("org/tiny"), tmp_path / "a", hub_endpoint=hub, allowed_hosts=ALLOW
    )
    from_zip = get(app.serve(zip_bytes(files_of(tiny)), suffix=".zip"), tmp_path / "b")
    assert from_hub.sha256 == from_zip.sha256


def test_it_sends_the_token_to_the_hub_but_not_to_another_host(app, hub, dest):
    start = len(app.requests)
    fetch(parse_source("org/cdn"), dest, hub_endpoint=hub, allowed_hosts=ALLOW, token="secret")
    for path, headers in app.requests[start:]:
        sent = headers.get("Authorization")
        assert sent == (None if path.startswith("/cdn/") else "Bearer secret"), path
        assert headers["Host"].startswith("cdn.test:" if path.startswith("/cdn/") else "127.0.0.1:")


def test_it_refuses_a_hub_repo_with_only_pickle_weights(app, hub, dest):
    start = len(app.requests)
    error = refused(parse_source("org/pickled"), dest, hub_endpoint=hub, allowed_hosts=ALLOW)
    assert str(error) == "pickle weights are refused; publish safetensors"
    assert len(app.requests) == start + 1  # the listing, no download


def test_it_says_clearly_when_a_hub_repo_does_not_exist(hub, dest):
    with pytest.raises(CheckpointError) as caught:
        resolve(parse_source("org/nope@dev"), hub_endpoint=hub, allowed_hosts=ALLOW)
    assert "org/nope@dev was not found on the Hub, or it is private or gated" in str(caught.value)
    assert not caught.value.transient


def test_it_refuses_a_hub_file_whose_checksum_does_not_match(hub, dest):
    error = refused(parse_source("org/badsum"), dest, hub_endpoint=hub, allowed_hosts=ALLOW)
    assert "model.safetensors arrived corrupted (sha256 mismatch)" in str(error)
    assert error.transient


def test_it_refuses_hub_files_over_the_cap_before_downloading(app, hub, dest):
    start = len(app.requests)
    limits = Limits(max_download_bytes=1000)
    source = parse_source("org/tiny")
    error = refused(source, dest, hub_endpoint=hub, allowed_hosts=ALLOW, limits=limits)
    assert "over the 1000 bytes limit" in str(error)
    assert len(app.requests) == start + 1


def test_it_refuses_a_private_hub_endpoint_unless_allowed(hub, dest, network):
    with pytest.raises(CheckpointError, match="private"):
        resolve(parse_source("org/tiny"), hub_endpoint=hub)
    assert network.connections == []
