"""User-facing errors.

Every check on user input raises :class:`MrireconError` with one line that names the
offending file/field/argument and what was expected. The CLI prints that line and exits
with status 2 instead of a traceback.
"""

from __future__ import annotations

import numpy as np
import torch


class MrireconError(ValueError):
    """Bad input: a single-line message naming what was wrong and what was expected."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`MrireconError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise MrireconError(message)


def check_finite(x: np.ndarray | torch.Tensor, name: str) -> None:
    """Reject NaN/Inf values (a common symptom of a broken file or a diverged step)."""
    ok = bool(torch.isfinite(x).all()) if isinstance(x, torch.Tensor) else bool(np.isfinite(x).all())
    require(ok, f"{name} contains NaN or Inf values")


def check_ndim(x: np.ndarray | torch.Tensor, ndims: int | tuple[int, ...], name: str, layout: str) -> None:
    """Reject arrays whose number of dimensions is not in ``ndims`` (``layout`` names the axes)."""
    allowed = (ndims,) if isinstance(ndims, int) else ndims
    require(
        x.ndim in allowed,
        f"{name} must be {layout}, got shape {tuple(x.shape)}",
    )


def as_numeric_array(x, name: str) -> np.ndarray:
    """``x`` (numpy or torch) as a numpy array of finite numbers, or a one-line error naming it."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    require(isinstance(x, np.ndarray), f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    require(x.dtype.kind in "biufc", f"{name} must hold numbers, got dtype {x.dtype}")
    check_finite(x, name)
    return x
