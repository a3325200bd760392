"""Regenerate the results table in docs/results.md: preset x dataset, test accuracy
mean +- spread (min..max) over seeds, seconds per epoch, whole-run seconds.

    python benchmarks/results.py                    # seed, keras-seed, default
    python benchmarks/results.py --presets best-mlp --seeds 3
    python benchmarks/results.py --presets lenet5 cnn          # the convolutional presets
    python benchmarks/results.py --presets lstm vit            # recurrent and attention

Every run is a real `bareprop train` subprocess; the table records the exact command,
the machine and the date. Rows of presets not re-run are kept from the previous file.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bareprop.bench import cpu_name

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "results.md"
DEFAULT_SEEDS = {"seed": 5, "keras-seed": 5, "default": 3, "best-mlp": 3, "lenet5": 3, "cnn": 3,
                 "best-cnn": 3, "lstm": 3, "vit": 3}
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def run(preset: str, dataset: str, seed: int, keep: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        if keep is not None:
            tmp = keep / f"{preset}-{dataset}-{seed}"
        cmd = [sys.executable, "-m", "bareprop", "train", "--preset", preset, "--dataset", dataset,
               "--seed", str(seed), "--out", tmp, "--quiet"]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
        m = json.loads((Path(tmp) / "metrics.json").read_text())
    return {"accuracy": m["test_accuracy"], "s_epoch": m["seconds_per_epoch"],
            "train_s": sum(e["seconds"] for e in m["history"]), "wall": wall,
            "epochs": len(m["history"])}


def row(preset, dataset, runs, seeds) -> str:
    acc = [r["accuracy"] for r in runs]
    mean = statistics.mean(acc)
    spread = f"{min(acc):.4f}..{max(acc):.4f}"
    return (f"| {preset} | {dataset} | {mean:.4f} | {spread} | {len(acc)} | "
            f"{statistics.median(r['s_epoch'] for r in runs):.2f} | "
            f"{statistics.median(r['train_s'] for r in runs):.0f} | "
            f"{statistics.median(r['wall'] for r in runs):.0f} | "
            f"`bareprop train --preset {preset} --dataset {dataset} --seed S` (S = {seeds}) |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["seed", "keras-seed", "default"])
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    p.add_argument("--keep", type=Path, help="keep each run folder under this folder")
    p.add_argument("--seeds", type=int, help="seeds per row (default: 5 for the notebook "
                   "presets, 3 for the others)")
    args = p.parse_args()
    header = ("| preset | dataset | test accuracy (mean) | min..max | seeds | s/epoch (median) "
              "| training s | whole run s | command |\n|---|---|---:|---|---:|---:|---:|---:|---|")
    rows = {}
    if DOC.exists() and BEGIN in DOC.read_text():
        old = DOC.read_text().split(BEGIN)[1].split(END)[0]
        for line in old.splitlines():
            m = re.match(r"\| ([\w-]+) \| ([\w-]+) \| \d", line)
            if m:
                rows[(m.group(1), m.group(2))] = line
    for preset in args.presets:
        for dataset in args.datasets:
            n = args.seeds or DEFAULT_SEEDS.get(preset, 3)
            runs = [run(preset, dataset, s, args.keep) for s in range(n)]
            line = row(preset, dataset, runs, f"0..{n - 1}")
            stamp = (f" measured {time.strftime('%Y-%m-%d')} on {cpu_name()}, "
                     f"{os.cpu_count()} cpus")
            rows[(preset, dataset)] = line[:-1] + stamp + " |"
            print(rows[(preset, dataset)], flush=True)
    order = ["seed", "keras-seed", "default", "best-mlp", "lenet5", "cnn", "best-cnn", "lstm",
             "vit"]
    body = "\n".join(rows[k] for k in sorted(rows, key=lambda k: (order.index(k[0])
                                                                   if k[0] in order else 9, k[1])))
    table = f"{BEGIN}\n{header}\n{body}\n{END}"
    text = DOC.read_text() if DOC.exists() else "# Results\n\n" + BEGIN + "\n" + END + "\n"
    before, rest = text.split(BEGIN)
    after = rest.split(END)[1]
    DOC.write_text(before + table + after)
    print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
