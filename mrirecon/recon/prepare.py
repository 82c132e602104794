"""Stage 1 of :func:`mrirecon.recon.reconstruct`: checked inputs, measurements and coil maps.

* ``kspace`` (S, C, H, W) complex and ``mask`` (broadcastable, 0/1, equal across coils) are
  checked; the measurement is ``y = mask · kspace``;
* coil maps are estimated from the calibration region (:func:`mrirecon.physics.coils.calibrate`),
  read from a file (:func:`mrirecon.data.maps.read_maps`) or taken as given;
* warnings for what is accepted but probably wrong: k-space that still carries the 2x readout
  oversampling, a scan whose pixel size is far from the prior's training pixel size.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrirecon.errors import check_finite, require
from mrirecon.recon.settings import ReconSettings

__all__ = ["PIXEL_SIZE_TOLERANCE", "Prepared", "check_pixel_size", "note_warning", "prepare"]

#: A scan whose pixel size differs from the prior's training range by more than this factor is reported.
PIXEL_SIZE_TOLERANCE = 1.5




def _as_kspace(kspace) -> torch.Tensor:
    require(
        isinstance(kspace, (np.ndarray, torch.Tensor)),
        f"kspace must be a numpy array or torch tensor, got {type(kspace).__name__}",
    )
    require(
        kspace.ndim == 4,
        f"kspace must be (slices, coils, kx, ky), got shape {tuple(kspace.shape)} (use k[None] for one slice)",
    )
    t = kspace if isinstance(kspace, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(kspace))
    require(t.device.type != "meta", "kspace is a 'meta' tensor (shape only, no values); give real data")
    require(t.is_complex(), f"kspace must be complex, got dtype {t.dtype}")
    require(t.numel() > 0, f"kspace is empty, shape {tuple(t.shape)}")
    check_finite(t, "kspace")
    t = t.detach().to(dtype=torch.complex64)
    require(bool(torch.isfinite(t).all()), "kspace overflows float32 (|values| > 3.4e38); rescale it")
    require(bool((t != 0).any()), "kspace is all zero: nothing was measured")
    return t


def _as_mask(mask, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """Any accepted mask -> (S or 1, H, W) float32 of 0/1 (see :func:`reconstruct`)."""
    S, C, H, W = shape
    if hasattr(mask, "mask") and not isinstance(mask, (np.ndarray, torch.Tensor)):
        mask = mask.mask  # a mrirecon.physics.masks.Mask
    require(
        isinstance(mask, (np.ndarray, torch.Tensor)),
        f"mask must be a numpy array, torch tensor or Mask, got {type(mask).__name__}",
    )
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    require(m.dtype.kind in "biuf", f"mask must be real (0/1 values), got dtype {m.dtype}")
    require(m.ndim >= 1, f"mask must be (W,), (H, W) or broadcastable to kspace {shape}, got a 0-d value")
    m = m.astype(np.float32)
    if m.ndim == 1:  # fastMRI's (ky,) mask dataset
        m = m[None, :]
    require(
        m.ndim <= 4,
        f"mask must be broadcastable to kspace (slices, coils, kx, ky) = {shape}, got shape {m.shape}",
    )
    m4 = m.reshape((1,) * (4 - m.ndim) + m.shape)
    try:
        ok = np.broadcast_shapes(m4.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    require(ok, f"mask of shape {m.shape} is not broadcastable to kspace (slices, coils, kx, ky) = {shape}")
    require(m4.shape[1] == 1, f"mask must be the same for every coil (size 1 on the coil axis), got shape {m.shape}")
    require(bool(np.isfinite(m4).all()), "mask contains NaN or Inf values")
    require(bool(np.all((m4 == 0) | (m4 == 1))), "mask must hold only 0 and 1 values")
    m3 = np.broadcast_to(m4[:, 0], (m4.shape[0], H, W)).copy()
    empty = np.flatnonzero(m3.reshape(m3.shape[0], -1).sum(1) == 0)
    require(empty.size == 0, f"mask samples nothing (slice {int(empty[0]) if empty.size else 0})")
    return torch.from_numpy(m3)


def _given_maps(sens, shape) -> torch.Tensor:
    S, C, H, W = shape
    if isinstance(sens, (str, os.PathLike)):
        from mrirecon.data.maps import read_maps
        from mrirecon.physics.coils import SENS_METHODS

        path = Path(sens)
        require(
            path.exists() or path.with_suffix(".cfl").exists(),
            f"sens must be one of {', '.join(map(repr, SENS_METHODS))}, a maps file or an array; {str(sens)!r} is none",
        )
        sens = read_maps(path)
    require(
        isinstance(sens, (np.ndarray, torch.Tensor)),
        f"sens must be a method ('auto', 'espirit', 'direct', ...), a maps file or an array (slices, coils, kx, ky), "
        f"got {type(sens).__name__}",
    )
    maps = sens.detach() if isinstance(sens, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(sens))
    if maps.ndim == 3:
        maps = maps[None]
    require(
        maps.ndim == 4 and tuple(maps.shape[1:]) == (C, H, W) and maps.shape[0] in (1, S),
        f"sens maps must be (slices, coils, kx, ky) = {(S, C, H, W)} or (coils, kx, ky), got {tuple(sens.shape)}",
    )
    require(maps.is_complex(), f"sens maps must be complex, got dtype {maps.dtype}")
    check_finite(maps, "sens")
    require(bool((maps.abs() > 0).any()), "sens maps are all zero")
    energy = float(maps.to(torch.complex128).abs().pow(2).sum(-3).max())
    require(
        1e-6 <= energy <= 1e6,
        f"sens maps must be normalised (sum over coils of |S_c|^2 about 1 in the object), got a maximum of {energy:.3g}: "
        "divide them by their root sum of squares",
    )
    return maps.to(torch.complex64).expand(S, C, H, W).contiguous()


def _sensitivities(sens, options: dict, y: torch.Tensor, mask: torch.Tensor, device) -> tuple[torch.Tensor, dict]:
    """Maps (S, C, H, W) complex64 on ``y``'s device and ``info["sens"]``."""
    from mrirecon.physics.coils import SENS_METHODS, calibrate

    S = y.shape[0]
    if isinstance(sens, str) and sens in SENS_METHODS:
        if mask.shape[0] == 1:
            cal = calibrate(y, mask[0], sens, device=y.device, **options)
            maps, info = cal.maps, cal.as_info()
        else:  # per-slice masks: calibrate each slice on its own mask
            cals = [calibrate(y[s : s + 1], mask[s], sens, device=y.device, **options) for s in range(S)]
            maps, info = torch.cat([c.maps for c in cals]), cals[0].as_info()
            info["per_slice_methods"] = [c.method for c in cals]
        return maps.to(y.device, torch.complex64), info
    require(not options, f"sens_options apply to estimated maps, not to given ones ({', '.join(options)})")
    label = str(sens) if isinstance(sens, (str, os.PathLike)) else "given"
    return _given_maps(sens, tuple(y.shape)).to(y.device), {"method": "given", "source": label}


