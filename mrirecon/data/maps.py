"""Coil sensitivity files: what ``mrirecon sens`` writes, NumPy arrays and BART's ``ecalib`` output.

:func:`read_maps` returns ``(S, C, H, W)`` complex64 from

* ``.h5``: dataset ``sens_maps`` (written by ``mrirecon sens``) or ``maps``;
* ``.npy``: an array ``(S, C, H, W)`` or ``(C, H, W)``;
* ``.cfl`` / ``.hdr`` (BART): ``ecalib`` output, dimensions ``(H, W, 1, C[, maps])`` or
  ``(H, W, S, C[, maps])``; with several sets of maps (``ecalib -m2``) the first is used.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mrirecon.errors import MrireconError, as_numeric_array, require
from mrirecon.files import read_npy

__all__ = ["read_maps"]


def read_maps(path: str | os.PathLike) -> np.ndarray:
    """Coil maps ``(S, C, H, W)`` complex64 from a file (module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".cfl", ".hdr"):
        from mrirecon.data.cfl import read_cfl

        base = path.with_suffix("")
        require(base.with_suffix(".cfl").is_file(), f"{path}: no such BART file (.cfl + .hdr)")
        arr = np.asarray(read_cfl(base))
        require(arr.ndim >= 4 or arr.ndim == 3, f"{path}: BART maps must be (H, W, 1, C[, maps]), got shape {arr.shape}")
        if arr.ndim == 3:  # (H, W, C)
            arr = arr[:, :, None]
        while arr.ndim > 4:
            arr = arr[..., 0]  # first set of maps
        maps = np.transpose(arr, (2, 3, 0, 1))  # (S, C, H, W)
    elif suffix in (".h5", ".hdf5"):
        import h5py

        require(path.is_file(), f"{path}: no such file")
        try:
            with h5py.File(path, "r") as f:
                key = next((k for k in ("sens_maps", "maps") if k in f), None)
                require(key is not None, f"{path}: no dataset 'sens_maps' (written by mrirecon sens) or 'maps'")
                maps = np.asarray(f[key][()])
        except OSError as e:
            raise MrireconError(f"{path}: cannot be read as HDF5 ({str(e).splitlines()[0]})") from None
    elif suffix == ".npy":
        maps = read_npy(path)
    else:
        raise MrireconError(f"{path}: coil maps must be a .h5 (mrirecon sens), .npy or BART .cfl file")
    maps = as_numeric_array(maps, f"{path}: maps")
    require(maps.dtype.kind == "c", f"{path}: coil maps must be complex, got dtype {maps.dtype}")
    if maps.ndim == 3:
        maps = maps[None]
    require(maps.ndim == 4, f"{path}: coil maps must be (slices, coils, H, W) or (coils, H, W), got shape {maps.shape}")
    return np.ascontiguousarray(maps, dtype=np.complex64)
