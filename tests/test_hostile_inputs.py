"""A corpus of hostile inputs (DESIGN §6) through the submission form and the JSON API, hostile
checkpoint contents through the worker, and stored hostile text through every page and CSV.

Every input is refused with a message that says what is wrong, and no row of any leaderboard
table changes. Host names resolve through a fake resolver, so no test sends anything but
127.0.0.1 traffic, and a name can point wherever a case needs (a public address, a private one).
"""

from __future__ import annotations

import csv
import html
import io
import ipaddress
import json
import re
import shutil
import socket
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from django.apps import apps
from django.db import transaction
from django.test import Client

from evaluator import checkpoint
from leaderboard import intake, pipeline
from leaderboard.models import (
    DeviceProfile,
    Entry,
    EvaluationRun,
    LatencyResult,
    PaperRow,
    Submission,
    TaskScore,
)
from tests.factories import make_entry, make_run

# --- a fake resolver and a board that is not empty ---

FAKE_DNS = {
    "models.example.org": ["93.184.215.14"],  # public: only what is wrong with the URL counts
    "internal.example.org": ["10.1.2.3"],
    "rebind.example.org": ["93.184.215.14", "127.0.0.1"],
    "localhost": ["127.0.0.1", "::1"],
}


def fake_getaddrinfo(host, port, *args, **kwargs):
    name = str(host).lower().rstrip(".")
    if name in FAKE_DNS:
        addresses = FAKE_DNS[name]
    else:
        try:
            addresses = [str(ipaddress.ip_address(name))]
        except ValueError:
            try:  # what getaddrinfo does with 2130706433, 0x7f.1, 0177.0.0.1 or 127.1
                addresses = [socket.inet_ntoa(socket.inet_aton(name))]
            except OSError:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
    return [
        (
            socket.AF_INET6 if ":" in a else socket.AF_INET,
            socket.SOCK_STREAM,
            6,
            "",
            (a, port or 0, 0, 0) if ":" in a else (a, port or 0),
        )
        for a in addresses
    ]


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)


LEGIT_URL = "https://models.example.org/legit.tar.gz"


@pytest.fixture(scope="module")
def board(django_db_setup, django_db_blocker):
    """The paper's results (the `reported` fixture's import) and one legit pending
    submission, loaded once for the module inside a transaction that is rolled back at its
    end; each test runs in a savepoint inside it. Importing per test would take minutes."""
    from leaderboard.importing import import_reported

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            import_reported()
            source = checkpoint.parse_source(LEGIT_URL)
            intake.create_submission(source, LEGIT_URL, "Legit model", enqueue=False)
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    yield
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)


