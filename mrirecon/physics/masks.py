"""Cartesian k-space sampling masks ``(H, W)`` float32 of 0/1, with their achieved acceleration.

Axes: H = readout (kx, always fully sampled by the 1-D kinds), W = phase-encode (ky, the
undersampled axis). 1-D kinds have identical rows. The **achieved acceleration** is
``H·W / (number of sampled points)``, calibration (ACS) lines included, so it is usually
below the nominal ``acceleration``.

Kinds (:data:`KINDS`) and conventions:

``random``, ``equispaced`` with ``convention="fastmri"`` (default)
    Exactly fastMRI's ``RandomMaskFunc`` and ``EquispacedMaskFractionFunc``
    (``fastmri.data.subsample``; the same seed gives the same mask bit for bit). fastMRI
    masks the axis ``shape[-2]`` of its real-valued ``(coils, H, W, 2)`` tensors, i.e. W; we
    call the mask functions with ``(1, H, W, 2)`` and ``seed=seed``, as fastMRI's data
    transforms do (their ``seed`` reseeds the function's ``RandomState`` temporarily, so it
    equals constructing the function with that seed). A centre block of
    ``round(W·center_fraction)`` columns starts at ``(W - n + 1)//2``. ``random`` keeps every
    other column with probability ``(W/R - n)/(W - n)`` (the *expected* acceleration is R);
    ``equispaced`` (fastMRI's "equispaced_fraction", the masks of the public multi-coil
    data) spaces the other columns so that the total is ``≈ W/R``. fastMRI's newer
    ``EquiSpacedMaskFunc`` (every R-th column *plus* the centre, effective R 3.2 at R=4) is
    not offered.
    Default ``center_fraction`` (:func:`default_center_fraction`): fastMRI's pairs, 0.08 for
    R ≤ 4 and ``0.32/R`` above (0.04 at R=8, 0.027 at R=12), i.e. the calibration block
    stays about a third of the samples.
``random``, ``equispaced`` with ``convention="aid"``
    The AID reference (``mri_utils.equal_mask`` / ``random_mask``): equispaced columns
    ``0, R, 2R, …`` starting at column 0 (not centred), or ``W//R`` uniformly random distinct
    columns (``RandomState(seed).choice``, the reference's draw; its experiments use seed
    1234). ``acs_lines`` (default 0) fully samples columns ``W//2 - n//2 … W//2 - n//2 + n - 1``
    on top. At W=320 with 8 ACS lines, R = 4/8/12 give 3.72/6.81/9.41 (equispaced).
``gaussian``
    1-D variable density: a centred block of ACS columns plus ``round(W/R) - n`` distinct
    columns drawn without replacement with probability ∝ ``exp(-(k - W//2)² / (2 (std·W)²))``
    (``numpy.random.default_rng(seed)``), so the achieved acceleration is exactly
    ``W / round(W/R)``.
``poisson``
    2-D variable-density Poisson disc (SigPy's ``sigpy.mri.poisson`` kernel, density
    ∝ 1/(1 + s·r)) over the whole ``(H, W)`` plane with a fully sampled ``c × c`` calibration
    box, ``c = acs_lines`` or ``round(W·center_fraction)``. It undersamples the readout as
    well, so for the 2-D slices of fastMRI it is a *retrospective* simulation only (a 3-D
    acquisition's phase-encode plane could be sampled this way, a 2-D slice cannot).
"""

from __future__ import annotations

import inspect
import math
from typing import NamedTuple

import numpy as np

from mrirecon.errors import MrireconError, require

__all__ = [
    "CONVENTIONS",
    "KINDS",
    "Mask",
    "acs_width",
    "calib_region",
    "default_center_fraction",
    "equispaced_mask",
    "gaussian_mask",
    "holdout_folds",
    "make_mask",
    "poisson_mask",
    "random_mask",
]

KINDS = ("random", "equispaced", "poisson", "gaussian")
CONVENTIONS = ("fastmri", "aid")


class Mask(NamedTuple):
    """A sampling mask and its achieved acceleration.

    Attributes
    ----------
    mask : ndarray (H, W) float32
        1 where k-space is sampled, 0 elsewhere.
    acceleration : float
        ``H·W / mask.sum()`` (calibration lines included).
    """

    mask: np.ndarray
    acceleration: float


# ------------------------------------------------------------------------------------------
# argument checks


