"""The real-data table of docs/evaluation.md from ``mrirecon evaluate`` folders (one per seed).

    python scripts/real_data_table.py results/real_seed0 results/real_seed1

Prints, per scan x mask x R, each method's PSNR / SSIM as the mean over the seeds with the
spread (half the range, ±) and the checks of the real-data issue (CG-SENSE >= zero-filled,
L1-wavelet >= CG-SENSE, best prior vs best classical).
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ORDER = ["zero-filled", "sense", "sense-tuned", "l1-wavelet", "l1-wavelet-tuned", "unet", "aid"]
LABEL = {"zero-filled": "zero-filled", "sense": "CG-SENSE", "sense-tuned": "CG-SENSE oracle λ",
         "l1-wavelet": "L1-wavelet", "l1-wavelet-tuned": "L1 oracle λ", "unet": "UNet", "aid": "AID"}  # fmt: skip
CLASSICAL = ("zero-filled", "sense", "sense-tuned", "l1-wavelet", "l1-wavelet-tuned")


def main(folders: list[str]) -> None:
    cells: dict = defaultdict(lambda: defaultdict(list))
    maps: dict = defaultdict(set)
    for folder in folders:
        for r in csv.DictReader(open(Path(folder) / "metrics.csv")):
            if r["status"] != "ok":
                continue
            key = (Path(r["file"]).stem, r["mask"], float(r["acceleration"]))
            cells[key][r["method"]].append((float(r["psnr"]), float(r["ssim"])))
            maps[key].add(r["sens"].split(" ")[0])
    methods = [m for m in ORDER if any(m in v for v in cells.values())]
    print("| scan | mask, R | maps | " + " | ".join(LABEL[m] for m in methods) + " |")
    print("|---|---|---|" + "---:|" * len(methods))
    checks, gaps = [], defaultdict(list)
    for key in sorted(cells):
        row = cells[key]
        out = []
        for m in methods:
            v = np.array(row.get(m, []))
            if not len(v):
                out.append("–")
                continue
            spread = (v[:, 0].max() - v[:, 0].min()) / 2
            out.append(f"{v[:, 0].mean():.2f} ±{spread:.2f} / {v[:, 1].mean():.3f}")
        mean = {m: np.mean([p for p, _ in row[m]]) for m in row}
        print(f"| {key[0]} | {key[1]} {key[2]:g}x | {','.join(sorted(maps[key]))} | " + " | ".join(out) + " |")
        if {"zero-filled", "sense", "l1-wavelet"} <= set(mean):
            checks.append((key, mean["sense"] - mean["zero-filled"], mean["l1-wavelet"] - mean["sense"]))
        best_classical = max(mean[m] for m in CLASSICAL if m in mean)
        for m in ("aid", "unet"):
            if m in mean:
                gaps[(m, key[2])].append(mean[m] - best_classical)
    print("\nCG-SENSE - zero-filled, L1 - CG-SENSE (dB, mean over seeds):")
    for key, a, b in checks:
        print(f"  {key[0]:10s} {key[1]:10s} {key[2]:g}x  {a:+.2f}  {b:+.2f}")
    print("\nprior - best classical (incl. oracle λ), mean over scans and masks (dB):")
    for (m, R), g in sorted(gaps.items()):
        print(f"  {m:5s} {R:g}x  {np.mean(g):+.2f} (min {np.min(g):+.2f}, max {np.max(g):+.2f}, n={len(g)})")


if __name__ == "__main__":
    main(sys.argv[1:])
