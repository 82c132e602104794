"""Coil sensitivities (ESPIRiT through SigPy, a direct torch calibration) and coil combination.

Layouts: k-space and maps ``(C, H, W)`` or ``(S, C, H, W)`` (slices, coils, readout,
phase-encode), complex64; coil images likewise. Maps are normalised so that
``Σ_c |S_c|² ≈ 1`` inside the object, which makes ``Σ_c conj(S_c)·x_c`` (SENSE-1) the
complex combined image and the normal operator of :class:`~mrirecon.physics.operators.SenseOp`
close to a projection.

Where the calibration data come from (:func:`estimate_sens`):

* default: the fully sampled centre (ACS) of the *undersampled* data, found from the mask
  (:func:`calib_region`); without an explicit calibration size the method's default (24
  for ESPIRiT, 30 for direct) is shrunk to the ACS, down to a minimum below which the maps
  would be garbage and a clear error is raised;
* ``mask=None`` on fully sampled k-space: the "reference" protocol of the AID paper (maps
  from the fully sampled scan, BART ``caldir 30``), i.e. oracle-quality maps.
"""

from __future__ import annotations

import inspect
from typing import TypeVar

import numpy as np
import torch

from mrirecon.errors import MrireconError, check_finite, require
from mrirecon.physics.fft import center_crop, center_pad, ifft2c

__all__ = [
    "SENS_METHODS",
    "acs_width",
    "calib_region",
    "direct_maps",
    "espirit_maps",
    "estimate_sens",
    "rss",
    "sense_combine",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)

SENS_METHODS = ("espirit", "direct")
_DEFAULT_CALIB = {"espirit": 24, "direct": 30}
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


def _check_options(func, kw: dict, what: str) -> None:
    params = inspect.signature(func).parameters
    options = [p for p in params if p not in ("kspace",)]
    unknown = sorted(set(kw) - set(options))
    require(not unknown, f"{what} does not take {', '.join(unknown)}; its options: {', '.join(options)}")


def _positive_int(value, name: str) -> int:
    require(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
        f"{name} must be an integer >= 1, got {value!r}",
    )
    return int(value)


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
# calibration region


def _mask_2d(mask, shape: tuple[int, int] | None = None) -> np.ndarray:
    """(W,) or (H, W) (leading singleton axes allowed) -> (H', W) boolean."""
    require(
        isinstance(mask, (np.ndarray, torch.Tensor)),
        f"mask must be a numpy array or torch tensor, got {type(mask).__name__}",
    )
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    require(m.dtype.kind in "biuf", f"mask must be real (0/1 values), got dtype {m.dtype}")
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    require(m.ndim in (1, 2), f"mask must be (W,) or (H, W), got shape {tuple(np.shape(mask))}")
    m2 = m[None, :] if m.ndim == 1 else m
    if shape is not None:
        require(
            m2.shape[1] == shape[1] and m2.shape[0] in (1, shape[0]),
            f"mask of shape {tuple(np.shape(mask))} does not match k-space (H, W) = {tuple(shape)}",
        )
    return m2 != 0


