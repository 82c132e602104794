"""BART ``.cfl``/``.hdr`` files (read and write), for interoperability with BART tools.

Format (BART ``src/misc/io.c`` and ``python/cfl.py``): a base name ``x`` stands for two files.

* ``x.hdr``: text, the line ``# Dimensions`` followed by one line of space-separated sizes
  ``d0 d1 ...`` (BART's C tools write 16 dims, padded with 1s; more ``# ...`` sections such
  as ``# Command`` may follow and are ignored here).
* ``x.cfl``: raw complex64 (little-endian float32 real, imag pairs) in **column-major**
  order: dim 0 varies fastest.

Like BART's own Python reader, a numpy array of shape ``shape`` is stored with
``dims = shape`` (the raw data are ``array.T`` in C order), so numpy shapes round-trip
unchanged -- except that trailing singleton dimensions are dropped on reading (BART cannot
tell ``(4, 1)`` from ``(4,)``); pass ``ndim`` to :func:`read_cfl` to keep them. BART's own
dimension meaning (0 readout, 1 phase 1, 2 phase 2, 3 coils, ...) is the caller's business:
e.g. mrirecon k-space ``(S, C, H, W)`` for one slice becomes
``kspace[s].transpose(1, 2, 0)[:, :, None, :]`` = ``(H, W, 1, C)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from mrirecon.errors import MrireconError, require

__all__ = ["read_cfl", "write_cfl"]

_DIMS_LINE = "# Dimensions"
_ITEMSIZE = np.dtype(np.complex64).itemsize


def _base(base: str | os.PathLike) -> Path:
    """Accept ``x``, ``x.cfl`` or ``x.hdr`` and return ``x``."""
    p = Path(base)
    return p.with_suffix("") if p.suffix in (".cfl", ".hdr") else p


def _read_dims(hdr: Path) -> list[int]:
    try:
        lines = hdr.read_text(encoding="ascii").splitlines()
    except UnicodeDecodeError:
        raise MrireconError(f"{hdr}: not a BART header (not ASCII text)") from None
    for i, line in enumerate(lines):
        if line.strip() == _DIMS_LINE:
            fields = lines[i + 1].split() if i + 1 < len(lines) else []
            try:
                dims = [int(v) for v in fields]
            except ValueError:
                dims = []
            require(
                len(dims) > 0 and all(d >= 1 for d in dims),
                f"{hdr}: the line after '{_DIMS_LINE}' must hold positive integer sizes, "
                f"got {lines[i + 1] if i + 1 < len(lines) else 'nothing'!r}",
            )
            return dims
    raise MrireconError(f"{hdr}: missing the '{_DIMS_LINE}' line of a BART header")


def read_cfl(base: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read a BART array ``base.cfl`` + ``base.hdr``.

    Parameters
    ----------
    base : str or PathLike
        File name without extension (``x.cfl`` / ``x.hdr`` are accepted too).
    ndim : int, optional
        Number of dimensions to return. By default trailing singleton dimensions are
        dropped (BART's convention; at least one dimension is kept).

    Returns
    -------
    ndarray complex64, shape ``dims`` from the header
    """
    b = _base(base)
    hdr, cfl = b.with_name(b.name + ".hdr"), b.with_name(b.name + ".cfl")
    require(hdr.is_file(), f"{hdr}: no such file (a BART array needs {b.name}.hdr and {b.name}.cfl)")
    require(cfl.is_file(), f"{cfl}: no such file (a BART array needs {b.name}.hdr and {b.name}.cfl)")
    dims = _read_dims(hdr)
    count = int(np.prod(dims))
    size = cfl.stat().st_size
    require(
        size == count * _ITEMSIZE,
        f"{cfl}: holds {size} bytes but {hdr.name} dims {tuple(dims)} need {count * _ITEMSIZE} "
        "(complex64)",
    )
    if ndim is None:
        while len(dims) > 1 and dims[-1] == 1:
            dims.pop()
    else:
        require(
            isinstance(ndim, int) and ndim >= 1,
            f"ndim must be a positive integer, got {ndim!r}",
        )
        require(
            all(d == 1 for d in dims[ndim:]),
            f"{hdr}: dims {tuple(dims)} cannot be read as {ndim} dimensions",
        )
        dims = (dims + [1] * ndim)[:ndim]
    data = np.fromfile(cfl, dtype="<c8", count=count)
    return data.astype(np.complex64, copy=False).reshape(dims, order="F")


def write_cfl(base: str | os.PathLike, array) -> Path:
    """Write ``array`` as BART ``base.cfl`` + ``base.hdr`` (complex64, column-major).

    Parameters
    ----------
    base : str or PathLike
        File name without extension (a ``.cfl``/``.hdr`` suffix is stripped).
    array : array-like, any shape (numpy or torch), real or complex
        Stored as complex64 with ``dims = array.shape`` (no padding to 16 dims; BART pads
        on reading). Each file is written to a temporary name and renamed into place.

    Returns
    -------
    Path
        The base name.
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    x = np.asarray(array)
    require(x.dtype.kind in "biufc", f"array must hold numbers, got dtype {x.dtype}")
    require(x.size > 0, f"array is empty (shape {x.shape}); BART arrays have sizes >= 1")
    shape = x.shape if x.ndim > 0 else (1,)
    b = _base(base)
    b.parent.mkdir(parents=True, exist_ok=True)
    text = f"{_DIMS_LINE}\n" + "".join(f"{d} " for d in shape) + "\n"
    payload = np.asarray(x, dtype="<c8").ravel(order="F").tobytes()
    for suffix, data in ((".cfl", payload), (".hdr", text.encode("ascii"))):
        final = b.with_name(b.name + suffix)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
    return b
