"""`make bench`: run every benchmark this machine can, then write one JSON and one Markdown report.

Each benchmark runs as its own process with `--json` (CUDA where a GPU is present, the CPU always); its printed
output (`<name>.txt`) and stderr (`<name>.log`) are kept beside the JSON, and the report gathers every result
table with its ratio lines, the machine and the date. The patch VAE comparison takes tens of minutes on a CPU;
`--skip patch_vae_vs_unet` leaves it out; `--extra NAME=ARGS` adds arguments to one benchmark's command (after
its own, so they win), e.g. smaller sizes for a quick check.

    python benchmarks/run_all.py [--out runs/bench] [--skip NAME ...] [--extra "active_contour=--sizes 64" ...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts, not a package
from machine import describe  # noqa: E402

HERE = Path(__file__).resolve().parent
# name -> extra arguments (each also gets --json; `--device cuda` is added where the script takes it and CUDA exists)
BENCHMARKS: dict[str, list[str]] = {
    "active_contour": [],
    "inference": [],
    "memory": ["--compare-invertd"],
    "training": [],
    "batch_inference": [],
    "patch_vae_vs_unet": ["--quick"],
    "uncertainty": [],
    "sim_to_real": [],
}
TAKES_DEVICE = {"inference", "memory", "training", "batch_inference", "patch_vae_vs_unet", "uncertainty"}
WRITES_JSON = {"active_contour", "inference", "memory", "training", "batch_inference", "uncertainty", "sim_to_real"}


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of `rows` (dicts with the same keys); floats to 4 significant digits."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(row.get(k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def result_rows(result: Any) -> list[dict[str, Any]]:
    """The table rows of one benchmark's JSON: its `rows`, or the flat result as one row."""
    if isinstance(result, dict) and isinstance(result.get("rows"), list):
        return [{k: v for k, v in row.items() if not isinstance(v, (dict, list))} for row in result["rows"]]
    if isinstance(result, dict):
        return [{k: v for k, v in result.items() if k != "machine" and not isinstance(v, (dict, list))}]
    return []


def ratio_lines(output: str) -> list[str]:
    """The closing lines of a benchmark's printed output: from the first that states a ratio or a target on."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.lower().startswith("ratio") or "(target" in line:
            return lines[index:]
    return []


def parse_extra(values: list[str]) -> dict[str, list[str]]:
    """`NAME=ARGS` strings as {NAME: ARGS split like a shell}; a later NAME adds to an earlier one.

    Raises:
        ValueError: a value without `=` or with a name that is not a benchmark.
    """
    extra: dict[str, list[str]] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or name not in BENCHMARKS:
            raise ValueError(f"--extra takes NAME=ARGS with NAME one of {', '.join(sorted(BENCHMARKS))}: {value!r}")
        extra.setdefault(name, []).extend(shlex.split(text))
    return extra


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(report: dict[str, Any]) -> str:
    """The Markdown report."""
    parts = [f"# LiverVAE benchmarks\n\nMachine: {report['machine']}. Date: {report['date']}.\n"]
    for name, entry in report["benchmarks"].items():
        parts.append(f"## {name}\n")
        if entry["returncode"] != 0:
            parts.append(f"Failed (exit {entry['returncode']}); see `{entry['log']}`.\n")
            continue
        table = markdown_table(result_rows(entry.get("result")))
        if table:
            parts.append(table + "\n")
        parts += [f"- {line}" for line in entry["ratios"]]
        parts.append("")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="report folder (default runs/bench)")
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(BENCHMARKS), help="benchmarks to leave out")
    parser.add_argument(
        "--extra", action="append", default=[], metavar="NAME=ARGS", help="more arguments for benchmark NAME"
    )
    args = parser.parse_args(argv)
    try:
        extra_args = parse_extra(args.extra)
    except ValueError as exc:
        parser.error(str(exc))
    import torch

    cuda = torch.cuda.is_available()
    machine = describe(gpu=cuda)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": machine,
        "date": datetime.date.today().isoformat(),
        "benchmarks": {},
    }
    failed = 0
    for name, extra in BENCHMARKS.items():
        if name in args.skip:
            continue
        command = [sys.executable, str(HERE / f"{name}.py"), *extra, *extra_args.get(name, [])]
        json_path = args.out / f"{name}.json"
        if name in WRITES_JSON:
            command += ["--json", str(json_path)]
        if cuda and name in TAKES_DEVICE:
            command += ["--device", "cuda"]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        completed = subprocess.run(command, capture_output=True, text=True)
        log = args.out / f"{name}.log"  # its stderr (warnings, progress, tracebacks); stdout goes to <name>.txt
        log.write_text(completed.stderr, encoding="utf-8")
        (args.out / f"{name}.txt").write_text(completed.stdout, encoding="utf-8")
        print(completed.stdout[-2000:], flush=True)
        entry = {"command": command[1:], "returncode": completed.returncode, "log": str(log)}
        entry["ratios"] = ratio_lines(completed.stdout)
        if json_path.is_file() and completed.returncode == 0:
            entry["result"] = json.loads(json_path.read_text(encoding="utf-8"))
        report["benchmarks"][name] = entry
        failed += completed.returncode != 0
    (args.out / "bench.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (args.out / "bench.md").write_text(render(report), encoding="utf-8")
    print(f"written: {args.out / 'bench.json'}, {args.out / 'bench.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