def _shape(shape) -> tuple[int, int]:
    ok = isinstance(shape, (tuple, list)) and len(shape) == 2
    ok = ok and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in shape)
    require(ok, f"shape must be (H, W) with two positive integers, got {shape!r}")
    return int(shape[0]), int(shape[1])


def _acceleration(acceleration, width: int) -> float:
    require(
        isinstance(acceleration, (int, float, np.integer, np.floating)) and not isinstance(acceleration, bool),
        f"acceleration must be a number, got {acceleration!r}",
    )
    r = float(acceleration)
    require(
        math.isfinite(r) and 1.0 < r <= width,
        f"acceleration must be > 1 and <= the number of phase-encode lines W={width}, got {acceleration!r}",
    )
    return r


def _seed(seed) -> int:
    if seed is None:
        return 0
    require(
        isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and 0 <= seed < 2**32,
        f"seed must be None or an integer in [0, 2**32), got {seed!r}",
    )
    return int(seed)


def default_center_fraction(acceleration: float) -> float:
    """fastMRI's calibration fraction for an acceleration: 0.08 for R ≤ 4, else 0.32/R (0.04 at R=8)."""
    return 0.08 if acceleration <= 4 else 0.32 / acceleration


def _center_lines(width: int, acceleration: float, center_fraction, acs_lines, default_fraction: bool) -> int:
    """Number of fully sampled centre lines from ``center_fraction`` or ``acs_lines`` (at most one given)."""
    require(
        center_fraction is None or acs_lines is None,
        "give either center_fraction or acs_lines, not both",
    )
    if acs_lines is not None:
        require(
            isinstance(acs_lines, (int, np.integer)) and not isinstance(acs_lines, bool) and 0 <= acs_lines <= width,
            f"acs_lines must be an integer in [0, W={width}], got {acs_lines!r}",
        )
        n = int(acs_lines)
    elif center_fraction is not None:
        require(
            isinstance(center_fraction, (int, float, np.integer, np.floating))
            and not isinstance(center_fraction, bool)
            and math.isfinite(float(center_fraction))
            and 0.0 <= float(center_fraction) < 1.0,
            f"center_fraction must be a number in [0, 1), got {center_fraction!r}",
        )
        n = round(width * float(center_fraction))
    else:
        n = round(width * default_center_fraction(acceleration)) if default_fraction else 0
    return n


def _check_budget(n_calib: int, n_total: float, what: str, unit: str = "lines") -> None:
    """The calibration region must leave part of the sampling budget to the other samples."""
    require(
        n_calib < n_total,
        f"{what} of {n_calib} {unit} uses up the sampling budget of {n_total:.1f} {unit} at this "
        "acceleration; lower center_fraction/acs_lines or the acceleration",
    )


def _finish(columns: np.ndarray, height: int) -> Mask:
    """(W,) 0/1 columns -> identical rows (H, W) float32 and the achieved acceleration."""
    cols = np.asarray(columns, dtype=np.float32)
    require(cols.sum() > 0, "the mask samples nothing")  # defensive: every kind samples >= 1 line
    mask = np.ascontiguousarray(np.broadcast_to(cols, (height, cols.size)), dtype=np.float32)
    return Mask(mask, float(cols.size / cols.sum()))


def _centre_block(width: int, n: int) -> np.ndarray:
    """fastMRI/AID centre block: n columns starting at (W - n + 1)//2 (= W//2 - n//2 for even W)."""
    cols = np.zeros(width, dtype=np.float32)
    start = (width - n + 1) // 2
    cols[start : start + n] = 1
    return cols


def _fastmri(func_name: str, shape: tuple[int, int], r: float, n_low: int, seed: int) -> Mask:
    from fastmri.data import subsample

    h, w = shape
    # n_low / w reproduces exactly n_low columns through fastMRI's round(w * cf)
    cf = n_low / w
    func = getattr(subsample, func_name)([cf], [r])
    mask, num_low = func((1, h, w, 2), seed=seed)
    require(int(num_low) == n_low, f"internal: fastMRI chose {num_low} centre lines, expected {n_low}")
    return _finish(mask.numpy().reshape(w), h)


# ------------------------------------------------------------------------------------------
# kinds


