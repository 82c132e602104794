"""Training data for the priors: volumes of slices and windows of consecutive slices.

A *volume* is one acquisition (or one synthetic subject) as a float32 tensor
``(S, C, H, W)`` in [−1, 1]: ``C = 2`` (real, imag) for complex priors, ``C = 1`` for
magnitude priors, each volume divided by its own ``max |x|`` (the reference's per-volume
normalisation, the reference's ``datasets/fastmri.py``). Sources:

* a folder of volume files (:mod:`mrirecon.data.volumes`): fastMRI HDF5 files (coil-combined
  complex images, read exactly as reconstruction reads them), NIfTI or ``.npy`` volumes;
* the built-in MNI phantoms (:mod:`mrirecon.data.phantoms`), exactly ``"mni"`` or
  ``"mni:COUNT"`` (any other string is a path, and a missing path is an error);
* in-memory arrays ``(S, H, W)``.

Slices whose size differs from the prior's ``image_size`` are zero-padded to a square and
resampled with antialiased bilinear interpolation (on real/imag separately).

:class:`SliceWindows` cuts each volume into every run of ``length`` consecutive slices; a window
never straddles two volumes (unlike the reference loader, which streams volumes back to back).
Augmentations, drawn per window from ``(seed, epoch, index)`` so they are reproducible and
identical across resumed runs: a flip of H and/or W (the same for every slice of the window),
an intensity scale in [0.85, 1] (keeps the [−1, 1] range), and, for complex data, a global
phase rotation (the phase of a coil-combined image is arbitrary).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mrirecon.errors import MrireconError, require

__all__ = [
    "SliceWindows",
    "Volume",
    "load_image_folder",
    "load_volume_file",
    "load_volumes",
    "phantom_source",
    "to_volume",
]

@dataclass
class Volume:
    """One normalised volume.

    Attributes
    ----------
    name : str
        Where it came from (file name or ``mni-train-<i>``).
    frames : Tensor (S, C, H, W) float32
        Real/imag (C=2) or magnitude (C=1) slices, ``max |x| = 1``.
    """

    name: str
    frames: torch.Tensor

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def _resample(x: torch.Tensor, size: int) -> torch.Tensor:
    """(S, C, H, W) -> (S, C, size, size): zero-pad to square, then antialiased bilinear."""
    s, c, h, w = x.shape
    if h != w:
        n = max(h, w)
        x = F.pad(x, ((n - w) // 2, n - w - (n - w) // 2, (n - h) // 2, n - h - (n - h) // 2))
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def to_volume(images, name: str, image_size: int | None = None, magnitude: bool = False) -> Volume:
    """Normalise one volume of slices into a :class:`Volume`.

    Parameters
    ----------
    images : array or Tensor (S, H, W), real or complex
    name : str
    image_size : int, optional
        Resample the slices to ``image_size × image_size`` (zero-padded to square first).
    magnitude : bool
        Keep ``|x|`` as one channel instead of (real, imag).

    Returns
    -------
    Volume
        ``frames`` (S, C, image_size, image_size) float32, ``max |x| = 1``.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    require(x.ndim == 3, f"{name}: a volume must be (slices, H, W), got shape {tuple(x.shape)}")
    require(bool(torch.isfinite(x).all()), f"{name}: volume contains NaN or Inf values")
    x = x.to(torch.complex64) if x.is_complex() else x.to(torch.float32)
    peak = float(x.abs().max())
    require(peak > 0, f"{name}: volume is all zeros")
    x = x / peak
    if magnitude:
        frames = x.abs().unsqueeze(1)
    elif x.is_complex():
        frames = torch.stack([x.real, x.imag], dim=1)
    else:
        frames = torch.stack([x, torch.zeros_like(x)], dim=1)
    if image_size is not None:
        frames = _resample(frames, image_size)
        # Interpolation can overshoot slightly; restore max |x| = 1.
        mag = frames.abs().squeeze(1) if magnitude else torch.linalg.vector_norm(frames, dim=1)
        frames = frames / float(mag.max())
    return Volume(name=name, frames=frames.contiguous().float())


def load_volume_file(
    path: str | os.PathLike,
    image_size: int | None = None,
    magnitude: bool = False,
    sens_method: str = "direct",
) -> Volume:
    """One volume file as the priors see it (:func:`mrirecon.data.volumes.read_volume`, then :func:`to_volume`).

    Returns
    -------
    Volume
        ``frames`` (S, C, image_size, image_size), or (S, C, H, W) without ``image_size``.
    """
    from mrirecon.data.volumes import read_volume

    return to_volume(read_volume(path, sens_method), Path(path).name, image_size, magnitude)


def load_image_folder(folder: str | os.PathLike, image_size: int | None = None, magnitude: bool = False) -> list[Volume]:
    """Every volume file in ``folder`` (sorted by name, not recursive), as :func:`load_volume_file` reads it."""
    from mrirecon.data.volumes import volume_files

    return [load_volume_file(f, image_size, magnitude) for f in volume_files(folder)]


