"""Classical reconstructions: zero-filled, SENSE (CG) and L1-wavelet, on ``(A, y)``.

They solve the same problem as the diffusion priors, ``y = A x + n`` with the multi-coil
operator ``A = M F S`` (:class:`~mrirecon.physics.operators.SenseOp`, or any
:class:`~mrirecon.physics.linop.LinearOperator`), so every evaluation can put the learned
prior next to them. All methods take ``A`` and ``y`` (torch, any device, batched over the
leading axes) and return images ``(..., H, W)`` complex in the data's intensity scale.

Regularisation as an expert would choose it (:func:`discrepancy_lambda`): Morozov's
discrepancy principle. With the noise level ``σ`` of the data (per complex sample,
``E|n|² = σ²``; :func:`estimate_noise`), the regularisation is the largest one whose data
misfit does not exceed the noise, ``‖A x_λ - y‖² = τ² m σ²`` (``m`` sampled values,
``τ`` = :data:`DISCREPANCY_TAU`): SENSE stops its CG iterations there (iterations regularise),
L1-wavelet finds its λ by bisection. ``lam`` given explicitly overrides the rule.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mrirecon.errors import positive_int, positive_number, require
from mrirecon.physics.linop import LinearOperator
from mrirecon.physics.solvers import conjugate_gradient

__all__ = [
    "DISCREPANCY_TAU",
    "discrepancy_lambda",
    "estimate_noise",
    "l1_wavelet",
    "sense_cg",
    "zero_filled",
]

#: Morozov's safety factor τ of the discrepancy principle.
DISCREPANCY_TAU = 1.0


def _sumsq(r: torch.Tensor, keep: int) -> torch.Tensor:
    """Σ|r|² over all axes after the first ``keep``."""
    return torch.view_as_real(r).square().flatten(keep).sum(-1)


def estimate_noise(y: torch.Tensor, fraction: float = 0.05) -> float:
    """Noise σ (per complex sample, ``E|n|² = σ²``) from the outermost sampled k-space values.

    The highest spatial frequencies of an MR image hold little signal: among the sampled
    positions, the ``fraction`` farthest from the centre (in ``max(|kx|/H, |ky|/W)``, i.e. the
    corners first) are dominated by noise. With ``|n|²`` exponential of mean σ²,
    ``σ² = median(|y|²) / ln 2`` over them (robust to the odd signal sample). An upper bound
    when signal reaches that far.

    Parameters
    ----------
    y : Tensor (..., C, H, W) complex
        Measured k-space (zero where not sampled).
    """
    H, W = y.shape[-2:]
    flat = y.reshape(-1, H, W)
    sampled = (flat != 0).any(0)  # (H, W)
    require(bool(sampled.any()), "cannot estimate the noise level: no sampled k-space values")
    kx = (torch.arange(H, device=y.device) - H // 2).abs() / max(H // 2, 1)
    ky = (torch.arange(W, device=y.device) - W // 2).abs() / max(W // 2, 1)
    radius = torch.maximum(kx[:, None], ky[None, :])[sampled]
    cut = torch.quantile(radius.float(), 1.0 - fraction)
    outer = sampled.clone()
    outer[sampled] = radius >= cut
    power = flat[:, outer].abs().square().flatten()
    power = power[power > 0]
    require(power.numel() > 0, "cannot estimate the noise level: the outer sampled k-space values are all zero")
    return float(torch.sqrt(power.median() / math.log(2.0)))


# ------------------------------------------------------------------------------------------
# methods


def zero_filled(A: LinearOperator, y: torch.Tensor) -> torch.Tensor:
    """Zero-filled SENSE-1 image ``Aᴴ y`` (no normalisation)."""
    return A.adjoint(y)


def sense_cg(
    A: LinearOperator,
    y: torch.Tensor,
    lam: float = 0.0,
    iters: int = 30,
    *,
    noise: float | None = None,
    tol: float = 1e-6,
) -> torch.Tensor:
    """SENSE by conjugate gradients on ``(AᴴA + λI) x = Aᴴ y`` (Pruessmann et al., MRM 46:638, 2001).

    Each image of the batch gets its own step sizes. With ``noise`` (σ) the iterations stop
    for each image once its misfit reaches the discrepancy level ``τ² m σ²`` (early stopping
    regularises like Tikhonov, without a λ to choose); else after ``iters`` iterations or when
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
    noise : float, optional
        σ of the data: stop at the discrepancy level.
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

    stop = None
    if noise is not None:
        target = _discrepancy_level(A, y, noise, rhs.ndim - 2)[..., None, None]

        def stop(x: torch.Tensor) -> torch.Tensor:
            return _sumsq(A.forward(x) - y, rhs.ndim - 2)[..., None, None] <= target

    return conjugate_gradient(apply, rhs, iters=iters, tol=tol, stop=stop)


def _discrepancy_level(A: LinearOperator, y: torch.Tensor, noise: float, keep: int) -> torch.Tensor:
    """``τ² m σ²`` per image, ``m`` the number of sampled values (non-zero ``A·1`` positions)."""
    sampled = (A.forward(torch.ones(A.ishape, dtype=y.dtype, device=y.device)).abs() > 0).to(torch.float32)
    m = sampled.expand(y.shape).flatten(keep).sum(-1) if sampled.ndim <= y.ndim else sampled.flatten(keep).sum(-1)
    return (DISCREPANCY_TAU**2) * m * float(noise) ** 2


