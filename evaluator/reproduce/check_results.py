"""Helper of reproduce.sh (standard library only, so it runs wherever lm-eval does).

prepare BUNDLE OUT: write the bundle's task yamls into OUT with `include` pointing at the
installed lm-eval's stock task files (warning when their sha256 differs from the run's) and
the data files at the bundle's copies.
compare RESULTS OUT: compare every metric of the bundle's results.json with the
results_*.json lm-eval wrote under OUT; print OK or the differences (exit 1).
"""

import hashlib
import json
import os
import sys
from pathlib import Path


def prepare(bundle: Path, out: Path) -> None:
    import lm_eval

    stock_root = Path(lm_eval.__file__).resolve().parent / "tasks"
    manifest = json.loads((bundle / "tasks" / "manifest.json").read_text())
    for rel, digest in manifest["stock_files"].items():
        path = stock_root / rel
        now = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
        if now != digest:
            print(f"warning: stock lm-eval file {rel} differs from the run's ({now[:12]})")
    out.mkdir(parents=True, exist_ok=True)
    for name in manifest["tasks"]:
        text = (bundle / "tasks" / f"{name}.yaml").read_text()
        text = text.replace(manifest["stock_placeholder"], str(stock_root))
        text = text.replace(manifest["data_placeholder"], str(bundle / "data"))
        (out / f"{name}.yaml").write_text(text)


def _metrics(results: dict) -> dict:
    out = {}
    for task, values in results.items():
        for key, value in values.items():
            if "," in key and isinstance(value, (int, float)) and "_stderr," not in key:
                out[(task, key)] = float(value)
    return out


def compare(results_path: Path, out: Path) -> int:
    tolerance = float(os.environ.get("TOLERANCE", "1e-4"))
    expected = _metrics(json.loads(results_path.read_text())["results"])
    found = sorted(out.rglob("results_*.json"))
    if not found:
        print(f"lm-eval wrote no results under {out}")
        return 1
    got = _metrics(json.loads(found[-1].read_text())["results"])
    problems = []
    for key, value in sorted(expected.items()):
        if key not in got:
            problems.append(f"{key[0]} {key[1]}: missing from the re-run")
        elif abs(got[key] - value) > tolerance:
            problems.append(f"{key[0]} {key[1]}: bundle {value:.6f}, re-run {got[key]:.6f}")
    if problems:
        print("DIFFERENT:")
        print("\n".join(problems))
        return 1
    print(f"OK ({len(expected)} metrics within {tolerance})")
    return 0


if __name__ == "__main__":
    command, first, second = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if command == "prepare":
        prepare(first, second)
        sys.exit(0)
    sys.exit(compare(first, second))
