"""The quantization ladder on the site: a submission evaluated at each precision, the
variants stored with their delta against fp32, reused by a second submission, shown on the
model page, /quantization/ and its twins, and kept off the leaderboard unless chosen."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tarfile

import pytest
import torch
from django.core.management import CommandError, call_command
from django.test import override_settings

from evaluator.tinymodel import TinySpec, build_tiny_model
from leaderboard import intake, pipeline
from leaderboard.models import DeviceProfile, Entry, EvaluationRun, LatencyResult, Submission
from tests.responses import body as text


def body(response) -> dict:
    return json.loads(text(response))


pytest.importorskip("torchao", reason="torchao (requirements.txt) runs the int8/int4 recipes")

LADDER = ["fp32", "bf16", "int8", "int4"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, served):
    root = tmp_path_factory.mktemp("site")
    # Speed only: a 64-wide model runs many times faster on one thread than on several.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with override_settings(
        MEDIA_ROOT=str(root / "media"),
        WORK_DIR=root / "work",
        CHECKPOINT_ALLOWED_HOSTS=[f"127.0.0.1:{served.app.port}"],
        EVAL_DATA="sample",
    ):
        yield
    torch.set_num_threads(threads)


def submit(url: str, precisions: list[str], name: str = "Tiny ladder"):
    source = intake.resolve_source(url)
    return intake.create_submission(source, url, name, enqueue=False, precisions=precisions)


def evaluated(url: str, precisions: list[str], name: str = "Tiny ladder") -> Submission:
    sub, created = submit(url, precisions, name)
    assert created
    # Probing when a latency profile is active: the evaluation is done either way.
    status = pipeline.run(sub.pk)
    assert status in ("done", "probing"), Submission.objects.get(pk=sub.pk).error
    return Submission.objects.get(pk=sub.pk)


@pytest.fixture(scope="module")
def laddered(django_db_setup, django_db_blocker, site, served):
    """One submission evaluated at the four precisions, shared by the tests that only read
    it (a ladder is four evaluations); removed afterwards."""
    with django_db_blocker.unblock():
        # No probe to wait for: the submission ends done, so that a twin can link to it.
        active = list(DeviceProfile.objects.filter(active=True).values_list("pk", flat=True))
        DeviceProfile.objects.update(active=False)
        try:
            sub = evaluated(f"{served.url}/tiny.tar.gz", LADDER)
            yield sub
            Submission.objects.filter(entry=sub.entry).delete()
            Entry.objects.filter(pk=sub.entry_id).delete()
        finally:
            DeviceProfile.objects.filter(pk__in=active).update(active=True)


def served_model(served, name: str, spec: TinySpec) -> str:
    """The URL of another tiny checkpoint (its own content, so no other test's twin)."""
    model = build_tiny_model(served.root / name, spec)
    with tarfile.open(served.root / f"{name}.tar.gz", "w:gz") as tar:
        tar.add(model, arcname=name)
    return f"{served.url}/{name}.tar.gz"


def test_each_precision_is_stored_as_a_variant_of_the_fp32_run(db, laddered):
    reference = laddered.run
    assert reference.precision == "fp32" and laddered.precisions == LADDER
    variants = {v.precision: v for v in reference.variants.all()}
    assert set(variants) == {"bf16", "int8", "int4"}
    assert all(v.status == "done" and v.scores.count() == reference.scores.count()
               for v in variants.values())  # fmt: skip
    assert all(v.entry_id == reference.entry_id and v.avg is not None for v in variants.values())
    # Sizes measured from the tensors each variant ran with.
    full = reference.weights_bytes
    assert variants["bf16"].weights_bytes == full // 2
    assert variants["int4"].weights_bytes_packed < variants["int8"].weights_bytes < full / 2.5
    assert variants["int4"].provenance["precision"]["scheme"].startswith("ExecuTorch 8da4w")


def test_the_model_json_carries_each_variant_with_its_paired_delta(client, db, laddered):
    data = body(client.get(f"/models/{laddered.entry.slug}.json"))
    variants = data["variants"]
    assert [v["precision"] for v in variants] == LADDER
    assert variants[0]["delta_vs_reference"] is None  # the reference itself
    for v in variants[1:]:
        assert set(v) >= {"precision", "scheme", "status", "reason", "weights_bytes", "avg",
                          "scores", "delta_vs_reference", "latency"}  # fmt: skip
        delta = v["delta_vs_reference"]
        avg = delta["avg"]
        assert avg["paired"] is True and avg["ci95"][0] <= avg["delta"] <= avg["ci95"][1]
        assert 0 <= avg["p_value"] <= 1
        assert len(delta["tasks"]) == 8
        assert all(t["paired"] and t["n_paired"] == v["scores"][k]["n"]
                   for k, t in delta["tasks"].items())  # fmt: skip
        # The average's delta is the mean of the tasks' (in percentage points).
        mean = sum(t["delta"] for t in delta["tasks"].values()) / 8
        assert avg["delta"] == pytest.approx(mean, abs=0.01)
        assert v["avg"] - variants[0]["avg"] == pytest.approx(avg["delta"], abs=0.01)
    assert {r["precision"] for r in data["runs"]} == set(LADDER)


def test_deltas_are_kept_when_stored_and_pages_read_no_sample_file(
    client, db, laddered, monkeypatch
):
    from leaderboard import compare, quantization

    variants = list(laddered.run.variants.order_by("precision"))
    assert all(v.delta_vs_reference["avg"]["paired"] for v in variants)  # kept by the worker
    fresh = {r["precision"]: r["delta_vs_reference"]
             for r in quantization.ladder(laddered.run)[1:]}  # fmt: skip

    def no_reading(self, key):
        raise AssertionError(f"a page read the per-sample file of {key}")

    monkeypatch.setattr(compare.Side, "samples", no_reading)
    shown = body(client.get(f"/models/{laddered.entry.slug}.json"))["variants"][1:]
    assert {v["precision"]: v["delta_vs_reference"] for v in shown} == fresh
    assert {v.precision: v.delta_vs_reference for v in variants} == fresh
    rows = body(client.get("/quantization.json"))["rows"]
    assert {r["precision"]: r["delta"] for r in rows if r["slug"] == laddered.entry.slug} == {
        p: d["avg"]["delta"] for p, d in fresh.items()
    }
    # A row kept before this column existed is computed on first sight, then kept.
    type(variants[0]).objects.filter(pk=variants[0].pk).update(delta_vs_reference=None)
    monkeypatch.undo()
    body(client.get(f"/models/{laddered.entry.slug}.json"))
    variants[0].refresh_from_db()
    assert variants[0].delta_vs_reference == fresh[variants[0].precision]


def test_a_rung_measured_in_another_dtype_says_so(client, db, laddered):
    """bf16 lowered to ExecuTorch runs in float16 (tests/test_quant.py measures it); the
    ladder, its JSON and /quantization/'s twins say so beside that figure."""
    from evaluator import quant

    et = DeviceProfile.objects.create(slug="et-cpu", name="ET CPU", runtime="executorch")
    scheme = f"float16 weights and compute ({quant.EXECUTORCH_NO_BF16})"
    for precision, env in (("fp32", {}), ("bf16", {"export": {"precision": {"scheme": scheme}}})):
        LatencyResult.objects.create(
            entry=laddered.entry, profile=et, kind="measured", precision=precision,
            execute_ms=5.0, environment=env,
        )  # fmt: skip
    try:
        variants = body(client.get(f"/models/{laddered.entry.slug}.json"))["variants"]
        ran = {v["precision"]: v["latency"].get("et-cpu", {}).get("ran_as") for v in variants}
        assert ran == {"fp32": None, "bf16": scheme, "int8": None, "int4": None}
        assert text(client.get(f"/models/{laddered.entry.slug}/")).count(">as fp16<") == 1
        rows = list(csv.DictReader(io.StringIO(text(client.get("/quantization.csv")))))
        mine = [r for r in rows if r["slug"] == laddered.entry.slug and r["profile"] == "et-cpu"]
        assert {r["precision"]: r["latency_ran_as"] for r in mine} == {
            "bf16": scheme,
            "int8": "",
            "int4": "",
        }
    finally:
        LatencyResult.objects.filter(profile=et).delete()
        et.delete()


def test_the_leaderboard_ranks_the_reference_only_unless_a_precision_is_chosen(
    client, db, laddered
):
    runs = {r.precision: r for r in EvaluationRun.objects.filter(entry=laddered.entry)}
    default = body(client.get("/leaderboard.json?benchmark=sample"))
    mine = [r for r in default["rows"] if r["slug"] == laddered.entry.slug]
    assert len(mine) == 1 and default["filters"]["precision"] == "fp32"
    assert mine[0]["avg"]["value"] == pytest.approx(100 * runs["fp32"].avg, abs=0.01)
    chosen = body(client.get("/leaderboard.json?benchmark=sample&precision=int4"))
    assert [r["slug"] for r in chosen["rows"]] == [laddered.entry.slug]
    assert chosen["rows"][0]["avg"]["value"] == pytest.approx(100 * runs["int4"].avg, abs=0.01)
    # /compare/ and the accuracy beside latency stay on the reference too.
    assert (
        body(client.get("/leaderboard.json?benchmark=sample&precision=<b>"))["filters"]["precision"]
        == "fp32"
    )


def test_a_second_identical_submission_reuses_the_variants(db, laddered, served):
    count = EvaluationRun.objects.count()
    again, created = submit(f"{served.url}/tiny.tar.gz", LADDER)
    assert not created and again.pk == laddered.pk
    # The same content under another URL: found by its hash after download, and linked.
    shutil.copy(served.root / "tiny.tar.gz", served.root / "tiny-copy.tar.gz")
    twin = evaluated(f"{served.url}/tiny-copy.tar.gz", LADDER, name="Tiny copy")
    assert twin.duplicate_of_id == laddered.pk and twin.entry_id == laddered.entry_id
    assert EvaluationRun.objects.count() == count


def test_a_later_submission_evaluates_only_the_precision_missing(db, site, served):
    DeviceProfile.objects.update(active=False)  # done, not probing: a twin to link to
    url = served_model(served, "later", TinySpec(seed=7))
    first = evaluated(url, ["fp32", "int8"])
    assert [v.precision for v in first.run.variants.all()] == ["int8"]
    second = evaluated(url, ["int4"])  # fp32 is implied
    assert second.pk != first.pk and second.duplicate_of_id == first.pk
    assert sorted(v.precision for v in first.run.variants.all()) == ["int4", "int8"]
    assert EvaluationRun.objects.filter(entry=first.entry).count() == 3


def test_a_variant_the_recipe_cannot_make_is_refused_with_its_reason(client, db, site, served):
    url = served_model(served, "odd", TinySpec(hidden=48, heads=4, ffn=96, seed=5))
    sub = evaluated(url, ["int8", "int4"], name="Odd width")
    refused = sub.run.variants.get(precision="int4")
    assert refused.status == "refused" and "divisible by 32" in refused.reason
    assert refused.scores.count() == 0 and refused.weights_bytes is None
    assert sub.run.variants.get(precision="int8").status == "done"
    variants = body(client.get(f"/models/{sub.entry.slug}.json"))["variants"]
    int4 = next(v for v in variants if v["precision"] == "int4")
    assert int4["status"] == "refused" and int4["delta_vs_reference"] is None
    page = client.get(f"/models/{sub.entry.slug}/").content.decode()
    assert "divisible by 32" in page


def test_the_quantization_page_and_its_twins_agree(client, db, laddered):
    profile = DeviceProfile.objects.create(slug="test-cpu", name="Test CPU", runtime="eager")
    for precision, ms in (("fp32", 8.0), ("int4", 2.0)):
        LatencyResult.objects.create(
            entry=laddered.entry, profile=profile, kind="measured", precision=precision,
            execute_ms=ms, peak_rss_mb=100.0,
        )  # fmt: skip
    data = body(client.get("/quantization.json"))
    rows = {(r["precision"], r["profile"]): r for r in data["rows"]}
    assert rows[("int4", "test-cpu")]["speedup"] == 4.0
    assert rows[("int4", "test-cpu")]["size_reduction"] > 3
    assert rows[("bf16", "test-cpu")]["speedup"] is None  # bf16 was not probed
    text_csv = text(client.get("/quantization.csv"))
    table = list(csv.DictReader(io.StringIO(text_csv)))
    assert list(table[0]) == data["columns"] and len(table) == len(data["rows"])
    page = client.get("/quantization/").content.decode()
    assert "Tiny ladder" in page and 'id="chart-quantization"' in page
    # The paper's and compare's runs stay the reference.
    assert "int4" not in json.dumps(body(client.get("/latency.json"))["rows"])


def test_the_api_form_and_command_take_precisions(client, db, site, served):
    url = f"{served.url}/only-queued.tar.gz"  # nothing fetches it: no message is sent
    bad = client.post("/api/submissions", {"url": url, "name": "x", "precisions": ["int3"]},
                      content_type="application/json")  # fmt: skip
    assert bad.status_code == 400 and "int3" in bad.json()["error"]
    ok = client.post("/api/submissions", {"url": url, "name": "Via API", "precisions": "int4"},
                     content_type="application/json")  # fmt: skip
    assert ok.status_code == 201 and ok.json()["precisions"] == ["fp32", "int4"]
    queued = Submission.objects.get(pk=ok.json()["id"])
    assert queued.precisions == ["fp32", "int4"]
    queued.delete()  # else the form's post would link to it (one live run per checkpoint)
    form = client.post("/submit/", {"url": url, "name": "Via form", "precisions": ["bf16"]})
    assert form.status_code == 302
    assert Submission.objects.get(name="Via form").precisions == ["fp32", "bf16"]
    with pytest.raises(CommandError, match="unknown precision int3"):
        call_command("evaluate", url, "--precisions", "fp32,int3")


def test_each_variant_is_probed_for_latency_on_the_profile(client, db, site, served, settings):
    from leaderboard import latency

    settings.PROBE_BUDGET_S = 1  # the figures' stability is not what is tested here
    DeviceProfile.objects.update(active=False)
    board = DeviceProfile.objects.create(
        slug="test-board", name="Test board", threads=1, runtime="eager", dtype="float32",
        bandwidth_gb_s=10.0,  # known: the test does not wait for it to be measured
    )  # fmt: skip
    sub = evaluated(served_model(served, "probed", TinySpec(seed=11)), ["int4"])
    job = sub.probes.get(profile=board)  # queued as the evaluation ended
    assert latency.run_probe(job.pk) == "ok"
    rows = {r.precision: r for r in LatencyResult.objects.filter(entry=sub.entry)}
    assert set(rows) == {"fp32", "int4"}
    assert rows["int4"].environment["precision"]["precision"] == "int4"
    # The int4 file is its weights packed as exported: under a third of the checkpoint's.
    assert rows["int4"].file_size_mb < rows["fp32"].file_size_mb / 3
    ladder = body(client.get(f"/models/{sub.entry.slug}.json"))["variants"]
    assert ladder[1]["latency"]["test-board"]["execute_ms"] == rows["int4"].execute_ms
    # Pages other than the ladder show the reference's figures only.
    page = body(client.get(f"/models/{sub.entry.slug}.json"))["latency"]
    assert [r["execute_ms"] for r in page] == [rows["fp32"].execute_ms]


def test_the_admin_lists_runs_by_precision(admin_client, laddered):
    page = admin_client.get("/admin/leaderboard/evaluationrun/?precision__exact=int4")
    assert page.status_code == 200 and "Tiny ladder" in page.content.decode()
    run = laddered.run.variants.get(precision="int4")
    assert admin_client.get(f"/admin/leaderboard/evaluationrun/{run.pk}/change/").status_code == 200
