"""The JSON and CSV endpoints fuzzed with hypothesis: whatever the query string or the body,
no 500, and every JSON answer parses (a 4xx is {"error": "..."}).

NUL characters in query strings and lone surrogates in JSON bodies are generated too: both
once caused 500s (see the pinned cases at the end).
"""

from __future__ import annotations

import csv
import io
import json
import socket
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leaderboard.importing import IPHONE_PROFILE
from leaderboard.models import Entry, Submission
from tests.test_hostile_inputs import board, fake_getaddrinfo  # noqa: F401 (module fixture)

FUZZ = settings(
    max_examples=20,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def site(board, db, settings, monkeypatch):  # noqa: F811 (the imported fixture)
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    # A Hub id that parses (random text such as "0/0" does) must never reach the real Hub.
    settings.HF_ENDPOINT = "https://hub.invalid"
    settings.CHECKPOINT_ALLOWED_HOSTS = []
    return Client(raise_request_exception=False)


# --- query strings ---

# utf-8: characters() alone includes lone surrogates, which no query string can carry.
QUERY_CHARS = st.characters(codec="utf-8")
KEYS = ["q", "size", "provenance", "sort", "cols", "benchmark", "profile", "page", "models"]
KNOWN_VALUES = [
    "full",
    "sample",
    "limited",
    "reported",
    "measured",
    "name",
    "-avg",
    "avg",
    "--avg",
    "execute_ms",
    "arc_easy",
    "arc_easy,boolq,,piqa",
    "-arc_easy",
    "0",
    "-1",
    "1e9",
    "99999999999999999999999",
    "last",
    "NaN",
    IPHONE_PROFILE,
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "\u202e\u200b\ufeff",
    "İſK",  # lower() and upper() change their length
    *[label for label, _, _ in django_settings.SIZE_CLASSES],
]
huge = st.integers(1_000, 50_000).flatmap(lambda n: st.sampled_from(["a" * n, "9" * n, "é" * n]))
values = st.one_of(st.sampled_from(KNOWN_VALUES), st.text(QUERY_CHARS, max_size=40), huge)
keys = st.one_of(st.sampled_from(KEYS), st.text(QUERY_CHARS, max_size=12))
pairs = st.lists(st.tuples(keys, values), max_size=8)
# Raw query strings too: stray %, bad escapes, invalid UTF-8, separators everywhere.
raw = st.text(st.sampled_from("%=&;+?/,-_.~ 0123456789abcdefABCDEFxyzq"), max_size=60).filter(
    lambda text: "%00" not in text
)
queries = st.one_of(pairs.map(lambda p: urlencode(p)), raw.map(lambda text: text.replace(" ", "")))

GET_JSON = [
    "/leaderboard.json",
    "/charts/accuracy-vs-params.json",
    "/charts/tasks.json",
    "/charts/accuracy-vs-latency.json",
    "/latency.json",
    "/queue.json",
    "/paper/table-3.json",
    "/paper/layer-sharing-ablation.json",
]
GET_CSV = ["/leaderboard.csv", "/latency.csv", "/paper/table-8.csv"]


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def check_json(response) -> object:
    assert response.status_code < 500, response.status_code
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    data = json.loads(body_of(response))
    if response.status_code >= 400:
        assert list(data) == ["error"] and isinstance(data["error"], str) and data["error"]
    return data


def check_csv(response, query: str = "") -> None:
    if "%00" in query:  # a NUL in a query string is refused before any view runs
        assert response.status_code == 400
        return
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(body_of(response).decode())))
    assert table and all(len(row) == len(table[0]) for row in table)


@pytest.mark.parametrize("path", GET_JSON)
@FUZZ
@given(query=queries)
def test_a_json_endpoint_answers_json_whatever_the_query(site, path, query):
    check_json(site.get(f"{path}?{query}"))


@pytest.mark.parametrize("path", GET_CSV)
@FUZZ
@given(query=queries)
def test_a_csv_endpoint_answers_a_whole_table_whatever_the_query(site, path, query):
    check_csv(site.get(f"{path}?{query}"), query)


@FUZZ
@given(data=st.data(), query=queries)
def test_a_model_json_answers_json_for_any_slug(site, data, query):
    known = list(Entry.objects.values_list("slug", flat=True))
    slug = data.draw(
        st.one_of(
            st.sampled_from(known),
            st.from_regex(r"\A[-\w]{1,80}\Z", alphabet=st.characters(codec="ascii")),
        )
    )
    response = site.get(f"/models/{slug}.json?{query}")
    check_json(response)
    if "%00" not in query:  # else refused with a 400 before any view runs
        assert response.status_code == (200 if slug in known else 404)


