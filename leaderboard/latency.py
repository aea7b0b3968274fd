"""Latency probes of evaluated models on device profiles (DESIGN §5).

A probe runs on the worker of the profile's own queue (`latency.<profile>`), which may be
another machine. It reads the checkpoint the evaluation verified when that machine keeps it
(leaderboard/checkpoints.py), else fetches it itself, through the same checks as evaluation,
and refuses it if the content differs from what was evaluated. Its state is a Probe row,
changed only through runstate.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

from django.conf import settings

from evaluator import checkpoint, hostlock
from evaluator import latency as probe

from . import checkpoints, pipeline, runstate
from .models import REFERENCE_PRECISION, DeviceProfile, Entry, LatencyResult, Probe, Submission

log = logging.getLogger(__name__)
DEFAULT_PROFILE = "local-cpu"


def settings_for(profile: DeviceProfile) -> probe.ProbeSettings:
    return probe.ProbeSettings(
        # Not os.cpu_count(): a worker pinned to a CPU set or a container's quota gets fewer.
        threads=profile.threads or hostlock.cores_available(),
        dtype=profile.dtype,
        runtime=profile.runtime,
        budget_s=settings.PROBE_BUDGET_S,
        export_timeout_s=settings.PROBE_EXPORT_TIMEOUT_S,
    )


def bandwidth(profile: DeviceProfile) -> float:
    """Memory bandwidth of this machine, measured once per profile and kept."""
    if profile.bandwidth_gb_s is None:
        profile.bandwidth_gb_s = probe.measure_bandwidth(threads=settings_for(profile).threads)
        DeviceProfile.objects.filter(pk=profile.pk).update(bandwidth_gb_s=profile.bandwidth_gb_s)
    return profile.bandwidth_gb_s


def source_submission(entry: Entry, submission_id: int | None) -> Submission:
    subs = Submission.objects.filter(entry=entry, run__isnull=False)
    if submission_id:
        subs = subs.filter(pk=submission_id)
    sub = subs.order_by("-created").first()
    if sub is None:
        raise checkpoint.CheckpointError(f"{entry.name} has no evaluated checkpoint to probe")
    return sub


def fetch_for_probe(entry: Entry, sub: Submission, workdir: Path) -> Path:
    """The evaluated checkpoint at workdir/model: from the cache when this machine keeps it
    (no download, so no allow-list needed again), else downloaded and then kept."""
    dest = workdir / "model"
    if entry.content_sha256 and checkpoints.checkout(entry.content_sha256, dest):
        return dest
    fetched = pipeline.fetch_checkpoint(sub, dest)
    if entry.content_sha256 and fetched.sha256 != entry.content_sha256:
        raise checkpoint.CheckpointError(
            "the checkpoint changed since it was evaluated (content hash differs); submit it again"
        )
    if fetched.source_format == "gguf":  # its hash is the file's, not the converted folder's
        return fetched.path
    # Kept for the next probe of this model here (a re-probe, another profile).
    if checkpoints.keep(fetched.path, fetched.sha256):
        return checkpoints.checkout(fetched.sha256, dest) or _fetch_again(sub, dest)
    return fetched.path


def _fetch_again(sub: Submission, dest: Path) -> Path:
    # Pruned between keep and checkout (a full cache): rare, so simply download again.
    shutil.rmtree(dest, ignore_errors=True)
    return pipeline.fetch_checkpoint(sub, dest).path


def run_probe(probe_id: int) -> str:
    """Measure probe probe_id if it can be claimed; "ok", the error, or why it was skipped."""
    if not runstate.claim_probe(probe_id):
        return f"probe #{probe_id} is not pending"
    job = Probe.objects.select_related("entry", "profile").get(pk=probe_id)
    entry, profile = job.entry, job.profile
    workdir = Path(settings.WORK_DIR) / f"probe-{probe_id}-{job.attempts}"
    shutil.rmtree(workdir, ignore_errors=True)
    error = ""
    try:
        sub = source_submission(entry, job.submission_id)
        model_dir = fetch_for_probe(entry, sub, workdir)
        probe_settings = settings_for(profile)

        def tick():
            runstate.probe_heartbeat(probe_id)

        result = measure(model_dir, probe_settings, profile, tick, workdir)
        # Under its run's precision: a GGUF file's type (Q4_1), else the fp32 reference.
        rung = sub.run.precision
        runstate.with_db_retry(store, entry, profile, result, probe_settings.prompt_tokens, rung)
        probe_variants(entry, profile, sub, model_dir, probe_settings, tick, workdir)
    except (probe.ProbeError, checkpoint.CheckpointError, OSError, ValueError) as exc:
        error = f"latency probe on {profile.name} failed: {exc}"[:2000]
        log.warning("%s (entry %s)", error, entry.pk)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    runstate.with_db_retry(runstate.finish_probe, probe_id, error)
    return error or "ok"


def measure(
    model_dir: Path, wanted: probe.ProbeSettings, profile: DeviceProfile, tick, workdir: Path
):
    """One probe under the host lock (no evaluation shares the cores while it runs, the
    bandwidth measurement included), with the host's load before and after kept.

    An ExecuTorch program is exported and lowered first, under the lock an evaluation takes:
    that step is untimed and takes minutes (bench/README.md), so evaluations go on beside it
    and only another probe's measurement waits for it."""
    export_dir = workdir / f"pte-{wanted.precision}"
    if wanted.runtime == "executorch":
        with hostlock.hold(settings.HOST_LOCK_FILE, tick=tick):
            probe.prepare_executorch(model_dir, wanted, export_dir, tick=tick)
    with hostlock.hold(settings.HOST_LOCK_FILE, tick=tick, probe=True) as waited_s:
        before = hostlock.load_average()
        result = probe.probe(
            model_dir, wanted, bandwidth_gb_s=bandwidth(profile), export_dir=export_dir, tick=tick
        )
        after = hostlock.load_average()
    result.environment.update(conditions(before, after, wanted.threads, waited_s))
    return result


