"""Raw k-space from the formats MRI researchers hold -> a fastMRI-layout file every command reads.

:func:`read_raw` reads one of :data:`RAW_FORMATS` into a :class:`RawScan` ``(S, C, H, W)``
(H = readout *with* its oversampling, W = phase encode, k-space centre at ``(H//2, W//2)``);
:func:`convert` writes it with :func:`~mrirecon.data.fastmri.write_fastmri_scan`: dataset
``kspace``, an ``ismrmrd_header`` whose ``reconSpace`` says the readout size after removing the
oversampling (so :func:`~mrirecon.data.scan.crop_readout` applies, as for fastMRI's 640 -> 320)
and the pixel size, and ``reconstruction_rss`` when the data are fully sampled.

Formats:

``cfl``      BART ``.cfl/.hdr``; default axes BART's (dim 0 readout, 1 phase, 3 coil, 13 slice).
``npy``      NumPy array; ``axes`` required (its layout is the user's).
``mat``      MATLAB v5 (scipy) or v7.3 (HDF5, h5py); ``var`` or the only complex array; ``axes``
             required.
``ismrmrd``  ISMRMRD/MRD ``.h5`` (the ``ismrmrd`` package): Cartesian 2-D acquisitions placed by
             their ``kspace_encode_step_1``/``slice`` indices within the header's encoding limits,
             averages averaged, noise/navigator scans skipped.
``twix``     Siemens ``.dat`` VB/VD/VE (the ``twixtools`` package): the image scans, segments and
             averages averaged, lines placed about the header's centre line.

Zero-padded phase encoding (a fully sampled central block with all-zero columns on both sides,
as in reduced-resolution or reduced-FOV protocols) is trimmed symmetrically, so the k-space
centre stays at ``W//2`` and the file reads as fully sampled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrirecon.errors import MrireconError, import_optional, require

__all__ = ["AXIS_NAMES", "RAW_FORMATS", "RawScan", "convert", "detect_format", "parse_axes", "read_raw"]

RAW_FORMATS = ("cfl", "npy", "mat", "ismrmrd", "twix")
AXIS_NAMES = ("readout", "phase", "coil", "slice", "-")
_RAW_HINT = "pip install 'mrirecon[raw]' (or the package alone)"
#: BART's dimension order (``misc/mri.h``): READ, PHS1, PHS2, COIL, MAPS, TE, COEFF, COEFF2, ITER, CSHIFT,
#: TIME, TIME2, LEVEL, SLICE, AVG.
_BART_AXES = ("readout", "phase", "-", "coil", "-", "-", "-", "-", "-", "-", "-", "-", "-", "slice")


@dataclass
class RawScan:
    """Raw Cartesian k-space as read from a file.

    Attributes
    ----------
    kspace : ndarray (S, C, H, W) complex64
        H = readout including its oversampling, W = phase encode; centre at ``(H//2, W//2)``.
    recon_height : int
        Readout size after removing the oversampling (``H`` when there is none).
    pixel_size_mm : (float, float) or None
        (readout, phase-encode) pixel size of the reconstructed grid.
    slice_thickness_mm : float or None
    notes : list of str
        What the reader did (averaged, trimmed, ...), for the user.
    """

    kspace: np.ndarray
    recon_height: int
    pixel_size_mm: tuple[float, float] | None = None
    slice_thickness_mm: float | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# axes


def parse_axes(text: str | None) -> tuple[str, ...] | None:
    """``"readout,phase,coil"`` -> ``("readout", "phase", "coil")``, checked (None stays None)."""
    if text is None:
        return None
    names = tuple(a.strip() for a in str(text).split(","))
    for a in names:
        require(a in AXIS_NAMES, f"--axes: unknown axis {a!r}; use names from {', '.join(AXIS_NAMES)} (e.g. readout,phase,coil)")
    for a in ("readout", "phase", "coil", "slice"):
        require(names.count(a) <= 1, f"--axes: {a!r} is named {names.count(a)} times")
    require("readout" in names and "phase" in names, f"--axes must name 'readout' and 'phase', got {text!r}")
    return names


def arrange(array: np.ndarray, axes: tuple[str, ...], source: str) -> np.ndarray:
    """Reorder ``array`` whose dimensions are named by ``axes`` into ``(S, C, H, W)``.

    Dimensions beyond ``axes`` must be singletons (trailing singletons may be omitted); ``-``
    names a singleton to drop; a missing ``coil``/``slice`` becomes a size-1 axis.
    """
    shape = array.shape
    require(
        len(axes) >= len(shape) or all(n == 1 for n in shape[len(axes):]),
        f"{source}: array of shape {shape} has {len(shape)} dimensions but --axes names {len(axes)} "
        f"({','.join(axes)}); name every non-singleton dimension",
    )
    require(
        len(axes) <= len(shape) or all(a == "-" for a in axes[len(shape):]),
        f"{source}: --axes names {len(axes)} dimensions ({','.join(axes)}) but the array has shape {shape}",
    )
    shape = shape + (1,) * max(0, len(axes) - len(shape))
    for i, name in enumerate(axes):
        require(name != "-" or shape[i] == 1, f"{source}: dimension {i} ('-') must be a singleton, but has size {shape[i]} (shape {array.shape})")
    a = array.reshape(shape[: len(axes)])  # drops the omitted trailing singletons
    a = a.squeeze(axis=tuple(i for i, name in enumerate(axes) if name == "-"))
    names = [name for name in axes if name != "-"]
    a = np.transpose(a, [names.index(n) for n in ("slice", "coil", "readout", "phase") if n in names])
    if "coil" not in axes:
        a = a[:, None] if "slice" in axes else a[None]
    if "slice" not in axes:
        a = a[None]
    return a


# --------------------------------------------------------------------------------------------
# readers


def detect_format(path: Path) -> str:
    """The format of ``path`` from its name (and, for ``.h5``, its content)."""
    suffix = path.suffix.lower()
    if suffix in (".cfl", ".hdr"):
        return "cfl"
    if suffix == ".npy":
        return "npy"
    if suffix == ".mat":
        return "mat"
    if suffix == ".dat":
        return "twix"
    if suffix in (".h5", ".hdf5", ".mrd"):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if "kspace" in f:
                    raise MrireconError(f"{path}: already a fastMRI file (dataset 'kspace'); every command reads it as it is")
                groups = [k for k in f if isinstance(f[k], h5py.Group) and "xml" in f[k]]
        except OSError as e:
            raise MrireconError(f"{path}: not a readable HDF5 file ({e})") from None
        require(groups, f"{path}: HDF5 without an ISMRMRD group (a group holding 'xml' and 'data'); give a .mat, .npy, .cfl or .dat")
        return "ismrmrd"
    raise MrireconError(
        f"{path}: unknown raw format {suffix or '(no suffix)'!r}; mrirecon convert reads .cfl/.hdr (BART), .npy, "
        ".mat (v5, v7.3), ISMRMRD .h5 and Siemens twix .dat"
    )


def _mat_arrays(path: Path) -> dict[str, np.ndarray]:
    """The numeric variables of a MATLAB file (v5 through SciPy, v7.3 through h5py), in MATLAB's order."""
    import h5py
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
        return {k: v for k, v in data.items() if not k.startswith("__") and isinstance(v, np.ndarray) and v.dtype.kind in "iufc"}
    except NotImplementedError:  # v7.3: HDF5
        pass
    except (ValueError, TypeError, OSError) as e:
        if not h5py.is_hdf5(path):
            raise MrireconError(f"{path}: not a readable MATLAB file ({e})") from None

    out = {}
    with h5py.File(path, "r") as f:
        for name, item in f.items():
            if name.startswith("#") or not isinstance(item, h5py.Dataset):
                continue
            v = item[()]
            if v.dtype.names and {"real", "imag"} <= set(v.dtype.names):
                v = v["real"] + 1j * v["imag"]
            if isinstance(v, np.ndarray) and v.dtype.kind in "iufc":
                out[name] = np.transpose(v)  # MATLAB is column-major: h5py sees the dimensions reversed
    return out


def _pick_variable(arrays: dict[str, np.ndarray], var: str | None, source: Path) -> np.ndarray:
    if var is not None:
        require(var in arrays, f"{source}: no numeric variable {var!r}; it holds {', '.join(sorted(arrays)) or 'none'}")
        return arrays[var]
    complex_vars = sorted(k for k, v in arrays.items() if v.dtype.kind == "c")
    require(
        len(complex_vars) == 1,
        f"{source}: {'no complex variable' if not complex_vars else 'several complex variables (' + ', '.join(complex_vars) + ')'}"
        "; name one with --var",
    )
    return arrays[complex_vars[0]]


def _array_input(path: Path, fmt: str, var: str | None, axes: tuple[str, ...] | None) -> np.ndarray:
    if fmt == "cfl":
        from mrirecon.data.cfl import read_cfl

        array = read_cfl(path)
        axes = axes or _BART_AXES[: max(2, array.ndim)]
    elif fmt == "npy":
        from mrirecon.files import read_npy

        array = read_npy(path)
    else:
        array = _pick_variable(_mat_arrays(path), var, path)
    require(
        axes is not None,
        f"{path}: array of shape {array.shape}: say what each dimension is with --axes "
        "(names from readout, phase, coil, slice, -; e.g. --axes readout,phase,coil)",
    )
    require(array.dtype.kind == "c", f"{path}: expected complex k-space or coil images, got dtype {array.dtype}")
    require(np.isfinite(array).all(), f"{path}: the array holds NaN or Inf values")
    return arrange(np.asarray(array), axes, str(path))


def _read_ismrmrd(path: Path) -> RawScan:
    ismrmrd = import_optional("ismrmrd", _RAW_HINT)
    import h5py

    with h5py.File(path, "r") as f:
        group = next(k for k in f if isinstance(f[k], h5py.Group) and "xml" in f[k])
    dset = ismrmrd.Dataset(str(path), group, create_if_needed=False)
    try:
        header = ismrmrd.xsd.CreateFromDocument(dset.read_xml_header())
        enc = header.encoding[0]
        require(
            str(getattr(enc.trajectory, "value", enc.trajectory)).lower() == "cartesian",
            f"{path}: trajectory {enc.trajectory}: only Cartesian acquisitions can be converted",
        )
        ex, ey, ez = enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y, enc.encodedSpace.matrixSize.z
        require(ez <= 1, f"{path}: 3-D encoding (encodedSpace z = {ez}); only 2-D (multi-slice) Cartesian data convert")
        limits = enc.encodingLimits
        e1 = limits.kspace_encoding_step_1
        centre_line = e1.center if e1 is not None else ey // 2
        n_slices = (limits.slice.maximum + 1) if limits.slice is not None else 1
        coils = header.acquisitionSystemInformation.receiverChannels if header.acquisitionSystemInformation else None
        n = dset.number_of_acquisitions()
        require(n > 0, f"{path}: no acquisitions in group {group!r}")
        skip = (ismrmrd.ACQ_IS_NOISE_MEASUREMENT, ismrmrd.ACQ_IS_NAVIGATION_DATA, ismrmrd.ACQ_IS_PHASECORR_DATA,
                ismrmrd.ACQ_IS_DUMMYSCAN_DATA)  # fmt: skip
        grid = counts = None
        notes: list[str] = []
        dropped = 0
        for i in range(n):
            acq = dset.read_acquisition(i)
            if any(acq.is_flag_set(flag) for flag in skip):
                continue
            idx = acq.idx
            if idx.repetition or idx.contrast or idx.phase or idx.set or idx.kspace_encode_step_2:
                dropped += 1
                continue
            data = acq.data  # (coils, samples)
            if grid is None:
                C = data.shape[0] if coils is None else int(coils)
                grid = np.zeros((n_slices, C, ex, ey), np.complex128)
                counts = np.zeros((n_slices, 1, 1, ey))
            line = ey // 2 + int(idx.kspace_encode_step_1) - int(centre_line)
            require(0 <= line < ey and idx.slice < n_slices and data.shape[0] == grid.shape[1],
                    f"{path}: acquisition {i} (line {idx.kspace_encode_step_1}, slice {idx.slice}, {data.shape[0]} coils) "
                    f"lies outside the encoded matrix {ex} x {ey} x {n_slices} slices x {grid.shape[1]} coils")  # fmt: skip
            start = ex // 2 - int(acq.center_sample)
            require(0 <= start and start + data.shape[1] <= ex,
                    f"{path}: acquisition {i} has {data.shape[1]} samples centred at {acq.center_sample}, "
                    f"which do not fit the encoded readout of {ex}")  # fmt: skip
            grid[idx.slice, :, start : start + data.shape[1], line] += data
            counts[idx.slice, 0, 0, line] += 1
    finally:
        dset.close()
    require(grid is not None, f"{path}: no imaging acquisitions (all were noise, navigator or calibration scans)")
    if counts.max() > 1:
        notes.append(f"averaged up to {int(counts.max())} repeats of a line")
    if dropped:
        notes.append(f"kept repetition/contrast/phase/set 0: {dropped} acquisitions of others skipped")
    rx = enc.reconSpace.matrixSize.x
    fov, mat = enc.reconSpace.fieldOfView_mm, enc.reconSpace.matrixSize
    pixel = (fov.x / mat.x, fov.y / mat.y) if fov.x and fov.y and mat.x and mat.y else None
    kspace = (grid / np.maximum(counts, 1)).astype(np.complex64)
    return RawScan(kspace, min(int(rx), ex), pixel, float(fov.z) if fov.z else None, notes)


def _read_twix(path: Path) -> RawScan:
    twixtools = import_optional("twixtools", _RAW_HINT)
    try:
        scans = twixtools.read_twix(str(path), verbose=False)
    except Exception as e:  # twixtools raises bare Exceptions and asserts on foreign files
        raise MrireconError(f"{path}: not a readable Siemens twix file ({type(e).__name__}: {e})") from None
    meas = scans[-1]  # VD/VE multi-RAID files hold adjustment scans first
    mapped = twixtools.map_twix(meas)
    require("image" in mapped, f"{path}: the twix file holds no image scans")
    image = mapped["image"]
    image.flags["remove_os"] = False
    data = np.asarray(image[:])  # (... Par, Sli, Ave, Lin, Cha, Col) with Seg and Ave averaged
    dims = list(image.dims)
    par = data.shape[dims.index("Par")]
    require(par == 1, f"{path}: {par} partitions (3-D encoding); only 2-D (multi-slice) Cartesian twix data convert")
    notes = []
    keep = []
    for d in ("Ide", "Idd", "Idc", "Idb", "Ida", "Seg", "Set", "Rep", "Phs", "Eco", "Ave"):
        n = data.shape[dims.index(d)]
        if n > 1:
            notes.append(f"kept {d} 0 of {n}")
    for d in dims:
        keep.append(slice(None) if d in ("Sli", "Lin", "Cha", "Col") else 0)
    data = data[tuple(keep)]  # (Sli, Lin, Cha, Col)
    hdr = meas["hdr"]
    kspace_hdr = hdr["MeasYaps"].get("sKSpace", {})
    lines = int(kspace_hdr.get("lPhaseEncodingLines", data.shape[1]))
    centre = int(next(m for m in meas["mdb"] if m.is_image_scan()).mdh.CenterLin)
    W = max(lines, data.shape[1])
    grid = np.zeros((data.shape[0], data.shape[2], data.shape[3], W), np.complex64)
    shift = W // 2 - centre
    require(0 <= shift and data.shape[1] + shift <= W, f"{path}: centre line {centre} of {data.shape[1]} lines does not fit {W} phase-encode lines")
    grid[..., shift : shift + data.shape[1]] = np.transpose(data, (0, 2, 3, 1))
    os_factor = float(hdr.get("Meas", {}).get("flReadoutOSFactor", 1.0) or 1.0)
    recon_height = int(round(grid.shape[2] / os_factor))
    pixel = thickness = None
    try:
        geo = hdr["MeasYaps"]["sSliceArray"]["asSlice"][0]
        pixel = (float(geo["dReadoutFOV"]) / recon_height, float(geo["dPhaseFOV"]) / W)
        thickness = float(geo["dThickness"])
    except (KeyError, IndexError, TypeError, ZeroDivisionError):
        notes.append("no field of view in the header: give --pixel-size")
    return RawScan(grid, recon_height, pixel, thickness, notes)


def _trim_padding(k: np.ndarray) -> tuple[np.ndarray, int]:
    """Trim all-zero phase-encode columns symmetrically (centre stays at W//2) -> (k, columns trimmed per side)."""
    sampled = np.abs(k).reshape(-1, k.shape[-1]).max(0) > 0
    if not sampled.any():
        return k, 0
    idx = np.nonzero(sampled)[0]
    n = min(int(idx[0]), k.shape[-1] - 1 - int(idx[-1]))
    return (np.ascontiguousarray(k[..., n : k.shape[-1] - n]), n) if n > 0 else (k, 0)


def read_raw(
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    var: str | None = None,
    axes: str | tuple[str, ...] | None = None,
    image_domain: bool = False,
    readout_oversampling: float | None = None,
    trim: bool = True,
) -> RawScan:
    """Read raw Cartesian k-space (or coil images) into a :class:`RawScan` (module docstring).

    Parameters
    ----------
    path : str or PathLike
    fmt : one of :data:`RAW_FORMATS`, optional
        Default: from the file name (and content, for ``.h5``).
    var : str, optional
        MATLAB variable (default: the only complex one).
    axes : str or tuple, optional
        Names of the array's dimensions in order (:data:`AXIS_NAMES`); arrays only.
    image_domain : bool
        The array holds coil images (k-space = centred orthonormal FFT of each).
    readout_oversampling : float, optional
        Arrays: the factor by which the readout is oversampled (default 1; twix and ISMRMRD
        take it from their headers).
    trim : bool
        Trim zero-padded phase-encode columns (module docstring).
    """
    p = Path(path)
    if p.suffix.lower() != ".hdr" and p.suffix.lower() != ".cfl":
        require(p.is_file(), f"{p}: no such file")
    fmt = detect_format(p) if fmt is None else fmt
    require(fmt in RAW_FORMATS, f"format must be one of {', '.join(RAW_FORMATS)}, got {fmt!r}")
    names = parse_axes(axes) if isinstance(axes, str) else axes
    if fmt in ("ismrmrd", "twix"):
        require(names is None and not image_domain, f"{p}: --axes and --image-domain apply to arrays (.cfl, .npy, .mat), not {fmt}")
        raw = _read_ismrmrd(p) if fmt == "ismrmrd" else _read_twix(p)
    else:
        k = _array_input(p, fmt, var, names)
        if image_domain:
            from mrirecon.physics.fft import fft2c

            k = fft2c(k.astype(np.complex64))
        osf = 1.0 if readout_oversampling is None else float(readout_oversampling)
        require(osf >= 1, f"readout_oversampling must be >= 1, got {readout_oversampling!r}")
        raw = RawScan(np.ascontiguousarray(k, np.complex64), int(round(k.shape[-2] / osf)))
    require(np.isfinite(raw.kspace).all(), f"{p}: the k-space holds NaN or Inf values")
    require(bool(np.abs(raw.kspace).max() > 0), f"{p}: the k-space is all zero")
    if trim:
        k, n = _trim_padding(raw.kspace)
        if n:
            raw.notes.append(f"trimmed {n} zero-padded phase-encode columns on each side ({raw.kspace.shape[-1]} -> {k.shape[-1]})")
            if raw.pixel_size_mm is not None:  # same FOV per pixel spacing in k-space: the pixel grows
                raw.pixel_size_mm = (raw.pixel_size_mm[0], raw.pixel_size_mm[1] * raw.kspace.shape[-1] / k.shape[-1])
            raw.kspace = k
    return raw


# --------------------------------------------------------------------------------------------
# writing


def _parse_pixel(pixel_size) -> tuple[float, float] | None:
    if pixel_size is None:
        return None
    values = [float(v) for v in str(pixel_size).split(",")] if isinstance(pixel_size, str) else (
        [float(pixel_size)] * 2 if np.isscalar(pixel_size) else [float(v) for v in pixel_size])  # fmt: skip
    values = values * 2 if len(values) == 1 else values
    require(len(values) == 2 and all(np.isfinite(v) and v > 0 for v in values),
            f"--pixel-size must be MM or READOUT,PHASE in mm (> 0), got {pixel_size!r}")  # fmt: skip
    return values[0], values[1]


def convert(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    pixel_size=None,
    slice_thickness_mm: float | None = None,
    **read_options,
) -> tuple[Path, RawScan, bool]:
    """Convert raw data to a fastMRI-layout ``.h5`` (written atomically; the input is only read).

    Parameters
    ----------
    path, out : str or PathLike
    pixel_size : float, "MM", "READOUT,PHASE" or (float, float), optional
        Overrides the header's pixel size (mm) of the reconstructed grid.
    slice_thickness_mm : float, optional
    **read_options
        ``fmt``, ``var``, ``axes``, ``image_domain``, ``readout_oversampling``, ``trim``
        (:func:`read_raw`).

    Returns
    -------
    (Path, RawScan, bool)
        The file written, what was read, and whether it is fully sampled (then it holds
        ``reconstruction_rss``: the RSS of the coil images, readout oversampling removed).
    """
    from mrirecon.data.fastmri import make_ismrmrd_header, write_fastmri_scan
    from mrirecon.data.simulate import rss_reference

    raw = read_raw(path, **read_options)
    given = _parse_pixel(pixel_size)
    pixel = given or raw.pixel_size_mm
    S, C, H, W = raw.kspace.shape
    sampled = np.abs(raw.kspace).reshape(-1, W).max(0) > 0
    full = bool(sampled.all())
    ref = rss_reference(raw.kspace, (raw.recon_height, W)) if full else None
    thickness = slice_thickness_mm or raw.slice_thickness_mm or 5.0
    fov = (pixel[0] * raw.recon_height, pixel[1] * W, thickness) if pixel else (float(raw.recon_height), float(W), thickness)
    header = make_ismrmrd_header((H, W), (raw.recon_height, W), coils=C, slices=S, fov_mm=fov)
    attrs = {"acquisition": "converted", "patient_id": Path(path).stem, "source": str(Path(path).name),
             "pixel_size_known": pixel is not None}  # fmt: skip
    written = write_fastmri_scan(out, raw.kspace, ref, header_xml=header, attrs=attrs)
    if pixel is None:
        raw.notes.append("pixel size unknown: recorded as 1 mm (give --pixel-size)")
    raw.pixel_size_mm = pixel
    return written, raw, full