@FUZZ
@given(data=st.data(), query=queries)
def test_a_submission_json_answers_json_for_any_id(site, data, query):
    known = list(Submission.objects.values_list("pk", flat=True))
    pk = data.draw(st.one_of(st.sampled_from(known), st.integers(0, 10**30)))
    response = site.get(f"/submissions/{pk}.json?{query}")
    check_json(response)
    if "%00" not in query:  # else refused with a 400 before any view runs
        assert response.status_code == (200 if pk in known else 404)


# --- request bodies ---

# Lone surrogates included: JSON can carry them ("\ud800") even though UTF-8 cannot.
any_text = st.text(st.characters(exclude_categories=()), max_size=60)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), any_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
URL_SEEDS = [
    "https://models.example.org/model.tar.gz",
    "http://127.0.0.1/m.tar.gz",
    "https://huggingface.co/org/name",
    "org/name",
    "org/name@main",
    "0/0",
    "https://[::1]/x.zip",
    "javascript:alert(1)",
]
urls = st.one_of(
    st.sampled_from(URL_SEEDS),
    st.tuples(st.sampled_from(URL_SEEDS), any_text).map("".join),
    any_text,
)
long_text = st.integers(0, 20_000).map(lambda n: "n" * n)
field_values = st.one_of(any_text, json_values, long_text)
objects = st.fixed_dictionaries(
    {},
    optional={
        "url": st.one_of(urls, field_values),
        "name": st.one_of(st.just("Tiny model"), field_values),
        "notes": st.one_of(st.just(""), field_values),
        "secret": field_values,
    },
).flatmap(
    lambda base: st.dictionaries(any_text, json_values, max_size=2).map(
        lambda extra: {**extra, **base} if extra.keys() - base.keys() else base
    )
)
json_bodies = st.one_of(objects, json_values).map(lambda v: json.dumps(v).encode())
bodies = st.one_of(json_bodies, st.binary(max_size=300))
content_types = st.one_of(
    st.just("application/json"),
    st.sampled_from(
        ["application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded"]
    ),
    st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=30),
)


def post(client, path: str, body: bytes, content_type: str):
    return client.post(path, body, content_type=content_type, CONTENT_TYPE=content_type)


@settings(FUZZ, max_examples=120)
@given(body=bodies, content_type=content_types)
@example(  # the success path, at least once
    body=json.dumps({"url": URL_SEEDS[0], "name": "Tiny model"}).encode(),
    content_type="application/json",
)
def test_the_submission_api_answers_json_whatever_the_body(site, body, content_type):
    response = post(site, "/api/submissions", body, content_type)
    data = check_json(response)
    if response.status_code < 300:
        assert response.status_code in (200, 201) and isinstance(data["id"], int)


secrets = st.fixed_dictionaries(
    {"secret": st.one_of(any_text, json_values.filter(lambda v: not isinstance(v, str)))}
)
cancel_bodies = st.one_of(
    secrets.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200), st.just(b"")
)


@settings(FUZZ, max_examples=80)
@given(data=st.data(), body=cancel_bodies, content_type=content_types)
def test_the_cancel_api_answers_json_whatever_the_body(site, data, body, content_type):
    known = list(Submission.objects.values_list("pk", flat=True))
    pk = data.draw(st.one_of(st.sampled_from(known), st.integers(0, 10**30)))
    response = post(site, f"/api/submissions/{pk}/cancel", body, content_type)
    check_json(response)
    assert response.status_code != 200, "cancelled without the secret"


# --- what the fuzzing found ---


@pytest.mark.parametrize(
    ("path", "param"),
    [
        pytest.param(
            path,
            param,
            id=f"{path}?{param}",
        )
        for path, param in [
            ("/leaderboard.json", "profile"),
            ("/leaderboard.csv", "profile"),
            ("/charts/accuracy-vs-params.json", "profile"),
            ("/charts/accuracy-vs-latency.json", "profile"),
            ("/charts/tasks.json", "models"),
            ("/", "profile"),
        ]
    ],
)
def test_a_nul_in_a_query_parameter_is_not_a_server_error(site, path, param):
    response = site.get(f"{path}?{param}=%00")
    assert response.status_code == 400
    if path.endswith(".json"):
        assert "NUL" in check_json(response)["error"]


def test_an_unknown_paper_table_gets_a_json_error(site):
    response = site.get("/paper/no-such-table.json")
    assert response.status_code == 404
    assert "no-such-table" in check_json(response)["error"]


def test_a_query_with_too_many_parameters_gets_a_json_error(site):
    response = site.get("/leaderboard.json?" + "&".join(f"k{i}=1" for i in range(1001)))
    assert response.status_code == 400
    assert check_json(response)["error"]
