"""fastMRI HDF5 files: lazy per-slice reading, reconstruction writing, and scan writing.

The fastMRI layout (one HDF5 file per acquisition, ``fastmri/data/README.md``):

* ``kspace``: complex64, multi-coil ``(slices, coils, kx, ky)`` or single-coil
  ``(slices, kx, ky)``; kx is the readout, usually 2x oversampled (640 for a 320 image).
* ``reconstruction_rss`` (multi-coil) or ``reconstruction_esc`` (single-coil): float32
  ``(slices, H_r, W_r)``, absent from test/challenge files.
* ``ismrmrd_header``: XML bytes; the geometry lives in ``encoding/encodedSpace/matrixSize``,
  ``encoding/reconSpace/matrixSize`` and ``encoding/encodingLimits/kspace_encoding_step_1``.
* attrs ``acquisition``, ``max`` (volume max of the reference), ``norm`` (its L2 norm),
  ``patient_id``; test files add a ``mask`` dataset ``(ky,)`` and attrs ``acceleration`` and
  ``num_low_frequency``.

k-space is returned as ``(slices, coils, H, W)`` complex64 with H = readout, whatever the file
kind (single-coil files get ``coils = 1``). Files are opened only while data are read
(h5py handles are not kept between calls unless the :class:`Scan` is used as a context
manager), which keeps slice-wise data loaders from leaking handles. Every problem with a
file raises :class:`~mrirecon.errors.MrireconError` naming the file and the field.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np

from mrirecon.data.ismrmrd import ISMRMRD_NAMESPACE, ScanHeader, make_ismrmrd_header, parse_ismrmrd_header
from mrirecon.errors import MrireconError, as_numeric_array, require
from mrirecon.files import atomic_path

__all__ = [
    "ISMRMRD_NAMESPACE",
    "Scan",
    "ScanHeader",
    "make_ismrmrd_header",
    "open_scan",
    "parse_ismrmrd_header",
    "write_fastmri_scan",
    "write_reconstruction",
]

_LAYOUT = "expected fastMRI HDF5 with kspace (slices, coils, kx, ky) or single-coil (slices, kx, ky)"
_REFERENCE_KEYS = {True: ("reconstruction_rss",), False: ("reconstruction_esc", "reconstruction_rss")}


# --------------------------------------------------------------------------------------------
# reading


def _open_h5(path: Path) -> h5py.File:
    require(path.exists(), f"{path}: no such file")
    require(path.is_file(), f"{path}: not a file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise MrireconError(f"{path}: cannot be read as HDF5 ({str(exc).splitlines()[0]})") from None


def _attr_value(value):
    """HDF5 attribute -> plain Python (str / int / float / list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@dataclass
class Scan:
    """One fastMRI acquisition, read lazily slice by slice.

    Construct with :func:`open_scan`. Metadata are read at construction; k-space and the
    reference are read on demand. ``with scan: ...`` keeps the file open for many reads.

    Attributes
    ----------
    path : Path
    multicoil : bool
        False for single-coil files (``kspace`` (slices, kx, ky)); they read as coils = 1.
    num_slices, num_coils : int
    kspace_shape : (S, C, H, W)
        Shape of :meth:`load_kspace`'s result (H = readout).
    reference_key : str or None
        ``reconstruction_rss`` / ``reconstruction_esc`` when the file has a reference.
    reference_shape : (S, H_r, W_r) or None
    header : ScanHeader or None
        Parsed ``ismrmrd_header`` (None when the file has none).
    attrs : dict
        File attributes as plain Python values (``max``, ``norm``, ``acquisition``, ...).
    mask : ndarray (W,) float32 or None
        The ``mask`` dataset of fastMRI test/challenge files.
    """

    path: Path
    multicoil: bool
    num_slices: int
    num_coils: int
    kspace_shape: tuple[int, int, int, int]
    reference_key: str | None
    reference_shape: tuple[int, int, int] | None
    header: ScanHeader | None
    attrs: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    _handle: h5py.File | None = field(default=None, repr=False, compare=False)

    # -- file handling ----------------------------------------------------------------------

    def __enter__(self) -> "Scan":
        if self._handle is None:
            self._handle = _open_h5(self.path)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the handle kept open by ``with scan:`` (no-op otherwise)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @contextlib.contextmanager
    def _file(self) -> Iterator[h5py.File]:
        if self._handle is not None:
            yield self._handle
        else:
            with _open_h5(self.path) as f:
                yield f

    def __len__(self) -> int:
        return self.num_slices

    # -- geometry ---------------------------------------------------------------------------

    @property
    def recon_size(self) -> tuple[int, int]:
        """Image size ``(H, W)`` to crop reconstructions to (fastMRI's ``crop_size``).

        From the header's ``reconSpace``, else the reference's shape, else the k-space's;
        clipped to the k-space width as fastMRI does for narrow FLAIR matrices.
        """
        if self.header is not None:
            h, w = self.header.recon_size[:2]
        elif self.reference_shape is not None:
            h, w = self.reference_shape[1:]
        else:
            h, w = self.kspace_shape[2:]
        return min(h, self.kspace_shape[2]), min(w, self.kspace_shape[3])

    # -- data -------------------------------------------------------------------------------

    def _slice_indices(self, slices) -> list[int]:
        n = self.num_slices
        if slices is None:
            return list(range(n))
        if isinstance(slices, slice):
            return list(range(n))[slices]
        if isinstance(slices, (int, np.integer)):
            slices = [slices]
        out = []
        for s in slices:
            require(
                isinstance(s, (int, np.integer)) and -n <= int(s) < n,
                f"{self.path}: slice index {s!r} out of range for {n} slices",
            )
            out.append(int(s) % n)
        return out

    def _read_kspace(self, f: h5py.File, indices: list[int]) -> np.ndarray:
        ds = f["kspace"]
        if ds.ndim == 3 and self.multicoil:  # one multi-coil slice stored as (coils, kx, ky)
            data = np.asarray(ds[()])[None][indices]
        elif indices == list(range(self.num_slices)):
            data = ds[()]
        elif indices and indices == sorted(set(indices)):
            data = ds[indices]
        else:
            data = np.stack([ds[i] for i in indices]) if indices else np.zeros((0,) + ds.shape[1:], ds.dtype)
        if not self.multicoil:
            data = data[:, None]
        require(
            bool(np.isfinite(data).all()),
            f"{self.path}: dataset 'kspace' contains NaN or Inf values (slices {_span(indices)})",
        )
        return np.ascontiguousarray(data, dtype=np.complex64)

    def kspace_slice(self, index: int) -> np.ndarray:
        """k-space of one slice, ``(C, H, W)`` complex64 (C = 1 for single-coil files)."""
        (i,) = self._slice_indices([index])
        with self._file() as f:
            return self._read_kspace(f, [i])[0]

    def load_kspace(self, slices: Sequence[int] | slice | None = None) -> np.ndarray:
        """k-space of the selected slices (all by default), ``(S, C, H, W)`` complex64."""
        indices = self._slice_indices(slices)
        with self._file() as f:
            return self._read_kspace(f, indices)

    def reference_slice(self, index: int) -> np.ndarray | None:
        """Reference image of one slice ``(H_r, W_r)`` float32, or None."""
        if self.reference_key is None:
            return None
        (i,) = self._slice_indices([index])
        with self._file() as f:
            return self._check_reference(f[self.reference_key][i])

    def load_reference(self, slices: Sequence[int] | slice | None = None) -> np.ndarray | None:
        """Reference volume of the selected slices ``(S, H_r, W_r)`` float32, or None."""
        if self.reference_key is None:
            return None
        indices = self._slice_indices(slices)
        with self._file() as f:
            ds = f[self.reference_key]
            data = np.stack([ds[i] for i in indices]) if indices else np.zeros((0,) + ds.shape[1:])
        return self._check_reference(data)

    @property
    def reference_image(self) -> np.ndarray | None:
        """The whole reference volume ``(S, H_r, W_r)`` float32 (read on access), or None."""
        return self.load_reference()

    def _check_reference(self, data: np.ndarray) -> np.ndarray:
        require(
            bool(np.isfinite(data).all()),
            f"{self.path}: dataset '{self.reference_key}' contains NaN or Inf values",
        )
        return np.ascontiguousarray(data, dtype=np.float32)


def _span(indices: list[int]) -> str:
    if not indices:
        return "none"
    return f"{indices[0]}" if len(indices) == 1 else f"{min(indices)}..{max(indices)}"


def _three_d_is_multicoil(f: h5py.File, path: Path, shape: tuple[int, ...]) -> bool:
    """A 3-D ``kspace`` is single-coil slices ``(S, kx, ky)`` or one multi-coil slice ``(C, kx, ky)``.

    Decided from the file's other keys (the header's channel count cannot tell: fastMRI's
    single-coil files keep the header of the 15-channel acquisition): ``reconstruction_esc``
    or a ``mask`` dataset (single-coil test files) -> single-coil; ``reconstruction_rss``
    (a multi-coil reference) with one slice -> one multi-coil slice; anything else is refused.
    """
    if "reconstruction_esc" in f or "mask" in f:
        return False
    if "reconstruction_rss" in f:
        ref = f["reconstruction_rss"]
        if isinstance(ref, h5py.Dataset) and ref.ndim == 3 and ref.shape[0] == 1:
            return True
        return False
    raise MrireconError(
        f"{path}: dataset 'kspace' has shape {shape}: single-coil slices (slices, kx, ky) or one multi-coil slice "
        "(coils, kx, ky)? The file has neither reconstruction_esc (single-coil) nor reconstruction_rss "
        "(multi-coil); store multi-coil k-space as (slices, coils, kx, ky)"
    )


def open_scan(path: str | os.PathLike) -> Scan:
    """Open a fastMRI HDF5 file and read its metadata (k-space is read later, per slice).

    Parameters
    ----------
    path : str or PathLike
        A fastMRI multi-coil or single-coil ``.h5`` file (or one written by
        :func:`write_fastmri_scan`).

    Returns
    -------
    Scan
        ``scan.kspace_slice(i)`` -> (C, H, W), ``scan.load_kspace()`` -> (S, C, H, W) complex64,
        ``scan.reference_image`` -> (S, H_r, W_r) float32 or None.
    """
    path = Path(path)
    try:
        return _read_metadata(path)
    except KeyError as e:  # h5py: a dangling external or soft link (the name exists, its target does not)
        raise MrireconError(f"{path}: a dataset cannot be opened, e.g. a link to a missing file ({' '.join(str(e).split())})") from None


def _read_metadata(path: Path) -> Scan:
    with _open_h5(path) as f:
        require("kspace" in f, f"{path}: missing dataset 'kspace' ({_LAYOUT})")
        ks = f["kspace"]
        require(isinstance(ks, h5py.Dataset), f"{path}: 'kspace' is a group, not a dataset ({_LAYOUT})")
        require(
            ks.dtype.kind == "c",
            f"{path}: dataset 'kspace' must be complex, got dtype {ks.dtype} ({_LAYOUT})",
        )
        require(ks.ndim in (3, 4), f"{path}: dataset 'kspace' has shape {ks.shape} ({_LAYOUT})")
        require(all(n > 0 for n in ks.shape), f"{path}: dataset 'kspace' is empty, shape {ks.shape}")
        shape = tuple(int(n) for n in ks.shape)
        multicoil = ks.ndim == 4 or _three_d_is_multicoil(f, path, shape)
        if ks.ndim == 4:
            kshape = shape
        elif multicoil:  # one slice of multi-coil data stored as (coils, kx, ky)
            kshape = (1, shape[0], shape[1], shape[2])
        else:
            kshape = (shape[0], 1, shape[1], shape[2])

        reference_key = next((k for k in _REFERENCE_KEYS[multicoil] if k in f), None)
        reference_shape = None
        if reference_key is not None:
            ref = f[reference_key]
            require(
                isinstance(ref, h5py.Dataset) and ref.ndim == 3 and ref.dtype.kind == "f",
                f"{path}: dataset '{reference_key}' must be real (slices, H, W), "
                f"got {getattr(ref, 'dtype', 'a group')} {getattr(ref, 'shape', '')}",
            )
            require(
                ref.shape[0] == kshape[0],
                f"{path}: dataset '{reference_key}' has {ref.shape[0]} slices but 'kspace' has {kshape[0]}",
            )
            reference_shape = tuple(int(n) for n in ref.shape)

        header = None
        if "ismrmrd_header" in f:
            raw = f["ismrmrd_header"][()]
            if isinstance(raw, np.ndarray):
                raw = raw.tobytes() if raw.dtype.kind == "S" else raw.item()
            header = parse_ismrmrd_header(raw, source=f"{path}: ismrmrd_header")

        mask = None
        if "mask" in f:
            m = np.asarray(f["mask"][()])
            require(
                m.ndim == 1 and m.shape[0] == kshape[3],
                f"{path}: dataset 'mask' must be (ky,) = ({kshape[3]},), got shape {m.shape}",
            )
            mask = m.astype(np.float32)

        attrs = {k: _attr_value(v) for k, v in f.attrs.items()}

    return Scan(
        path=path,
        multicoil=multicoil,
        num_slices=kshape[0],
        num_coils=kshape[1],
        kspace_shape=kshape,  # type: ignore[arg-type]
        reference_key=reference_key,
        reference_shape=reference_shape,  # type: ignore[arg-type]
        header=header,
        attrs=attrs,
        mask=mask,
    )


# --------------------------------------------------------------------------------------------
# writing


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Write an HDF5 file to a temporary name beside ``path``, then rename it into place.

    A crash or a full disk never leaves a truncated file under the final name
    (:func:`mrirecon.files.atomic_path`).
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            yield f


def _write_attrs(f: h5py.File, attrs: dict | None) -> None:
    for key, value in (attrs or {}).items():
        require(isinstance(key, str) and key, f"attrs keys must be non-empty strings, got {key!r}")
        try:
            f.attrs[key] = value
        except TypeError:
            raise MrireconError(f"attrs[{key!r}] cannot be stored in HDF5 (type {type(value).__name__})") from None


def write_reconstruction(
    path: str | os.PathLike,
    recon,
    attrs: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a reconstruction in the fastMRI submission layout (readable by fastmri.evaluate).

    Parameters
    ----------
    path : str or PathLike
        Output ``.h5`` file (written atomically; parent folders are created).
    recon : array (S, H, W)
        Reconstruction; complex input is stored as its magnitude. Dataset ``reconstruction``
        float32.
    attrs : dict, optional
        File attributes (e.g. ``acceleration``, ``normalization``, ``seed``).
    extra : dict[str, array], optional
        Further datasets stored as given (float or complex), e.g. ``image`` (complex
        reconstruction), ``std`` (posterior standard deviation), ``mask``, ``sens_maps``.

    Returns
    -------
    Path
    """
    x = as_numeric_array(recon, "recon")
    require(x.ndim == 3, f"recon must be (slices, H, W), got shape {x.shape} (use x[None] for one slice)")
    mag = (np.abs(x) if x.dtype.kind == "c" else x).astype(np.float32)
    require(bool(mag.any()), "recon is all zero: refusing to write an empty reconstruction")
    extras = {}
    for name, value in (extra or {}).items():
        require(
            isinstance(name, str) and name and name != "reconstruction" and "/" not in name,
            f"extra dataset names must be plain strings other than 'reconstruction', got {name!r}",
        )
        extras[name] = as_numeric_array(value, f"extra[{name!r}]")
    with atomic_h5(path) as f:
        f.create_dataset("reconstruction", data=mag)
        for name, value in extras.items():
            f.create_dataset(name, data=value)
        _write_attrs(f, attrs)
    return Path(path)


def write_fastmri_scan(
    path: str | os.PathLike,
    kspace,
    reference_rss=None,
    header_xml: str | bytes | None = None,
    attrs: dict | None = None,
) -> Path:
    """Write k-space (and its reference) in the exact fastMRI raw-data layout.

    Parameters
    ----------
    path : str or PathLike
        Output ``.h5`` file (written atomically).
    kspace : array (S, C, kx, ky) complex
        Multi-coil k-space, stored as dataset ``kspace`` complex64. A 3-D ``(S, kx, ky)``
        array writes a single-coil file (reference stored as ``reconstruction_esc``).
    reference_rss : array (S, H_r, W_r), optional
        Reference magnitude, stored float32 as ``reconstruction_rss`` (multi-coil).
    header_xml : str or bytes, optional
        ``ismrmrd_header``; by default :func:`make_ismrmrd_header` with encoded size
        ``(kx, ky)`` and recon size ``(H_r, W_r)`` (``(kx, ky)`` without a reference).
    attrs : dict, optional
        Merged over the defaults ``acquisition="AXT1"``, ``patient_id="synthetic"``,
        ``max`` = reference max and ``norm`` = reference L2 norm (when there is a reference).

    Returns
    -------
    Path
    """
    k = as_numeric_array(kspace, "kspace")
    require(
        k.ndim in (3, 4),
        f"kspace must be (slices, coils, kx, ky) or single-coil (slices, kx, ky), got shape {k.shape}",
    )
    multicoil = k.ndim == 4
    ref = None
    if reference_rss is not None:
        ref = as_numeric_array(reference_rss, "reference_rss")
        require(
            ref.ndim == 3 and ref.shape[0] == k.shape[0] and ref.dtype.kind in "iuf",
            f"reference_rss must be real (slices={k.shape[0]}, H, W), got {ref.dtype} {ref.shape}",
        )
        ref = ref.astype(np.float32)
    if header_xml is None:
        recon = ref.shape[1:] if ref is not None else k.shape[-2:]
        header_xml = make_ismrmrd_header(
            k.shape[-2:], recon, coils=k.shape[1] if multicoil else 1, slices=k.shape[0]
        )
    header_bytes = header_xml.encode("utf-8") if isinstance(header_xml, str) else bytes(header_xml)
    parse_ismrmrd_header(header_bytes, source="header_xml")  # refuse to write an unreadable file
    file_attrs: dict = {"acquisition": "AXT1", "patient_id": "synthetic"}
    if ref is not None:
        file_attrs["max"] = float(ref.max())
        file_attrs["norm"] = float(np.linalg.norm(ref))
    file_attrs.update(attrs or {})
    with atomic_h5(path) as f:
        f.create_dataset("ismrmrd_header", data=np.bytes_(header_bytes))
        f.create_dataset("kspace", data=k.astype(np.complex64))
        if ref is not None:
            f.create_dataset("reconstruction_rss" if multicoil else "reconstruction_esc", data=ref)
        _write_attrs(f, file_attrs)
    return Path(path)
