"""The real-data and held-out tables of docs/evaluation.md from ``mrirecon evaluate`` folders (one per seed).

    python scripts/real_data_table.py results/real_seed0 results/real_seed1

Prints, per scan x mask x R, each method's PSNR / SSIM as the mean over the seeds with the
spread (half the range, ±) and the checks of the real-data issue (CG-SENSE >= zero-filled,
L1-wavelet >= CG-SENSE, best prior vs best classical). A folder given as ``DIR@TAG`` holds
another prior pair (``mrirecon evaluate --prior ... --unet-prior ...``): its AID/UNet columns are
labelled ``AID (TAG)``; ``--psnr-only`` drops SSIM from the cells.
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


def _order(method: str) -> tuple:
    """Tagged priors after the others: by tag, then UNet before AID."""
    base, _, tag = method.partition("@")
    return tag, ORDER.index(base) if base in ORDER else len(ORDER), base


def main(folders: list[str], psnr_only: bool = False) -> None:
    cells: dict = defaultdict(lambda: defaultdict(list))
    maps: dict = defaultdict(set)
    for spec in folders:
        folder, _, tag = spec.partition("@")  # DIR@TAG: this folder's priors are another pair (e.g. v3)
        for r in csv.DictReader(open(Path(folder) / "metrics.csv")):
            if r["status"] != "ok":
                continue
            if tag and r["method"] not in CLASSICAL:
                r["method"] = f"{r['method']}@{tag}"
            key = (Path(r["file"]).stem, r["mask"], float(r["acceleration"]))
            cells[key][r["method"]].append((float(r["psnr"]), float(r["ssim"])))
            maps[key].add(r["sens"].split(" ")[0])
    seen = {m for v in cells.values() for m in v}
    methods = [m for m in ORDER if m in seen] + sorted(seen - set(ORDER), key=_order)
    def label(m: str) -> str:
        base, _, tag = m.partition("@")
        return LABEL.get(base, base) + (f" ({tag})" if tag else "")

    print("| scan | mask, R | maps | " + " | ".join(label(m) for m in methods) + " |")
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
            out.append(f"{v[:, 0].mean():.2f} ±{spread:.2f}" + ("" if psnr_only else f" / {v[:, 1].mean():.3f}"))
        mean = {m: np.mean([p for p, _ in row[m]]) for m in row}
        print(f"| {key[0]} | {key[1]} {key[2]:g}x | {','.join(sorted(maps[key]))} | " + " | ".join(out) + " |")
        if {"zero-filled", "sense", "l1-wavelet"} <= set(mean):
            checks.append((key, mean["sense"] - mean["zero-filled"], mean["l1-wavelet"] - mean["sense"]))
        best_classical = max(mean[m] for m in CLASSICAL if m in mean)
        for m in (m for m in mean if m not in CLASSICAL):
            gaps[(label(m), key[2])].append(mean[m] - best_classical)
    print("\nCG-SENSE - zero-filled, L1 - CG-SENSE (dB, mean over seeds):")
    for key, a, b in checks:
        print(f"  {key[0]:10s} {key[1]:10s} {key[2]:g}x  {a:+.2f}  {b:+.2f}")
    print("\nprior - best classical (incl. oracle λ), mean over scans and masks (dB):")
    for (m, R), g in sorted(gaps.items()):
        print(f"  {m:12s} {R:g}x  {np.mean(g):+.2f} (min {np.min(g):+.2f}, max {np.max(g):+.2f}, n={len(g)})")


if __name__ == "__main__":
    main([a for a in sys.argv[1:] if a != "--psnr-only"], "--psnr-only" in sys.argv)
