"""The app's models, in five modules: results (what is ranked), devices (latency), queue
(submissions and probes), limits (rate limits), board (the precomputed leaderboard)."""

from .board import Board, BoardRow, DataVersion
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
    "Board",
    "BoardRow",
    "DataVersion",
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
