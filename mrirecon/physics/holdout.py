"""k-space cross-validation: rank coil maps and regularisation weights on the data alone.

Sampled lines outside the calibration region are dealt into folds
(:func:`mrirecon.physics.masks.holdout_folds`); a reconstruction from the rest predicts each
fold (:func:`holdout_error`); the candidate with the lowest mean error wins. On real scans the best fixed λ of CG-SENSE spans two decades
(coils against acceleration, noise, map errors) and ESPIRiT maps from a few lines can be worse
than none: no fixed default covers that, the data themselves can.
"""

from __future__ import annotations

import numpy as np
import torch

from mrirecon.physics.operators import sense_operator

__all__ = ["holdout_error"]


def holdout_error(solve, maps, y, folds) -> np.ndarray:
    """Per fold, the relative error with which a reconstruction from the training samples predicts the held-out ones.

    ``‖V(F S x̂) − V y‖² / ‖V y‖²`` with ``x̂ = solve(A_T, T y)``, ``A_T = SenseOp(maps, T)``
    for each ``(T, V)`` of ``folds`` (:func:`mrirecon.physics.masks.holdout_folds`). Zero filling
    (x̂ = 0) scores 1; lower is better. It ranks coil maps and regularisation weights on the
    data alone (no reference image).

    Parameters
    ----------
    solve : callable ``(A, y) -> x``
        The reconstruction, e.g. CG-SENSE at some λ; ``x`` (..., H, W).
    maps : Tensor (..., C, H, W) complex
    y : Tensor (..., C, H, W) complex, the sampled k-space (zero elsewhere)
    folds : list of (train, val) masks broadcastable to ``y``

    Returns
    -------
    ndarray (len(folds),) float64
    """
    errors = []
    for split in folds:
        train, val = (torch.as_tensor(np.asarray(m), dtype=torch.float32, device=y.device) for m in split)
        x = solve(sense_operator(maps, train), y * train)
        held = y * val
        err = sense_operator(maps, val).forward(x) - held
        errors.append(float((err.abs() ** 2).sum() / (held.abs() ** 2).sum().clamp_min(1e-30)))
    return np.asarray(errors)