class _Wavelet:
    """Orthonormal 2-D wavelet transform (PyWavelets, periodisation) of image batches (..., H, W)."""

    def __init__(self, shape: tuple[int, int], wavelet: str = "db4", levels: int | None = None):
        import pywt

        try:
            self.w = pywt.Wavelet(wavelet)
        except ValueError as e:
            from mrirecon.errors import MrireconError

            raise MrireconError(f"l1_wavelet: {e}") from None
        H, W = shape
        cap = min(4, pywt.dwt_max_level(min(H, W), self.w.dec_len))  # beyond it the filters wrap around
        most = 0
        while most < cap and H % 2 ** (most + 1) == 0 and W % 2 ** (most + 1) == 0:
            most += 1
        self.levels = most if levels is None else min(int(levels), most)
        self.pywt = pywt

    def forward(self, x: np.ndarray):
        coeffs = self.pywt.wavedec2(x, self.w, mode="periodization", level=self.levels, axes=(-2, -1))
        arr, slices = self.pywt.coeffs_to_array(coeffs, axes=(-2, -1))
        return arr, slices

    def inverse(self, arr: np.ndarray, slices) -> np.ndarray:
        coeffs = self.pywt.array_to_coeffs(arr, slices, output_format="wavedec2")
        return self.pywt.waverec2(coeffs, self.w, mode="periodization", axes=(-2, -1))

    def shrink(self, x: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """``Ψᴴ soft(Ψ x, τ)`` with the coarsest approximation band kept (τ broadcast over leading axes)."""
        arr, slices = self.forward(x)
        approx = slices[0]
        keep = arr[(..., *approx)].copy()
        mag = np.abs(arr)
        scale = np.maximum(1.0 - tau[..., None, None] / np.maximum(mag, 1e-30), 0.0)
        arr = arr * scale
        arr[(..., *approx)] = keep
        return self.inverse(arr, slices)


def l1_wavelet(
    A: LinearOperator,
    y: torch.Tensor,
    lam: float | torch.Tensor,
    iters: int = 100,
    *,
    wavelet: str = "db4",
    x0: torch.Tensor | None = None,
) -> torch.Tensor:
    """Compressed sensing: ``min_x ½‖A x - y‖² + λ ‖Ψ x‖₁`` by FISTA (Beck & Teboulle 2009).

    Lustig et al., MRM 58:1182 (2007). Ψ is an orthonormal Daubechies wavelet (PyWavelets,
    periodised, up to 4 levels; the coarsest approximation band is not penalised). The step is
    ``1 / L`` with the bound ``L = max Σ_c |S_c|² · max M²`` (1 for normalised maps): no power
    iteration, the result is deterministic. ``lam`` is **absolute** here (the data's scale):
    :func:`mrirecon.recon.reconstruct` turns a relative λ or the discrepancy rule into it.

    Parameters
    ----------
    A : SenseOp
    y : Tensor (..., C, H, W) complex
    lam : float or Tensor broadcastable to the image batch (...,)
        λ per image.
    iters : int
    wavelet : str
        PyWavelets name of Ψ.
    x0 : Tensor (..., H, W), optional
        Warm start.

    Returns
    -------
    Tensor (..., H, W) complex64 on ``y``'s device.
    """
    iters = positive_int(iters, "iters")
    rhs = A.adjoint(y)
    batch = rhs.shape[:-2]
    lam_t = torch.as_tensor(lam, dtype=torch.float32).expand(batch) if not isinstance(lam, torch.Tensor) else lam.float().expand(batch)
    require(bool((lam_t >= 0).all()) and bool(torch.isfinite(lam_t).all()), f"lam must be >= 0, got {lam!r}")
    L = _lipschitz(A)
    psi = _Wavelet(tuple(rhs.shape[-2:]), wavelet)
    tau = (lam_t / L).cpu().numpy().astype(np.float64)
    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    z, t = x.clone(), 1.0
    for _ in range(iters):
        v = z - (A.normal(z) - rhs) / L
        x_new = torch.from_numpy(psi.shrink(v.cpu().numpy(), tau).astype(np.complex64)).to(rhs.device)
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        z = x_new + ((t - 1.0) / t_new) * (x_new - x)
        x, t = x_new, t_new
    return x


def _lipschitz(A) -> float:
    """A bound on ‖AᴴA‖: ``max Σ_c |S_c|² · max M²`` for SENSE operators, else 1."""
    maps, mask = getattr(A, "maps", None), getattr(A, "mask", None)
    if maps is None or mask is None:
        return 1.0
    bound = float((maps.abs() ** 2).sum(-3).max()) * float((mask.abs() ** 2).max())
    return bound if bound > 0 else 1.0


def discrepancy_lambda(
    A: LinearOperator,
    y: torch.Tensor,
    noise: float,
    *,
    iters: int = 40,
    bisections: int = 8,
    wavelet: str = "db4",
) -> torch.Tensor:
    """λ per image such that the L1-wavelet misfit meets the discrepancy level ``τ² m σ²``.

    Bisection on ``log λ`` between ``1e-5`` and ``1`` times ``max|Aᴴy|`` (per image), each
    trial a warm-started FISTA run of ``iters`` iterations; the misfit grows with λ.

    Returns
    -------
    Tensor (...,) float32: λ (absolute) per image.
    """
    rhs = A.adjoint(y)
    keep = rhs.ndim - 2
    peak = rhs.abs().flatten(keep).amax(-1).clamp_min(1e-30)
    target = _discrepancy_level(A, y, noise, keep)
    lo = torch.full_like(peak, math.log(1e-5))
    hi = torch.full_like(peak, math.log(1.0))
    x = None
    for _ in range(positive_int(bisections, "bisections")):
        mid = (lo + hi) / 2
        x = l1_wavelet(A, y, torch.exp(mid) * peak, iters, wavelet=wavelet, x0=x)
        too_big = _sumsq(A.forward(x) - y, keep) > target
        hi = torch.where(too_big, mid, hi)
        lo = torch.where(too_big, lo, mid)
    return (torch.exp((lo + hi) / 2) * peak).float()
