"""Views of submissions: the form, a submission's live page, the queue, cancel."""

import json
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from evaluator import checkpoint

from . import exports, intake, runstate, throttle
from .demo import demo_url
from .forms import SubmissionForm
from .models import Submission
from .progress import outcome, stage
from .redaction import public
from .throttle import client_ip

SESSION_KEY = "my_submissions"


def rate_limited(ip: str) -> str:
    """Count this submission against the client's network, or say why it is refused. Called
    once the form is valid, before any network or database work for it."""
    window = settings.SUBMISSION_RATE_WINDOW_S
    key = f"submit:{throttle.client_network(ip)}"
    wait = throttle.take(key, settings.SUBMISSION_RATE_LIMIT, window)
    if wait:
        return (
            f"Too many submissions from your address: at most "
            f"{settings.SUBMISSION_RATE_LIMIT} every {throttle.wait_label(window)}. "
            f"Try again in {throttle.wait_label(wait)}."
        )
    return ""


def submit(request):
    form = SubmissionForm(request.POST or None)
    status = 200
    if request.method == "POST":
        valid = form.is_valid()
        limited = rate_limited(client_ip(request)) if valid else ""
        if limited:
            form.add_error(None, limited)
            status = 429
        elif valid:
            try:
                source = intake.pin(form.source)
            except checkpoint.CheckpointError as exc:
                form.add_error("url", str(exc))
                status = 400
            else:
                sub, created = intake.create_submission(
                    source,
                    form.cleaned_data["url"],
                    form.cleaned_data["name"],
                    form.cleaned_data["notes"],
                    client_ip=client_ip(request),
                    precisions=form.cleaned_data["precisions"],
                )
                if created:
                    mine = request.session.get(SESSION_KEY, {})
                    mine[str(sub.pk)] = sub.secret
                    request.session[SESSION_KEY] = mine
                else:
                    messages.info(
                        request,
                        "This checkpoint was already submitted: here is "
                        "its evaluation instead of a second one.",
                    )
                return redirect(sub)
        else:
            status = 400
    return render(
        request,
        "leaderboard/submit.html",
        {"form": form, "demo_url": demo_url(request)},
        status=status,
    )


def owns(request, sub: Submission) -> bool:
    secret = request.session.get(SESSION_KEY, {}).get(str(sub.pk))
    return (bool(secret) and constant_time_compare(secret, sub.secret)) or request.user.is_staff


def probe_states(sub: Submission) -> list[dict]:
    """Every latency probe of sub and how it stands: "done" is the evaluation's state, and
    a probe can still fail after it. Errors are public text, like Submission.error."""
    return [
        {"profile": p.profile.slug, "status": p.status, "error": public(p.error) or None}
        for p in sub.probes.all()
    ]


def submission_json_data(sub: Submission, detail: bool = False) -> dict:
    """The submission as the page, its JSON and the API show it; detail adds its stored
    scores and latency (a few queries more: one submission's page, not the queue's)."""
    now = timezone.now()
    elapsed = ((sub.finished or now) - sub.started).total_seconds() if sub.started else None
    progress = sub.progress
    eta = None
    if sub.status == Submission.Status.EVALUATING and elapsed and progress > 0.02:
        eta = round(elapsed * (1 - progress) / progress)
    return {
        "id": sub.pk,
        "name": sub.name,
        "url": sub.url,
        "commit": sub.commit or None,
        "status": sub.status,
        "active": sub.is_active,
        "task_index": sub.task_index,
        "task_count": sub.task_count,
        "precisions": sub.precisions or ["fp32"],
        "task": sub.task_name or None,
        "task_fraction": round(sub.task_fraction, 4),
        "progress": round(progress, 4),
        "stage": stage(sub),
        "elapsed_s": None if elapsed is None else round(elapsed),
        "eta_s": eta,
        "error": sub.error or None,
        "log_tail": sub.log_tail or None,
        "probes_pending": sub.probes_pending,
        # Every latency probe of this submission and how it ended: "done" above is the
        # evaluation's state, and a probe can fail after it.
        "probes": probe_states(sub),
        "data": public(sub.data),  # an operator's data directory: its name, not its path
        "limit": sub.limit,
        "created": sub.created.isoformat(timespec="seconds"),
        "finished": sub.finished.isoformat(timespec="seconds") if sub.finished else None,
        "model_url": sub.entry.get_absolute_url() if sub.entry_id else None,
        "page": sub.get_absolute_url(),
        **({"outcome": outcome(sub)} if detail else {}),
    }


def submission_detail(request, pk):
    sub = get_object_or_404(
        Submission.objects.select_related("entry", "duplicate_of", "run").prefetch_related(
            "probes__profile"
        ),
        pk=pk,
    )
    return render(
        request,
        "leaderboard/submission.html",
        {
            "sub": sub,
            "data": submission_json_data(sub, detail=True),
            "can_cancel": owns(request, sub) and sub.is_active,
        },
    )


def submission_json(request, pk):
    sub = (
        Submission.objects.select_related("entry", "run")
        .prefetch_related("probes__profile")
        .filter(pk=pk)
        .first()
    )
    if sub is None:
        return exports.json_error(f"no submission #{pk}", status=404)
    return JsonResponse(submission_json_data(sub, detail=True))


