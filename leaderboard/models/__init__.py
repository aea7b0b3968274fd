"""The app's models, in three modules: results (what is ranked), devices (latency), queue
(submissions and probes)."""

from .devices import DeviceProfile, LatencyResult
from .queue import Probe, Submission, SubmissionQuerySet
from .results import (
    MOBILELLM_SUITE,
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
    "Probe",
    "RunQuerySet",
    "Submission",
    "SubmissionQuerySet",
    "Suite",
    "Task",
    "TaskScore",
    "provenance_label",
    "size_class_for",
]