def snapshot() -> dict[str, list[dict]]:
    """Every row of every leaderboard table but the rate limits' counts: a valid-looking
    request that is then refused (a private host, say) still counts as an attempt."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in apps.get_app_config("leaderboard").get_models()
        if model.__name__ != "Throttle"
    }


@pytest.fixture
def rows(board, db, settings):
    settings.CHECKPOINT_ALLOWED_HOSTS = []  # production: nothing private is trusted
    before = snapshot()
    assert before["Submission"] and before["Entry"] and before["LatencyResult"]
    yield
    assert snapshot() == before, "a refused input changed a row"


# --- the corpus ---

GOOD = {"url": "https://models.example.org/model.tar.gz", "name": "Tiny model", "notes": ""}
MISSING = object()
PRIVATE = "private, loopback, link-local, multicast or reserved address"
SCHEME = "only http(s) URLs or Hugging Face repo ids"
ARCHIVE = ".tar.gz, .tgz, .tar or .zip archive"
PLAIN = "plain ASCII without spaces or control characters"
REQUIRED = "This field is required."
NAME_CHARS = "the name may use letters, digits, spaces"
CONTROL = "contains control or invisible characters"
NUL = "Null characters are not allowed"
FORMULA = "may not start with = + - or @"
TAGS = "notes are plain text: remove the HTML tags"
REPO_ID = "is not a Hugging Face repo id"
REVISION = "is not a valid branch, tag or commit"


def case(field: str, value, fragment: str, id: str, marks=()):
    return pytest.param(field, value, fragment, id=id, marks=marks)


FIELD_CASES = [
    # Schemes other than http(s).
    case("url", "ftp://models.example.org/model.tar.gz", SCHEME, "ftp-scheme"),
    case("url", "file:///etc/passwd", SCHEME, "file-scheme"),
    case("url", "gopher://127.0.0.1:6379/_FLUSHALL%0d%0a", SCHEME, "gopher-scheme"),
    case("url", "javascript:alert(document.cookie)", SCHEME, "javascript-scheme"),
    case("url", "data:text/html,<script>alert(1)</script>", SCHEME, "data-scheme"),
    # Credentials, and the user@host confusion.
    case(
        "url",
        "https://user:secret@models.example.org/model.tar.gz",
        "remove the user name and password",
        "credentials",
    ),
    case(
        "url",
        "https://models.example.org@127.0.0.1/model.tar.gz",
        "remove the user name and password",
        "public-name-as-user-of-a-loopback-host",
    ),
    # Hosts that are not public, however they are written.
    case("url", "https://127.0.0.1/model.tar.gz", PRIVATE, "loopback-ipv4"),
    case("url", "https://[::1]/model.tar.gz", PRIVATE, "loopback-ipv6"),
    case("url", "https://[fe80::1]/model.tar.gz", PRIVATE, "link-local-ipv6"),
    case("url", "https://[::ffff:127.0.0.1]/model.tar.gz", PRIVATE, "ipv4-mapped-loopback"),
    case("url", "https://[64:ff9b::7f00:1]/model.tar.gz", PRIVATE, "nat64-wrapped-loopback"),
    case("url", "https://0.0.0.0/model.tar.gz", PRIVATE, "unspecified-ipv4"),
    case("url", "https://[::]/model.tar.gz", PRIVATE, "unspecified-ipv6"),
    case("url", "https://169.254.169.254/latest/meta.tar.gz", PRIVATE, "cloud-metadata"),
    case("url", "https://10.0.0.1/model.tar.gz", PRIVATE, "private-10"),
    case("url", "https://192.168.1.1/model.tar.gz", PRIVATE, "private-192-168"),
    case("url", "https://100.64.0.1/model.tar.gz", PRIVATE, "shared-address-space"),
    case("url", "https://224.0.0.1/model.tar.gz", PRIVATE, "multicast-ipv4"),
    case("url", "https://[ff02::1]/model.tar.gz", PRIVATE, "multicast-ipv6"),
    case("url", "https://240.0.0.1/model.tar.gz", PRIVATE, "reserved-ipv4"),
    case("url", "https://255.255.255.255/model.tar.gz", PRIVATE, "broadcast"),
    case("url", "http://2130706433/model.tar.gz", PRIVATE, "decimal-ip"),
    case("url", "http://0x7f.1/model.tar.gz", PRIVATE, "hex-ip"),
    case("url", "https://0177.0.0.1/model.tar.gz", PRIVATE, "octal-ip"),
    case("url", "https://127.1/model.tar.gz", PRIVATE, "short-ip"),
    case("url", "https://0/model.tar.gz", PRIVATE, "zero-ip"),
    case("url", "https://localhost/model.tar.gz", PRIVATE, "localhost"),
    case("url", "HTTPS://LOCALHOST./model.tar.gz", PRIVATE, "localhost-upper-case-trailing-dot"),
    case("url", "https://internal.example.org/model.tar.gz", PRIVATE, "name-resolving-private"),
    case("url", "https://rebind.example.org/model.tar.gz", PRIVATE, "name-with-one-private-ip"),
    case(
        "url",
        "https://%31%32%37.0.0.1/model.tar.gz",
        "the host name is missing or invalid",
        "percent-encoded-host",
    ),
    case("url", "http://models.example.org/model.tar.gz", "use https", "plain-http-public-host"),
    # Not an archive, or not a model.
    case("url", "https://models.example.org/model.exe", ARCHIVE, "exe"),
    case("url", "https://models.example.org/pytorch_model.bin", ARCHIVE, "pickle-file"),
    case("url", "https://models.example.org/model.tar.gz.exe", ARCHIVE, "double-extension"),
    case("url", "https://models.example.org/model.exe?f=.tar.gz", ARCHIVE, "suffix-in-query"),
    case("url", "https://huggingface.co/datasets/org/data", "dataset or Space", "hf-dataset"),
    case("url", "https://hf.co/spaces/org/app", "dataset or Space", "hf-space"),
    case(
        "url",
        "https://huggingface.co/org/name/resolve/main/model.safetensors",
        "link the model's repository page",
        "hf-file-url",
    ),
    case("url", "../../etc", REPO_ID, "repo-id-dot-dot"),
    case("url", "org/../../etc/passwd", REPO_ID, "repo-id-traversal"),
    case("url", "org/name@../../etc", REVISION, "revision-traversal"),
    case(
        "url",
        "https://huggingface.co/org/name/tree/..%2F..%2Fetc",
        REVISION,
        "percent-encoded-revision-traversal",
    ),
    # Malformed, over-long, whitespace and control characters.
    case(
        "url",
        "https://models.example.org/" + "a" * 2000 + ".tar.gz",
        "at most 2000 characters",
        "url-over-2000-chars",
    ),
    case("url", "https://models.example.org/my model.tar.gz", PLAIN, "url-with-space"),
    case(
        "url",
        "https://models.example.org/m.tar.gz\r\nX-Injected: 1",
        PLAIN,
        "url-with-crlf-header-injection",
    ),
    case("url", "https://models.example.org/\tmodel.tar.gz", PLAIN, "url-with-tab"),
    case("url", "https://models.example.org/mo\x7fdel.tar.gz", PLAIN, "url-with-del"),
    case("url", "https://models.example.org/\x1bmodel.tar.gz", PLAIN, "url-with-escape"),
    case("url", "https://models.example.org/\x00.tar.gz", NUL, "url-with-nul"),
    case("url", "https://hüggingface.co/org/name", PLAIN, "idn-homograph-host"),
    case("url", "https://models.example.org/\u202egz.rat.exe", PLAIN, "url-with-rtl-override"),
    case("url", "https://models.example.org:99999/m.tar.gz", "invalid host or port", "bad-port"),
    case("url", "https://[::1/model.tar.gz", "invalid host or port", "unclosed-ipv6-bracket"),
    case("url", "https:///model.tar.gz", "the URL has no host", "no-host"),
    case("url", "<script>alert(1)</script>", REPO_ID, "script-tag-as-url"),
    case(
        "url",
        'https://models.example.org/"><script>alert(1)</script>.tar.gz',
        "which URLs may not carry",
        "script-tag-in-url-path",
    ),
    case("url", "", REQUIRED, "empty-url"),
    case("url", " \t ", REQUIRED, "whitespace-only-url"),
    case("url", MISSING, REQUIRED, "missing-url"),
    # Script and HTML, spreadsheet formulas and odd Unicode in the name.
    case("name", "<script>alert(1)</script>", NAME_CHARS, "script-tag-in-name"),
    case("name", "<img src=x onerror=alert(1)>", NAME_CHARS, "img-onerror-in-name"),
    case("name", 'x" onmouseover="alert(1)', NAME_CHARS, "attribute-breakout-in-name"),
    case("name", "&lt;b&gt;bold", NAME_CHARS, "html-entity-in-name"),
    case("name", '=HYPERLINK("http://evil","x")', FORMULA, "formula-equals-in-name"),
    case("name", "+cmd|' /C calc'!A0", FORMULA, "formula-plus-in-name"),
    case("name", "-2+3", FORMULA, "formula-minus-in-name"),
    case("name", "@SUM(1+1)", FORMULA, "formula-at-in-name"),
    case("name", "  =1+1", FORMULA, "formula-after-leading-spaces-in-name"),
    case("name", "\uff1d1+1", NAME_CHARS, "fullwidth-equals-in-name"),
    case("name", "x" * 101, "at most 100 characters", "name-over-100-chars"),
    case("name", "evil\u202egnp.exe", CONTROL, "rtl-override-in-name"),
    case("name", "Tiny\u200dModel", CONTROL, "zero-width-joiner-in-name"),
    case("name", "Tiny\u200bModel", CONTROL, "zero-width-space-in-name"),
    case("name", "\ufeffTiny", CONTROL, "byte-order-mark-in-name"),
    case("name", "Tiny\x07Model", CONTROL, "bell-in-name"),
    case("name", "\x1b[31mred", CONTROL, "ansi-escape-in-name"),
    case("name", "\ue000Tiny", CONTROL, "private-use-char-in-name"),
    case("name", "Tiny\x00Model", NUL, "nul-in-name"),
    case("name", "Ti\u0336n\u0337y", NAME_CHARS, "combining-marks-in-name"),
    case("name", "", REQUIRED, "empty-name"),
    case("name", " \t\n ", REQUIRED, "whitespace-only-name"),
    case("name", "\u00a0\u3000", REQUIRED, "unicode-space-only-name"),
    case("name", MISSING, REQUIRED, "missing-name"),
    # The same in the notes.
    case("notes", "<script>alert(1)</script>", TAGS, "script-tag-in-notes"),
    case("notes", "fine <iframe src=javascript:alert(1)>", TAGS, "iframe-in-notes"),
    case("notes", "</textarea><svg onload=alert(1)>", TAGS, "textarea-breakout-in-notes"),
    case("notes", "<!-- hidden -->", TAGS, "html-comment-in-notes"),
    case("notes", "=cmd|' /C calc'!A0", FORMULA, "formula-in-notes"),
    case("notes", "@SUM(A1:A9)", FORMULA, "formula-at-in-notes"),
    case("notes", "n" * 2001, "at most 2000 characters", "notes-over-2000-chars"),
    case("notes", "ok\u202eevil", CONTROL, "rtl-override-in-notes"),
    case("notes", "ok\u200bok", CONTROL, "zero-width-space-in-notes"),
    case("notes", "ok\x00", NUL, "nul-in-notes"),
]


def hostile(field: str, value) -> dict:
    data = dict(GOOD)
    if value is MISSING:
        del data[field]
    else:
        data[field] = value
    return data


def inline_error(page: str, field: str) -> str:
    match = re.search(rf'id="error-{field}">(.*?)</span>', page, re.S)
    assert match, f"no inline error next to {field}"
    return html.unescape(match.group(1))


def api_post(body: bytes | str, content_type: str = "application/json"):
    # CONTENT_TYPE again: the test client drops the header when the body is empty.
    return Client().post(
        "/api/submissions", body, content_type=content_type, CONTENT_TYPE=content_type
    )


def api_error(response) -> str:
    assert response["Content-Type"] == "application/json"
    data = json.loads(response.content)
    assert list(data) == ["error"] and isinstance(data["error"], str), data
    return data["error"]


@pytest.mark.parametrize(("field", "value", "fragment"), FIELD_CASES)
def test_the_form_refuses_a_hostile_input_next_to_its_field(rows, client, field, value, fragment):
    response = client.post("/submit/", hostile(field, value))
    assert response.status_code == 400
    assert fragment in inline_error(response.content.decode(), field)


@pytest.mark.parametrize(("field", "value", "fragment"), FIELD_CASES)
def test_the_api_refuses_a_hostile_input_naming_its_field(rows, field, value, fragment):
    response = api_post(json.dumps(hostile(field, value)))
    assert response.status_code == 400
    message = api_error(response)
    assert message.startswith(f"{field}: ") and fragment in message, message


BIG = 16 * 1024
API_CASES = [
    pytest.param(b'{"url": "x", "name": }', 400, "not valid JSON", id="malformed-json"),
    pytest.param(b'{"url": "https://models.exa', 400, "not valid JSON", id="truncated-json"),
    pytest.param(b"{'url': 'a/b', 'name': 'x'}", 400, "not valid JSON", id="single-quotes"),
    pytest.param(b'{"url": "a/b", "name": "x",}', 400, "not valid JSON", id="trailing-comma"),
    pytest.param(b"", 400, "not valid JSON", id="empty-body"),
    pytest.param(b"\xff\xfe\xfd{", 400, "not valid JSON", id="invalid-utf8"),
    pytest.param(b'{"url": "a/b"} {"x": 1}', 400, "not valid JSON", id="two-documents"),
    pytest.param(
        json.dumps([GOOD]).encode(), 400, "must be a JSON object", id="array-instead-of-object"
    ),
    pytest.param(b'"https://models.example.org/m.tar.gz"', 400, "JSON object", id="string-body"),
    pytest.param(b"42", 400, "must be a JSON object", id="number-body"),
    pytest.param(b"null", 400, "must be a JSON object", id="null-body"),
    pytest.param(b"true", 400, "must be a JSON object", id="boolean-body"),
    pytest.param(
        json.dumps({**GOOD, "status": "done"}).encode(), 400, "unknown fields: status", id="extra"
    ),
    pytest.param(
        json.dumps({**GOOD, "is_staff": True, "entry": 1}).encode(),
        400,
        "unknown fields: entry, is_staff",
        id="extra-fields",
    ),
    pytest.param(
        json.dumps({**GOOD, "__proto__": {"admin": True}}).encode(),
        400,
        "unknown fields: __proto__",
        id="proto-pollution",
    ),
    pytest.param(json.dumps({**GOOD, "url": 42}).encode(), 400, "must be strings", id="url-int"),
    pytest.param(
        json.dumps({**GOOD, "url": [GOOD["url"]]}).encode(), 400, "must be strings", id="url-list"
    ),
    pytest.param(json.dumps({**GOOD, "url": None}).encode(), 400, "must be strings", id="url-null"),
    pytest.param(
        json.dumps({**GOOD, "name": {"$gt": ""}}).encode(),
        400,
        "must be strings",
        id="name-object",
    ),
    pytest.param(json.dumps({**GOOD, "name": True}).encode(), 400, "must be strings", id="bool"),
    pytest.param(
        json.dumps({**GOOD, "notes": 1.5}).encode(), 400, "must be strings", id="notes-float"
    ),
    pytest.param(
        b'{"url": "https://models.example.org/m.tar.gz", "name": NaN}',
        400,
        "must be strings",
        id="name-nan",
    ),
    pytest.param(
        b'{"url": "https://models.example.org/m.tar.gz", "name": "x", '
        b'"url": "ftp://models.example.org/m.tar.gz"}',
        400,
        "url: only http(s)",
        id="duplicate-key-last-wins",
    ),
    pytest.param(
        b'{"url": "https://models.example.org/\\ud800.tar.gz", "name": "x"}',
        400,
        "url: the URL must be " + PLAIN,
        id="lone-surrogate-in-url",
    ),
    pytest.param(
        b'{"url": "https://models.example.org/m.tar.gz", "name": "Tiny\\ud800"}',
        400,
        "name: the name " + CONTROL,
        id="lone-surrogate-in-name",
    ),
    pytest.param(
        b'{"url": "https://models.example.org/m.tar.gz", "name": "x", "notes": "\\udfff!"}',
        400,
        "notes: the notes " + CONTROL,
        id="lone-low-surrogate-in-notes",
    ),
    pytest.param(
        json.dumps({**GOOD, "notes": "n" * (BIG + 1)}).encode(),
        413,
        f"the body is larger than {BIG} bytes",
        id="body-over-16-kib",
    ),
    pytest.param(
        b"[" * 8000 + b"]" * 8000,
        400,
        "not valid JSON",
        id="deeply-nested-json-under-16-kib",
    ),
    pytest.param(
        json.dumps({**GOOD, "notes": "n" * 3 * 1024**2}).encode(),
        413,
        f"the body is larger than {BIG} bytes",
        id="body-over-django-upload-limit",
    ),
]


@pytest.mark.parametrize(("body", "status", "fragment"), API_CASES)
def test_the_api_refuses_a_hostile_body_with_a_json_error(rows, body, status, fragment):
    response = api_post(body)
    assert response.status_code == status
    assert fragment in api_error(response)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/jsonp", "text/json"],
)
def test_the_api_refuses_a_body_that_is_not_declared_json(rows, content_type):
    response = api_post(json.dumps(GOOD), content_type=content_type)
    assert response.status_code == 415
    assert "Content-Type: application/json" in api_error(response)


def test_the_api_refuses_a_multipart_form(rows):
    response = Client().post("/api/submissions", GOOD)
    assert response.status_code == 415
    assert "Content-Type: application/json" in api_error(response)


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        pytest.param(b"url=a%2Fb&name=Tiny%ED%A0%80", "name", NAME_CHARS, id="utf8-surrogate"),
        pytest.param(b"url=a%2Fb&name=%FF%FE", "name", NAME_CHARS, id="invalid-utf8"),
        pytest.param(b"url=a%2Fb&name=Tiny&notes=%3Cb%3E", "notes", TAGS, id="encoded-tag"),
        pytest.param(b"url=%00&name=Tiny", "url", NUL, id="encoded-nul"),
        pytest.param(b"url=a%2Fb%40..%2F..%2Fx&name=Tiny", "url", REVISION, id="encoded-traversal"),
    ],
)
def test_the_form_refuses_raw_encoded_bytes_next_to_their_field(
    rows, client, body, field, fragment
):
    response = client.post("/submit/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert fragment in inline_error(response.content.decode(), field)


def test_a_flood_of_submissions_is_refused_above_the_form_and_by_the_api(rows, client, settings):
    settings.SUBMISSION_RATE_LIMIT = 0
    response = client.post("/submit/", GOOD)
    assert response.status_code == 429
    errors = re.search(r'id="form-errors">(.*?)</ul>', response.content.decode(), re.S)
    assert errors and "Too many submissions" in html.unescape(errors.group(1))
    response = api_post(json.dumps(GOOD))
    assert response.status_code == 429
    assert "Too many submissions" in api_error(response)


@pytest.mark.parametrize(
    "body",
    [b'{"secret": "wrong"}', b'{"secret": ""}', b'{"secret": 1}', b"[]", b"null", b"{"],
    ids=["wrong", "empty", "number", "array", "null", "malformed"],
)
def test_a_hostile_cancel_leaves_the_submission_as_it_was(rows, body):
    sub = Submission.objects.get(url=LEGIT_URL)
    response = Client().post(f"/api/submissions/{sub.pk}/cancel", body, content_type="text/plain")
    assert response.status_code in (400, 403)
    assert re.search("secret|not valid JSON", api_error(response))


def test_a_cancel_with_a_lone_surrogate_secret_is_refused(rows):
    sub = Submission.objects.get(url=LEGIT_URL)
    client = Client(raise_request_exception=False)
    response = client.post(f"/api/submissions/{sub.pk}/cancel", b'{"secret": "\\ud800"}', "x/y")
    assert response.status_code == 403
    assert "wrong or missing secret" in api_error(response)


def test_a_cancel_with_deeply_nested_json_is_refused(rows):
    sub = Submission.objects.get(url=LEGIT_URL)
    client = Client(raise_request_exception=False)
    response = client.post(f"/api/submissions/{sub.pk}/cancel", b"[" * 8000 + b"]" * 8000, "x/y")
    assert response.status_code == 400
    assert "not valid JSON" in api_error(response)


def test_a_get_on_the_api_gets_a_json_error(rows):
    response = Client().get("/api/submissions")
    assert response.status_code == 405
    assert "POST" in api_error(response)


# --- hostile checkpoint contents, which only the worker sees ---


@pytest.fixture
def worker(db, settings, tmp_path, monkeypatch, served):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.WORK_DIR = tmp_path / "work"
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}"]  # that server only
    settings.EVAL_DATA = "sample"

    def evaluate(*args, **kwargs):  # an accepted checkpoint fails fast, and visibly
        raise AssertionError("a hostile checkpoint reached the evaluation")

    monkeypatch.setattr(pipeline.harness, "evaluate", evaluate)
    return settings


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    tar.addfile(info)


def tarball(path: Path, model: Path, extra: Callable[[tarfile.TarFile], None] | None = None):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(model, arcname="tiny")
        if extra:
            extra(tar)


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def with_symlink(model, path):
    tarball(
        path, model, lambda t: add_special(t, "tiny/vocab.json", tarfile.SYMTYPE, "/etc/passwd")
    )


def with_hardlink(model, path):
    tarball(
        path, model, lambda t: add_special(t, "tiny/merges.txt", tarfile.LNKTYPE, "/etc/passwd")
    )


def with_fifo(model, path):
    tarball(path, model, lambda t: add_special(t, "tiny/pipe", tarfile.FIFOTYPE))


def with_duplicate(model, path):
    tarball(path, model, lambda t: add_bytes(t, "tiny/config.json", b'{"model_type": "llama"}'))


def zipped(path: Path, model: Path, extra: Callable[[zipfile.ZipFile], None]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(model.iterdir()):
            zf.write(file, f"tiny/{file.name}")
        extra(zf)


def zip_with_dot_dot(model, path):
    zipped(path, model, lambda zf: zf.writestr("tiny/../../evil.txt", b"x"))


def zip_with_absolute_path(model, path):
    zipped(path, model, lambda zf: zf.writestr("/tmp/evil.txt", b"x"))


def zip_with_symlink(model, path):
    link = zipfile.ZipInfo("tiny/vocab.json")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    zipped(path, model, lambda zf: zf.writestr(link, "/etc/passwd"))


def gzip_bomb(model, path):
    # 32 MiB of zeros, about 32 KiB compressed: the download is small, the expansion is not.
    tarball(path, model, lambda t: add_bytes(t, "tiny/zeros.txt", bytes(32 * 1024**2)))


def config_with_auto_map(model, path):
    edit_json(model / "config.json", auto_map={"AutoModelForCausalLM": "evil.EvilModel"})
    tarball(path, model)


def tokenizer_with_auto_map(model, path):
    edit_json(model / "tokenizer_config.json", auto_map={"AutoTokenizer": ["evil.Tok", None]})
    tarball(path, model)


def config_with_trust_remote_code(model, path):
    edit_json(model / "config.json", trust_remote_code=True)
    tarball(path, model)


def config_of(model_type: str) -> Callable[[Path, Path], None]:
    def build(model, path):
        edit_json(model / "config.json", model_type=model_type, architectures=[])
        tarball(path, model)

    return build


def truncated_weights(model, path):
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[:-1000])
    tarball(path, model)


def corrupted_header(model, path):
    data = bytearray((model / "model.safetensors").read_bytes())
    data[8:24] = b"\x00garbage!\xff{[}]\x01\x02"
    (model / "model.safetensors").write_bytes(bytes(data))
    tarball(path, model)


def header_length_past_the_end(model, path):
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes((len(data) * 2).to_bytes(8, "little") + data[8:])
    tarball(path, model)


def missing_tokenizer(model, path):
    (model / "tokenizer.json").unlink()
    tarball(path, model)


def no_config(model, path):
    (model / "config.json").unlink()
    tarball(path, model)


def not_an_archive(model, path):
    path.write_bytes(b"<html><body>It works!</body></html>")


def plain_tiny(model, path):
    tarball(path, model)


def config_with(**changes) -> Callable[[Path, Path], None]:
    def build(model, path):
        edit_json(model / "config.json", **changes)
        tarball(path, model)

    return build


def weights_changed(change) -> Callable[[Path, Path], None]:
    def build(model, path):
        from safetensors.torch import load_file, save_file

        tensors = load_file(model / "model.safetensors")
        change(tensors)
        save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
        tarball(path, model)

    return build


def file_then_folder(model, path):
    def extra(tar):
        add_bytes(tar, "merges.txt", b"a file")
        add_bytes(tar, "merges.txt/vocab.json", b"and now a folder")

    tarball(path, model, extra)


def token_id_past_the_embedding(model, path):
    doc = json.loads((model / "tokenizer.json").read_text())
    doc["model"]["vocab"]["zzzz"] = 99999
    (model / "tokenizer.json").write_text(json.dumps(doc))
    tarball(path, model)


CHECKPOINT_CASES = [
    pytest.param(with_symlink, {}, "'tiny/vocab.json': a link", id="tar-symlink"),
    pytest.param(with_hardlink, {}, "'tiny/merges.txt': a link", id="tar-hardlink"),
    pytest.param(with_fifo, {}, "'tiny/pipe': not a regular file", id="tar-fifo"),
    pytest.param(with_duplicate, {}, "duplicate", id="tar-duplicate-member"),
    pytest.param(zip_with_dot_dot, {}, "'..' in its path", id="zip-dot-dot"),
    pytest.param(zip_with_absolute_path, {}, "absolute", id="zip-absolute-path"),
    pytest.param(zip_with_symlink, {}, "'tiny/vocab.json': a link", id="zip-symlink"),
    pytest.param(config_with_auto_map, {}, "config.json asks for custom code", id="auto-map"),
    pytest.param(
        tokenizer_with_auto_map,
        {},
        "tokenizer_config.json asks for custom code",
        id="tokenizer-auto-map",
    ),
    pytest.param(
        config_with_trust_remote_code,
        {},
        "trust_remote_code",
        id="trust-remote-code-config",
    ),
    pytest.param(config_of("bert"), {}, "not a decoder-only causal language model", id="bert"),
    pytest.param(config_of("t5"), {}, "not a decoder-only causal language model", id="t5"),
    pytest.param(config_of("evil"), {}, "'evil' is unknown to transformers", id="unknown-type"),
    pytest.param(truncated_weights, {}, "model.safetensors is truncated", id="truncated-weights"),
    pytest.param(
        corrupted_header, {}, "model.safetensors has a corrupted header", id="corrupted-header"
    ),
    pytest.param(
        header_length_past_the_end,
        {},
        "its header runs past the end",
        id="header-length-past-the-end",
    ),
    pytest.param(missing_tokenizer, {}, "missing tokenizer", id="missing-tokenizer"),
    pytest.param(no_config, {}, "config.json not found", id="no-config"),
    pytest.param(not_an_archive, {}, "the archive is corrupt", id="html-page-not-an-archive"),
    pytest.param(
        plain_tiny,
        {"CHECKPOINT_MAX_MEMBERS": 3},
        "the archive has more than 3 members",
        id="over-member-limit",
    ),
    pytest.param(
        plain_tiny,
        {"CHECKPOINT_MAX_BYTES": 64 * 1024},
        "is larger than the 64.0 KiB limit",
        id="over-download-cap",
    ),
    pytest.param(
        gzip_bomb,
        {"CHECKPOINT_MAX_BYTES": 4 * 1024**2},
        "the archive expands past the 4.0 MiB limit",
        id="gzip-bomb",
    ),
    pytest.param(
        gzip_bomb,
        {"CHECKPOINT_MAX_RATIO": 50},
        "the member 'tiny/zeros.txt' expands more than 50 times its compressed size",
        id="compression-ratio-bomb",
    ),
    # Measurement integrity (issue 8): the config must describe the weights, no weight is
    # random-initialised or non-finite, no key picks code, tokenizers are capped.
    pytest.param(
        config_with(num_hidden_layers=200),
        {},
        "config.json asks for 200 layers; the weights hold 2",
        id="config-asks-for-200-layers",
    ),
    pytest.param(
        config_with(hidden_size=16384, intermediate_size=65536),
        {},
        "model.embed_tokens.weight has shape [512, 64] in the weights but config.json makes "
        "it [512, 16384]",
        id="config-asks-for-54-gb",
    ),
    pytest.param(
        weights_changed(lambda t: t.pop("model.layers.0.self_attn.v_proj.weight")),
        {},
        "the weights lack model.layers.0.self_attn.v_proj.weight",
        id="missing-weight",
    ),
    pytest.param(
        weights_changed(lambda t: t.update(extra=t["model.norm.weight"].clone())),
        {},
        "the weights hold extra, which a llama model with this config.json has no place for",
        id="unexpected-weight",
    ),
    pytest.param(
        plain_tiny,
        {"CHECKPOINT_MAX_PARAMS": 10_000},
        "over this site's limit of 10,000",
        id="over-parameter-limit",
    ),
    pytest.param(
        weights_changed(lambda t: t["model.norm.weight"].__setitem__(0, float("nan"))),
        {},
        "model.norm.weight holds NaN or infinite values",
        id="nan-weight",
    ),
    pytest.param(
        weights_changed(lambda t: t["model.embed_tokens.weight"].__setitem__(7, float("inf"))),
        {},
        "model.embed_tokens.weight holds NaN or infinite values",
        id="inf-weight",
    ),
    pytest.param(
        config_with(_attn_implementation="kernels-community/flash-attn"),
        {},
        "picks its own implementation (_attn_implementation: 'kernels-community/flash-attn')",
        id="attention-kernel-from-the-hub",
    ),
    pytest.param(
        config_with(quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True}),
        {},
        "has a quantization_config (quant_method 'bitsandbytes')",
        id="quantization-backend",
    ),
    pytest.param(
        config_with(use_kernels=True),
        {},
        "asks for kernels (use_kernels)",
        id="hub-kernels",
    ),
    pytest.param(
        plain_tiny,
        {"CHECKPOINT_MAX_TOKENIZER_BYTES": 4096},
        "over this site's 4.0 KiB limit for tokenizer files",
        id="oversized-tokenizer",
    ),
    pytest.param(
        file_then_folder,
        {},
        "'merges.txt/vocab.json': a file and a folder share its path",
        id="member-is-a-file-then-a-folder",
    ),
    pytest.param(
        token_id_past_the_embedding,
        {},
        "the tokenizer has token id 99999 but the model embeds only 512",
        id="token-id-past-the-embedding",
    ),
]


@pytest.mark.parametrize(("build", "limits", "message"), CHECKPOINT_CASES)
def test_the_worker_rejects_a_hostile_checkpoint_and_stores_nothing(
    worker, served, tiny_model_dir, tmp_path, request, build, limits, message
):
    for key, value in limits.items():
        setattr(worker, key, value)
    model = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, model)
    name = f"hostile-{request.node.callspec.id}.{'zip' if 'zip' in build.__name__ else 'tar.gz'}"
    build(model, served.root / name)
    url = f"{served.url}/{name}"
    sub, created = intake.create_submission(
        intake.resolve_source(url), url, "Hostile", enqueue=False
    )
    counts = [m.objects.count() for m in (Entry, EvaluationRun, TaskScore)]
    assert created

    assert pipeline.run(sub.pk) == "rejected"
    sub.refresh_from_db()
    assert message in sub.error, sub.error
    assert [m.objects.count() for m in (Entry, EvaluationRun, TaskScore)] == counts
    assert not any(worker.WORK_DIR.rglob("*")), "the work folder was not cleaned up"


# --- stored hostile text is escaped on every page, and formulas neutralised in every CSV ---

XSS = '<script>alert("x")</script>'  # short enough for every column it goes in
IMG = "<img src=x onerror=alert(1)>"


@pytest.fixture
def stored_xss(board, db):
    entry = make_entry(
        name=f"Evil {XSS}",
        slug="evil-model",
        notes=XSS + IMG,
        architecture=XSS,
        source_url=f"https://models.example.org/{XSS}{IMG}.tar.gz",
    )
    make_run(entry, provenance={"lm_eval_version": XSS, "device": XSS})
    sub = Submission.objects.create(
        url=f"https://models.example.org/{XSS}.tar.gz",
        source_kind="archive",
        checkpoint_key="url:xss",
        name=f"Evil {XSS}",
        notes=XSS + IMG,
        error=XSS + IMG,
        log_tail=XSS + IMG,
        status="done",
        entry=entry,
        secret="s",
        tasks=["arc_easy"],
    )
    paper = PaperRow.objects.select_related("run__entry").filter(table="Table 3").first()
    PaperRow.objects.filter(pk=paper.pk).update(group=XSS)
    Entry.objects.filter(pk=paper.run.entry_id).update(name=f"Paper {XSS}")
    EvaluationRun.objects.filter(pk=paper.run_id).update(citation=XSS)
    latency = LatencyResult.objects.select_related("profile").first()
    Entry.objects.filter(pk=latency.entry_id).update(name=f"Fast {XSS}")
    LatencyResult.objects.filter(pk=latency.pk).update(citation=XSS, layers_label=XSS)
    DeviceProfile.objects.filter(pk=latency.profile_id).update(name=XSS, runtime=XSS)
    return {"sub": sub, "entry": entry, "paper": paper, "latency": latency}


def test_stored_script_is_escaped_on_every_page(client, stored_xss):
    pages = [
        "/?q=evil",
        "/?benchmark=full&q=alert",
        "/queue/",
        f"/submissions/{stored_xss['sub'].pk}/",
        "/models/evil-model/",
        f"/models/{Entry.objects.get(pk=stored_xss['paper'].run.entry_id).slug}/",
        "/paper/table-3/",
        "/latency/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        text = response.content.decode()
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text, page
        assert "<script>alert(" not in text and "<img src=x" not in text, page
        assert "script-src 'self'" in response["Content-Security-Policy"]


FORMULAS = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "\n=1"]


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def test_formula_cells_are_neutralised_in_the_leaderboard_csv(client, board, db):
    for i, formula in enumerate(FORMULAS):
        make_run(make_entry(name=formula, slug=f"formula-{i}", params_label=formula))
    by_slug = {row[1]: row for row in csv_rows(client.get("/leaderboard.csv"))[1:]}
    for i, formula in enumerate(FORMULAS):
        assert by_slug[f"formula-{i}"][0] == "'" + formula  # model
        assert by_slug[f"formula-{i}"][4] == "'" + formula  # params_label


def test_formula_cells_are_neutralised_in_the_latency_csv(client, board, db):
    result = LatencyResult.objects.first()
    Entry.objects.filter(pk=result.entry_id).update(name='=HYPERLINK("http://evil")')
    LatencyResult.objects.filter(pk=result.pk).update(citation="@SUM(A1)", layers_label="-1+2")
    table = csv_rows(client.get("/latency.csv"))
    header = table[0]
    row = next(r for r in table[1:] if r[header.index("model")].startswith("'="))
    assert row[header.index("model")] == '\'=HYPERLINK("http://evil")'
    assert row[header.index("source")] == "'@SUM(A1)"
    assert row[header.index("layers")] == "'-1+2"
    assert not any(cell.startswith(("=", "+", "@")) for r in table for cell in r)


def test_formula_cells_are_neutralised_in_the_paper_csv(client, board, db):
    paper = PaperRow.objects.filter(table="Table 3").first()
    PaperRow.objects.filter(pk=paper.pk).update(group="=1+1")
    Entry.objects.filter(runs__paper_rows=paper).update(name="+cmd|' /C calc'!A0")
    table = csv_rows(client.get("/paper/table-3.csv"))
    header = table[0]
    row = next(r for r in table[1:] if r[header.index("group")] == "'=1+1")
    assert row[header.index("model")] == "'+cmd|' /C calc'!A0"
    assert not any(cell.startswith(("=", "+", "@")) for r in table for cell in r)
