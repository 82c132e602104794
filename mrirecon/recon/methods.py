"""Method names: the classical reconstructions and how a ``--prior`` / ``method`` spec resolves.

A method is one of :data:`CLASSICAL_METHODS` (a string, solved in :mod:`mrirecon.recon.classical`)
or a diffusion prior: a registry name, a weights file, or ``CONFIG.yaml:WEIGHTS.pt``
(:func:`mrirecon.prior.registry.resolve_prior`).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CLASSICAL_METHODS", "CLASSICAL_LABELS", "method_label", "resolve_method"]

#: ``prior`` values that run a classical reconstruction instead of a diffusion prior.
CLASSICAL_METHODS = ("zero-filled", "sense", "l1-wavelet")
#: Display names of the classical methods.
CLASSICAL_LABELS = {"zero-filled": "zero-filled", "sense": "CG-SENSE", "l1-wavelet": "L1-wavelet"}


def resolve_method(spec, device: str = "auto"):
    """A classical method name (returned as is), a loaded prior (as is), or a prior spec, loaded."""
    if not isinstance(spec, (str, Path)) or spec in CLASSICAL_METHODS:
        return spec
    from mrirecon.prior.registry import resolve_prior

    return resolve_prior(str(spec), device=device)


def method_label(spec, method) -> str:
    """Display name: ``CG-SENSE``, ``AID`` / ``UNet`` (+ the spec when it is not a bundled default)."""
    if isinstance(method, str):
        return CLASSICAL_LABELS.get(method, method)
    kind = "AID" if method.sequential else "UNet"
    name = str(spec)
    if name in ("default", "default-unet"):
        return kind
    stem = Path(name.split(":")[-1]).stem if (":" in name or Path(name).exists()) else name
    return f"{kind} ({stem})"