@dataclass
class Prepared:
    """The output of stage 1: everything on the reconstruction's device, from here to the result."""

    y: torch.Tensor  # (S, C, H, W)
    mask: torch.Tensor  # (S or 1, H, W)
    maps: torch.Tensor  # (S, C, H, W)
    given: torch.Tensor | None  # fully sampled k-space of slice 0 (first_slice="given")
    info: dict


def prepare(kspace, mask, sens, sens_options, settings: ReconSettings, device) -> Prepared:
    """Checked inputs, ``y``, mask and maps on ``device`` (the data move there once, after the checks)."""
    k = _as_kspace(kspace)
    S, C, H, W = k.shape
    m = _as_mask(mask, (S, C, H, W))
    k, m = k.to(device), m.to(device)
    y = k * m[:, None]
    require(bool((y != 0).any()), "the mask keeps none of the non-zero k-space samples (mask and kspace do not overlap)")
    given = None
    if settings.first_slice == "given":
        unsampled = k[0] * (1 - m[0])
        require(
            bool((unsampled.abs() > 0).any()) or bool((m[0] == 1).all()),
            "first_slice='given' needs slice 0 fully sampled in kspace, but it is zero wherever the mask is 0",
        )
        given = k[0]
    tic = time.perf_counter()
    maps, sens_info = _sensitivities(sens, dict(sens_options or {}), y, m, device)
    sens_seconds = time.perf_counter() - tic
    info: dict[str, Any] = {
        "acceleration": float(H * W / m.sum(dim=(1, 2)).mean()),
        "device": str(k.device),
        "shape": [S, C, H, W],
        "sens": sens_info,
        "timings": {"sens": sens_seconds},
        "warnings": [],
    }
    if _looks_oversampled(y):
        note_warning(info, f"kspace ({H} readout x {W} phase-encode samples) looks 2x oversampled along the readout (the "
                    "outer quarter of the image rows holds no signal) and is used as it is, so the prior sees anatomy at "
                    "half its scale: crop it with mrirecon.data.crop_readout, or rewrite the file with "
                    "`mrirecon convert FILE.npy -o OUT.h5 --readout-oversampling 2` (the commands crop by the "
                    "ismrmrd_header's reconSpace)")  # fmt: skip
    return Prepared(y=y, mask=m, maps=maps, given=given, info=info)


def _looks_oversampled(y: torch.Tensor) -> bool:
    """Readout at least 1.5x the phase-encode size and < 1 % of the image energy in its outer half."""
    from mrirecon.physics.fft import ifft2c

    H, W = y.shape[-2:]
    if H < 1.5 * W:
        return False
    energy = (ifft2c(y[y.shape[0] // 2]).abs() ** 2).sum(0).sum(-1)  # (H,) per readout row, middle slice
    outer = float(energy[: H // 4].sum() + energy[H - H // 4 :].sum())
    return outer < 0.01 * float(energy.sum())


def note_warning(info: dict, message: str) -> None:
    """Warn and keep the message in ``info["warnings"]`` (results carry what was doubtful about them)."""
    info["warnings"].append(message)
    warnings.warn(message, stacklevel=3)


def check_pixel_size(prior, pixel_size_mm, info: dict) -> None:
    trained = tuple(getattr(prior.config, "pixel_size_mm", ()) or ())
    if pixel_size_mm is None or not trained:
        return
    p = float(np.mean(np.atleast_1d(pixel_size_mm)))
    lo, hi = min(trained), max(trained)
    info["pixel_size_mm"] = p
    if p < lo / PIXEL_SIZE_TOLERANCE or p > hi * PIXEL_SIZE_TOLERANCE:
        span = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
        note_warning(info, f"the scan's pixels are {p:.2f} mm but the prior was trained at {span} mm: it sees anatomy at "
                    "another scale and helps less (data consistency still holds)")  # fmt: skip
