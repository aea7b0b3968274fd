"""The app's models, in four modules: results (what is ranked), devices (latency), queue
(submissions and probes), limits (rate limits)."""

from .devices import DeviceProfile, LatencyResult
from .limits import Throttle
from .queue import Probe, Submission, SubmissionQuerySet
from .results import (
    MOBILELLM_SUITE,
    REFERENCE_PRECISION,
    Entry,
    EvaluationRun,
    PaperRow,
    RunQuerySet,
    Suite,
    Task,
    TaskScore,
    provenance_label,
    size_class_for,
)

__all__ = [
    "MOBILELLM_SUITE",
    "DeviceProfile",
    "Entry",
    "EvaluationRun",
    "LatencyResult",
    "PaperRow",
    "REFERENCE_PRECISION",
    "Probe",
    "RunQuerySet",
    "Submission",
    "SubmissionQuerySet",
    "Suite",
    "Task",
    "TaskScore",
    "Throttle",
    "provenance_label",
    "size_class_for",
]
