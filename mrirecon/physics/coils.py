"""Coil sensitivities (ESPIRiT through SigPy, a direct torch calibration) and coil combination.

Layouts: k-space and maps ``(C, H, W)`` or ``(S, C, H, W)`` (slices, coils, readout,
phase-encode), complex64; coil images likewise. Maps are normalised so that
``Σ_c |S_c|² ≈ 1`` inside the object, which makes ``Σ_c conj(S_c)·x_c`` (SENSE-1) the
complex combined image and the normal operator of :class:`~mrirecon.physics.operators.SenseOp`
close to a projection.

Where the calibration data come from (:func:`calibrate` / :func:`estimate_sens`):

* default: the fully sampled centre (ACS) of the *undersampled* data, found from the mask
  (:func:`calib_region`);
* ``mask=None`` on fully sampled k-space: the "reference" protocol of the AID paper (maps
  from the fully sampled scan), i.e. oracle-quality maps.

Methods (:data:`SENS_METHODS`):

``auto`` (the default everywhere)
    ESPIRiT (torch, :mod:`mrirecon.physics.espirit`) whose calibration region is the mask's
    ACS (at most 24 phase-encode lines; along a fully sampled readout taller, 32 rows, so
    that narrow regions still give enough patches) and whose kernel is about half the region
    (``min(6, ceil(n/2), n-2)`` along each axis), when the ACS has at least
    :data:`MIN_ESPIRIT_LINES` lines. On the tuning scans (MNI training-split phantoms, 64²–320²,
    fastMRI equispaced masks) CG-SENSE with these maps came within 0.7 dB of oracle maps from
    the fully sampled data from 5 ACS lines up, where a fixed kernel of 6 (SigPy's default)
    needs 12 lines and a kernel of 4 on 5 lines collapses (11 dB). With fewer (or no)
    calibration lines, JSENSE (joint
    estimation of image and smooth maps from all sampled data in the k-space centre,
    SigPy's ``JsenseRecon``). Refused only when the central 24 × 24 of k-space holds fewer
    than :data:`MIN_CENTRE_SAMPLES` samples. The choice is reported (:class:`Calibration`).
``espirit``
    The torch ESPIRiT with the same adaptive region and kernel, never falling back.
``espirit-sigpy``
    SigPy's ``EspiritCalib`` (square region and kernel, CPU or CuPy): the reference the torch
    version is tested against.
``direct``
    Low-resolution coil images over their RSS (BART ``caldir``-like, torch, fast): maps that
    fill the whole field of view (no support).
``jsense``
    SigPy's JSENSE from the sampled centre.

The data are divided by their largest magnitude before calibration: maps do not depend on the
intensity scale, and float32 arithmetic neither overflows (|k| ~ 1e20) nor underflows (1e-30).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from mrirecon.errors import MrireconError, check_choice, check_finite, positive_int, require
from mrirecon.physics.espirit import CROP, THRESHOLD
from mrirecon.physics.fft import center_crop, center_pad, ifft2c
from mrirecon.physics.masks import _mask_2d, acs_width, calib_region

#: ESPIRiT's eigenvalue crop with two sets of maps (soft-SENSE), whose second set's eigenvalues
#: are lower: +0.35-0.45 dB over 0.5 and 0.95 on the wrapping 8-coil brain (docs/evaluation.md).
SOFT_SENSE_CROP = 0.8

__all__ = [
    "SENS_METHODS",
    "Calibration",
    "acs_width",
    "calib_region",
    "calibrate",
    "direct_maps",
    "espirit_maps",
    "estimate_sens",
    "map_support",
    "rss",
    "sense_combine",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)

SENS_METHODS = ("auto", "espirit", "espirit-sigpy", "direct", "jsense")
#: ESPIRiT needs this many fully sampled central lines (a kernel of 3 along them); fewer -> JSENSE.
MIN_ESPIRIT_LINES = 5
#: Fewer samples than this in the central 24 x 24 of k-space: no estimate is possible.
MIN_CENTRE_SAMPLES = 16
_MAX_CALIB = 24  # phase-encode lines (and readout rows of 2-D masks) used by ESPIRiT
_MAX_CALIB_TALL = 32  # readout rows of 1-D masks, whose readout is fully sampled
_MAX_KERNEL = 6
_DIRECT_CALIB = 30
_MIN_DIRECT = 4  # fewer central lines give a low-resolution image too coarse to divide by


# ------------------------------------------------------------------------------------------
# input handling


def _kspace(kspace, name: str = "kspace") -> tuple[torch.Tensor, bool]:
    """(C, H, W) or (S, C, H, W) complex -> a 4-D complex tensor and whether a slice axis was added."""
    require(
        isinstance(kspace, (np.ndarray, torch.Tensor)),
        f"{name} must be a numpy array or torch tensor, got {type(kspace).__name__}",
    )
    require(
        kspace.ndim in (3, 4),
        f"{name} must be (coils, H, W) or (slices, coils, H, W), got shape {tuple(kspace.shape)}",
    )
    t = kspace if isinstance(kspace, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(kspace))
    require(t.is_complex(), f"{name} must be complex, got dtype {t.dtype}")
    require(t.numel() > 0, f"{name} is empty, shape {tuple(t.shape)}")
    check_finite(t, name)
    single = t.ndim == 3
    return (t[None] if single else t).to(torch.complex64), single


def _like(out: torch.Tensor, single: bool, original) -> Array:
    out = out[0] if single else out
    if isinstance(original, np.ndarray):
        return out.cpu().numpy()
    return out.to(original.device)


# ------------------------------------------------------------------------------------------
# coil combination


def rss(coil_images: Array, dim: int = -3) -> Array:
    """Root sum of squares ``sqrt(Σ_c |x_c|²)`` over the coil axis (fastMRI's ``rss_complex``).

    Parameters
    ----------
    coil_images : ndarray or Tensor (..., C, H, W)
    dim : int
        Coil axis.

    Returns
    -------
    ndarray or Tensor (..., H, W), real (float32 for complex64 input), same kind as the input.
    """
    require(
        isinstance(coil_images, (np.ndarray, torch.Tensor)),
        f"coil_images must be a numpy array or torch tensor, got {type(coil_images).__name__}",
    )
    require(
        -coil_images.ndim <= dim < coil_images.ndim,
        f"dim={dim} is out of range for coil_images of shape {tuple(coil_images.shape)}",
    )
    if isinstance(coil_images, torch.Tensor):
        return torch.sqrt((coil_images.abs() ** 2).sum(dim))
    return np.sqrt((np.abs(coil_images) ** 2).sum(axis=dim))


def sense_combine(coil_images: Array, maps: Array) -> Array:
    """SENSE-1 combination ``Σ_c conj(S_c)·x_c`` (the adjoint of the fully sampled operator).

    Parameters
    ----------
    coil_images : ndarray or Tensor (..., C, H, W), complex
    maps : ndarray or Tensor (..., C, H, W), complex, broadcastable to ``coil_images``

    Returns
    -------
    ndarray or Tensor (..., H, W), complex, same kind as ``coil_images``.
    """
    for a, name in ((coil_images, "coil_images"), (maps, "maps")):
        require(
            isinstance(a, (np.ndarray, torch.Tensor)),
            f"{name} must be a numpy array or torch tensor, got {type(a).__name__}",
        )
        require(a.ndim >= 3, f"{name} must be (..., coils, H, W), got shape {tuple(a.shape)}")
    try:
        np.broadcast_shapes(tuple(coil_images.shape), tuple(maps.shape))
    except ValueError:
        raise MrireconError(
            f"maps of shape {tuple(maps.shape)} do not match coil_images of shape {tuple(coil_images.shape)}"
        ) from None
    if isinstance(coil_images, torch.Tensor):
        m = maps if isinstance(maps, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(maps))
        return (m.to(coil_images.device).conj() * coil_images).sum(-3)
    m = maps.cpu().numpy() if isinstance(maps, torch.Tensor) else maps
    return (np.conj(m) * coil_images).sum(axis=-3)


# ------------------------------------------------------------------------------------------
# estimators


def _pair(value, name: str) -> tuple[int, int]:
    """An int or (h, w) -> (h, w) of positive ints."""
    v = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    require(len(v) == 2, f"{name} must be an integer or (h, w), got {value!r}")
    return positive_int(v[0], name), positive_int(v[1], name)


def _normalised(k: torch.Tensor) -> torch.Tensor:
    """Each slice divided by its largest magnitude (maps are scale-free; float32 stays in range)."""
    peak = k.abs().flatten(1).amax(1)
    peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    return k / peak[:, None, None, None]


def espirit_maps(
    kspace: Array,
    calib: int | tuple[int, int] = 24,
    kernel: int | tuple[int, int] = 6,
    threshold: float = THRESHOLD,
    crop: float = CROP,
    backend: str = "torch",
    device: str | None = None,
    sets: int = 1,
) -> Array:
    """ESPIRiT sensitivities per slice (one set of maps, or ``sets`` for soft-SENSE).

    Uhrig et al., MRM 71:990 (2014). The centre ``calib`` of k-space must be fully sampled
    (:func:`calibrate` checks it against the mask). Pixels whose eigenvalue is below ``crop``
    are zeroed (the map support); the phase is referenced to coil 0.

    Parameters
    ----------
    kspace : ndarray or Tensor (C, H, W) or (S, C, H, W), complex
    calib : int or (h, w)
        Calibration region (readout, phase-encode).
    kernel : int or (h, w)
        k-space kernel, smaller than ``calib``.
    threshold : float
        Singular values below ``threshold · σ_max`` of the calibration matrix are dropped.
    crop : float
        Eigenvalue threshold in [0, 1] of the map support.
    backend : {"torch", "sigpy"}
        :func:`mrirecon.physics.espirit.espirit` (batched, any device, rectangular regions) or
        SigPy's ``EspiritCalib`` (square region and kernel; GPU only with CuPy).
    device : str, optional
        Where to compute (default: the input's device; numpy input: the CPU).
    sets : int
        1, or 2 for ESPIRiT's second eigenvector too (torch backend; BART ``ecalib -m2``).

    Returns
    -------
    ndarray or Tensor, same kind and shape as ``kspace`` (``sets > 1``: a set axis after the
    slice axis, (S, sets, C, H, W)), complex64.
    """
    k, single = _kspace(kspace)
    S, C, H, W = k.shape
    ch, cw = _pair(calib, "calib")
    kh, kw = _pair(kernel, "kernel")
    require(ch <= H and cw <= W, f"calib {(ch, cw)} exceeds the k-space size (H, W) = {(H, W)}")
    require(kh < ch and kw < cw, f"kernel {(kh, kw)} must be smaller than calib {(ch, cw)} along both axes")
    require(0 <= float(threshold) < 1, f"threshold must be in [0, 1), got {threshold!r}")
    require(0 <= float(crop) <= 1, f"crop must be in [0, 1], got {crop!r}")
    check_choice(backend, ("torch", "sigpy"), "backend")
    require(sets == 1 or backend == "torch", f"backend='sigpy' computes one set of maps, got sets={sets}")
    if backend == "sigpy":
        require(ch == cw and kh == kw, f"backend='sigpy' takes a square calib and kernel, got {(ch, cw)} and {(kh, kw)}")
        return _like(_espirit_sigpy(_normalised(k), ch, kh, float(threshold), float(crop), device), single, kspace)
    from mrirecon.devices import resolve_device
    from mrirecon.physics.espirit import espirit

    dev = k.device if device is None else resolve_device(device)
    maps, _ = espirit(_normalised(k.to(dev)), (ch, cw), (kh, kw), float(threshold), float(crop), sets=sets)
    return _like(maps, single, kspace)


def _espirit_sigpy(k: torch.Tensor, calib: int, kernel: int, threshold: float, crop: float, device) -> torch.Tensor:
    import sigpy as sp
    from sigpy.mri.app import EspiritCalib

    sp_device = _sigpy_device("cpu" if device is None else device)
    out = np.empty(tuple(k.shape), np.complex64)
    ks = k.detach().cpu().numpy()
    for s in range(ks.shape[0]):
        mps = EspiritCalib(ks[s], calib_width=calib, thresh=threshold, kernel_width=kernel, crop=crop,
                           device=sp_device, show_pbar=False).run()  # fmt: skip
        out[s] = sp.to_device(mps, sp.cpu_device)
    return torch.from_numpy(out)


def _sigpy_device(device) -> "object":
    import sigpy as sp

    require(isinstance(device, (str, torch.device)), f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise MrireconError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from None
    if dev.type == "cpu":
        return sp.cpu_device
    require(dev.type == "cuda", f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    require(
        sp.config.cupy_enabled,
        f"device={str(device)!r}: SigPy's ESPIRiT runs on the GPU only with CuPy installed; use backend='torch'",
    )
    return sp.Device(dev.index or 0)


def _kaiser_bessel(n: int, beta: float, device) -> torch.Tensor:
    """Kaiser–Bessel window of length n peaking at index n//2 (the k-space centre)."""
    t = (torch.arange(n, device=device, dtype=torch.float64) - n // 2) / max(n / 2, 1)
    w = torch.special.i0(beta * torch.sqrt(torch.clamp(1 - t * t, min=0))) / torch.special.i0(
        torch.tensor(beta, dtype=torch.float64)
    )
    return w.to(torch.float32)


def direct_maps(
    kspace: Array,
    calib: int | tuple[int, int] = _DIRECT_CALIB,
    kaiser_beta: float = 4.0,
    floor: float = 1e-3,
) -> Array:
    """Direct sensitivities (like BART ``caldir``): low-resolution coil images over their RSS.

    McKenzie et al., MRM 47:529 (2002). Per slice: the centre ``calib`` of k-space,
    tapered by a separable Kaiser–Bessel window (β = ``kaiser_beta``) to avoid Gibbs ringing,
    zero-padded and inverse-FFT'd gives smooth coil images ``l_c``; then
    ``S_c = l_c / max(RSS(l), floor · max RSS(l))`` so ``Σ_c |S_c|² = 1`` wherever the
    low-resolution RSS exceeds the floor (no phase normalisation, as in BART). Pure torch:
    batched over slices, runs on the input's device.

    Parameters
    ----------
    kspace : ndarray or Tensor (C, H, W) or (S, C, H, W), complex
        Its centre ``calib`` must be fully sampled.
    calib : int or (int, int)
        Calibration region (square, or (readout, phase-encode)); capped at (H, W).
    kaiser_beta : float
        Window shape (0 = rectangular).
    floor : float
        Relative floor of the RSS division, in [0, 1).

    Returns
    -------
    ndarray or Tensor, same kind and shape as ``kspace``, complex64.
    """
    k, single = _kspace(kspace)
    S, C, H, W = k.shape
    ch, cw = (min(n, m) for n, m in zip(_pair(calib, "calib"), (H, W)))
    require(
        isinstance(kaiser_beta, (int, float)) and kaiser_beta >= 0,
        f"kaiser_beta must be a number >= 0, got {kaiser_beta!r}",
    )
    require(isinstance(floor, (int, float)) and 0 <= floor < 1, f"floor must be in [0, 1), got {floor!r}")
    centre = center_crop(_normalised(k), (ch, cw))
    window = _kaiser_bessel(ch, float(kaiser_beta), k.device)[:, None] * _kaiser_bessel(
        cw, float(kaiser_beta), k.device
    )
    low = ifft2c(center_pad(centre * window, (H, W)))
    norm = rss(low, dim=1)  # (S, H, W)
    peak = norm.flatten(1).amax(1).clamp_min(torch.finfo(torch.float32).tiny)
    denom = torch.maximum(norm, float(floor) * peak[:, None, None]).clamp_min(torch.finfo(torch.float32).tiny)
    maps = low / denom[:, None]
    return _like(maps.to(torch.complex64), single, kspace)


def jsense_maps(
    kspace: Array, mask=None, calib: int = 24, kernel: int | None = None, iters: int = 10, lam: float = 1e-2
) -> Array:
    """JSENSE sensitivities: image and smooth maps estimated jointly from the sampled k-space centre.

    Ying & Sheng, MRM 57:1196 (2007), with the truncated-Fourier map model of NLINV (Uecker et
    al., MRM 60:674, 2008), through SigPy's ``JsenseRecon``. Works without a fully sampled
    calibration region (random and Poisson masks without ACS, a handful of central lines).
    The maps are normalised to ``Σ_c |S_c|² = 1`` where the low-resolution RSS is not negligible.

    Parameters
    ----------
    kspace : ndarray or Tensor (C, H, W) or (S, C, H, W), complex, zero where not sampled
    mask : array (W,) or (H, W), optional
        Sampling mask (default: where ``kspace`` is non-zero).
    calib : int
        Side of the k-space centre used (SigPy's ``ksp_calib_width``).
    kernel : int, optional
        Map kernel width in k-space (default ``calib // 2``, at most 16).
    iters : int
        Outer iterations.
    lam : float
        NLINV-style regularisation of image and maps (relative to the data, which are divided
        by their peak first); without it the Gauss-Newton steps fail on undersampled data.
    """
    from sigpy.mri.app import JsenseRecon

    k, single = _kspace(kspace)
    S, C, H, W = k.shape
    calib = min(positive_int(calib, "calib"), H, W)
    kernel = min(16, max(2, calib // 2)) if kernel is None else positive_int(kernel, "kernel")
    kn = _normalised(k).cpu().numpy()
    weights = None if mask is None else np.broadcast_to(_mask_2d(mask, (H, W)).astype(np.float32), (H, W))
    out = np.zeros((S, C, H, W), np.complex64)
    for s in range(S):
        w = (np.abs(kn[s]).sum(0) > 0).astype(np.float32) if weights is None else weights
        mps = JsenseRecon(kn[s], mps_ker_width=kernel, ksp_calib_width=calib, weights=w, lamda=float(lam),
                          max_iter=positive_int(iters, "iters"), show_pbar=False).run()  # fmt: skip
        mps = np.nan_to_num(np.asarray(mps, np.complex64))  # SigPy divides by an RSS that can be 0
        norm = np.sqrt((np.abs(mps) ** 2).sum(0))
        out[s] = mps / np.maximum(norm, 1e-3 * norm.max() + 1e-30)
    return _like(torch.from_numpy(out).to(k.device), single, kspace)


def map_support(maps: Array, threshold: float = 0.5) -> Array:
    """Where maps are supported: ``Σ_c |S_c|² >= threshold`` (``(..., H, W)`` bool, same kind as ``maps``).

    ESPIRiT zeroes the maps outside the object (eigenvalue below ``crop``): there the data
    carry no information, and a reconstruction must not invent signal there.
    """
    energy = (maps.abs() ** 2).sum(-3) if isinstance(maps, torch.Tensor) else (np.abs(maps) ** 2).sum(-3)
    return energy >= threshold


# ------------------------------------------------------------------------------------------
# the calibration policy


@dataclass(frozen=True)
class Calibration:
    """Coil maps and how they were made.

    Attributes
    ----------
    maps : ndarray or Tensor (S, C, H, W) complex64, or (S, 2, C, H, W) for two sets (soft-SENSE)
    method : str
        The estimator used (``espirit``, ``jsense``, ``direct``, ``espirit-sigpy``).
    requested : str
        The method asked for (``auto`` may pick ``jsense``).
    calib : (int, int) or None
        Calibration region (readout, phase-encode).
    kernel : (int, int) or None
    acs : (int, int)
        The mask's fully sampled centred box.
    note : str
        Why the method was chosen (shown by the CLI, kept in ``info``).
    """

    maps: object
    method: str
    requested: str
    calib: tuple[int, int] | None
    kernel: tuple[int, int] | None
    acs: tuple[int, int]
    note: str

    def describe(self) -> str:
        """One line for logs: ``espirit (calib 32x10, kernel 6x5; auto: 10 ACS lines)``."""
        parts = []
        if self.calib is not None:
            parts.append(f"calib {self.calib[0]}x{self.calib[1]}")
        if self.kernel is not None:
            parts.append(f"kernel {self.kernel[0]}x{self.kernel[1]}")
        detail = ", ".join(parts)
        return f"{self.method} ({detail}{'; ' if detail and self.note else ''}{self.note})"

    def as_info(self) -> dict:
        return {"method": self.method, "requested": self.requested, "calib": self.calib, "kernel": self.kernel,
                "acs": list(self.acs), "note": self.note}  # fmt: skip


def _centre_samples(mask2d: np.ndarray, H: int, W: int) -> int:
    m = np.broadcast_to(mask2d, (H, W))
    return int(center_crop(m, (min(24, H), min(24, W))).sum())


def calibrate(
    kspace: Array,
    mask=None,
    method: str = "auto",
    *,
    calib: int | tuple[int, int] | None = None,
    kernel: int | tuple[int, int] | None = None,
    threshold: float = THRESHOLD,
    crop: float | None = None,
    device: str | None = None,
    sets: int = 1,
) -> Calibration:
    """Coil maps from the calibration region of the data, with the choices made (module docstring).

    Parameters
    ----------
    kspace : ndarray or Tensor (C, H, W) or (S, C, H, W), complex
        Undersampled (zero-filled) or fully sampled k-space.
    mask : ndarray or Tensor (W,) or (H, W), optional
        The sampling mask; its centred fully sampled box (:func:`calib_region`) bounds the
        calibration region. None: ``kspace`` is fully sampled (oracle maps).
    method : {"auto", "espirit", "espirit-sigpy", "direct", "jsense"}
    calib : int or (h, w), optional
        Calibration region; default: the ACS, at most 24 lines (32 readout rows for 1-D
        masks); an explicit region larger than the ACS is an error.
    kernel : int or (h, w), optional
        ESPIRiT kernel (JSENSE: map kernel width); default: 6, at most half the region.
    threshold, crop : float
        ESPIRiT's singular-value threshold and eigenvalue crop (default 0.95; 0.8 with two
        sets, where the second set's eigenvalues are lower: +0.35–0.45 dB over 0.5 and 0.95 on
        the wrapping 8-coil brain at 4x).
    device : str, optional
        Where the torch estimators run (default: the input's device).
    sets : {1, 2}
        ``2``: two sets of ESPIRiT maps (soft-SENSE, maps ``(S, 2, C, H, W)``) for an object
        larger than the field of view; ``auto`` then means ESPIRiT.
    """
    check_choice(method, SENS_METHODS, "method")
    require(sets in (1, 2), f"sets must be 1 or 2 (sets of ESPIRiT maps), got {sets!r}")
    crop = (CROP if sets == 1 else SOFT_SENSE_CROP) if crop is None else crop
    require(
        sets == 1 or method in ("auto", "espirit"),
        f"two sets of maps come from ESPIRiT (method 'espirit' or 'auto'), not from {method!r}",
    )
    k, single = _kspace(kspace)
    S, C, H, W = k.shape
    if mask is None:
        m2 = np.ones((1, W), bool)
        acs = (H, W)
    else:
        m2 = _mask_2d(mask, (H, W))
        acs = calib_region(m2)
        if acs[0] == 1 and H > 1:  # a (W,) mask: every row is sampled alike
            acs = (H, acs[1])
    one_d = mask is None or m2.shape[0] == 1 or bool(np.all(m2 == m2[:1]))
    where = "the k-space" if mask is None else "the mask's fully sampled centre (ACS)"
    if calib is not None:
        ch, cw = _pair(calib, "calib")
        require(
            ch <= acs[0] and cw <= acs[1],
            f"calib {(ch, cw)} needs that many fully sampled central rows x lines but {where} has only "
            f"{acs[0]} x {acs[1]}; use a smaller calib or omit it",
        )
    else:
        ch = min(acs[0], _MAX_CALIB_TALL if one_d else _MAX_CALIB)
        cw = min(acs[1], _MAX_CALIB)
    chosen = method
    note = "" if mask is None else f"{acs[1]} ACS lines"
    if method == "auto" and sets > 1:
        chosen, note = "espirit", f"{note}; two sets of ESPIRiT maps (soft-SENSE)".lstrip("; ")
    elif method == "auto":
        chosen, note = _auto_choice(k, m2, (ch, cw), acs, note)
    if chosen == "jsense":
        n = _centre_samples(m2, H, W)
        require(
            n >= MIN_CENTRE_SAMPLES,
            f"{where}: the central 24x24 of k-space holds {n} samples; coil maps need at least {MIN_CENTRE_SAMPLES} "
            "there (give maps with sens=..., or sample the k-space centre)",
        )
        kern = None if kernel is None else _pair(kernel, "kernel")[1]
        maps = jsense_maps(k, None if mask is None else m2, calib=min(24, H, W), kernel=kern)
        return Calibration(_like(maps, single, kspace), "jsense", method, (min(24, H), min(24, W)),
                           None if kern is None else (kern, kern), acs, note)  # fmt: skip
    if chosen == "direct":
        require(cw >= _MIN_DIRECT, f"{where} has only {acs[1]} fully sampled central lines; direct maps need at least {_MIN_DIRECT}")
        dc = (min(acs[0], _DIRECT_CALIB), min(acs[1], _DIRECT_CALIB)) if calib is None else (ch, cw)
        maps = direct_maps(k if device is None else k.to(device), calib=dc)
        return Calibration(_like(maps, single, kspace), "direct", method, dc, None, acs, note)
    calib_, kernel_, maps = _espirit_calibration(k, chosen, (ch, cw), kernel, threshold, crop, device, where, acs, sets)
    return Calibration(_like(maps, single, kspace), chosen, method, calib_, kernel_, acs, note)


#: λ (Tikhonov, relative to AᴴA) over which a map candidate's hold-out error is minimised.
_HOLDOUT_LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0)


def _auto_choice(k: torch.Tensor, m2: np.ndarray, region, acs, note: str) -> tuple[str, str]:
    """``auto``: the candidates the calibration region allows, ranked by k-space cross-validation.

    ESPIRiT needs :data:`MIN_ESPIRIT_LINES` lines, else JSENSE; direct maps and JSENSE join as
    candidates (direct from :data:`_MIN_DIRECT` lines). On the middle slice each candidate's
    maps (from the calibration region, which no fold of
    :func:`~mrirecon.physics.masks.holdout_folds` holds out) feed CG-SENSE at a few λ; the maps
    whose best reconstruction predicts the held-out samples best win. On real scans at 8x (5–10
    ACS lines) JSENSE was the best of the three in 3 of 6 equispaced cells, by up to 1 dB. On real scans
    ESPIRiT from a few ACS lines, or from a field of view smaller than the object, can be worse
    than maps without a support (CG-SENSE below zero filling); this catches it.
    """
    from mrirecon.physics.holdout import holdout_error
    from mrirecon.physics.masks import holdout_folds
    from mrirecon.physics.solvers import conjugate_gradient

    espirit_ok = min(region) >= MIN_ESPIRIT_LINES
    first = "espirit" if espirit_ok else "jsense"
    if not espirit_ok:
        note = f"only {min(acs)} fully sampled central lines (ESPIRiT needs {MIN_ESPIRIT_LINES}): JSENSE from all central samples"
    folds = holdout_folds(m2) if region[1] >= _MIN_DIRECT else None
    if folds is None:
        return first, note
    mid = k.shape[0] // 2
    H, W = k.shape[-2:]
    y = k[mid : mid + 1]  # maps from the calibration region, which no fold holds out
    scores = {}
    candidates = (first, "direct") if first == "jsense" else (first, "direct", "jsense")
    for cand in candidates:
        if cand == "jsense":
            maps = jsense_maps(y, m2, calib=min(24, H, W))
        elif cand == "direct":
            maps = direct_maps(y, calib=(min(acs[0], _DIRECT_CALIB), min(acs[1], _DIRECT_CALIB)))
        else:
            kh, kw = (min(_MAX_KERNEL, -(-n // 2), n - 2) for n in region)
            maps = espirit_maps(y, region, (kh, kw))
        errors = [holdout_error(lambda A, b, lam=lam: conjugate_gradient(lambda v: A.normal(v) + lam * v, A.adjoint(b), iters=30),
                                maps, y, folds).mean() for lam in _HOLDOUT_LAMBDAS]  # fmt: skip
        scores[cand] = float(min(errors))
    best = min(scores, key=scores.get)
    ranked = ", ".join(f"{c} {v:.3f}" for c, v in sorted(scores.items(), key=lambda kv: kv[1]))
    note = f"{note}; " if note else ""
    note += f"held-out k-space error {ranked}"
    if best != first:
        note += f": {first} maps from {acs[1]} lines predict the held-out lines worse, using {best}"
    if scores[best] >= 1.0:
        note += " (no maps predict better than zero filling: the calibration region cannot support SENSE)"
    return best, note


def _espirit_calibration(k, chosen, region, kernel, threshold, crop, device, where, acs, sets=1):
    """ESPIRiT (torch or SigPy) on ``region``: a kernel of about half the region (at most 6), leaving >= 3
    patch positions per axis, unless ``kernel`` is given. Returns (calib, kernel, maps)."""
    ch, cw = region
    if kernel is None:
        kh, kw = (min(_MAX_KERNEL, -(-n // 2), n - 2) for n in (ch, cw))
    else:
        kh, kw = _pair(kernel, "kernel")
    require(
        min(kh, kw) >= 1 and kh < ch and kw < cw and (kernel is not None or min(ch, cw) >= MIN_ESPIRIT_LINES),
        f"{where} has a {acs[0]} x {acs[1]} calibration region; ESPIRiT needs at least {MIN_ESPIRIT_LINES} lines "
        f"(kernel {(kh, kw)} must be smaller than calib {(ch, cw)}); use sens='auto' (JSENSE below that) or 'jsense'",
    )
    if chosen == "espirit-sigpy":
        require(sets == 1, "espirit-sigpy computes one set of maps; use 'espirit' for two")
        side, ks = min(ch, cw), min(kh, kw)
        return (side, side), (ks, ks), espirit_maps(k, side, ks, threshold, crop, backend="sigpy", device=device)
    return (ch, cw), (kh, kw), espirit_maps(k, (ch, cw), (kh, kw), threshold, crop, device=device, sets=sets)


def estimate_sens(kspace: Array, mask=None, method: str = "auto", **options) -> Array:
    """Coil sensitivities from the calibration region: :func:`calibrate` ``(...).maps``.

    Parameters
    ----------
    kspace : ndarray or Tensor (C, H, W) or (S, C, H, W), complex
    mask : array (W,) or (H, W), optional
        None for fully sampled data.
    method : {"auto", "espirit", "espirit-sigpy", "direct", "jsense"}
    **options
        ``calib``, ``kernel``, ``threshold``, ``crop``, ``device``, ``sets`` (:func:`calibrate`).

    Returns
    -------
    ndarray or Tensor, same kind and shape as ``kspace``, complex64.
    """
    allowed = ("calib", "kernel", "threshold", "crop", "device", "sets")
    unknown = sorted(set(options) - set(allowed))
    require(not unknown, f"estimate_sens does not take {', '.join(unknown)}; its options: {', '.join(allowed)}")
    return calibrate(kspace, mask, method, **options).maps
