"""Image volumes for training priors and for warm starts: fastMRI scans, ``.npy`` and NIfTI files.

:func:`read_volume` returns one volume of slices ``(S, H, W)`` (complex or real):

* fastMRI ``.h5``: the scan read through :func:`mrirecon.data.prepare_scan` (the same readout
  crop as reconstruction), coil-combined per slice, ``Σ_c conj(S_c)·x_c`` with maps estimated
  from the fully sampled data (``direct``, the reference's BART ``caldir``-style preprocessing,
  or another :func:`mrirecon.physics.coils.calibrate` method); single-coil files give the image;
* ``.npy``: an array ``(S, H, W)``, real or complex (no pickles);
* NIfTI (``.nii``/``.nii.gz``, needs nibabel): axial slices along the third voxel axis after
  reorientation to RAS.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mrirecon.errors import MrireconError, import_optional, require
from mrirecon.files import read_npy

__all__ = ["VOLUME_SUFFIXES", "read_volume", "volume_files"]

VOLUME_SUFFIXES = (".h5", ".hdf5", ".npy", ".nii", ".nii.gz")


def _read_nifti(path: Path) -> np.ndarray:
    nib = import_optional("nibabel", 'pip install "mrirecon[train]" (NIfTI volumes need nibabel)')
    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asanyarray(img.dataobj)
    except Exception as e:  # nibabel raises many kinds for broken files
        raise MrireconError(f"{path}: not a readable NIfTI volume ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    require(data.ndim == 3, f"{path}: expected a 3-D NIfTI volume, got shape {data.shape}")
    # RAS voxels (x, y, z) -> axial slices (z, rows = anterior->posterior, cols = right->left).
    return np.ascontiguousarray(np.transpose(data, (2, 1, 0))[:, ::-1, :])


def _read_npy(path: Path) -> np.ndarray:
    data = read_npy(path)
    require(data.dtype.kind in "biufc", f"{path}: a .npy volume must hold numbers, got dtype {data.dtype}")
    require(data.ndim == 3 and data.size > 0, f"{path}: a .npy volume must be (slices, H, W), got shape {data.shape}")
    return data


def _read_fastmri(path: Path, sens_method: str) -> np.ndarray:
    from mrirecon.data.scan import prepare_scan
    from mrirecon.physics.coils import estimate_sens, sense_combine
    from mrirecon.physics.fft import ifft2c

    scan = prepare_scan(path)
    require(scan.acquired_mask is None, f"{path}: k-space is undersampled; training needs fully sampled files")
    coils = ifft2c(scan.kspace)
    if scan.kspace.shape[1] == 1:
        return coils[:, 0]
    return sense_combine(coils, estimate_sens(scan.kspace, method=sens_method))


def read_volume(path: str | os.PathLike, sens_method: str = "direct") -> np.ndarray:
    """One volume ``(S, H, W)`` from a fastMRI ``.h5``, ``.npy`` or NIfTI file (module docstring)."""
    path = Path(path)
    require(path.is_file(), f"{path}: no such file")
    name = path.name.lower()
    if name.endswith((".h5", ".hdf5")):
        return _read_fastmri(path, sens_method)
    if name.endswith(".npy"):
        return _read_npy(path)
    if name.endswith((".nii", ".nii.gz")):
        return _read_nifti(path)
    raise MrireconError(f"{path}: expected a fastMRI .h5, a .npy or a .nii/.nii.gz volume")


def volume_files(folder: str | os.PathLike) -> list[Path]:
    """The volume files directly inside ``folder`` (sorted by name)."""
    folder = Path(folder)
    require(folder.is_dir(), f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES))
    require(files, f"{folder}: no .h5, .npy, .nii or .nii.gz volumes found")
    return files
