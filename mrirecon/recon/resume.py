"""Slice checkpoints: a long reconstruction keeps its finished slices and resumes after Ctrl-C.

After every finished slice (AID) or batch of slices (UNet) the sampler hands its samples to a
:class:`SliceCheckpoint`, which rewrites one HDF5 file atomically (temporary file + rename):

* ``samples`` (n_samples, D, H, W) complex64: slices ``0..D-1``, in the prior's intensity
  scale, exactly as the sampler produced them (so the AID window resumes bit for bit);
* attribute ``fingerprint``: JSON of everything that changes the numbers (settings, a digest
  of the measured data, mask, coil maps and prior weights).

A later run with the same fingerprint starts at slice ``D``; per-slice seeds
(:func:`mrirecon.recon.sampler.slice_seed`) make the result equal to an uninterrupted run. A
different fingerprint is refused with the first differing fields named.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from mrirecon.errors import MrireconError, require

__all__ = ["SliceCheckpoint", "digest"]


def digest(*tensors: torch.Tensor) -> str:
    """SHA-256 (first 16 hex digits) of the tensors' bytes, shapes and dtypes."""
    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(a.view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    return h.hexdigest()[:16]


class SliceCheckpoint:
    """The finished slices of one reconstruction, in one HDF5 file.

    Parameters
    ----------
    path : str or PathLike
        The checkpoint file (``.h5``).
    fingerprint : dict
        JSON-serialisable settings and digests; a resume needs the same.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: dict[str, Any]):
        self.path = Path(path)
        require(self.path.suffix in (".h5", ".hdf5"), f"checkpoint must be an .h5 file, got '{self.path}'")
        self.fingerprint = json.loads(json.dumps(fingerprint))

    def load(self) -> torch.Tensor | None:
        """Finished samples ``(n_samples, D, H, W)`` complex64, or None without a checkpoint.

        Raises
        ------
        MrireconError
            The file is unreadable or was written with other settings or data.
        """
        if not self.path.exists():
            return None
        try:
            with h5py.File(self.path, "r") as f:
                saved = json.loads(f.attrs["fingerprint"])
                samples = torch.from_numpy(np.asarray(f["samples"][()], dtype=np.complex64))
        except (OSError, KeyError, ValueError) as e:
            raise MrireconError(f"checkpoint '{self.path}' is unreadable ({e}); delete it to start afresh") from None
        diff = [k for k in sorted(set(saved) | set(self.fingerprint)) if saved.get(k) != self.fingerprint.get(k)]
        if diff:
            shown = ", ".join(f"{k}: {saved.get(k)!r} -> {self.fingerprint.get(k)!r}" for k in diff[:3])
            raise MrireconError(
                f"checkpoint '{self.path}' belongs to another reconstruction ({shown}"
                f"{', ...' if len(diff) > 3 else ''}); use the same settings to resume, or delete it"
            )
        return samples

    def save(self, samples: torch.Tensor) -> None:
        """Atomically store the finished slices ``(n_samples, D, H, W)``."""
        from mrirecon.data.fastmri import atomic_h5

        with atomic_h5(self.path) as f:
            f.create_dataset("samples", data=samples.detach().cpu().numpy().astype(np.complex64))
            f.attrs["fingerprint"] = json.dumps(self.fingerprint, sort_keys=True)

    def remove(self) -> None:
        """Delete the file (the reconstruction finished)."""
        self.path.unlink(missing_ok=True)
