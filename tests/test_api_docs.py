"""/api/openapi.json describes the API as it answers, over real HTTP; the cancel endpoint
takes back the key the API hands out."""

import json
import urllib.request

from django.conf import settings
from django.urls import resolve

from evaluator.tasks_spec import HARNESS_TASKS
from leaderboard.models import Submission
from leaderboard.openapi import SUBMISSION_PROPERTIES


def fetch(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def pending(key: str) -> Submission:
    return Submission.objects.create(
        url="https://example.org/tiny.tar.gz",
        source_kind="archive",
        checkpoint_key=f"url:{key}",
        name="Tiny",
        secret=f"secret-{key}",
        tasks=HARNESS_TASKS,
    )


def refs(node) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_openapi_document_matches_the_routes_and_the_answers(live_server, transactional_db):
    status, doc = fetch(live_server.url + "/api/openapi.json")
    assert status == 200 and doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": settings.SITE_URL}]
    for path, operations in doc["paths"].items():
        match = resolve(path.replace("{id}", "1"))  # every documented path is served
        assert match.url_name.startswith("leaderboard-")
        for operation in operations.values():
            assert all(code[0] in "245" for code in operation["responses"])
    for ref in refs(doc):
        name = ref.removeprefix("#/components/schemas/")
        assert name in doc["components"]["schemas"]
    # The documented submission is exactly what the endpoint answers, key for key.
    sub = pending("docs")
    status, answer = fetch(f"{live_server.url}/submissions/{sub.pk}.json")
    schema = doc["components"]["schemas"]["Submission"]
    assert status == 200
    assert set(answer) == set(schema["properties"])
    assert set(schema["required"]) == set(SUBMISSION_PROPERTIES) <= set(answer)
    assert answer["status"] in schema["properties"]["status"]["enum"]


def test_cancel_accepts_the_cancel_secret_it_hands_out_and_the_older_secret(
    live_server, transactional_db, served, settings
):
    # The archive URL is pinned (a real HTTP request to the test server) but never fetched:
    # no worker runs in this test.
    settings.CHECKPOINT_ALLOWED_HOSTS = [f"127.0.0.1:{served.app.port}"]
    status, created = fetch(
        live_server.url + "/api/submissions", {"url": f"{served.url}/tiny.tar.gz", "name": "Api"}
    )
    assert status == 201 and set(created) == set(SUBMISSION_PROPERTIES) | {"cancel_secret"}
    new = Submission.objects.get(pk=created["id"])
    assert created["cancel_secret"] == new.secret
    old, wrong = pending("old"), pending("wrong")
    cancel = live_server.url + "/api/submissions/{}/cancel"
    assert fetch(cancel.format(new.pk), {"cancel_secret": new.secret})[0] == 200
    assert fetch(cancel.format(old.pk), {"secret": old.secret})[0] == 200
    status, body = fetch(cancel.format(wrong.pk), {"cancel_secret": "nope"})
    assert status == 403 and body == {"error": "wrong or missing secret"}
    statuses = dict(Submission.objects.values_list("pk", "status"))
    assert statuses == {new.pk: "cancelled", old.pk: "cancelled", wrong.pk: "pending"}
