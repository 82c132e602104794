"""What an evaluation reports: the summary over volumes (Markdown, CSV), per-slice CSV and plots.

Everything here is derived from the rows of ``metrics.csv`` and rewritten atomically at the end
of every run, so the reports always match the table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrirecon.evaluation.grid import fmt_r
from mrirecon.files import atomic_write_text

__all__ = [
    "SUMMARY_HEADER",
    "SummaryRow",
    "plot_summary",
    "summarize",
    "summary_cells",
    "summary_markdown",
    "write_per_slice_csv",
    "write_reports",
]


@dataclass
class SummaryRow:
    """Mean and sample standard deviation over volumes of one (mask, acceleration, method).

    ``n`` counts the volumes with results; ``skipped`` the volumes whose cell could not be
    computed (``reason`` says why, from the first of them).
    """

    mask: str
    acceleration: float
    method: str
    n: int
    effective_acceleration: float
    psnr: float
    psnr_std: float
    ssim: float
    ssim_std: float
    nrmse: float
    nrmse_std: float
    seconds: float
    skipped: int = 0
    reason: str = ""


def _mean_std(v: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def summarize(rows: Sequence[dict[str, Any]]) -> list[SummaryRow]:
    """Group rows by (mask, acceleration, method), in the order settings first appear."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["mask"], float(r["acceleration"]), r["method"]), []).append(r)
    out = []
    for (mask, acc, method), rs in groups.items():
        ok = [r for r in rs if r.get("status", "ok") == "ok"]
        skipped = [r for r in rs if r.get("status", "ok") != "ok"]
        p, ps = _mean_std([r["psnr"] for r in ok])
        s, ss = _mean_std([r["ssim"] for r in ok])
        e, es = _mean_std([r["nrmse"] for r in ok])
        out.append(
            SummaryRow(
                mask=mask, acceleration=acc, method=method, n=len(ok),
                effective_acceleration=float(np.mean([r["effective_acceleration"] for r in rs])),
                psnr=p, psnr_std=ps, ssim=s, ssim_std=ss, nrmse=e, nrmse_std=es,
                seconds=float(np.mean([r["seconds"] for r in ok])) if ok else math.nan,
                skipped=len(skipped), reason=skipped[0].get("note", "") if skipped else "",
            )
        )  # fmt: skip
    out.sort(key=lambda r: (r.mask, r.acceleration))
    return out


SUMMARY_HEADER = ("mask", "R", "R eff.", "method", "volumes", "PSNR (dB)", "SSIM", "NRMSE", "s/volume")


def _pm(mean: float, std: float, n: int, digits: int) -> str:
    """``mean ± std``; ``mean (n=1)`` for one volume (no spread to show); ``-`` without any."""
    if n == 0:
        return "-"
    return f"{mean:.{digits}f} (n=1)" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_cells(r: SummaryRow, digits: int = 4) -> tuple[str, ...]:
    """One summary row as the display strings of :data:`SUMMARY_HEADER`."""
    volumes = str(r.n) if not r.skipped else f"{r.n} ({r.skipped} skipped: {r.reason})"
    return (
        r.mask,
        fmt_r(r.acceleration),
        f"{r.effective_acceleration:.2f}",
        r.method,
        volumes,
        _pm(r.psnr, r.psnr_std, r.n, 2),
        _pm(r.ssim, r.ssim_std, r.n, digits),
        _pm(r.nrmse, r.nrmse_std, r.n, digits),
        "-" if r.n == 0 else f"{r.seconds:.1f}",
    )


def summary_markdown(summary: Sequence[SummaryRow], title: str | None = None) -> str:
    """A Markdown table of the summary (mean ± sample std over volumes)."""
    lines = [f"# {title}", ""] if title else []
    lines += [
        "| " + " | ".join(SUMMARY_HEADER) + " |",
        "|" + "|".join("---" if i in (0, 3) else "---:" for i in range(len(SUMMARY_HEADER))) + "|",
    ]
    lines += ["| " + " | ".join(summary_cells(r)) + " |" for r in summary]
    lines += [
        "",
        "Mean ± sample standard deviation over volumes (n=1: one volume, no spread). PSNR/SSIM/NRMSE "
        "per volume with fastMRI conventions (data range = the whole reference volume's max; SSIM = "
        "mean over slices; slices copied from fully sampled data excluded) after least-squares "
        "intensity normalisation (`mrirecon.metrics.evaluate`).",
        "",
    ]
    return "\n".join(lines)


_PLOT_METRICS = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("nrmse", "NRMSE"))


def plot_summary(summary: Sequence[SummaryRow], out_dir: str | os.PathLike) -> list[Path]:
    """PNGs ``plot_<mask>_<metric>.png``: PSNR, SSIM, NRMSE against nominal acceleration.

    One line per method with error bars of ± one std over volumes
    (:func:`mrirecon.viz.save_plot`). A plot shows the accelerations every method of that mask
    has results for. Returns the written paths.
    """
    from mrirecon.viz import save_plot

    out = []
    for mask in dict.fromkeys(r.mask for r in summary):
        rows = [r for r in summary if r.mask == mask and r.n > 0]
        methods = list(dict.fromkeys(r.method for r in rows))
        if not methods:
            continue
        common = sorted(set.intersection(*({r.acceleration for r in rows if r.method == m} for m in methods)))
        if not common:
            continue
        at = {(r.method, r.acceleration): r for r in rows}
        for metric, label in _PLOT_METRICS:
            path = Path(out_dir) / f"plot_{mask}_{metric}.png"
            save_plot(
                path,
                common,
                {m: [getattr(at[m, a], metric) for a in common] for m in methods},
                errors={m: [getattr(at[m, a], metric + "_std") for a in common] for m in methods},
                ylabel=label,
                title=f"{mask} mask: {label} (mean ± std over volumes)",
            )
            out.append(path)
    return out


def write_per_slice_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Long-form per-slice table derived from the ``per_slice`` JSON column (atomic write)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "mask", "acceleration", "method", "slice", "psnr", "ssim", "nmse", "nrmse"])
    for r in rows:
        if r.get("status", "ok") != "ok":
            continue
        ps = json.loads(r["per_slice"])
        for i, s in enumerate(ps["slice"]):
            w.writerow(
                [r["file"], r["mask"], fmt_r(r["acceleration"]), r["method"], s]
                + [repr(float(ps[m][i])) for m in ("psnr", "ssim", "nmse", "nrmse")]
            )
    return atomic_write_text(path, buf.getvalue())


def write_reports(rows: Sequence[dict[str, Any]], out_dir: Path, plots: bool = True) -> dict[str, Path]:
    """Summary (Markdown + CSV), long per-slice CSV and plots derived from ``rows``.

    With ``plots=False`` plots of earlier runs are removed (they would no longer match).
    """
    paths: dict[str, Path] = {"metrics": out_dir / "metrics.csv", "run": out_dir / "run.json"}
    if not plots:
        for old in out_dir.glob("plot_*.png"):
            old.unlink()
    if not rows:
        return paths
    summary = summarize(rows)
    paths["summary_md"] = atomic_write_text(out_dir / "summary.md", summary_markdown(summary, title="mrirecon evaluate"))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(asdict(summary[0])))
    for r in summary:
        w.writerow([repr(v) if isinstance(v, float) else v for v in asdict(r).values()])
    paths["summary_csv"] = atomic_write_text(out_dir / "summary.csv", buf.getvalue())
    paths["per_slice"] = write_per_slice_csv(rows, out_dir / "metrics_per_slice.csv")
    if plots:
        for p in plot_summary(summary, out_dir):
            paths[p.stem] = p
    return paths
