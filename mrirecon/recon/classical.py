"""Classical reconstructions: zero-filled, SENSE (CG with Tikhonov λ) and L1-wavelet (SigPy).

They solve the same problem as the diffusion prior, ``y = M ⊙ F(S ⊙ x) + n``
(:class:`~mrirecon.physics.operators.SenseOp`), so every evaluation can put the learned
prior next to them. Common interface::

    image = method(kspace, mask, maps, **options)

* ``kspace`` (S, C, H, W) complex (zero-filled where not sampled) or (C, H, W) for one slice;
* ``mask``: (H, W), (W,), per-slice (S, H, W), or anything broadcastable to (S, C, H, W)
  (0/1; a :class:`~mrirecon.physics.masks.Mask` works through ``.mask``);
* ``maps`` (S, C, H, W) or (C, H, W) shared by all slices;
* returns (S, H, W) (or (H, W)) complex64 of the same kind as ``kspace`` (numpy, or a
  tensor on ``kspace``'s device), in the intensity scale of the data (no normalisation).
"""

from __future__ import annotations

import numpy as np
import torch

from mrirecon.errors import MrireconError, check_finite, require
from mrirecon.physics.operators import SenseOp
from mrirecon.physics.solvers import conjugate_gradient

__all__ = ["l1_wavelet", "sense_cg", "zero_filled"]


# ------------------------------------------------------------------------------------------
# input handling


def _tensor(a, name: str) -> torch.Tensor:
    if hasattr(a, "mask") and not isinstance(a, (np.ndarray, torch.Tensor)):
        a = a.mask  # a Mask NamedTuple
    require(
        isinstance(a, (np.ndarray, torch.Tensor)),
        f"{name} must be a numpy array or torch tensor, got {type(a).__name__}",
    )
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))


def _inputs(kspace, mask, maps, device=None):
    """Checked (S, C, H, W) k-space, maps and a 4-D mask on one device; plus how to return."""
    k = _tensor(kspace, "kspace")
    require(
        k.ndim in (3, 4),
        f"kspace must be (slices, coils, H, W) or (coils, H, W), got shape {tuple(k.shape)}",
    )
    require(k.is_complex(), f"kspace must be complex, got dtype {k.dtype}")
    require(k.numel() > 0, f"kspace is empty, shape {tuple(k.shape)}")
    check_finite(k, "kspace")
    single = k.ndim == 3
    k = k[None] if single else k
    S, C, H, W = k.shape

    s = _tensor(maps, "maps")
    require(s.is_complex(), f"maps must be complex, got dtype {s.dtype}")
    require(
        tuple(s.shape) in ((S, C, H, W), (C, H, W)),
        f"maps must be (slices, coils, H, W) = {(S, C, H, W)} or (coils, H, W), got shape {tuple(s.shape)}",
    )
    check_finite(s, "maps")

    m = _tensor(mask, "mask")
    require(not m.is_complex(), f"mask must be real (0/1 values), got dtype {m.dtype}")
    require(1 <= m.ndim <= 4, f"mask must have 1 to 4 dimensions, got shape {tuple(m.shape)}")
    if m.ndim == 3:  # (S, H, W): one mask per slice
        m = m[:, None]
    m = m.reshape((1,) * (4 - m.ndim) + tuple(m.shape))
    try:
        ok = torch.broadcast_shapes(m.shape, (S, C, H, W)) == (S, C, H, W)
    except RuntimeError:
        ok = False
    require(
        ok,
        f"mask of shape {tuple(_tensor(mask, 'mask').shape)} is not broadcastable to kspace "
        f"(slices, coils, H, W) = {(S, C, H, W)}",
    )
    check_finite(m, "mask")

    dev = torch.device(device) if device is not None else k.device
    k = k.to(dev, torch.complex64)
    s = s.to(dev, torch.complex64).expand(S, C, H, W)
    m = m.to(dev, torch.float32)
    like_numpy = isinstance(kspace, np.ndarray)
    return k, m, s, single, like_numpy, k.device if not like_numpy else None


def _output(x: torch.Tensor, single: bool, like_numpy: bool, device):
    x = x[0] if single else x
    return x.cpu().numpy() if like_numpy else x.to(device)


def _positive(value, name: str, integer: bool = False):
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and np.isfinite(value) and value > 0
    require(ok, f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}")
    return int(value) if integer else float(value)


# ------------------------------------------------------------------------------------------
# methods


def zero_filled(kspace, mask, maps, *, device=None):
    """Zero-filled SENSE-1 image ``Aᴴ y = Σ_c conj(S_c) ⊙ F⁻¹(M ⊙ y_c)`` (no normalisation).

    Parameters
    ----------
    kspace : ndarray or Tensor (S, C, H, W) or (C, H, W), complex
    mask : ndarray or Tensor, (H, W), (W,), (S, H, W) or broadcastable to (S, C, H, W)
    maps : ndarray or Tensor (S, C, H, W) or (C, H, W), complex
    device : str, optional
        Where to compute (default: ``kspace``'s device).

    Returns
    -------
    ndarray or Tensor (S, H, W) complex64, same kind as ``kspace``.
    """
    k, m, s, single, like_numpy, out_dev = _inputs(kspace, mask, maps, device)
    return _output(SenseOp(s, m).adjoint(k), single, like_numpy, out_dev)


