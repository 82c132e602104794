"""User-facing errors and the validators every layer shares.

Every check on user input raises :class:`MrireconError` with one line that names the
offending file/field/argument and what was expected. The CLI prints that line and exits
with status 2 instead of a traceback.
"""

from __future__ import annotations

import importlib
import math
from types import ModuleType

import numpy as np

# torch is not imported here: the command line imports this module for --help, which must
# start in well under a second; the checks below recognise tensors without importing torch.


class MrireconError(ValueError):
    """Bad input: a single-line message naming what was wrong and what was expected."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`MrireconError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise MrireconError(message)


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def check_finite(x, name: str) -> None:
    """Reject NaN/Inf values (a common symptom of a broken file or a diverged step)."""
    ok = bool(x.isfinite().all()) if _is_tensor(x) else bool(np.isfinite(x).all())
    require(ok, f"{name} contains NaN or Inf values")


def check_ndim(x, ndims: int | tuple[int, ...], name: str, layout: str) -> None:
    """Reject arrays whose number of dimensions is not in ``ndims`` (``layout`` names the axes)."""
    allowed = (ndims,) if isinstance(ndims, int) else ndims
    require(
        x.ndim in allowed,
        f"{name} must be {layout}, got shape {tuple(x.shape)}",
    )


def check_choice(value, allowed, name: str) -> None:
    """``value`` must be one of ``allowed``."""
    require(value in allowed, f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def positive_int(value, name: str) -> int:
    """``value`` as an int >= 1, or a one-line error."""
    require(_is_int(value) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def nonnegative_int(value, name: str) -> int:
    """``value`` as an int >= 0, or a one-line error."""
    require(_is_int(value) and value >= 0, f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def positive_number(value, name: str) -> float:
    """``value`` as a finite float > 0, or a one-line error."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    require(ok and math.isfinite(value) and value > 0, f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def as_numeric_array(x, name: str) -> np.ndarray:
    """``x`` (numpy or torch) as a numpy array of finite numbers, or a one-line error naming it."""
    if _is_tensor(x):
        x = x.detach().cpu().numpy()
    require(isinstance(x, np.ndarray), f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    require(x.dtype.kind in "biufc", f"{name} must hold numbers, got dtype {x.dtype}")
    check_finite(x, name)
    return x


def import_optional(module: str, install: str) -> ModuleType:
    """Import ``module`` or fail with one line saying what to install (``install``)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MrireconError(f"this needs the Python package '{module.split('.')[0]}': {install}") from None
