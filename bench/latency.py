"""The MobileLLM paper's Table 7 (Load / Init / Execute) on this machine.

Three MobileLLM-125M-shaped random-weight models are built into a temporary directory:
30 layers, 2x30 with immediate block-wise sharing (MobileLLM-LS) and 60 distinct layers.
Each is measured by the latency probe (a fresh subprocess each) with the same settings, in
interleaved rounds, and the LS/30 and 60/30 ratios are printed beside the paper's (iPhone 13,
ExecuTorch, MPS). Execute is our decode time per token at context depth 128 (p50). Takes
a few minutes on a quiet machine.

With `--runtime executorch` (needs `make install-executorch`) each model is exported once to
an ExecuTorch program lowered to XNNPACK (untimed, several minutes for the 60-layer model;
kept beside the model, reused by later rounds and by `--keep`), and the probe runs that.

    python bench/latency.py [--threads N] [--rounds K] [--repeats R] [--runtime eager|executorch]
                            [--json OUT] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The project root, not bench/: bench/queue.py would shadow the standard library's queue.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from evaluator.latency import (  # noqa: E402
    RUNTIMES,
    ProbeResult,
    ProbeSettings,
    measure_bandwidth,
    probe,
)
from evaluator.tinymodel import MOBILELLM_125M, build_tiny_model  # noqa: E402

PAPER_CSV = [
    ROOT / "leaderboard" / "data" / "mobilellm_latency_reported.csv",
    ROOT.parent / "shared" / "reference" / "mobilellm_latency_reported.csv",
]
# Our model name -> (directory, spec, the paper's row for it).
MODELS = {
    "30 layers": ("l30", MOBILELLM_125M, "MobileLLM-125M"),
    "2x30 shared (LS)": ("ls2x30", replace(MOBILELLM_125M, share_repeats=2), "MobileLLM-LS-125M"),
    "60 layers": ("l60", replace(MOBILELLM_125M, layers=60), "MobileLLM-60-layer-non-shared"),
}
RATIOS = {"LS / 30": "2x30 shared (LS)", "60 / 30": "60 layers"}
# Ratio columns: the paper's three, plus the fastest decode step, which on a shared machine
# is the one least disturbed by other processes.
FIGURES = {
    "load": lambda r: r.load_ms,
    "init": lambda r: r.init_ms,
    "execute": lambda r: r.decode_ms_p50,
    "execute_min": lambda r: min(r.samples["decode_ms"]),
}
PAPER_FIGURES = ("load", "init", "execute")


def paper_rows() -> dict[str, dict[str, float]]:
    path = next((p for p in PAPER_CSV if p.is_file()), None)
    if path is None:
        raise SystemExit(f"paper figures not found in {[str(p) for p in PAPER_CSV]}")
    with path.open(newline="", encoding="utf-8") as fh:
        return {
            row["model"]: {k: float(row[f"{k}_ms"]) for k in PAPER_FIGURES}
            for row in csv.DictReader(fh)
        }


def run(workdir: Path, settings: ProbeSettings, rounds: int) -> dict:
    bandwidth = measure_bandwidth(settings.threads)
    print(f"memory bandwidth: {bandwidth:.1f} GB/s ({settings.threads} threads)", flush=True)
    dirs = {}
    for name, (slug, spec, _) in MODELS.items():
        dirs[name] = workdir / slug
        if not (dirs[name] / "config.json").is_file():
            print(f"building {name} ...", flush=True)
            build_tiny_model(dirs[name], spec)
    # Rounds interleave the models so that load from other processes on a shared machine
    # falls on all three alike, and each round gives a paired ratio.
    results: dict[str, list[ProbeResult]] = {name: [] for name in MODELS}
    for i in range(rounds):
        for name, model_dir in dirs.items():
            print(f"round {i + 1}/{rounds}: probing {name} ...", flush=True)
            # ExecuTorch: the program is exported on the first round, reused after.
            export_dir = model_dir.with_name(model_dir.name + "-pte")
            if settings.runtime == "eager":
                export_dir = None
            results[name].append(
                probe(model_dir, settings, bandwidth_gb_s=bandwidth, export_dir=export_dir)
            )
    return {"bandwidth_gb_s": bandwidth, "results": results}


def summary(runs: list[ProbeResult]) -> dict[str, float]:
    """Median over rounds of every scalar figure, and the fastest decode step of all."""
    figures = [k for k, v in runs[0].to_dict().items() if isinstance(v, int | float)]
    medians = {k: statistics.median(getattr(r, k) for r in runs) for k in figures}
    return {**medians, "decode_ms_min": min(FIGURES["execute_min"](r) for r in runs)}


def ratios(results: dict[str, list[ProbeResult]], paper: dict) -> dict:
    base = MODELS["30 layers"][2]
    table = {}
    for label, name in RATIOS.items():
        row = MODELS[name][2]
        table[label] = {}
        for fig, get in FIGURES.items():
            paired = [
                get(r) / get(b) for r, b in zip(results[name], results["30 layers"], strict=True)
            ]
            paper_fig = fig.removesuffix("_min")
            table[label][fig] = {
                "ours": statistics.median(paired),
                "ours_rounds": paired,
                "paper": paper[row][paper_fig] / paper[base][paper_fig],
            }
    return table


def report(measured: dict, paper: dict, settings: ProbeSettings) -> dict:
    results = measured["results"]
    env = results["30 layers"][0].environment
    rounds = len(results["30 layers"])
    print(
        f"\n{env['cpu_model']}, {env['threads']} threads, torch {env['torch']}, "
        f"transformers {env['transformers']}, {settings.dtype}, {env['runtime']}; "
        f"prefill {settings.prompt_tokens} tokens, decode at depth {settings.decode_depth}; "
        f"medians of {rounds} rounds\n"
    )
    print(
        f"{'model':<18} {'load ms':>8} {'init ms':>8} {'exec ms':>8} {'p90 ms':>8} {'min ms':>8} "
        f"{'prefill':>8} {'tok/s':>6} {'RSS MB':>7} {'file MB':>7} {'roofline':>8}"
    )
    medians = {name: summary(runs) for name, runs in results.items()}
    for name, m in medians.items():
        print(
            f"{name:<18} {m['load_ms']:8.1f} {m['init_ms']:8.1f} {m['decode_ms_p50']:8.2f} "
            f"{m['decode_ms_p90']:8.2f} {m['decode_ms_min']:8.2f} {m['prefill_ms']:8.1f} "
            f"{m['decode_tok_s']:6.1f} "
            f"{m['peak_rss_mb']:7.0f} {m['file_size_mb']:7.0f} {m['roofline_frac']:8.2f}"
        )
    table = ratios(results, paper)
    print("\n" + f"{'ratio':<10}" + "".join(f"{f + ' ours / paper':>26}" for f in FIGURES))
    for label, figs in table.items():
        cells = "".join(f"{figs[f]['ours']:>19.2f} / {figs[f]['paper']:<4.2f}" for f in FIGURES)
        print(f"{label:<10} {cells}")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": asdict(settings),
        "environment": env,
        "bandwidth_gb_s": measured["bandwidth_gb_s"],
        "medians": medians,
        "results": {name: [r.to_dict() for r in runs] for name, runs in results.items()},
        "paper": paper,
        "ratios": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--decode-depth", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats inside a probe")
    parser.add_argument("--rounds", type=int, default=3, help="probes of each model, interleaved")
    parser.add_argument("--runtime", default="eager", choices=RUNTIMES)
    parser.add_argument("--json", dest="json_out", type=Path, help="write the results here")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the models here")
    args = parser.parse_args()
    settings = ProbeSettings(
        threads=args.threads,
        prompt_tokens=args.prompt_tokens,
        decode_depth=args.decode_depth,
        repeats=args.repeats,
        runtime=args.runtime,
        timeout_s=1800,
    )
    paper = paper_rows()
    if args.keep:
        measured = run(args.keep, settings, args.rounds)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
            measured = run(Path(tmp), settings, args.rounds)
    outcome = report(measured, paper, settings)
    if args.json_out:
        args.json_out.write_text(json.dumps(outcome, indent=2))
        print(f"\nwrote {args.json_out}")


if __name__ == "__main__":
    main()