def _centre_run(line: np.ndarray) -> int:
    """Length of the run of True around index n//2 (0 if the centre is False)."""
    n = line.size
    c = n // 2
    if not line[c]:
        return 0
    lo = c
    while lo > 0 and line[lo - 1]:
        lo -= 1
    hi = c
    while hi < n - 1 and line[hi + 1]:
        hi += 1
    # a centred region of width w covers c - w//2 … c - w//2 + w - 1: it must fit in [lo, hi]
    w = hi - lo + 1
    while w > 0 and (c - w // 2 < lo or c - w // 2 + w - 1 > hi):
        w -= 1
    return w


def acs_width(mask) -> int:
    """Width of the fully sampled, contiguous block of phase-encode columns centred on ``W//2``.

    Parameters
    ----------
    mask : ndarray or Tensor (W,) or (H, W)
        A column is fully sampled when every row samples it.

    Returns
    -------
    int
        The largest ``w`` such that columns ``W//2 - w//2 … W//2 - w//2 + w - 1`` are all
        fully sampled (0 when the centre column is not).
    """
    m = _mask_2d(mask)
    return _centre_run(m.all(axis=0))


def calib_region(mask) -> tuple[int, int]:
    """The largest centred fully sampled box ``(h, w)`` of a mask (1-D masks: ``(H, acs_width)``).

    The box covers rows ``H//2 - h//2 …`` and columns ``W//2 - w//2 …``; a 2-D mask (Poisson)
    gives its calibration square.

    Parameters
    ----------
    mask : ndarray or Tensor (W,) or (H, W)

    Returns
    -------
    (int, int)
    """
    m = _mask_2d(mask)
    H, W = m.shape
    if m.shape[0] == 1 or np.all(m == m[:1]):
        return (H, acs_width(m))
    h, w = _centre_run(m[:, W // 2]), _centre_run(m[H // 2])
    while h > 0 and w > 0:
        box = m[H // 2 - h // 2 : H // 2 - h // 2 + h, W // 2 - w // 2 : W // 2 - w // 2 + w]
        if box.all():
            return (h, w)
        if h >= w:
            h -= 1
        else:
            w -= 1
    return (0, 0)


# ------------------------------------------------------------------------------------------
# estimators


def espirit_maps(
    kspace: Array,
    calib_width: int = 24,
    threshold: float = 0.02,
    kernel_width: int = 6,
    crop: float = 0.95,
    device: str = "cpu",
    max_iter: int = 100,
) -> Array:
    """ESPIRiT sensitivities (one set of maps) through ``sigpy.mri.app.EspiritCalib``, per slice.

    Uhrig et al., "ESPIRiT — an eigenvalue approach to autocalibrating parallel MRI",
    MRM 71:990 (2014). The centre ``calib_width × calib_width`` of k-space must be fully
    sampled (:func:`estimate_sens` checks it against the mask). SigPy references the phase
    to coil 0 and zeroes pixels whose eigenvalue is below ``crop`` (the background).

    Parameters
    ----------
    kspace : ndarray or Tensor (C, H, W) or (S, C, H, W), complex
    calib_width : int
        Side of the calibration square.
    threshold : float
        Singular values below ``threshold · σ_max`` of the calibration matrix are dropped.
    kernel_width : int
        k-space kernel size.
    crop : float
        Eigenvalue threshold in (0, 1] for the map support.
    device : str
        ``"cpu"`` or ``"cuda"``/``"cuda:N"`` (SigPy on CuPy; an error if CuPy is missing).
    max_iter : int
        Power iterations.

    Returns
    -------
    ndarray or Tensor, same kind and shape as ``kspace``, complex64.
    """
    import sigpy as sp
    from sigpy.mri.app import EspiritCalib

    k, single = _kspace(kspace)
    S, C, H, W = k.shape
    calib_width = _positive_int(calib_width, "calib_width")
    kernel_width = _positive_int(kernel_width, "kernel_width")
    max_iter = _positive_int(max_iter, "max_iter")
    require(
        calib_width <= min(H, W),
        f"calib_width={calib_width} exceeds the k-space size (H, W) = {(H, W)}",
    )
    require(
        kernel_width < calib_width,
        f"kernel_width={kernel_width} must be smaller than calib_width={calib_width}",
    )
    require(0 <= float(threshold) < 1, f"threshold must be in [0, 1), got {threshold!r}")
    require(0 <= float(crop) <= 1, f"crop must be in [0, 1], got {crop!r}")
    sp_device = _sigpy_device(device)
    out = np.empty((S, C, H, W), np.complex64)
    ks = k.detach().cpu().numpy()
    for s in range(S):
        mps = EspiritCalib(
            ks[s],
            calib_width=calib_width,
            thresh=float(threshold),
            kernel_width=kernel_width,
            crop=float(crop),
            max_iter=max_iter,
            device=sp_device,
            show_pbar=False,
        ).run()
        out[s] = sp.to_device(mps, sp.cpu_device)
    return _like(torch.from_numpy(out), single, kspace)


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
        f"device={str(device)!r}: SigPy's ESPIRiT runs on the GPU only with CuPy installed; use device='cpu' "
        "or method='direct' (torch, any device)",
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
    calib_size: int | tuple[int, int] = 30,
    kaiser_beta: float = 4.0,
    floor: float = 1e-3,
) -> Array:
    """Direct sensitivities (like BART ``caldir``): low-resolution coil images over their RSS.

    McKenzie et al., MRM 47:529 (2002). Per slice: the centre ``calib_size`` of k-space,
    tapered by a separable Kaiser–Bessel window (β = ``kaiser_beta``) to avoid Gibbs ringing,
    zero-padded and inverse-FFT'd gives smooth coil images ``l_c``; then
    ``S_c = l_c / max(RSS(l), floor · max RSS(l))`` so ``Σ_c |S_c|² = 1`` wherever the
    low-resolution RSS exceeds the floor (no phase normalisation, as in BART). Pure torch:
    batched over slices, runs on the input's device.

    Parameters
    ----------
    kspace : ndarray or Tensor (C, H, W) or (S, C, H, W), complex
        Its centre ``calib_size`` must be fully sampled.
    calib_size : int or (int, int)
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
    size = (calib_size, calib_size) if not isinstance(calib_size, (tuple, list)) else tuple(calib_size)
    require(len(size) == 2, f"calib_size must be an integer or (h, w), got {calib_size!r}")
    ch, cw = (min(_positive_int(n, "calib_size"), m) for n, m in zip(size, (H, W)))
    require(
        isinstance(kaiser_beta, (int, float)) and kaiser_beta >= 0,
        f"kaiser_beta must be a number >= 0, got {kaiser_beta!r}",
    )
    require(isinstance(floor, (int, float)) and 0 <= floor < 1, f"floor must be in [0, 1), got {floor!r}")
    centre = center_crop(k, (ch, cw))
    window = _kaiser_bessel(ch, float(kaiser_beta), k.device)[:, None] * _kaiser_bessel(
        cw, float(kaiser_beta), k.device
    )
    low = ifft2c(center_pad(centre * window, (H, W)))
    norm = rss(low, dim=1)  # (S, H, W)
    peak = norm.flatten(1).amax(1).clamp_min(torch.finfo(torch.float32).tiny)
    denom = torch.maximum(norm, float(floor) * peak[:, None, None]).clamp_min(torch.finfo(torch.float32).tiny)
    maps = low / denom[:, None]
    return _like(maps.to(torch.complex64), single, kspace)


def estimate_sens(
    kspace: Array,
    mask=None,
    method: str = "espirit",
    calib_width: int | None = None,
    **kw,
) -> Array:
    """Coil sensitivities from the calibration (ACS) region of the data.

    Parameters
    ----------
    kspace : ndarray or Tensor (C, H, W) or (S, C, H, W), complex
        Undersampled (zero-filled) or fully sampled k-space.
    mask : ndarray or Tensor (W,) or (H, W), optional
        The sampling mask. Its centred fully sampled box (:func:`calib_region`) bounds the
        calibration region. None: ``kspace`` is fully sampled (the AID "reference"
        protocol) and the method's default region is used.
    method : {"espirit", "direct"}
        :func:`espirit_maps` (square region, default 24) or :func:`direct_maps` (default 30
        along the readout and up to 30 phase-encode lines).
    calib_width : int, optional
        Requested calibration width. A mask whose ACS is narrower is an error. None: the
        default, shrunk to the ACS when the mask has fewer lines. ESPIRiT needs at least
        ``2·kernel_width`` lines (12 by default: with fewer, SigPy's eigenvalues fall below
        ``crop`` and most of the map is zeroed), direct at least 4.
    **kw
        Options of the method (``threshold``, ``kernel_width``, ``crop``, ``device``, ...;
        ``kaiser_beta``, ``floor``).

    Returns
    -------
    ndarray or Tensor, same kind and shape as ``kspace``, complex64.
    """
    require(
        method in SENS_METHODS,
        f"method must be one of {', '.join(map(repr, SENS_METHODS))}, got {method!r}",
    )
    func = espirit_maps if method == "espirit" else direct_maps
    _check_options(func, kw, f"method={method!r}")
    require(
        "calib_width" not in kw and "calib_size" not in kw,
        "pass the calibration size as calib_width=",
    )
    k, _ = _kspace(kspace)
    H, W = k.shape[-2:]
    if calib_width is not None:
        calib_width = _positive_int(calib_width, "calib_width")
    if mask is None:
        region = (H, W)
    else:
        region = calib_region(_mask_2d(mask, (H, W)))
        if region[0] == 1 and H > 1:  # a (W,) mask: every row is sampled alike
            region = (H, region[1])
    available = min(region) if method == "espirit" else region[1]
    minimum = 2 * kw.get("kernel_width", 6) if method == "espirit" else _MIN_DIRECT
    where = "the k-space" if mask is None else "the mask's ACS (fully sampled centre)"
    if calib_width is not None:
        require(
            calib_width <= available,
            f"calib_width={calib_width} needs {calib_width} fully sampled central lines but {where} has "
            f"only {available}; use a mask with more ACS lines or a smaller calib_width",
        )
        width = calib_width
    else:
        width = min(_DEFAULT_CALIB[method], available)
        require(
            width >= minimum,
            f"{where} has only {available} fully sampled central lines; {method} maps need at least "
            f"{minimum} (use a mask with ACS lines, e.g. acs_lines=24, or give fully sampled maps)",
        )
    if method == "espirit":
        return espirit_maps(kspace, calib_width=width, **kw)
    ch = min(region[0], _DEFAULT_CALIB["direct"] if calib_width is None else width)
    return direct_maps(kspace, calib_size=(ch, width), **kw)
