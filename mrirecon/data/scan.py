"""Preparing a fastMRI scan for reconstruction, evaluation, coil maps and training: one rule each.

:func:`prepare_scan` turns a file into a :class:`PreparedScan` the rest of mrirecon works on:

* **readout crop** (:func:`crop_readout`): fastMRI's 2x readout oversampling is removed in the
  image domain, every coil image centre-cropped to the header's ``reconSpace`` height
  (640 -> 320 for brain), then transformed back. The phase-encode axis keeps its size:
  cropping it would change the sampling pattern. ``recon``, ``evaluate``, ``sens``,
  training and the scripts all read k-space through this one function;
* **acquired mask**: prospectively undersampled files (fastMRI test/challenge files with a
  ``mask`` dataset, or zero phase-encode columns inside the header's acquired range) carry
  their mask (:func:`detect_mask`);
* **retrospective masks** (:meth:`PreparedScan.retrospective_mask`): the mask of a fully
  sampled file depends only on its name, the mask kind, the acceleration and the user's seed
  (:func:`mask_seed`), so every method, rank and rerun sees the same mask;
* **reference** ``reconstruction_rss`` and the whole volume's reference maximum (the
  ``data_range`` of PSNR/SSIM when only some slices are reconstructed, fastMRI's semantics);
* **pixel size** from the header (``reconSpace`` field of view / matrix);
* **noise level** (:func:`oversampling_noise`): the image rows that the readout crop removes
  hold no object in a 2x oversampled acquisition, only noise, whose level the classical
  methods' regularisation needs (the discrepancy principle).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrirecon.errors import MrireconError, require
from mrirecon.physics.fft import center_crop, fft2c, ifft2c

__all__ = [
    "PreparedScan",
    "crop_readout",
    "detect_mask",
    "oversampling_noise",
    "mask_seed",
    "parse_slices",
    "prepare_scan",
    "retrospective_mask",
]


def crop_readout(kspace: np.ndarray, height: int) -> np.ndarray:
    """Remove readout oversampling: ``(..., H, W)`` k-space -> ``(..., height, W)`` (no-op if H <= height).

    The coil images are centre-cropped along the readout in the image domain (index ``H//2``
    stays the centre) and transformed back, so the result is the k-space of the cropped FOV.
    """
    if kspace.shape[-2] <= height:
        return kspace
    return np.ascontiguousarray(fft2c(center_crop(ifft2c(kspace), (int(height), kspace.shape[-1]))), np.complex64)


def oversampling_noise(kspace: np.ndarray, height: int) -> float | None:
    """Noise σ per complex sample from the readout-oversampled FOV that :func:`crop_readout` removes.

    In the image domain the rows outside the central ``height`` (e.g. 160 above and below a
    320-row brain) hold air: coil noise only. The orthonormal FFT keeps σ per sample, and a
    robust estimate ``σ² = median(|x|²) / ln 2`` over the outer half of those rows (a margin
    for the odd bit of scalp) is that of the cropped k-space too. None without oversampling.
    """
    H = kspace.shape[-2]
    extra = (H - int(height)) // 2
    if extra < 8:
        return None
    rows = max(4, extra // 2)
    coils = ifft2c(np.ascontiguousarray(kspace[: min(4, kspace.shape[0])]))
    outer = np.concatenate([coils[..., :rows, :], coils[..., H - rows :, :]], axis=-2)
    power = np.abs(outer) ** 2
    power = power[power > 0]
    if power.size < 64:
        return None
    return float(np.sqrt(np.median(power) / np.log(2.0)))


def mask_seed(file_name: str | os.PathLike, seed: int = 0) -> int:
    """Seed of a volume's retrospective mask: ``(crc32(base name) + seed) mod 2**31``.

    Depends on the file's base name only (not its folder), so copying the data elsewhere or
    running on another rank gives the same masks; deterministic across processes and Python
    versions (unlike ``hash()``); fastMRI's ``seed = tuple(map(ord, fname))`` idea.
    """
    return (zlib.crc32(Path(file_name).name.encode("utf-8")) + int(seed)) % (2**31)


def retrospective_mask(
    kind: str, shape: tuple[int, int], acceleration: float, file_name: str | os.PathLike, seed: int = 0,
    center_fraction: float | None = None,
):
    """The retrospective mask of a volume (:func:`mask_seed` + :func:`mrirecon.physics.masks.make_mask`)."""
    from mrirecon.physics.masks import make_mask

    return make_mask(kind, shape, acceleration, seed=mask_seed(file_name, seed), center_fraction=center_fraction)


def parse_slices(spec: str | None, n_slices: int, option: str = "--slices") -> list[int]:
    """Slice indices selected by ``spec`` in a volume of ``n_slices`` slices.

    ``None``/``"all"``: every slice; ``"I"``: one slice; ``"I,J,K"``: a list (in increasing
    order, no repeats); ``"A:B"``: the range ``A <= s < B`` (Python semantics, negative
    indices allowed, B must not pass the end); ``"center:N"``: the N central slices, or all of
    a shorter volume (the edge slices of fastMRI volumes are mostly noise).
    """
    if spec is None or spec.strip().lower() in ("", "all"):
        return list(range(n_slices))
    s = spec.strip().lower()
    syntax = f"{option} must be 'all', 'I', 'I,J,K', 'A:B' or 'center:N', got {spec!r}"

    def integer(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise MrireconError(syntax) from None

    if s.startswith("center:"):
        n = integer(s.split(":", 1)[1])
        require(n >= 1, f"{option} {spec!r}: N must be >= 1")
        n = min(n, n_slices)  # a folder of volumes of different lengths: the central N or all
        start = (n_slices - n) // 2
        return list(range(start, start + n))
    if ":" in s:
        a, b = s.split(":", 1)
        lo, hi = integer(a) if a else 0, integer(b) if b else n_slices
        for v in (lo, hi):
            require(-n_slices <= v <= n_slices, f"{option} {spec!r}: {v} is outside the volume's 0..{n_slices} slices")
        idx = list(range(n_slices))[lo:hi]
    else:
        idx = [integer(v) for v in s.split(",")]
    for i in idx:
        require(-n_slices <= i < n_slices, f"{option} {spec!r}: slice {i} is outside 0..{n_slices - 1}")
    idx = [i % n_slices for i in idx]
    require(len(idx) > 0, f"{option} {spec!r} selects no slice of a {n_slices}-slice volume")
    require(len(set(idx)) == len(idx), f"{option} {spec!r} names a slice twice")
    require(idx == sorted(idx), f"{option} {spec!r}: list slices in increasing order (slices are reconstructed in volume order)")
    return idx


def detect_mask(scan) -> np.ndarray | None:
    """The sampling mask ``(W,)`` of prospectively undersampled data, or None if fully sampled.

    fastMRI test/challenge files carry a ``mask`` dataset; other undersampled files are
    recognised by phase-encode columns of exact zeros (in every coil and readout sample of
    the middle slice) inside the header's acquired range (columns outside it are the zero
    padding of fully sampled knee data, not undersampling).

    Parameters
    ----------
    scan : mrirecon.data.fastmri.Scan
    """
    if scan.mask is not None:
        return scan.mask.astype(np.float32)
    k = scan.kspace_slice(scan.num_slices // 2)
    sampled = np.any(k != 0, axis=(0, 1))
    lo, hi = 0, sampled.size
    if scan.header is not None:
        lo, hi = max(scan.header.padding_left, 0), min(scan.header.padding_right, sampled.size)
    inside = sampled[lo:hi]
    if inside.size == 0 or inside.all():
        return None
    return sampled.astype(np.float32)


@dataclass
class PreparedScan:
    """A scan ready for reconstruction (see the module docstring).

    Attributes
    ----------
    path : Path
    kspace : ndarray (S, C, H, W) complex64
        The selected slices, readout oversampling removed (H = the header's recon height).
    slices : list of int
        Volume indices of the selected slices.
    num_slices : int
        Slices in the whole file.
    acquired_mask : ndarray (W,) float32 or None
        The file's own sampling (prospectively undersampled data), else None.
    reference : ndarray (S, H_r, W_r) float32 or None
        ``reconstruction_rss`` of the selected slices.
    reference_max : float or None
        Maximum of the whole reference volume (metrics' ``data_range`` for slice subsets).
    recon_size : (H_r, W_r)
        Size reconstructions are cropped to (fastMRI's ``crop_size``).
    readout : (H_file, H)
        Readout length in the file and after the crop.
    pixel_size_mm : (readout, phase-encode) or None
        From the header's ``reconSpace`` field of view and matrix.
    noise_std : float or None
        Noise σ per complex sample (:func:`oversampling_noise`), None without oversampling.
    """

    path: Path
    kspace: np.ndarray
    slices: list[int]
    num_slices: int
    acquired_mask: np.ndarray | None
    reference: np.ndarray | None
    reference_max: float | None
    recon_size: tuple[int, int]
    readout: tuple[int, int]
    pixel_size_mm: tuple[float, float] | None
    noise_std: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the prepared k-space (the grid of masks and maps)."""
        return int(self.kspace.shape[-2]), int(self.kspace.shape[-1])

    def retrospective_mask(self, kind: str, acceleration: float, seed: int = 0, center_fraction: float | None = None):
        """This scan's retrospective mask (:func:`retrospective_mask`), refused for undersampled files."""
        if self.acquired_mask is not None:
            raise MrireconError(
                f"{self.path} is already undersampled ({int(self.acquired_mask.sum())}/{self.shape[1]} lines); "
                "reconstruct it as acquired (no retrospective mask)"
            )
        return retrospective_mask(kind, self.shape, acceleration, self.path.name, seed, center_fraction)


def pixel_size(header) -> tuple[float, float] | None:
    """``(readout, phase-encode)`` pixel size in mm of a :class:`~mrirecon.data.fastmri.ScanHeader`, or None."""
    if header is None or header.recon_fov_mm is None:
        return None
    (fx, fy, _), (nx, ny, _) = header.recon_fov_mm, header.recon_size
    if fx <= 0 or fy <= 0 or nx <= 0 or ny <= 0:
        return None
    return (fx / nx, fy / ny)


def prepare_scan(path: str | os.PathLike, slices: list[int] | str | None = None) -> PreparedScan:
    """Read a fastMRI file into a :class:`PreparedScan` (module docstring).

    Parameters
    ----------
    path : str or PathLike
        A fastMRI ``.h5`` file (multi- or single-coil, fully sampled or undersampled).
    slices : list of int, str or None
        Slice indices, a ``--slices`` spec (:func:`parse_slices`) or None for all.
    """
    from mrirecon.data.fastmri import open_scan

    scan = open_scan(path)
    idx = parse_slices(slices, scan.num_slices) if slices is None or isinstance(slices, str) else list(slices)
    with scan:
        kspace = scan.load_kspace(idx)
        reference = scan.load_reference(idx)
        ref_max = None
        if scan.reference_key is not None:
            full = reference if len(idx) == scan.num_slices else scan.load_reference()
            ref_max = float(full.max())
        acquired = detect_mask(scan)
    h_file = int(kspace.shape[-2])
    noise = oversampling_noise(kspace, scan.recon_size[0])
    kspace = crop_readout(kspace, scan.recon_size[0])
    return PreparedScan(
        path=Path(path),
        kspace=kspace,
        slices=idx,
        num_slices=scan.num_slices,
        acquired_mask=acquired,
        reference=reference,
        reference_max=ref_max,
        recon_size=scan.recon_size,
        readout=(h_file, int(kspace.shape[-2])),
        pixel_size_mm=None if scan.attrs.get("pixel_size_known") is False else pixel_size(scan.header),
        noise_std=noise,
    )