def sense_cg(kspace, mask, maps, lam: float = 1e-3, iters: int = 30, *, tol: float = 1e-6, device=None):
    """SENSE by conjugate gradients on ``(AᴴA + λI) x = Aᴴ y`` (Tikhonov-regularised least squares).

    Solves ``min_x ‖M F S x − y‖² + λ‖x‖²`` (Pruessmann et al., MRM 46:638, 2001) for all
    slices at once in torch (CPU or GPU), each slice with its own CG step sizes. λ is
    relative to the operator: with ``Σ_c |S_c|² ≈ 1`` the eigenvalues of ``AᴴA`` lie in
    [0, 1], so λ does not depend on the data's intensity scale.

    Parameters
    ----------
    kspace, mask, maps
        As :func:`zero_filled`.
    lam : float
        Tikhonov weight λ ≥ 0.
    iters : int
        Maximum CG iterations.
    tol : float
        Stop when every slice's residual ``‖r‖ ≤ tol·‖Aᴴy‖``.
    device : str, optional
        Where to compute (default: ``kspace``'s device).

    Returns
    -------
    ndarray or Tensor (S, H, W) complex64, same kind as ``kspace``.
    """
    require(
        isinstance(lam, (int, float, np.integer, np.floating)) and np.isfinite(lam) and lam >= 0,
        f"lam must be a number >= 0, got {lam!r}",
    )
    iters = _positive(iters, "iters", integer=True)
    tol = _positive(tol, "tol")
    k, m, s, single, like_numpy, out_dev = _inputs(kspace, mask, maps, device)
    op = SenseOp(s, m)
    lam = float(lam)

    def apply(v: torch.Tensor) -> torch.Tensor:
        return op.normal(v) + lam * v

    x = conjugate_gradient(apply, op.adjoint(k), iters=iters, tol=tol)
    return _output(x, single, like_numpy, out_dev)


def l1_wavelet(kspace, mask, maps, lam: float = 2e-3, iters: int = 100, *, wavelet: str = "db4"):
    """Compressed sensing: ``min_x ½‖M F S x − y‖² + λ_abs‖Ψ x‖₁`` per slice with SigPy.

    ``sigpy.mri.app.L1WaveletRecon`` (Daubechies wavelet Ψ, accelerated proximal gradient;
    Lustig et al., MRM 58:1182, 2007) on the CPU. The ℓ1 term grows linearly with the data
    while the data term grows quadratically, so the given ``lam`` is **relative**:
    ``λ_abs = lam · max|Aᴴ y|`` per slice (the peak of the zero-filled image), which makes
    the default 2e-3 work whatever the intensity scale of the scan.

    The gradient step is ``1 / L`` with the bound ``L = max(M²) · max_pixels Σ_c |S_c|²``
    ≥ ‖AᴴA‖ (1 for normalised maps and a 0/1 mask) instead of SigPy's power iteration,
    which starts from an unseeded random vector: the result is deterministic.

    Parameters
    ----------
    kspace, mask, maps
        As :func:`zero_filled`.
    lam : float
        Relative ℓ1 weight (> 0).
    iters : int
        Iterations of the proximal gradient method.
    wavelet : str
        PyWavelets name of Ψ.

    Returns
    -------
    ndarray or Tensor (S, H, W) complex64, same kind as ``kspace`` (torch results are
    returned to ``kspace``'s device).
    """
    from sigpy.mri.app import L1WaveletRecon

    lam = _positive(lam, "lam")
    iters = _positive(iters, "iters", integer=True)
    require(isinstance(wavelet, str), f"wavelet must be a PyWavelets name, got {wavelet!r}")
    k, m, s, single, like_numpy, out_dev = _inputs(kspace, mask, maps, "cpu")
    S, C, H, W = k.shape
    zf = SenseOp(s, m).adjoint(k)
    mask_np = m.expand(S, C, H, W).numpy()
    lipschitz = (m.abs() ** 2).amax() * (s.abs() ** 2).sum(1).flatten(1).amax(1)  # (S,) ≥ ‖AᴴA‖
    out = np.zeros((S, H, W), np.complex64)
    for i in range(S):
        peak = float(zf[i].abs().max())
        if peak == 0:  # nothing measured: the minimiser is 0
            continue
        weights = mask_np[i, :1] if bool((mask_np[i] == mask_np[i, :1]).all()) else mask_np[i]
        try:
            rec = L1WaveletRecon(
                k[i].numpy(),
                s[i].numpy(),
                lam * peak,
                weights=weights,
                wave_name=wavelet,
                max_iter=iters,
                alpha=1.0 / float(lipschitz[i]),
                show_pbar=False,
            ).run()
        except ValueError as e:  # e.g. an unknown wavelet name
            raise MrireconError(f"l1_wavelet: {e}") from None
        out[i] = np.asarray(rec, dtype=np.complex64)
    return _output(torch.from_numpy(out), single, like_numpy, out_dev)
