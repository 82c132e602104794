"""Batched conjugate gradients for the Hermitian positive semi-definite systems of MRI.

One solver serves SENSE (:func:`mrirecon.recon.classical.sense_cg`) and the CG data-consistency
step of the diffusion sampler (:func:`mrirecon.recon.steps.data_consistency`): every image of the
batch gets its own step sizes, so slices or posterior samples never mix.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mrirecon.errors import require

__all__ = ["BREAKDOWN", "conjugate_gradient"]

#: Relative curvature below which a CG direction counts as null space (float32 rounding is ~1e-7).
BREAKDOWN = 1e-5


def _dot(a: torch.Tensor, b: torch.Tensor, ndim: int = 2) -> torch.Tensor:
    """Re⟨a, b⟩ per image over the last ``ndim`` axes, shaped to broadcast back: (..., 1, 1)."""
    return (a.conj() * b).real.sum(tuple(range(-ndim, 0)), keepdim=True)


def conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    iters: int = 10,
    tol: float = 0.0,
    image_ndim: int = 2,
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
    image_ndim : int
        Trailing axes that make one unknown (3 for soft-SENSE's ``(sets, H, W)``).

    Notes
    -----
    Breakdown guard (per image): a search direction whose curvature ``pᴴAp / pᴴp`` falls below
    :data:`BREAKDOWN` times the largest curvature met so far lies in the (numerical) null
    space of a singular ``apply`` (e.g. AᴴA with fewer coils than the acceleration): a step
    along it is rounding noise divided by almost zero, and float32 CG would run off to
    1e9. That image stops there, as do images whose residual has reached ``tol``.
    """
    require(int(iters) == iters and iters >= 0, f"iters must be an integer >= 0, got {iters!r}")
    require(tol >= 0, f"tol must be >= 0, got {tol!r}")
    x = torch.zeros_like(b) if x0 is None else x0.expand_as(b).clone()
    r = b - apply(x) if x0 is not None else b.clone()
    p = r.clone()
    dot = lambda u, v: _dot(u, v, image_ndim)  # noqa: E731
    rr = dot(r, r)
    stop = (tol**2) * dot(b, b)
    active = rr > stop if tol > 0 else rr > 0
    curvature = torch.zeros_like(rr)  # the largest pᴴAp / pᴴp seen, per image
    for _ in range(int(iters)):
        if not bool(active.any()):
            break
        ap = apply(p)
        pap, pp = dot(p, ap), dot(p, p)
        ratio = pap / torch.where(pp > 0, pp, 1)
        curvature = torch.maximum(curvature, ratio)
        active = active & (pp > 0) & (ratio > BREAKDOWN * curvature)
        alpha = torch.where(active, rr / torch.where(active, pap, 1), 0)  # stopped images stop moving
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = dot(r, r)
        beta = torch.where(active, rr_new / torch.where(rr > 0, rr, 1), 0)
        p = r + beta * p
        rr = torch.where(active, rr_new, rr)
        if tol > 0:
            active = active & (rr > stop)
    return x
