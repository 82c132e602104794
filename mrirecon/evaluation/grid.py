"""The evaluation grid: files x masks x accelerations x methods, in a fixed order.

Each cell is a :class:`WorkItem`. Masks depend only on the file's name, the mask kind, the
acceleration and the user's seed (:func:`mrirecon.data.scan.mask_seed`), so every method,
rank and rerun sees the same mask; all methods of a cell share the coil maps estimated from
that mask's calibration lines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mrirecon.errors import positive_int, require
from mrirecon.recon.methods import CLASSICAL_METHODS

__all__ = ["CLASSICAL", "METHODS", "SLICE_TUNED", "TUNED", "WorkItem", "find_scans", "fmt_r", "make_grid"]

#: Methods of ``evaluate``. ``aid`` and ``unet`` run the priors of the run's configuration; the
#: classical methods run with their default λ (chosen on tuning scans, :mod:`mrirecon.recon.classical`).
#: ``-tuned`` methods sweep λ against the evaluated slices' reference and keep the best (the
#: oracle ceiling); ``-tuned-slice`` methods sweep λ on one *other* slice of the volume (its
#: reference) and apply the winner to the evaluated slices: an expert tuning on a calibration slice.
TUNED = ("sense-tuned", "l1-wavelet-tuned")
SLICE_TUNED = ("sense-tuned-slice", "l1-wavelet-tuned-slice")
METHODS = ("aid", "unet", "l1-wavelet", "sense", "zero-filled") + TUNED + SLICE_TUNED
CLASSICAL = CLASSICAL_METHODS


def fmt_r(r: float) -> str:
    """An acceleration as text (``4``, ``2.5``): CSV values compare equal across runs."""
    return f"{float(r):g}"


@dataclass(frozen=True, order=True)
class WorkItem:
    """One cell of the evaluation grid: reconstruct ``file`` under one setting with one method."""

    file: str
    mask: str
    acceleration: float
    method: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity used for resuming; the acceleration as text so CSV values compare equal."""
        return (self.file, self.mask, fmt_r(self.acceleration), self.method)


def make_grid(
    files: Sequence[str], masks: Sequence[str], accelerations: Sequence[float], methods: Sequence[str]
) -> list[WorkItem]:
    """All work items, file-major (then mask, acceleration, method): the order of the CSV."""
    return [WorkItem(f, m, float(r), meth) for f in files for m in masks for r in accelerations for meth in methods]


def find_scans(data_dir: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """The ``*.h5`` files directly inside ``data_dir``, sorted by name, at most ``limit``."""
    d = Path(data_dir)
    require(d.exists(), f"DATA_DIR '{d}' does not exist")
    require(d.is_dir(), f"DATA_DIR '{d}' is not a directory (expected a folder of fastMRI .h5 files)")
    files = sorted(p for p in d.iterdir() if p.suffix == ".h5" and p.is_file())
    require(len(files) > 0, f"DATA_DIR '{d}' holds no .h5 files")
    if limit is not None:
        files = files[: positive_int(limit, "--limit")]
    return files
