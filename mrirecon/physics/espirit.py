"""ESPIRiT coil sensitivities in torch: batched over slices, CPU and CUDA, rectangular regions.

Uhrig et al., "ESPIRiT — an eigenvalue approach to autocalibrating parallel MRI", MRM 71:990
(2014). For each slice:

1. **Calibration matrix**: every ``kh × kw`` patch of the fully sampled calibration region
   ``(ch, cw)`` (all coils) is a row of ``A`` (``P × C·kh·kw``). Its right singular vectors
   with ``σ > threshold · σ_max`` span the signal subspace; each becomes a k-space kernel
   ``K_r`` of shape ``(C, kh, kw)``.
2. **Image-space matrices**: at every pixel ``x``, ``M(x) = (1/(kh·kw)) Σ_r u_r(x) u_r(x)ᴴ``
   with ``u_r = F⁻¹ K_r`` (C-vectors). Products in the image domain are correlations in
   k-space, so ``M_ij`` is the inverse DFT of the small ``(2kh-1) × (2kw-1)`` cross-correlation
   ``c_ij[m] = Σ_r Σ_p K_ri[p] conj(K_rj[p - m])`` (computed with FFTs of that size) and is
   evaluated with two small DFT matrices, row block by row block, never with full-size FFTs
   per coil pair.
3. **Maps**: the eigenvector of ``M(x)`` with the largest eigenvalue (power iteration, all
   pixels of a block at once). Inside the object the eigenvalue is ≈ 1; pixels whose eigenvalue
   is below ``crop`` are zeroed (the map support). The phase is referenced to coil 0, as BART's
   ``ecalib`` and SigPy's ``EspiritCalib`` do; ``Σ_c |S_c|² = 1`` on the support.

The calibration region and the kernel may be rectangular, so a 1-D mask with only 6–10
central phase-encode lines still calibrates (a tall region along the fully sampled readout, a
kernel at most half the region's width). The same maps as SigPy's ``EspiritCalib`` (square
region and kernel) within ``1e-2`` on the object after phase alignment, 1e-4 at the median
(tested; both solvers stop short of full convergence where the top two eigenvalues are close); BART's ``ecalib -m1`` is the
speed reference (``benchmarks/bench_physics.py``).
"""

from __future__ import annotations

import math

import torch

from mrirecon.errors import require

__all__ = ["espirit"]


