"""What a submitter may see of a run's log and error: no traceback and no server path.

A traceback names the server's files, its Python and its layout; an exception's message can
quote a path under WORK_DIR. The public fields (Submission.error, .log_tail: the submission
page and its JSON) get the text with both taken out; operators have the full text in the
server log and in Submission.operator_log (admin only)."""

from __future__ import annotations

import logging
import re

_TRACEBACK_START = "Traceback (most recent call last):"
# A traceback's frame lines ('  File "...", line N, in f') and the source lines under them.
_FRAME = re.compile(r"^\s+(File \"|\S)")
# An absolute path: a "/" that does not continue a word, a URL's host or another path,
# then at least one more segment ("/srv/x", "'/tmp/a/b.py'"). URLs keep their paths.
_PATH = re.compile(r"(?<![\w:/.~-])/(?:[\w.@+~-]+/)*([\w.@+~-]+)")


def public(text: str) -> str:
    """text without traceback frames and with every absolute path cut to its last part."""
    lines, in_traceback = [], False
    for line in text.splitlines():
        if line.strip().startswith(_TRACEBACK_START):
            in_traceback = True
            continue
        if in_traceback and (_FRAME.match(line) or not line.strip()):
            continue
        in_traceback = False  # the exception's own line ends the traceback: kept
        lines.append(line)
    return _PATH.sub(lambda m: f"…/{m.group(1)}", "\n".join(lines))


# Warnings that every run prints and that say nothing about the submission: torchao's C++
# extensions do not match this torch build (it falls back to Python kernels).
_HARMLESS = [
    ("torchao", re.compile(r"^(Failed to load .*_C|Skipping import of cpp extensions)")),
]


def harmless(record: logging.LogRecord) -> bool:
    """Whether record is known noise, left out of the submitter's log tail."""
    message = record.getMessage()
    return any(
        record.name.startswith(logger) and pattern.match(message) for logger, pattern in _HARMLESS
    )
