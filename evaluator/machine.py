"""What machine this is, for the provenance of every measured number."""

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform()}
