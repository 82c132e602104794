"""Batched conjugate gradients for the Hermitian positive semi-definite systems of MRI.

One solver serves SENSE (:func:`mrirecon.recon.classical.sense_cg`) and the CG data-consistency
step of the diffusion sampler (:func:`mrirecon.recon.steps.data_consistency`): every image of the
batch gets its own step sizes, so slices or posterior samples never mix.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mrirecon.errors import require

__all__ = ["conjugate_gradient"]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Re⟨a, b⟩ per image over the last two axes, shaped to broadcast back: (..., 1, 1)."""
    return (a.conj() * b).real.sum((-2, -1), keepdim=True)


def conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    iters: int = 10,
    tol: float = 0.0,
) -> torch.Tensor:
    """Solve ``apply(x) = b`` for Hermitian PSD ``apply``, each image of the batch separately.

    Parameters
    ----------
    apply : callable
        ``x -> Ax`` on tensors shaped like ``b`` (e.g. ``AᴴA + λI``).
    b : Tensor (..., H, W) complex
        Right-hand side.
    x0 : Tensor broadcastable to b, optional
        Start (default zeros). From ``x0`` the iterates only move inside the Krylov space of the
        initial residual, so the part of ``x0`` in the null space of ``apply`` is kept.
    iters : int
        Maximum iterations (0 returns the start).
    tol : float
        Stop once every image's residual satisfies ``‖r‖ ≤ tol·‖b‖`` (0: run all ``iters``).
    """
    require(int(iters) == iters and iters >= 0, f"iters must be an integer >= 0, got {iters!r}")
    require(tol >= 0, f"tol must be >= 0, got {tol!r}")
    x = torch.zeros_like(b) if x0 is None else x0.expand_as(b).clone()
    r = b - apply(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = _dot(r, r)
    stop = (tol**2) * _dot(b, b)
    for _ in range(int(iters)):
        if tol > 0 and bool((rr <= stop).all()):
            break
        ap = apply(p)
        pap = _dot(p, ap)
        alpha = torch.where(pap > 0, rr / torch.where(pap > 0, pap, 1), 0)  # converged images stop moving
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = _dot(r, r)
        beta = torch.where(rr > 0, rr_new / torch.where(rr > 0, rr, 1), 0)
        p = r + beta * p
        rr = rr_new
    return x