def phantom_source(spec: str) -> int | None | bool:
    """``"mni"`` -> None (the default count), ``"mni:COUNT"`` -> COUNT, anything else -> False."""
    if spec == "mni":
        return None
    if spec.startswith("mni:"):
        try:
            count = int(spec[4:])
        except ValueError:
            raise MrireconError(f"data spec {spec!r}: expected 'mni' or 'mni:COUNT' with an integer COUNT") from None
        require(count >= 1, f"data spec {spec!r}: COUNT must be >= 1")
        return count
    return False


def load_volumes(
    source,
    image_size: int,
    magnitude: bool = False,
    seed: int = 0,
    template: str | os.PathLike | None = None,
    default_phantoms: int = 120,
) -> list[Volume]:
    """Resolve any supported data source into training volumes.

    Parameters
    ----------
    source : str, PathLike, or sequence of arrays / Volumes
        ``"mni"`` / ``"mni:COUNT"`` (MNI phantoms, training split), a folder of fastMRI ``.h5``
        files, a folder of ``.nii``/``.nii.gz``/``.npy`` volumes, or in-memory volumes
        ``(S, H, W)``.
    image_size : int
        The prior's ``image_size``.
    magnitude : bool
        Magnitude (one channel) instead of complex (two channels).
    seed : int
        Seeds the phantoms.
    template : path, optional
        nilearn wheel / folder holding the MNI template (phantoms only).
    default_phantoms : int
        Number of phantom volumes for plain ``"mni"``.

    Returns
    -------
    list of Volume
    """
    phantoms = phantom_source(str(source)) if isinstance(source, str) else False
    if phantoms is not False:
        from mrirecon.data.phantoms import load_mni_template, phantom_volumes

        count = phantoms or default_phantoms
        arrays = phantom_volumes(load_mni_template(template), count, "train", image_size, seed, magnitude)
        return [to_volume(a, f"mni-train-{i}", None, magnitude) for i, a in enumerate(arrays)]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        require(path.exists(), f"training data '{path}' does not exist (the built-in phantoms are 'mni' or 'mni:COUNT')")
        if path.is_file():
            return [load_volume_file(path, image_size, magnitude)]
        return load_image_folder(path, image_size, magnitude)
    require(isinstance(source, Sequence) and len(source) > 0, "training data must be a path, 'mni' or a non-empty list of volumes")
    vols = []
    for i, item in enumerate(source):
        require(
            isinstance(item, (Volume, np.ndarray, torch.Tensor)),
            f"training volume {i} must be an array (slices, H, W) or a Volume, got {type(item).__name__}",
        )
        if isinstance(item, np.ndarray):
            require(item.dtype.kind in "biufc", f"training volume {i} must hold numbers, got dtype {item.dtype}")
        if isinstance(item, Volume):
            require(
                item.frames.shape[-1] == image_size and item.frames.shape[-2] == image_size,
                f"volume {item.name}: slices are {tuple(item.frames.shape[-2:])}, expected {image_size}x{image_size}",
            )
            vols.append(item)
        else:
            vols.append(to_volume(item, f"volume-{i}", image_size, magnitude))
    return vols


class SliceWindows(torch.utils.data.Dataset):
    """All runs of ``length`` consecutive slices inside each volume, with augmentation.

    Parameters
    ----------
    volumes : list of Volume
        Same C, H, W for all.
    length : int
        Slices per item: ``seq_length + 1`` for the Causal-UNet, 1 for the plain UNet.
    augment : bool
        Random flips, intensity scale and (complex data) global phase rotation.
    seed : int

    Items are ``(length, C, H, W)`` float32 tensors; ``index[i] = (volume, first slice)``.
    """

    def __init__(self, volumes: Sequence[Volume], length: int, augment: bool = True, seed: int = 0):
        require(length >= 1, f"window length must be >= 1, got {length}")
        require(len(volumes) > 0, "no training volumes")
        shapes = {tuple(v.frames.shape[1:]) for v in volumes}
        require(len(shapes) == 1, f"all volumes must share (C, H, W), got {sorted(shapes)}")
        self.volumes = list(volumes)
        self.length = length
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.index = [(v, s) for v, vol in enumerate(self.volumes) for s in range(len(vol) - length + 1)]
        longest = max(len(v) for v in self.volumes)
        require(
            self.index,
            f"no volume has {length} slices (the longest has {longest}); use volumes with more slices or a shorter seq_length",
        )

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (call once per pass over the data)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        v, s = self.index[i]
        x = self.volumes[v].frames[s : s + self.length]
        if not self.augment:
            return x.clone()
        rng = np.random.default_rng([self.seed, self.epoch, i])
        flip_h, flip_w = rng.random(2) < 0.5
        scale = rng.uniform(0.85, 1.0)
        angle = rng.uniform(0.0, 2 * np.pi)
        dims = [d for d, f in ((-2, flip_h), (-1, flip_w)) if f]
        if dims:
            x = torch.flip(x, dims)
        x = x * float(scale)
        if x.shape[1] == 2:
            c, s_ = float(np.cos(angle)), float(np.sin(angle))
            x = torch.stack([c * x[:, 0] - s_ * x[:, 1], s_ * x[:, 0] + c * x[:, 1]], dim=1)
        return x.contiguous()