def _patch_matrix(cal: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """(C, ch, cw) calibration data -> (P, C·kh·kw) matrix of all kernel-sized patches."""
    kh, kw = kernel
    C = cal.shape[0]
    patches = cal.unfold(1, kh, 1).unfold(2, kw, 1)  # (C, ph, pw, kh, kw)
    return patches.permute(1, 2, 0, 3, 4).reshape(-1, C * kh * kw)


def _signal_subspace(A: torch.Tensor, threshold: float) -> torch.Tensor | None:
    """Rows ``vᴴ`` of the right singular vectors of ``A`` (P, N) with ``σ > threshold · σ_max``, or None.

    From the eigendecomposition of the Gram matrix ``AᴴA`` (N x N, float64): the same subspace
    as an SVD of ``A``, and fast and reliable where LAPACK's complex SVD of the tall ``A`` is
    not (it took 7 s instead of 20 ms for a 361 x 288 matrix on a 2-core machine under load).
    """
    gram = A.to(torch.complex128).conj().T @ A.to(torch.complex128)
    w, v = torch.linalg.eigh(gram)  # ascending
    sv = w.clamp_min(0).sqrt()
    if float(sv[-1]) == 0.0:
        return None
    keep = torch.flip(torch.nonzero(sv > threshold * sv[-1]).flatten(), (0,))  # largest first
    return v[:, keep].conj().T.to(torch.complex64)


def _kernel_correlation(kernels: torch.Tensor) -> torch.Tensor:
    """Kernels (r, C, kh, kw) -> c (C, C, 2kh-1, 2kw-1), c_ij[m] = Σ_r Σ_p K_ri[p] conj(K_rj[p-m]), lag 0 at (kh-1, kw-1)."""
    r, C, kh, kw = kernels.shape
    L = (2 * kh - 1, 2 * kw - 1)
    spec = torch.fft.fft2(kernels, s=L)  # (r, C, Lh, Lw)
    spec = spec.permute(2, 3, 1, 0)  # (Lh, Lw, C, r)
    cross = spec @ spec.conj().transpose(-1, -2)  # (Lh, Lw, C, C): Σ_r K̂_ri conj(K̂_rj)
    corr = torch.fft.ifft2(cross.permute(2, 3, 0, 1))  # circular lags m mod L
    return torch.roll(corr, shifts=(kh - 1, kw - 1), dims=(-2, -1))


def _dft(n: int, lags: int, device, dtype) -> torch.Tensor:
    """(n, 2·lags-1) matrix exp(2πi m (x - n//2) / n) for lags m = -(lags-1) … lags-1 (centred FFT convention)."""
    x = torch.arange(n, device=device, dtype=torch.float64) - n // 2
    m = torch.arange(-(lags - 1), lags, device=device, dtype=torch.float64)
    return torch.polar(torch.ones((), dtype=torch.float64, device=device), 2 * math.pi * x[:, None] * m[None] / n).to(dtype)


def _norm(v: torch.Tensor) -> torch.Tensor:
    """‖v‖ over the last axis of a complex batch (B, C) -> (B,) (10x faster than vector_norm on complex CPU tensors)."""
    return torch.view_as_real(v).square().sum((-1, -2)).sqrt()


def _top_eigenvectors(M: torch.Tensor, iters: int, squarings: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Top eigenpairs of a batch of Hermitian PSD matrices M (B, C, C): (eigenvectors (B, C), eigenvalues (B,)).

    Power iteration on ``M^(2^squarings)`` (repeated squaring, trace-normalised), started from its
    column with the largest diagonal (never orthogonal to the top eigenvector), then ``iters``
    power iterations with ``M``: the squarings widen the eigenvalue gap where the second
    eigenvalue is close to the first, at ``C³`` per pixel instead of ``2^squarings · C²``.
    """
    B, C, _ = M.shape
    P = M
    for _ in range(squarings):
        P = P @ P
        P = P / P.diagonal(dim1=-2, dim2=-1).real.sum(-1).clamp_min(1e-30)[:, None, None]
    idx = P.diagonal(dim1=-2, dim2=-1).real.argmax(-1)
    v = P[torch.arange(B, device=M.device), :, idx]
    v = v / _norm(v).clamp_min(1e-30)[:, None]
    for _ in range(iters):
        w = (M @ v[..., None])[..., 0]
        v = w / _norm(w).clamp_min(1e-30)[:, None]
    lam = _norm((M @ v[..., None])[..., 0])
    return v, lam


#: ESPIRiT's defaults (as BART's ``ecalib`` and SigPy's): singular values kept above this
#: fraction of the largest, and the eigenvalue crop of the maps' support (one set of maps).
THRESHOLD = 0.02
CROP = 0.95


def espirit(
    kspace: torch.Tensor,
    calib: tuple[int, int],
    kernel: tuple[int, int],
    threshold: float = THRESHOLD,
    crop: float = CROP,
    iters: int = 6,
    squarings: int = 5,
    block: int = 8192,
    sets: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ESPIRiT maps of every slice (module docstring).

    Parameters
    ----------
    kspace : Tensor (S, C, H, W) complex64
        Its centre ``calib`` must be fully sampled (any device).
    calib : (ch, cw)
        Calibration region (readout, phase-encode), ``≤ (H, W)``.
    kernel : (kh, kw)
        Kernel size, smaller than ``calib`` along each axis.
    threshold : float
        Singular values below ``threshold · σ_max`` are dropped.
    crop : float
        Eigenvalue threshold of the map support, in [0, 1].
    iters, squarings : int
        Eigen-solver effort: power iterations after ``squarings`` repeated squarings (equivalent
        to ``2^squarings + iters`` plain power iterations).
    block : int
        Pixels per block of the eigen-step (bounds memory to ``block · C²`` complex values).
    sets : int
        Sets of maps: 1, or the eigenvectors of the ``sets`` largest eigenvalues (each cropped
        at ``crop``; a full eigendecomposition per pixel), for soft-SENSE where the object is
        larger than the field of view and aliased tissue needs a second set (BART ``ecalib -m2``).

    Returns
    -------
    maps : Tensor (S, C, H, W) complex64, or (S, sets, C, H, W) for ``sets > 1``
    eigenvalues : Tensor (S, H, W) float32, or (S, sets, H, W)
        Largest eigenvalue(s) per pixel (≈ 1 inside the object).
    """
    S, C, H, W = kspace.shape
    ch, cw = int(calib[0]), int(calib[1])
    kh, kw = int(kernel[0]), int(kernel[1])
    require(1 <= kh <= ch <= H and 1 <= kw <= cw <= W, f"ESPIRiT: kernel {kernel} must fit in calib {calib} within {(H, W)}")
    require(sets in range(1, C + 1), f"ESPIRiT: sets must be between 1 and the number of coils ({C}), got {sets}")
    dev = kspace.device
    maps = torch.zeros((S, sets, C, H, W), dtype=torch.complex64, device=dev)
    eig = torch.zeros((S, sets, H, W), dtype=torch.float32, device=dev)
    Eh = _dft(H, kh, dev, torch.complex64)  # (H, 2kh-1)
    Ew = _dft(W, kw, dev, torch.complex64)  # (W, 2kw-1)
    rows = max(1, block // W)
    for s in range(S):
        k = kspace[s]
        top, left = H // 2 - ch // 2, W // 2 - cw // 2
        cal = k[:, top : top + ch, left : left + cw]
        vh = _signal_subspace(_patch_matrix(cal, (kh, kw)), threshold)
        if vh is None:
            continue  # no signal: zero maps
        kernels = vh.reshape(-1, C, kh, kw)
        corr = _kernel_correlation(kernels).to(torch.complex64) / (kh * kw)  # (C, C, 2kh-1, 2kw-1)
        half = torch.einsum("ijmn,yn->ijmy", corr, Ew)  # (C, C, 2kh-1, W)
        for r0 in range(0, H, rows):
            r1 = min(H, r0 + rows)
            Mb = torch.einsum("xm,ijmy->xyij", Eh[r0:r1], half).reshape(-1, C, C)
            if sets == 1:
                v, lam = _top_eigenvectors(Mb, iters, squarings)
                v, lam = v[:, None], lam[:, None]  # (B, 1, C), (B, 1)
            else:
                w, vecs = torch.linalg.eigh(Mb)  # ascending
                v = vecs[..., -sets:].flip(-1).transpose(-1, -2)  # (B, sets, C)
                lam = w[..., -sets:].flip(-1).clamp_min(0)
            ref = v[..., :1]
            v = v * (ref.conj() / ref.abs().clamp_min(1e-8))
            v = v * (lam > crop)[..., None]
            maps[s, :, :, r0:r1] = v.reshape(r1 - r0, W, sets, C).permute(2, 3, 0, 1)
            eig[s, :, r0:r1] = lam.reshape(r1 - r0, W, sets).permute(2, 0, 1).float()
    if sets == 1:
        return maps[:, 0], eig[:, 0]
    return maps, eig
