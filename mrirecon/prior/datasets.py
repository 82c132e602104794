"""Training data for the priors: volumes of slices and windows of consecutive slices.

A *volume* is one acquisition (or one synthetic subject) as a float32 tensor
``(S, C, H, W)`` in [−1, 1]: ``C = 2`` (real, imag) for complex priors, ``C = 1`` for
magnitude priors, each volume divided by its own ``max |x|`` (the reference's per-volume
normalisation, design/aid-reference.md §2.3). Sources:

* a folder of fastMRI HDF5 files: coil-combined complex images ``Σ_c conj(S_c)·x_c`` with
  sensitivities estimated per slice (:mod:`mrirecon.physics.coils`), readout oversampling
  removed by a centre crop to the square ``W × W`` matrix;
* a folder of image volumes: NIfTI (``.nii``/``.nii.gz``, axial slices along the third voxel
  axis after reorientation to RAS) or ``.npy`` arrays ``(S, H, W)``, real or complex;
* the built-in MNI phantoms (:mod:`mrirecon.data.phantoms`), ``"mni"`` or ``"mni:COUNT"``;
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
from mrirecon.physics.fft import center_crop, ifft2c

__all__ = [
    "SliceWindows",
    "Volume",
    "load_fastmri_folder",
    "load_image_folder",
    "load_volume_file",
    "load_volumes",
    "phantom_source",
    "to_volume",
]

_IMAGE_SUFFIXES = (".nii", ".nii.gz", ".npy")


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


def _read_nifti(path: Path) -> np.ndarray:
    try:
        import nibabel as nib
    except ImportError:  # pragma: no cover - nibabel is in the train extra
        raise MrireconError(f'{path}: reading NIfTI needs nibabel: pip install "mrirecon[train]"') from None
    img = nib.as_closest_canonical(nib.load(str(path)))
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    require(data.ndim == 3, f"{path}: expected a 3-D NIfTI volume, got shape {data.shape}")
    # RAS voxels (x, y, z) -> axial slices (z, rows = anterior->posterior, cols = right->left).
    return np.ascontiguousarray(np.transpose(data, (2, 1, 0))[:, ::-1, :])


def _read_npy(path: Path) -> np.ndarray:
    data = np.load(path, allow_pickle=False)
    require(data.ndim == 3, f"{path}: a .npy volume must be (slices, H, W), got shape {data.shape}")
    return data


def load_image_folder(folder: str | os.PathLike, image_size: int | None = None, magnitude: bool = False) -> list[Volume]:
    """Every ``.nii``/``.nii.gz``/``.npy`` volume in ``folder`` (sorted by name, not recursive).

    Returns
    -------
    list of Volume
        Each ``(S, C, image_size, image_size)``.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_IMAGE_SUFFIXES))
    require(files, f"{folder}: no .nii, .nii.gz or .npy volumes found")
    return [load_volume_file(f, image_size, magnitude) for f in files]


def _coil_combine(kspace: np.ndarray, sens_method: str) -> np.ndarray:
    """(S, C, H, W) fully sampled k-space (readout already cropped) -> (S, H, W) complex image.

    Multi-coil: SENSE-1 ``Σ_c conj(S_c)·x_c`` with maps estimated per slice from the data
    (``direct`` = the reference's BART ``caldir``-style maps, ``espirit``). Single-coil: the image.
    """
    from mrirecon.physics.coils import estimate_sens, sense_combine

    coils = ifft2c(kspace)
    if kspace.shape[1] == 1:
        return coils[:, 0]
    return sense_combine(coils, estimate_sens(kspace, method=sens_method))


def load_volume_file(
    path: str | os.PathLike,
    image_size: int | None = None,
    magnitude: bool = False,
    sens_method: str = "direct",
) -> Volume:
    """One volume file as the priors see it: a fastMRI ``.h5``, a ``.npy`` or a NIfTI volume.

    fastMRI: k-space ``(S, C, H, W)`` -> image domain, centre crop of the readout H to W
    (removes the 2x oversampling), back to k-space, sensitivity maps per slice
    (:func:`mrirecon.physics.coils.estimate_sens` with ``sens_method``; ``direct`` follows
    the reference's ``caldir`` preprocessing), ``Σ_c conj(S_c)·x_c``. Then, for every format,
    max-normalisation and optional resampling (:func:`to_volume`).

    Returns
    -------
    Volume
        ``frames`` (S, C, image_size, image_size), or (S, C, H, W) without ``image_size``.
    """
    path = Path(path)
    require(path.is_file(), f"{path}: no such file")
    if path.suffix in (".h5", ".hdf5"):
        from mrirecon.data.fastmri import open_scan
        from mrirecon.physics.fft import fft2c

        k = np.asarray(open_scan(path).load_kspace())
        h, w = k.shape[-2:]
        if h > w:
            k = fft2c(center_crop(ifft2c(k), (w, w)))
        data = _coil_combine(k, sens_method)
    elif path.suffix == ".npy":
        data = _read_npy(path)
    elif path.name.endswith((".nii", ".nii.gz")):
        data = _read_nifti(path)
    else:
        raise MrireconError(f"{path}: expected a fastMRI .h5, a .npy or a .nii/.nii.gz volume")
    return to_volume(data, path.name, image_size, magnitude)


def load_fastmri_folder(
    folder: str | os.PathLike,
    image_size: int | None = None,
    magnitude: bool = False,
    sens_method: str = "direct",
) -> list[Volume]:
    """Coil-combined complex volumes from every fastMRI ``.h5`` file in ``folder`` (sorted).

    Each file as :func:`load_volume_file` reads it.

    Returns
    -------
    list of Volume
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".h5", ".hdf5"))
    require(files, f"{folder}: no fastMRI .h5 files found")
    return [load_volume_file(f, image_size, magnitude, sens_method) for f in files]


def phantom_source(spec: str) -> int | None:
    """``"mni"`` -> default count (None), ``"mni:COUNT"`` -> COUNT; anything else is not a phantom spec."""
    if spec == "mni":
        return None
    if spec.startswith("mni:"):
        try:
            count = int(spec[4:])
        except ValueError:
            raise MrireconError(f"data spec {spec!r}: expected 'mni' or 'mni:COUNT' with an integer COUNT") from None
        require(count >= 1, f"data spec {spec!r}: COUNT must be >= 1")
        return count
    return None


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
    if isinstance(source, (str, os.PathLike)) and str(source).startswith("mni") and not Path(source).exists():
        from mrirecon.data.phantoms import load_mni_template, phantom_volumes

        count = phantom_source(str(source)) or default_phantoms
        arrays = phantom_volumes(load_mni_template(template), count, "train", image_size, seed, magnitude)
        return [to_volume(a, f"mni-train-{i}", None, magnitude) for i, a in enumerate(arrays)]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        require(path.is_dir(), f"training data {path} is not a folder (nor 'mni' / 'mni:COUNT')")
        if any(p.suffix in (".h5", ".hdf5") for p in path.iterdir()):
            return load_fastmri_folder(path, image_size, magnitude)
        return load_image_folder(path, image_size, magnitude)
    require(isinstance(source, Sequence) and len(source) > 0, "training data must be a path, 'mni' or a non-empty list of volumes")
    vols = []
    for i, item in enumerate(source):
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