@require_POST
def submission_cancel(request, pk):
    sub = get_object_or_404(Submission, pk=pk)
    if not owns(request, sub):
        messages.error(request, "Only the submitter can cancel this submission.")
    elif runstate.cancel(sub.pk):
        messages.info(request, "Cancelled. A running evaluation stops within seconds.")
    else:
        messages.info(request, f"Nothing to cancel: the submission is {sub.status}.")
    return redirect(sub)


def queue(request):
    subs = Submission.objects.select_related("entry").prefetch_related("probes__profile")
    status = request.GET.get("status", "")
    if status in Submission.Status.values:
        subs = subs.filter(status=status)
    page = Paginator(subs, 50).get_page(request.GET.get("page"))
    for sub in page:
        sub.probe_states = probe_states(sub)
    return render(
        request,
        "leaderboard/queue.html",
        {"page": page, "statuses": Submission.Status.values, "status": status},
    )


def queue_json(request):
    subs = Submission.objects.select_related("entry").prefetch_related("probes__profile")[:500]
    return exports.stream_json(
        {"count": len(subs)}, "submissions", (submission_json_data(s) for s in subs)
    )


MAX_JSON_BODY = 16 * 1024


def json_post_only(view=None, *, strict_type: bool = False):
    """POST with a JSON body of at most MAX_JSON_BODY bytes, or a JSON error."""
    if view is None:
        return lambda v: json_post_only(v, strict_type=strict_type)

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            response = exports.json_error("use POST with a JSON body", 405)
            response["Allow"] = "POST"
            return response
        too_big = exports.json_error(f"the body is larger than {MAX_JSON_BODY} bytes", 413)
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > MAX_JSON_BODY:
            return too_big
        try:
            body = request.body
        except RequestDataTooBig:
            return too_big
        if len(body) > MAX_JSON_BODY:
            return too_big
        if strict_type and request.content_type != "application/json":
            return exports.json_error("send a JSON body with Content-Type: application/json", 415)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return exports.json_error("the body is not valid JSON")
        return view(request, payload, *args, **kwargs)

    return csrf_exempt(wrapped)  # JSON only: no browser sends it cross-site without CORS


@json_post_only(strict_type=True)
def api_submit(request, payload):
    """POST /api/submissions with {"url", "name", "notes"?, "precisions"?} → 201 (new) or
    200 (the existing submission of the same checkpoint); errors are {"error": ...} with a
    4xx status. precisions: a list (["fp32", "int4"]) or a comma-separated string."""
    if not isinstance(payload, dict):
        return exports.json_error('the body must be a JSON object: {"url": ..., "name": ...}')
    unknown = sorted(set(payload) - {"url", "name", "notes", "precisions"})
    if unknown:
        return exports.json_error(f"unknown fields: {', '.join(map(str, unknown))[:200]}")
    precisions = payload.pop("precisions", [])
    if isinstance(precisions, str):
        precisions = [p.strip() for p in precisions.split(",") if p.strip()]
    if not isinstance(precisions, list) or not all(isinstance(p, str) for p in precisions):
        return exports.json_error('precisions must be a list of strings, e.g. ["fp32", "int4"]')
    if not all(isinstance(v, str) for v in payload.values()):
        return exports.json_error("url, name and notes must be strings")
    form = SubmissionForm({**payload, "precisions": precisions})
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        return exports.json_error(f"{field}: {' '.join(errors)}")
    limited = rate_limited(client_ip(request))
    if limited:
        return exports.json_error(limited, 429)
    try:
        source = intake.pin(form.source)
    except checkpoint.CheckpointError as exc:
        return exports.json_error(f"url: {exc}")
    sub, created = intake.create_submission(
        source,
        form.cleaned_data["url"],
        form.cleaned_data["name"],
        form.cleaned_data["notes"],
        client_ip=client_ip(request),
        precisions=form.cleaned_data["precisions"],
    )
    data = submission_json_data(sub)
    if created:
        data["cancel_secret"] = sub.secret
    return JsonResponse(data, status=201 if created else 200)


@json_post_only
def api_cancel(request, payload, pk):
    """POST /api/submissions/<id>/cancel with {"cancel_secret": ...}, the key and value the
    creation answered with ({"secret": ...}, the older name, still works)."""
    sub = Submission.objects.filter(pk=pk).first()
    if sub is None:
        return exports.json_error(f"no submission #{pk}", 404)
    secret = ""
    if isinstance(payload, dict):
        secret = payload.get("cancel_secret", payload.get("secret", ""))
    # Secrets are URL-safe ASCII: anything else (a lone surrogate, say) cannot match.
    if (
        not isinstance(secret, str)
        or not secret
        or not secret.isascii()
        or not (constant_time_compare(secret, sub.secret))
    ):
        return exports.json_error("wrong or missing secret", 403)
    if not runstate.cancel(sub.pk):
        return exports.json_error(f"nothing to cancel: the submission is {sub.status}", 409)
    return JsonResponse(submission_json_data(Submission.objects.get(pk=pk)))
