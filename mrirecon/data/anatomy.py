"""Real anatomy volumes resampled into training and test slabs at real pixel sizes.

The priors see complex slice stacks; the anatomy we have is magnitude volumes of single subjects
(NIfTI at 0.5–2 mm, voxelmorph's ``.npz``). :func:`anatomy_slab` cuts one stack of parallel
slices out of a volume at any orientation, pixel size and slice spacing (trilinear sampling of a
Gaussian-prefiltered copy, so coarse pixels are not aliased); :func:`random_slabs` draws many with
augmentation for training: slice axis, in-plane rotation, pixel size (log-uniform), slice
spacing, a contrast curve (γ), a smooth bias field, a smooth synthetic phase (the same
polynomial model as :func:`mrirecon.data.simulate.simulate_scan`) and complex Gaussian noise,
as coil-combined scanner images carry it.

Volumes are given in RAS voxel order (``nibabel.as_closest_canonical``) with their voxel size;
positions are in mm, so anisotropic volumes are sampled at their true geometry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrirecon.errors import MrireconError, import_optional, require

__all__ = ["HELDOUT_SUBJECTS", "Anatomy", "anatomy_slab", "random_slabs", "read_anatomy"]

#: Subjects of ``../shared/data/anatomy`` (file stems) held out of the v3 priors' training for
#: evaluation: a T1 head with skull and a T2 brain, two contrasts.
HELDOUT_SUBJECTS = ("brainchop_t1_crop", "niivue_M2208_T2w")

#: Anti-aliasing levels: prefiltered copies for pixel / voxel ratios up to these values.
_BLUR_RATIOS = (1.0, 1.5, 2.2, 3.2)


@dataclass
class Anatomy:
    """One magnitude volume ``data`` (X, Y, Z) float32 in [0, 1] (RAS voxel order), voxel size in mm."""

    name: str
    data: np.ndarray
    voxel_mm: tuple[float, float, float]
    _blurred: dict = field(default_factory=dict, repr=False)

    def blurred(self, ratio: float) -> np.ndarray:
        """The volume prefiltered for sampling at ``ratio`` x its finest voxel (cached per level)."""
        from scipy.ndimage import gaussian_filter

        level = next((r for r in _BLUR_RATIOS if ratio <= r * 1.05), _BLUR_RATIOS[-1])
        if level not in self._blurred:
            if level <= 1.0:
                self._blurred[level] = self.data
            else:
                # σ of the target pixel (≈ 0.4 pixel) minus what the voxel already integrates, per axis.
                fine = min(self.voxel_mm)
                sig = [max(0.0, (0.4 * level * fine) ** 2 - (0.4 * v) ** 2) ** 0.5 / v for v in self.voxel_mm]
                self._blurred[level] = gaussian_filter(self.data, sig, mode="constant")
        return self._blurred[level]

    def extent_mm(self, thresh: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """Bounding box (lo, hi) in mm of the voxels above ``thresh``."""
        idx = np.argwhere(self.data > thresh)
        v = np.asarray(self.voxel_mm)
        return idx.min(0) * v, idx.max(0) * v


def read_anatomy(path: str | os.PathLike) -> Anatomy:
    """A magnitude volume from NIfTI (``.nii``/``.nii.gz``, reoriented to RAS) or an ``.npz`` with ``vol`` (1 mm).

    Intensities are scaled so that the 99.9th percentile is 1 (and clipped there), which
    removes the few hot voxels that would otherwise set each slab's scale.
    """
    path = Path(path)
    require(path.is_file(), f"{path}: no such file")
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        nib = import_optional("nibabel", 'pip install "mrirecon[train]" (NIfTI volumes need nibabel)')
        try:
            img = nib.as_closest_canonical(nib.load(str(path)))
            data = np.asanyarray(img.dataobj).astype(np.float32)
            voxel = tuple(float(z) for z in img.header.get_zooms()[:3])
        except Exception as e:  # nibabel raises many kinds for broken files
            raise MrireconError(f"{path}: not a readable NIfTI volume ({type(e).__name__}: {e})") from None
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
    elif name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as f:
            require("vol" in f.files, f"{path}: an .npz anatomy volume needs a 'vol' array (has {sorted(f.files)})")
            data = np.asarray(f["vol"], dtype=np.float32)
        voxel = (1.0, 1.0, 1.0)
    else:
        raise MrireconError(f"{path}: expected a .nii/.nii.gz or .npz anatomy volume")
    require(data.ndim == 3 and min(data.shape) > 1, f"{path}: expected a 3-D volume, got shape {data.shape}")
    require(bool(np.isfinite(data).all()), f"{path}: volume contains NaN or Inf values")
    data = np.clip(data, 0.0, None)
    top = float(np.percentile(data[data > 0], 99.9)) if (data > 0).any() else 0.0
    require(top > 0, f"{path}: volume is all zeros")
    return Anatomy(path.name.split(".")[0], np.clip(data / top, 0.0, 1.0), voxel)


def _frame(axis: int, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (normal, rows, cols) for slices perpendicular to ``axis``, rotated in plane by ``angle``."""
    normal = np.eye(3)[axis]
    a, b = [np.eye(3)[i] for i in range(3) if i != axis]
    c, s = np.cos(angle), np.sin(angle)
    return normal, c * a + s * b, -s * a + c * b


