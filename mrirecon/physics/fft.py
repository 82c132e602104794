"""Centred orthonormal 2-D FFTs and layout helpers.

Conventions (used throughout mrirecon, stated once here):

* Arrays are ``(..., H, W)`` with **H = readout (kx)** and **W = phase-encode (ky)**, the
  undersampled axis, as in fastMRI and the AID reference. Multi-coil k-space is
  ``(slices, coils, H, W)``.
* ``fft2c(x) = fftshift(fft2(ifftshift(x), norm="ortho"))`` over the last two axes: the
  k-space centre and the image centre sit at index ``n // 2``, which is correct for odd and
  even sizes alike (fastMRI, SigPy ``center=True`` and BART ``fft -u`` agree).
* Complex images become networks' inputs as 2 real channels ``(..., 2, H, W)`` = (real, imag).

Every function accepts a ``torch.Tensor`` (any device) or a ``numpy.ndarray`` and returns the
same kind of array.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from mrirecon.errors import require

Array = TypeVar("Array", np.ndarray, torch.Tensor)

_DIMS = (-2, -1)


def _as_tensor(x):
    if isinstance(x, torch.Tensor):
        return x, False
    return torch.from_numpy(np.ascontiguousarray(x)), True


def _complex(x: torch.Tensor) -> torch.Tensor:
    if x.is_complex():
        return x
    return x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)


def fft2c(x: Array) -> Array:
    """Centred orthonormal 2-D FFT over the last two axes: image ``(..., H, W)`` -> k-space."""
    t, was_numpy = _as_tensor(x)
    t = _complex(t)
    k = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(t, dim=_DIMS), norm="ortho"), dim=_DIMS)
    return k.numpy() if was_numpy else k


def ifft2c(k: Array) -> Array:
    """Centred orthonormal 2-D inverse FFT over the last two axes: k-space -> image."""
    t, was_numpy = _as_tensor(k)
    t = _complex(t)
    x = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(t, dim=_DIMS), norm="ortho"), dim=_DIMS)
    return x.numpy() if was_numpy else x


def center_crop(x: Array, shape: tuple[int, int]) -> Array:
    """Crop the last two axes to ``shape`` around the centre (index ``n // 2`` stays centred).

    Used in the image domain to drop fastMRI's 2x readout oversampling (640 -> 320). A target
    larger than the array along an axis keeps that axis whole (as fastMRI does for narrow
    FLAIR matrices).
    """
    require(len(shape) == 2, f"center_crop shape must be (H, W), got {shape}")
    h, w = x.shape[-2:]
    ch, cw = min(int(shape[0]), h), min(int(shape[1]), w)
    top = h // 2 - ch // 2
    left = w // 2 - cw // 2
    return x[..., top : top + ch, left : left + cw]


def center_pad(x: Array, shape: tuple[int, int]) -> Array:
    """Zero-pad the last two axes to ``shape`` so that index ``n // 2`` stays the centre."""
    h, w = x.shape[-2:]
    th, tw = max(int(shape[0]), h), max(int(shape[1]), w)
    top = th // 2 - h // 2
    left = tw // 2 - w // 2
    if isinstance(x, torch.Tensor):
        out = x.new_zeros(*x.shape[:-2], th, tw)
    else:
        out = np.zeros(x.shape[:-2] + (th, tw), dtype=x.dtype)
    out[..., top : top + h, left : left + w] = x
    return out


def complex_to_channels(x: Array) -> Array:
    """Complex ``(..., H, W)`` -> real ``(..., 2, H, W)`` with channels (real, imag)."""
    if isinstance(x, torch.Tensor):
        return torch.stack((x.real, x.imag), dim=-3)
    return np.stack((x.real, x.imag), axis=-3)


def channels_to_complex(x: Array) -> Array:
    """Real ``(..., 2, H, W)`` (real, imag) -> complex ``(..., H, W)``."""
    require(x.shape[-3] == 2, f"expected 2 channels (real, imag) at axis -3, got shape {tuple(x.shape)}")
    if isinstance(x, torch.Tensor):
        return torch.complex(x[..., 0, :, :].float(), x[..., 1, :, :].float()) if x.dtype in (
            torch.float16,
            torch.bfloat16,
        ) else torch.complex(x[..., 0, :, :], x[..., 1, :, :])
    return x[..., 0, :, :] + 1j * x[..., 1, :, :]