def probe_variants(
    entry, profile, sub, model_dir, probe_settings, tick, workdir: Path
) -> dict[str, str]:
    """Each quantized variant the evaluation scored, probed as the reference was (same
    runtime, threads and budget; the recipe applied as part of init) and stored under its
    precision. A variant that cannot be measured on this runtime (int8 weight-only has no
    XNNPACK kernel) leaves the reference's figures standing: its reason is kept with them."""
    variants = sub.run.variants.filter(status="done").values_list("precision", flat=True)
    skipped = {}
    for precision in variants:
        wanted = dataclasses.replace(probe_settings, precision=precision)
        try:
            result = measure(model_dir, wanted, profile, tick, workdir)
        except (probe.ProbeError, OSError, ValueError) as exc:
            skipped[precision] = str(exc)[:500]
            log.warning("latency of %s at %s on %s: %s", entry.pk, precision, profile.slug, exc)
            continue
        runstate.with_db_retry(store, entry, profile, result, wanted.prompt_tokens, precision)
    if skipped:
        reference = LatencyResult.objects.filter(
            entry=entry, profile=profile, precision=REFERENCE_PRECISION
        )
        for row in reference:
            row.environment["variants_not_measured"] = skipped
            row.save(update_fields=["environment"])
    return skipped


def conditions(before: float | None, after: float | None, threads: int, waited_s: float) -> dict:
    """What else ran on the host while the probe measured, kept with its figures."""
    cores = os.cpu_count() or 1  # the load average is the whole host's
    return {
        "load_before": before,
        "load_after": after,
        "under_load": hostlock.under_load(before, after, threads, cores),
        "host_lock": settings.HOST_LOCK_FILE or None,
        "host_lock_wait_s": round(waited_s, 1),
        "cores_available": hostlock.cores_available(),
    }


def store(
    entry: Entry,
    profile: DeviceProfile,
    result: probe.ProbeResult,
    prompt_tokens: int,
    precision: str = REFERENCE_PRECISION,
) -> LatencyResult:
    fields = {
        "kind": "measured",
        "citation": "measured by this site",
        "load_ms": result.load_ms,
        "init_ms": result.init_ms,
        "execute_ms": result.decode_ms_p50,
        "first_forward_ms": result.first_forward_ms,
        "prefill_ms": result.prefill_ms,
        "prefill_tokens": prompt_tokens,
        "decode_ms_p50": result.decode_ms_p50,
        "decode_ms_p90": result.decode_ms_p90,
        "decode_ms_min": result.decode_ms_min,
        "decode_n": result.decode_n,
        "decode_cv": result.decode_cv,
        "decode_rel_ci": result.decode_rel_ci,
        "decode_stable": result.stable,
        "decode_tok_s": result.decode_tok_s,
        "peak_rss_mb": result.peak_rss_mb,
        "file_size_mb": result.file_size_mb,
        "roofline_frac": result.roofline_frac,
        "samples": result.samples,
        "environment": {
            **result.environment,
            "bandwidth_gb_s": result.bandwidth_gb_s,
            "bytes_per_token": result.bytes_per_token,
        },
        "layers_label": str(entry.layers or ""),
    }
    # One current measurement per model and profile (a unique constraint): a re-probe
    # replaces it.
    obj, _ = LatencyResult.objects.update_or_create(
        entry=entry, profile=profile, precision=precision, defaults=fields
    )
    return obj
