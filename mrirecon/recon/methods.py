"""Method names: the classical reconstructions and their display labels.

What runs is a classical method (``method=``, one of :data:`CLASSICAL_METHODS`, solved in
:mod:`mrirecon.recon.classical`) or a diffusion prior (``prior=``: a registry name, a weights
file, ``CONFIG.yaml:WEIGHTS.pt`` or a loaded prior; :func:`mrirecon.prior.load_prior`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CLASSICAL_METHODS", "CLASSICAL_LABELS", "method_label"]

#: ``method`` values: classical reconstructions instead of a diffusion prior.
CLASSICAL_METHODS = ("zero-filled", "sense", "l1-wavelet")
#: Display names of the classical methods.
CLASSICAL_LABELS = {"zero-filled": "zero-filled", "sense": "CG-SENSE", "l1-wavelet": "L1-wavelet"}


def method_label(spec, method) -> str:
    """Display name: ``CG-SENSE``, ``AID`` / ``UNet`` (+ the spec when it is not a bundled default).

    ``method``: a classical method name or the loaded prior of ``spec``.
    """
    if isinstance(method, str):
        return CLASSICAL_LABELS.get(method, method)
    kind = "AID" if method.sequential else "UNet"
    name = str(spec)
    if name in ("default", "default-unet"):
        return kind
    stem = Path(name.split(":")[-1]).stem if (":" in name or Path(name).exists()) else name
    return f"{kind} ({stem})"