def random_mask(
    shape,
    acceleration: float,
    *,
    seed: int | None = None,
    center_fraction: float | None = None,
    acs_lines: int | None = None,
    convention: str = "fastmri",
) -> Mask:
    """Random phase-encode lines (fastMRI ``RandomMaskFunc`` or the AID reference's).

    Parameters
    ----------
    shape : (H, W)
    acceleration : float
        Nominal R (> 1, ≤ W).
    seed : int, optional
        None means 0: masks are always reproducible.
    center_fraction, acs_lines : optional
        Fully sampled centre, as a fraction of W or a number of lines (not both). Defaults:
        :func:`default_center_fraction` (fastmri), 0 lines (aid).
    convention : {"fastmri", "aid"}
        See the module docstring.

    Returns
    -------
    Mask
        ``mask`` (H, W) float32, ``acceleration`` achieved.
    """
    h, w = _shape(shape)
    r = _acceleration(acceleration, w)
    s = _seed(seed)
    _check_convention(convention)
    n = _center_lines(w, r, center_fraction, acs_lines, default_fraction=convention == "fastmri")
    _check_budget(n, w / r, "the calibration block")
    if convention == "fastmri":
        return _fastmri("RandomMaskFunc", (h, w), r, n, s)
    cols = np.zeros(w, dtype=np.float32)
    cols[np.random.RandomState(s).choice(w, int(w // r), replace=False)] = 1
    return _finish(np.maximum(cols, _centre_block(w, n)), h)


def equispaced_mask(
    shape,
    acceleration: float,
    *,
    seed: int | None = None,
    center_fraction: float | None = None,
    acs_lines: int | None = None,
    convention: str = "fastmri",
    offset: int | None = None,
) -> Mask:
    """Equispaced phase-encode lines (fastMRI ``EquispacedMaskFractionFunc`` or the AID reference's).

    Parameters
    ----------
    shape, acceleration, seed, center_fraction, acs_lines, convention
        As :func:`random_mask`. With ``convention="aid"`` the seed is unused (the pattern is
        deterministic) and the lines are ``floor(arange(offset, W, R))``.
    offset : int, optional
        First sampled column. fastmri: None draws it from the seed (fastMRI's behaviour);
        aid: None means 0 (the reference).

    Returns
    -------
    Mask
    """
    h, w = _shape(shape)
    r = _acceleration(acceleration, w)
    s = _seed(seed)
    _check_convention(convention)
    n = _center_lines(w, r, center_fraction, acs_lines, default_fraction=convention == "fastmri")
    _check_budget(n, w / r, "the calibration block")
    if offset is not None:
        require(
            isinstance(offset, (int, np.integer)) and not isinstance(offset, bool) and 0 <= offset < w,
            f"offset must be an integer in [0, W={w}), got {offset!r}",
        )
    if convention == "fastmri":
        if offset is None:
            return _fastmri("EquispacedMaskFractionFunc", (h, w), r, n, s)
        from fastmri.data.subsample import EquispacedMaskFractionFunc

        mask, _ = EquispacedMaskFractionFunc([n / w], [r])((1, h, w, 2), offset=int(offset), seed=s)
        return _finish(mask.numpy().reshape(w), h)
    cols = np.zeros(w, dtype=np.float32)
    cols[np.floor(np.arange(0 if offset is None else int(offset), w, r)).astype(np.int64)] = 1
    return _finish(np.maximum(cols, _centre_block(w, n)), h)


def gaussian_mask(
    shape,
    acceleration: float,
    *,
    seed: int | None = None,
    center_fraction: float | None = None,
    acs_lines: int | None = None,
    std: float = 0.25,
) -> Mask:
    """1-D variable-density random lines: a centre block plus Gaussian-weighted columns.

    Parameters
    ----------
    shape, acceleration, seed, center_fraction, acs_lines
        As :func:`random_mask` (fastMRI's default centre fraction).
    std : float
        Standard deviation of the sampling density as a fraction of W (> 0).

    Returns
    -------
    Mask
        Exactly ``round(W/R)`` sampled columns.
    """
    h, w = _shape(shape)
    r = _acceleration(acceleration, w)
    s = _seed(seed)
    require(
        isinstance(std, (int, float, np.integer, np.floating)) and math.isfinite(float(std)) and std > 0,
        f"std must be a positive number (fraction of W), got {std!r}",
    )
    n = _center_lines(w, r, center_fraction, acs_lines, default_fraction=True)
    _check_budget(n, w / r, "the calibration block")
    cols = _centre_block(w, n)
    total = max(round(w / r), 1)
    free = np.flatnonzero(cols == 0)
    k = min(total - n, free.size)
    if k > 0:
        p = np.exp(-0.5 * ((free - w // 2) / (float(std) * w)) ** 2)
        chosen = np.random.default_rng(s).choice(free, size=k, replace=False, p=p / p.sum())
        cols[chosen] = 1
    return _finish(cols, h)


def _outside_distance(shape: tuple[int, int], calib: tuple[int, int]) -> np.ndarray:
    """Normalised distance outside the centred calibration box (SigPy's density variable), (H, W)."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    dx = np.maximum(np.abs(xx - w / 2) - calib[1] / 2, 0)
    dy = np.maximum(np.abs(yy - h / 2) - calib[0] / 2, 0)
    return np.sqrt((dx / max(dx.max(), 1e-12)) ** 2 + (dy / max(dy.max(), 1e-12)) ** 2)


def poisson_mask(
    shape,
    acceleration: float,
    *,
    seed: int | None = None,
    center_fraction: float | None = None,
    acs_lines: int | None = None,
    crop_corner: bool = True,
    tol: float = 0.1,
    max_attempts: int = 30,
    max_iter: int = 40,
) -> Mask:
    """2-D variable-density Poisson-disc mask over (H, W) with a fully sampled calibration box.

    SigPy's Poisson-disc kernel (``sigpy.mri.samp._poisson``, Bridson's algorithm with radii
    ∝ 1 + s·r) does the sampling; the bisection on the slope ``s`` is ours and stops after
    ``max_iter`` steps. SigPy's own loop bisects until the acceptance window is hit and can
    spin forever when the (seeded, hence discontinuous) acceleration jumps over it (sigpy
    issue #102, "hangs with seed and calib"); here that case raises a clear error instead.

    Parameters
    ----------
    shape, acceleration, seed
        As :func:`random_mask`. The achieved acceleration is within ``tol`` of the target.
    center_fraction, acs_lines
        Side ``c`` of the square calibration box (``round(W·center_fraction)`` or
        ``acs_lines``; default :func:`default_center_fraction`). An odd ``c`` on an even
        axis is raised to ``c + 1`` so the box stays centred on ``n//2``.
    crop_corner : bool
        Sample inside the ellipse ``r < 1`` only (SigPy's default).
    tol : float
        Allowed ``|achieved R - acceleration|``.
    max_attempts : int
        Candidate points per active point (Bridson's k).
    max_iter : int
        Bisection steps on the density slope.

    Returns
    -------
    Mask
    """
    from sigpy.mri.samp import _poisson

    h, w = _shape(shape)
    r_target = _acceleration(acceleration, w)
    s = _seed(seed)
    c = _center_lines(w, r_target, center_fraction, acs_lines, default_fraction=True)
    require(c <= min(h, w), f"the calibration box side {c} exceeds the mask shape {(h, w)}")
    require(isinstance(tol, (int, float)) and tol > 0, f"tol must be a positive number, got {tol!r}")
    calib = tuple(c + 1 if (n % 2 == 0 and c % 2 == 1) else c for n in (h, w))
    _check_budget(calib[0] * calib[1], h * w / r_target, "the calibration box", "samples")
    dist = _outside_distance((h, w), calib)
    lo, hi = 0.0, float(max(h, w))
    best = None
    for _ in range(int(max_iter)):
        slope = 0.5 * (lo + hi)
        rx = np.clip((1 + dist * slope) * w / max(h, w), 1, None)
        ry = np.clip((1 + dist * slope) * h / max(h, w), 1, None)
        mask = _poisson(w, h, int(max_attempts), rx, ry, calib, s)
        if crop_corner:
            mask = mask * (dist < 1)
        achieved = h * w / max(mask.sum(), 1)
        if best is None or abs(achieved - r_target) < abs(best[1] - r_target):
            best = (mask, achieved)
        if abs(achieved - r_target) < tol:
            break
        if achieved < r_target:
            lo = slope
        else:
            hi = slope
    mask, achieved = best
    if abs(achieved - r_target) >= tol:
        raise MrireconError(
            f"poisson: cannot reach acceleration {r_target:g} within tol={tol:g} on {h}x{w} with a {c}x{c} "
            f"calibration box (closest {achieved:.3f}); change the acceleration, tol or calibration size"
        )
    mask = mask.astype(np.float32)
    return Mask(mask, float(h * w / mask.sum()))


# ------------------------------------------------------------------------------------------
# entry point


def _check_convention(convention) -> None:
    require(
        convention in CONVENTIONS,
        f"convention must be one of {', '.join(map(repr, CONVENTIONS))}, got {convention!r}",
    )


_KIND_FUNCS = {
    "random": random_mask,
    "equispaced": equispaced_mask,
    "poisson": poisson_mask,
    "gaussian": gaussian_mask,
}


def make_mask(
    kind: str,
    shape,
    acceleration: float,
    *,
    seed: int | None = None,
    center_fraction: float | None = None,
    acs_lines: int | None = None,
    convention: str = "fastmri",
    **kw,
) -> Mask:
    """Make a sampling mask of one of :data:`KINDS` (see the module docstring for each).

    Parameters
    ----------
    kind : {"random", "equispaced", "poisson", "gaussian"}
    shape : (H, W)
        H = readout, W = phase-encode.
    acceleration : float
        Nominal acceleration R (> 1, ≤ W).
    seed : int, optional
        Equal seeds give equal masks (None means 0).
    center_fraction, acs_lines : optional
        Fully sampled centre as a fraction of W or a number of lines (not both).
    convention : {"fastmri", "aid"}
        For ``random``/``equispaced`` only.
    **kw
        Kind-specific options (``offset``; ``std``; ``crop_corner``, ``tol``, ...).

    Returns
    -------
    Mask
        ``(mask (H, W) float32, achieved acceleration)``.
    """
    require(
        isinstance(kind, str) and kind in _KIND_FUNCS,
        f"unknown mask kind {kind!r}; valid kinds: {', '.join(KINDS)}",
    )
    _check_convention(convention)
    if kind in ("random", "equispaced"):
        kw["convention"] = convention
    else:
        require(
            convention == "fastmri",
            f"convention={convention!r} applies to random and equispaced masks only, not {kind!r}",
        )
    func = _KIND_FUNCS[kind]
    options = [p.name for p in inspect.signature(func).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(kw) - set(options))
    require(not unknown, f"{kind} mask does not take {', '.join(unknown)}; its options: {', '.join(options)}")
    return func(shape, acceleration, seed=seed, center_fraction=center_fraction, acs_lines=acs_lines, **kw)


# ------------------------------------------------------------------------------------------
# calibration region (the fully sampled centre a coil calibration uses)


def _mask_2d(mask, shape: tuple[int, int] | None = None) -> np.ndarray:
    """(W,) or (H, W) (leading singleton axes allowed) -> (H', W) boolean."""
    tensor = type(mask).__module__.startswith("torch") and hasattr(mask, "detach")
    require(
        isinstance(mask, np.ndarray) or tensor,
        f"mask must be a numpy array or torch tensor, got {type(mask).__name__}",
    )
    m = mask.detach().cpu().numpy() if tensor else np.asarray(mask)
    require(m.dtype.kind in "biuf", f"mask must be real (0/1 values), got dtype {m.dtype}")
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    require(m.ndim in (1, 2), f"mask must be (W,) or (H, W), got shape {tuple(np.shape(mask))}")
    m2 = m[None, :] if m.ndim == 1 else m
    if shape is not None:
        require(
            m2.shape[1] == shape[1] and m2.shape[0] in (1, shape[0]),
            f"mask of shape {tuple(np.shape(mask))} does not match k-space (H, W) = {tuple(shape)}",
        )
    return m2 != 0


def _centre_run(line: np.ndarray) -> int:
    """Length of the run of True around index n//2 (0 if the centre is False)."""
    n = line.size
    c = n // 2
    if not line[c]:
        return 0
    lo = c
    while lo > 0 and line[lo - 1]:
        lo -= 1
    hi = c
    while hi < n - 1 and line[hi + 1]:
        hi += 1
    # a centred region of width w covers c - w//2 … c - w//2 + w - 1: it must fit in [lo, hi]
    w = hi - lo + 1
    while w > 0 and (c - w // 2 < lo or c - w // 2 + w - 1 > hi):
        w -= 1
    return w


def acs_width(mask) -> int:
    """Width of the fully sampled, contiguous block of phase-encode columns centred on ``W//2``.

    Parameters
    ----------
    mask : ndarray or Tensor (W,) or (H, W)
        A column is fully sampled when every row samples it.

    Returns
    -------
    int
        The largest ``w`` such that columns ``W//2 - w//2 … W//2 - w//2 + w - 1`` are all
        fully sampled (0 when the centre column is not).
    """
    m = _mask_2d(mask)
    return _centre_run(m.all(axis=0))


def calib_region(mask) -> tuple[int, int]:
    """The largest centred fully sampled box ``(h, w)`` of a mask (1-D masks: ``(H, acs_width)``).

    The box covers rows ``H//2 - h//2 …`` and columns ``W//2 - w//2 …``; a 2-D mask (Poisson)
    gives its calibration square.

    Parameters
    ----------
    mask : ndarray or Tensor (W,) or (H, W)

    Returns
    -------
    (int, int)
    """
    m = _mask_2d(mask)
    H, W = m.shape
    if m.shape[0] == 1 or np.all(m == m[:1]):
        return (H, acs_width(m))
    h, w = _centre_run(m[:, W // 2]), _centre_run(m[H // 2])
    while h > 0 and w > 0:
        box = m[H // 2 - h // 2 : H // 2 - h // 2 + h, W // 2 - w // 2 : W // 2 - w // 2 + w]
        if box.all():
            return (h, w)
        if h >= w:
            h -= 1
        else:
            w -= 1
    return (0, 0)


#: Folds of the k-space cross-validation: each holds out a fifth of the lines outside the calibration region.
HOLDOUT_FOLDS = 5
#: Fewer sampled lines (or points, for 2-D masks) outside the calibration region: no hold-out.
MIN_HOLDOUT = 5


def lattice_spacing(mask) -> float | None:
    """Mean gap between the sampled lines outside the calibration region when they form a lattice.

    Equispaced masks (gaps differing by at most one line, as fastMRI's rounded spacings do)
    get their mean gap, the acceleration SENSE must unfold there; random, Poisson or 2-D masks
    and masks with fewer than two gaps between outer lines get None.
    """
    m = _mask_2d(mask)
    H, W = m.shape
    if not (H == 1 or bool(np.all(m == m[:1]))):
        return None
    w = calib_region(m)[1]
    lines, start = np.nonzero(m[0])[0], W // 2 - w // 2
    sides = (lines[lines < start], lines[lines >= start + w])  # gaps on each side of the calibration region
    gaps = np.concatenate([np.diff(side) for side in sides])
    if gaps.size < 2:
        return None
    return float(gaps.mean()) if gaps.max() - gaps.min() <= 1 else None


def holdout_folds(mask, folds: int = HOLDOUT_FOLDS, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Split a mask into training and validation parts for k-space cross-validation.

    The sampled phase-encode lines outside the calibration region (:func:`calib_region`; for
    2-D masks the sampled points outside the calibration box) are shuffled (seeded) and dealt
    into ``folds`` validation sets; the calibration region always stays in training, so coil
    maps can be estimated from every training part. A reconstruction from a training part
    predicts its held-out samples; the relative error there (k-space cross-validation, as in
    SSDU-style self-validation) ranks coil maps and regularisation weights without a reference.

    Parameters
    ----------
    mask : ndarray or Tensor (W,) or (H, W), 0/1
    folds : int >= 2
    seed : int

    Returns
    -------
    list of (train, val) : (H', W) float32 masks (H' = 1 for a (W,) mask), each pair summing to the
        mask, or None when fewer than ``max(folds, MIN_HOLDOUT)`` lines (points) lie outside the
        calibration region.
    """
    require(int(folds) == folds and folds >= 2, f"folds must be an integer >= 2, got {folds!r}")
    m = _mask_2d(mask)
    H, W = m.shape
    h, w = calib_region(m)
    one_d = H == 1 or bool(np.all(m == m[:1]))
    box = np.zeros(m.shape, bool)
    if one_d:
        box[:, W // 2 - w // 2 : W // 2 - w // 2 + w] = True
        outside = np.nonzero(m[0] & ~box[0])[0]
    else:
        box[H // 2 - h // 2 : H // 2 - h // 2 + h, W // 2 - w // 2 : W // 2 - w // 2 + w] = True
        outside = np.flatnonzero(m & ~box)
    if outside.size < max(int(folds), MIN_HOLDOUT):
        return None
    order = np.random.default_rng(seed).permutation(outside)
    out = []
    for part in np.array_split(order, int(folds)):
        val = np.zeros(m.shape, bool)
        if one_d:
            val[:, part] = True
        else:
            val.flat[part] = True
        out.append(((m & ~val).astype(np.float32), val.astype(np.float32)))
    return out