def anatomy_slab(
    anat: Anatomy,
    *,
    axis: int,
    centre_mm,
    pixel_mm: float,
    size: int | tuple[int, int],
    slices: int,
    spacing_mm: float,
    angle: float = 0.0,
) -> np.ndarray:
    """``slices`` parallel slices of ``size`` pixels at ``pixel_mm``, ``spacing_mm`` apart.

    Parameters
    ----------
    axis : {0, 1, 2}
        Slice normal along this voxel axis (RAS: 0 sagittal, 1 coronal, 2 axial).
    centre_mm : (3,)
        Slab centre in mm from the first voxel's centre.
    angle : float
        In-plane rotation in radians.

    Returns
    -------
    ndarray (slices, H, W) float32, zero outside the volume.
    """
    from scipy.ndimage import map_coordinates

    h, w = (size, size) if isinstance(size, int) else size
    require(axis in (0, 1, 2), f"axis must be 0, 1 or 2 (a voxel axis), got {axis!r}")
    require(min(h, w, slices) >= 1, f"size {size!r} and slices {slices!r} must be >= 1")
    require(pixel_mm > 0 and spacing_mm >= 0, f"pixel_mm must be > 0 and spacing_mm >= 0, got {pixel_mm!r}, {spacing_mm!r}")
    normal, rows, cols = _frame(axis, angle)
    vol = anat.blurred(pixel_mm / min(anat.voxel_mm))
    s = (np.arange(slices) - (slices - 1) / 2) * spacing_mm
    i = (np.arange(h) - h / 2) * pixel_mm
    j = (np.arange(w) - w / 2) * pixel_mm
    pos = (
        np.asarray(centre_mm, float)[:, None, None, None]
        + normal[:, None, None, None] * s[None, :, None, None]
        + rows[:, None, None, None] * i[None, None, :, None]
        + cols[:, None, None, None] * j[None, None, None, :]
    )
    coords = pos / np.asarray(anat.voxel_mm)[:, None, None, None]
    return map_coordinates(vol, coords.reshape(3, -1), order=1, mode="constant", cval=0.0).reshape(slices, h, w).astype(np.float32)


def _allowed_axes(voxel_mm) -> list[int]:
    """Slice normals whose in-plane voxels are near-isotropic (thick-slice axes make blurry planes)."""
    v = np.asarray(voxel_mm)
    return [a for a in range(3) if np.delete(v, a).max() <= 1.3 * np.delete(v, a).min()]


def random_slabs(
    anat: Anatomy,
    count: int,
    *,
    size: int = 128,
    slices: int = 6,
    pixel_mm: tuple[float, float] = (0.7, 2.5),
    spacing_mm: tuple[float, float] = (1.0, 5.0),
    noise: tuple[float, float] = (0.003, 0.03),
    seed: int = 0,
) -> list[np.ndarray]:
    """``count`` augmented complex slabs (slices, size, size) of one anatomy (module docstring).

    The pixel size is drawn log-uniformly from ``pixel_mm`` but never finer than the volume's
    in-plane voxels (upsampled anatomy would teach the prior blur). Slabs mostly outside the
    object (under 4 % of pixels above 0.05) are redrawn.
    """
    from mrirecon.data.simulate import _phase_coefficients, _phase_map

    require(count >= 0 and size >= 1 and slices >= 1, f"count, size and slices must be >= 0, 1, 1; got {count}, {size}, {slices}")
    require(0 < pixel_mm[0] <= pixel_mm[1], f"pixel_mm must be (smallest, largest) > 0, got {pixel_mm}")
    rng = np.random.default_rng(seed)
    lo_mm, hi_mm = anat.extent_mm()
    axes = _allowed_axes(anat.voxel_mm)
    yy, xx = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    out: list[np.ndarray] = []
    tries = 0
    while len(out) < count:
        tries += 1
        require(tries < 20 * count + 100, f"{anat.name}: cannot find slabs inside the object")
        axis = int(rng.choice(axes))
        inplane = float(np.delete(np.asarray(anat.voxel_mm), axis).max())
        p_lo = max(pixel_mm[0], inplane)
        p = float(np.exp(rng.uniform(np.log(p_lo), np.log(max(pixel_mm[1], p_lo)))))
        centre = lo_mm + (hi_mm - lo_mm) * rng.uniform(0.2, 0.8, 3)
        angle = rng.uniform(-0.3, 0.3) + (np.pi / 2) * rng.integers(4)
        mag = anatomy_slab(anat, axis=axis, centre_mm=centre, pixel_mm=p, size=size, slices=slices,
                           spacing_mm=rng.uniform(*spacing_mm), angle=angle)  # fmt: skip
        if (mag > 0.05).mean() < 0.04:
            continue
        mag = mag ** rng.uniform(0.7, 1.4)  # contrast curve
        bias = np.exp(0.25 * (rng.normal() * xx + rng.normal() * yy + 0.5 * rng.normal() * xx * yy))
        phase = _phase_map(_phase_coefficients(rng, slices), size, size)
        x = mag * bias[None] * np.exp(1j * phase)
        sigma = np.exp(rng.uniform(np.log(noise[0]), np.log(noise[1]))) * np.abs(x).max()
        x = x + sigma * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape)) / np.sqrt(2)
        out.append(x.astype(np.complex64))
    return out
