"""Classical reconstructions: zero-filled, SENSE (CG) and L1-wavelet, on ``(A, y)``.

They solve the same problem as the diffusion priors, ``y = A x + n`` with the multi-coil
operator ``A = M F S`` (:class:`~mrirecon.physics.operators.SenseOp`, or any
:class:`~mrirecon.physics.linop.LinearOperator`), so every evaluation can put the learned
prior next to them. All methods take ``A`` and ``y`` (torch, any device, batched over the
leading axes) and return images ``(..., H, W)`` complex in the data's intensity scale.

Regularisation as an expert would choose it: one λ per method for the protocol, picked by a
sweep on scans the comparisons never use (:data:`DEFAULT_LAMBDA`), scale-free so that it
carries over between scans. On the tuning scans (MNI training-split phantoms at 64², 128² and
320², fastMRI equispaced masks at 4x and 8x, ESPIRiT maps from the calibration lines) the
defaults came within 0.5 dB of each scan's best λ. Morozov's discrepancy principle was tried
first and rejected: with estimated coil maps the residual never reaches the noise level
(model error dominates), so it picked λ at the end of its range on half of the scans, 4 dB
below the best. ``mrirecon evaluate`` adds ``-tuned`` methods that sweep λ against the
reference (the oracle bound of a classical method).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mrirecon.errors import positive_int, positive_number, require
from mrirecon.physics.linop import LinearOperator
from mrirecon.physics.solvers import conjugate_gradient
from mrirecon.physics.wavelet import Wavelet2D

__all__ = [
    "DEFAULT_ITERS",
    "DEFAULT_LAMBDA",
    "HOLDOUT_GRID",
    "holdout_lambda",
    "l1_wavelet",
    "sense_cg",
    "solve",
    "wavelet_levels",
    "zero_filled",
]

#: Default λ: Tikhonov weight of CG-SENSE (relative to AᴴA, whose eigenvalues lie in [0, 1]
#: for normalised maps) and the L1-wavelet weight relative to ``max|Aᴴy|`` per slice.
DEFAULT_LAMBDA = {"sense": 2e-3, "l1-wavelet": 3e-4}
#: Default iterations: CG-SENSE's CG, L1-wavelet's FISTA.
DEFAULT_ITERS = {"sense": 50, "l1-wavelet": 100}


# ------------------------------------------------------------------------------------------
# methods


def zero_filled(A: LinearOperator, y: torch.Tensor) -> torch.Tensor:
    """Zero-filled SENSE-1 image ``Aᴴ y`` (no normalisation)."""
    return A.adjoint(y)


def sense_cg(
    A: LinearOperator,
    y: torch.Tensor,
    lam: float = DEFAULT_LAMBDA["sense"],
    iters: int = DEFAULT_ITERS["sense"],
    *,
    tol: float = 1e-6,
) -> torch.Tensor:
    """SENSE by conjugate gradients on ``(AᴴA + λI) x = Aᴴ y`` (Pruessmann et al., MRM 46:638, 2001).

    Each image of the batch gets its own step sizes; it stops after ``iters`` iterations or when
    ``‖r‖ ≤ tol·‖Aᴴy‖``. λ is relative to the operator (``Σ_c |S_c|² ≈ 1`` puts the eigenvalues
    of ``AᴴA`` in [0, 1]), so it does not depend on the data's scale.

    Parameters
    ----------
    A : LinearOperator
        ``x (..., H, W) -> (..., C, H, W)``.
    y : Tensor (..., C, H, W) complex
    lam : float
        Tikhonov weight λ ≥ 0.
    iters : int
        Maximum CG iterations.
    tol : float
        Relative residual of the normal equations at which to stop.

    Returns
    -------
    Tensor (..., H, W) complex.
    """
    require(
        isinstance(lam, (int, float, np.integer, np.floating)) and math.isfinite(lam) and lam >= 0,
        f"lam must be a number >= 0, got {lam!r}",
    )
    iters = positive_int(iters, "iters")
    tol = positive_number(tol, "tol")
    lam = float(lam)
    rhs = A.adjoint(y)

    def apply(v: torch.Tensor) -> torch.Tensor:
        return A.normal(v) + lam * v if lam else A.normal(v)

    return conjugate_gradient(apply, rhs, iters=iters, tol=tol, image_ndim=getattr(A, "image_ndim", 2))


def wavelet_levels(shape: tuple[int, int], wavelet: str = "db4") -> tuple[int, tuple[int, int]]:
    """Decomposition levels and padded size that :func:`l1_wavelet` uses on ``(H, W)`` images."""
    psi = Wavelet2D(tuple(shape), wavelet)
    return psi.levels, psi.padded


def l1_wavelet(
    A: LinearOperator,
    y: torch.Tensor,
    lam: float | torch.Tensor,
    iters: int = DEFAULT_ITERS["l1-wavelet"],
    *,
    wavelet: str = "db4",
    x0: torch.Tensor | None = None,
    shifts: bool = True,
    l2: float = 0.0,
) -> torch.Tensor:
    """Compressed sensing: ``min_x ½‖A x - y‖² + λ ‖Ψ x‖₁ + ½ l2 ‖x‖²`` by FISTA (Beck & Teboulle 2009).

    Lustig et al., MRM 58:1182 (2007). Ψ is an orthonormal Daubechies wavelet
    (:class:`~mrirecon.physics.wavelet.Wavelet2D`: torch, periodised, up to 4 levels, any matrix
    size by zero-padding; the coarsest approximation band is not penalised), so every iteration
    runs on ``y``'s device. The step is
    ``1 / L`` with the bound ``L = max Σ_c |S_c|² · max M²`` (1 for normalised maps): no power
    iteration, the result is deterministic. ``lam`` is **absolute** here (the data's scale):
    :func:`mrirecon.recon.reconstruct` takes λ relative to ``max|Aᴴy|`` (:data:`DEFAULT_LAMBDA`).

    Parameters
    ----------
    A : SenseOp
    y : Tensor (..., C, H, W) complex
    lam : float or Tensor broadcastable to the image batch (...,)
        λ per image.
    iters : int
    wavelet : str
        PyWavelets name of Ψ (an orthogonal wavelet).
    x0 : Tensor (..., H, W), optional
        Warm start.
    shifts : bool
        Cycle spinning: each iteration's shrinkage is applied on the image circularly shifted by
        a random offset (seeded, so the result is deterministic), which makes the decimated
        wavelet translation invariant on average, as BART's ``pics`` does.
    l2 : float
        Tikhonov weight relative to AᴴA, as :func:`sense_cg`'s λ (elastic net; 0: plain L1).

    Returns
    -------
    Tensor (..., H, W) complex64 on ``y``'s device.
    """
    iters = positive_int(iters, "iters")
    rhs = A.adjoint(y)
    batch = rhs.shape[:-2]
    lam_t = torch.as_tensor(lam, dtype=torch.float32).expand(batch) if not isinstance(lam, torch.Tensor) else lam.float().expand(batch)
    require(bool((lam_t >= 0).all()) and bool(torch.isfinite(lam_t).all()), f"lam must be >= 0, got {lam!r}")
    require(math.isfinite(l2) and l2 >= 0, f"l2 must be >= 0, got {l2!r}")
    L = _lipschitz(A) + float(l2)
    psi = Wavelet2D(tuple(rhs.shape[-2:]), wavelet)
    tau = (lam_t / L).to(rhs.device)
    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    z, t = x.clone(), 1.0
    offsets = np.random.default_rng(0).integers(0, 2**psi.levels, size=(iters, 2)) if shifts else np.zeros((iters, 2), int)
    for it in range(iters):
        v = z - ((A.normal(z) + l2 * z if l2 else A.normal(z)) - rhs) / L
        dy, dx = (int(o) for o in offsets[it])
        x_new = torch.roll(psi.shrink(torch.roll(v, (dy, dx), dims=(-2, -1)), tau), (-dy, -dx), dims=(-2, -1))
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        z = x_new + ((t - 1.0) / t_new) * (x_new - x)
        x, t = x_new, t_new
    return x


#: λ grids of the hold-out selection, relative as :data:`DEFAULT_LAMBDA` (half a decade apart).
HOLDOUT_GRID = {
    "sense": tuple(float(v) for v in np.logspace(-3, 0, 7)),
    "l1-wavelet": tuple(float(v) for v in np.logspace(-4, -1, 7)),
}
#: Smallest CG-SENSE λ of the hold-out when an equispaced mask's outer spacing exceeds the coils.
UNFOLD_MIN_LAMBDA = 0.1
#: L1-wavelet replaces CG-SENSE's solution when its hold-out gain exceeds this many standard errors.
SPARSITY_SE = 1.0
#: Folds of the L1-wavelet hold-out (FISTA is ~10x the cost of CG-SENSE; SENSE uses 5).
L1_FOLDS = 3


def solve(method: str, A: LinearOperator, y: torch.Tensor, lam: float, iters: int, l2: float = 0.0) -> torch.Tensor:
    """CG-SENSE (``"sense"``, Tikhonov ``lam``) or L1-wavelet (``lam`` relative to ``max|Aᴴy|`` per slice, plus ``l2``)."""
    if method == "sense":
        return sense_cg(A, y, lam, iters)
    if lam == 0 and l2 > 0:  # L1's hold-out fell back to CG-SENSE's problem: solve it as SENSE does
        return sense_cg(A, y, l2, DEFAULT_ITERS["sense"])
    nd = getattr(A, "image_ndim", 2)  # soft-SENSE: one peak per slice over its sets
    peak = A.adjoint(y).abs().flatten(-nd).amax(-1).clamp_min(1e-30).reshape(y.shape[:-3] + (1,) * (nd - 2))
    return l1_wavelet(A, y, lam * peak, iters, l2=l2)


def holdout_lambda(method: str, maps: torch.Tensor, y: torch.Tensor, mask, iters: int, seed: int = 0) -> dict:
    """λ of ``method`` chosen by k-space cross-validation on the data alone (no reference image).

    On the middle slice, the sampled lines outside the calibration region are dealt into 5
    folds (:func:`~mrirecon.physics.masks.holdout_folds`); each λ of :data:`HOLDOUT_GRID`
    reconstructs from the rest and is scored by how well it predicts each held-out fold
    (:func:`~mrirecon.physics.holdout.holdout_error`); the lowest mean error wins (the
    one-standard-error rule was tried: it over-regularised, −2 dB SENSE and −7 dB L1 on the 4-coil
    brain at 4x). On real scans the best fixed λ of
    CG-SENSE spans two decades, which no single default covers; zero filling scores 1, so a badly
    conditioned problem gets a λ large enough to stay near it instead of amplifying noise.
    For L1-wavelet (3 folds) more candidates join the grid: the CG-SENSE solution at its own
    hold-out λ₂ (``lam`` 0) and the elastic net ``½‖Ax−y‖² + λ‖Ψx‖₁ + ½λ₂‖x‖²`` at the best
    grid λ and half a decade either side. The best of them replaces CG-SENSE's solution only when
    its gain in held-out error is larger than the gain's standard error over the folds (paired):
    where sparsity does not clearly help (2 coils at 8x, a wrapping field of view at 8x), the
    noise of 3 folds would otherwise pick an L1 solution up to 0.2 dB below CG-SENSE.

    Parameters
    ----------
    method : {"sense", "l1-wavelet"}
    maps, y : Tensor (S, C, H, W) complex (y zero where not sampled)
    mask : array (H, W) or (W,), the sampling mask (one for all slices)
    iters : int

    Returns
    -------
    dict
        ``lam`` (None when the mask has too few lines outside its calibration region to hold
        some out), ``l2`` (L1-wavelet's ℓ2 weight) and ``errors`` (``{λ: mean error}``).
    """
    from mrirecon.physics.holdout import holdout_error
    from mrirecon.physics.masks import holdout_folds, lattice_spacing

    folds = holdout_folds(mask, folds=L1_FOLDS if method == "l1-wavelet" else 5, seed=seed)
    if folds is None:
        return {"lam": None, "l2": 0.0, "errors": {}}
    mid = y.shape[0] // 2
    maps, y = maps[mid : mid + 1], y[mid : mid + 1]
    grid = HOLDOUT_GRID[method]
    gap = lattice_spacing(mask) if method == "sense" else None
    if gap is not None and gap > 2 * maps.shape[-3]:
        # An equispaced lattice folds ``gap`` copies of the FOV onto each pixel; C coils unfold at
        # most C of them inside the object, which rarely fills less than half the FOV. Beyond 2C
        # the unfolding is underdetermined and the folds' errors barely move (2-coil phantom, 8x:
        # 0.980 at λ 1e-3 against 0.9997 at 1, yet 2.7 dB below zero filling), so only λ that
        # keep the solution near the zero-filled image compete. (4 coils at 4x, gap 5.4, unfold
        # well: +7 dB at λ 3e-3.)
        grid = tuple(lam for lam in grid if lam >= UNFOLD_MIN_LAMBDA)
    errors = {lam: holdout_error(lambda A, b, lam=lam: solve(method, A, b, lam, iters), maps, y, folds)
              for lam in grid}  # fmt: skip
    best, l2 = min(errors, key=lambda k: errors[k].mean()), 0.0
    if method == "l1-wavelet":  # CG-SENSE's solution, and the elastic net near the best λ, are candidates too
        sense_lam = holdout_lambda("sense", maps, y, mask, DEFAULT_ITERS["sense"], seed)["lam"]
        cands = {(lam, 0.0): err for lam, err in errors.items()}
        for lam in (best / np.sqrt(10), best, best * np.sqrt(10)):
            cands[(lam, sense_lam)] = holdout_error(lambda A, b, lam=lam: solve(method, A, b, lam, iters, sense_lam),
                                                    maps, y, folds)  # fmt: skip
        sense = holdout_error(lambda A, b: solve(method, A, b, 0.0, iters, sense_lam), maps, y, folds)
        best, l2 = min(cands, key=lambda k: cands[k].mean())
        gain = sense - cands[(best, l2)]  # per fold: what sparsity adds to CG-SENSE's prediction
        stats = {"gain": float(gain.mean()), "se": float(gain.std(ddof=1) / np.sqrt(gain.size))}
        if stats["gain"] <= SPARSITY_SE * stats["se"]:  # not clearly better: CG-SENSE's solution
            best, l2 = 0.0, sense_lam
        cands[(0.0, sense_lam)] = sense
        errors = {f"{lam:.3g}" + (f"+l2 {w:.3g}" if w else ""): err for (lam, w), err in cands.items()}
    out = {} if method != "l1-wavelet" else {"sparsity_gain": stats}
    return out | {"lam": best, "l2": l2, "errors": {(f"{k:.3g}" if isinstance(k, float) else k): float(np.mean(v))
                                              for k, v in errors.items()}}  # fmt: skip


def _lipschitz(A) -> float:
    """A bound on ‖AᴴA‖: the operator's own (``SenseOp.lipschitz``), else 1 (also for all-zero maps)."""
    bound = A.lipschitz() if hasattr(A, "lipschitz") else 1.0
    return bound if bound > 0 else 1.0
