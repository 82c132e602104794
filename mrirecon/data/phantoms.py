"""Brain-like complex MR volumes built from the MNI ICBM152 2009 template (training data).

Real multi-coil brain data cannot be downloaded here, so the bundled prior is trained on
volumes synthesised from the one brain anatomy that installs from a package registry:
nilearn's wheel ships the MNI ICBM152 2009a symmetric T1 template and its grey/white-matter
probability maps (197x233x189, 1 mm, skull-stripped, a 152-subject average). Each synthetic
"subject" is that anatomy with

* a tissue-mixture contrast: ``S = w_gm·GM + w_wm·WM + w_csf·CSF`` (CSF = brain mask − GM −
  WM), T1-, T2-, PD- or FLAIR-like weights jittered by ±15 %; T1-like volumes also mix in the
  template's own T1 intensities (deep-grey detail), T2-like ones its inverse;
* a smooth multiplicative bias field (receive-coil shading);
* a random small affine (in-plane rotation ±10°, tilt ±3°, scale ±10 %, shift ±6 mm) and a
  smooth random elastic displacement (cubic B-spline-like interpolation of a coarse Gaussian
  grid, a few mm);
* a smooth random phase (a uniform global phase plus a low-order spatial field), so images are
  complex like coil-combined scans;
* axial slices (H = anterior→posterior, W = patient right→left, radiological view) at a random
  spacing of 3.5–5.5 mm, anti-aliased, each volume max-normalised so ``max |x| = 1``.

Held-out data: training volumes are cut from the MNI z-slab :data:`TRAIN_SLAB_MM`, held-out
volumes (the sample scan, held-out evaluation) from :data:`HELDOUT_SLAB_MM` with 10 mm
between them, and their random draws come from a different seed stream, so no held-out slice
was seen in training (up to the few-mm tilt/displacement at the slab edges).

The template is found in an installed ``nilearn`` (``pip install "mrirecon[train]"``) or in a
nilearn wheel file or an extracted ``nilearn/datasets/data`` folder (``pip download --no-deps
nilearn``). The MNI copyright notice travels with derived data in
``mrirecon/assets/NOTICE_MNI.txt``.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mrirecon.errors import MrireconError, require

__all__ = [
    "CONTRASTS",
    "HELDOUT_SLAB_MM",
    "MniTemplate",
    "PhantomParams",
    "TRAIN_SLAB_MM",
    "analytic_template",
    "draw_params",
    "load_mni_template",
    "make_phantom",
    "phantom_volumes",
]

_TEMPLATE_DIR = "nilearn/datasets/data"
_TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
_HOW_TO_GET = (
    'install nilearn (pip install "mrirecon[train]") or pass the nilearn wheel '
    "(pip download --no-deps nilearn) / its extracted nilearn/datasets/data folder"
)
#: Environment variable naming a nilearn wheel or template folder (used when no source is given).
TEMPLATE_ENV = "MRIRECON_MNI_TEMPLATE"

#: MNI z range (mm) the training volumes are cut from (cerebellum to the top of the ventricles).
TRAIN_SLAB_MM: tuple[float, float] = (-52.0, 30.0)
#: MNI z range (mm) reserved for held-out volumes (centrum semiovale, upper cortex).
HELDOUT_SLAB_MM: tuple[float, float] = (40.0, 66.0)

#: Relative tissue signals (GM, WM, CSF) of each contrast before jitter.
CONTRASTS: dict[str, tuple[float, float, float]] = {
    "t1": (0.60, 1.00, 0.15),
    "t2": (0.55, 0.40, 1.00),
    "pd": (0.80, 0.65, 0.90),
    "flair": (0.75, 0.55, 0.05),
}
_CONTRAST_PROBS = {"t1": 0.35, "t2": 0.25, "pd": 0.2, "flair": 0.2}

_FOV_MM = 232.0  # in-plane field of view (the template's A-P extent)
_BRAIN_CENTRE_MM = np.array([0.0, -18.0])  # MNI (x, y) of the brain's in-plane centre
_SPLIT_STREAMS = {"train": 0, "heldout": 1}
_SIGMA_Z_MM = 1.9  # slice profile: Gaussian of ~4.5 mm FWHM (a typical 2-D brain slice thickness)


@dataclass(frozen=True)
class MniTemplate:
    """The MNI ICBM152 2009a template as float32 maps in [0, 1], axes (x, y, z) = RAS, 1 mm.

    Attributes
    ----------
    t1, gm, wm, csf : ndarray (X, Y, Z) float32
        T1 intensities and tissue probabilities; ``csf = clip(mask − gm − wm, 0, 1)``.
    affine : ndarray (4, 4)
        Voxel -> MNI mm.
    source : str
        Where the template was read from.
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    affine: np.ndarray
    source: str

    def __hash__(self) -> int:  # identity hash so prefiltered copies can be cached per template
        return id(self)

    def __eq__(self, other) -> bool:
        return self is other


def _nilearn_data_dir() -> Path | None:
    """nilearn's template folder, located without importing nilearn (its import pulls sklearn)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _read_sources(source: str | os.PathLike | None) -> tuple[dict[str, bytes], str]:
    """Raw ``.nii.gz`` bytes of the three maps and a description of where they came from."""
    candidates: list[Path] = []
    if source is not None:
        candidates.append(Path(source))
    elif os.environ.get(TEMPLATE_ENV):
        candidates.append(Path(os.environ[TEMPLATE_ENV]))
    else:
        found = _nilearn_data_dir()
        if found is None:
            raise MrireconError(f"MNI ICBM152 template not found: nilearn is not installed; {_HOW_TO_GET}")
        candidates.append(found)
    path = candidates[0]
    require(path.exists(), f"MNI template source {path} does not exist; {_HOW_TO_GET}")
    if path.is_file():
        require(zipfile.is_zipfile(path), f"MNI template source {path} is not a nilearn wheel (zip); {_HOW_TO_GET}")
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [f for f in _TEMPLATE_FILES.values() if f"{_TEMPLATE_DIR}/{f}" not in names]
            require(not missing, f"{path} lacks {_TEMPLATE_DIR}/{missing[0] if missing else ''}; {_HOW_TO_GET}")
            return {k: zf.read(f"{_TEMPLATE_DIR}/{f}") for k, f in _TEMPLATE_FILES.items()}, str(path)
    folder = path / _TEMPLATE_DIR if (path / _TEMPLATE_DIR).is_dir() else path
    out = {}
    for key, name in _TEMPLATE_FILES.items():
        f = folder / name
        require(f.is_file(), f"MNI template file {f} not found; {_HOW_TO_GET}")
        out[key] = f.read_bytes()
    return out, str(folder)


def load_mni_template(source: str | os.PathLike | None = None) -> MniTemplate:
    """Read the MNI ICBM152 2009a T1/GM/WM maps (cached per source).

    Parameters
    ----------
    source : path, optional
        A nilearn wheel (``.whl``), an unpacked nilearn tree or its ``datasets/data`` folder.
        Default: ``$MRIRECON_MNI_TEMPLATE``, else the installed nilearn package.

    Returns
    -------
    MniTemplate

    Raises
    ------
    MrireconError
        The template cannot be found (the message says how to get it) or nibabel is missing.
    """
    key = None if source is None else str(Path(source).resolve())
    return _load_cached(key, os.environ.get(TEMPLATE_ENV) if source is None else None)


@lru_cache(maxsize=2)
def _load_cached(source: str | None, _env: str | None) -> MniTemplate:
    raw, where = _read_sources(source)  # first, so a wrong source is reported before a missing extra
    try:
        import nibabel as nib
    except ImportError:  # pragma: no cover - nibabel is in the train extra
        raise MrireconError('reading the MNI template needs nibabel: pip install "mrirecon[train]"') from None
    maps = {}
    affine = None
    for key, data in raw.items():
        img = nib.Nifti1Image.from_bytes(gzip.decompress(data))
        arr = np.asarray(img.dataobj, dtype=np.float32)
        maps[key] = arr / 255.0 if arr.max() > 1.5 else arr
        affine = img.affine
    mask = (maps["t1"] > 0).astype(np.float32)
    csf = np.clip(mask - maps["gm"] - maps["wm"], 0.0, 1.0)
    return MniTemplate(maps["t1"], maps["gm"], maps["wm"], csf, np.asarray(affine, np.float64), where)


def analytic_template(voxel_mm: float = 4.0) -> MniTemplate:
    """A coarse analytic stand-in for the MNI template (nested ellipsoids), for fast tests.

    Same world box and axes as the real template: a white-matter core, a grey-matter shell
    and CSF ventricles inside an ellipsoidal brain, at ``voxel_mm`` resolution. It exercises
    the whole phantom pipeline without nilearn; it is not anatomy and is never used for the
    shipped prior.
    """
    require(voxel_mm >= 1.0, f"voxel_mm must be >= 1, got {voxel_mm}")
    origin = np.array([-98.0, -134.0, -72.0])
    shape = tuple(int(round(e / voxel_mm)) for e in (197.0, 233.0, 189.0))
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    world = origin + voxel_mm * idx
    r = np.linalg.norm((world - np.array([0.0, -18.0, 0.0])) / np.array([70.0, 90.0, 75.0]), axis=-1)
    vent = np.linalg.norm((world - np.array([0.0, -10.0, 10.0])) / np.array([12.0, 30.0, 15.0]), axis=-1) < 1
    wm = ((r < 0.8) & ~vent).astype(np.float32)
    gm = ((r < 1) & (r >= 0.8)).astype(np.float32)
    csf = (vent & (r < 1)).astype(np.float32)
    t1 = (0.5 * gm + 0.9 * wm + 0.2 * csf).astype(np.float32)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = origin
    return MniTemplate(t1=t1, gm=gm, wm=wm, csf=csf, affine=affine, source=f"analytic ({voxel_mm} mm)")


@lru_cache(maxsize=4)
def _prefiltered(template: MniTemplate, sigma_xy: float, sigma_z: float) -> np.ndarray:
    """(4, X, Y, Z) stack [t1, gm, wm, csf] blurred for anti-aliasing at the output resolution."""
    from scipy.ndimage import gaussian_filter

    stack = np.stack([template.t1, template.gm, template.wm, template.csf])
    return np.stack([gaussian_filter(m, (sigma_xy, sigma_xy, sigma_z), mode="constant") for m in stack])


@dataclass(frozen=True)
class PhantomParams:
    """Every random choice behind one synthetic volume (drawn by :func:`draw_params`)."""

    contrast: str
    weights: tuple[float, float, float]  # GM, WM, CSF signal after jitter
    template_mix: float  # share of the template's own T1 (t1) or 1 - T1 (t2) intensities
    spacing_mm: float
    n_slices: int
    z_start_mm: float
    rotation_deg: tuple[float, float, float]  # about z (in-plane), x (pitch), y (roll)
    scale: tuple[float, float, float]
    shift_mm: tuple[float, float]
    elastic_mm: float
    bias: float
    phase0: float
    phase_std: float
    seed: int  # seeds the smooth random fields (elastic, bias, phase)


def draw_params(
    seed: int,
    slab_mm: tuple[float, float] = TRAIN_SLAB_MM,
    n_slices: int | None = None,
    spacing_mm: float | None = None,
    contrast: str | None = None,
) -> PhantomParams:
    """Draw the random parameters of one volume from ``seed`` (deterministic).

    The slab ``[z_start, z_start + (n_slices-1)·spacing]`` always lies inside ``slab_mm``.
    """
    rng = np.random.default_rng(seed)
    lo, hi = slab_mm
    require(hi > lo, f"slab_mm must be (low, high) with low < high, got {slab_mm}")
    if contrast is None:
        names = list(_CONTRAST_PROBS)
        contrast = names[rng.choice(len(names), p=list(_CONTRAST_PROBS.values()))]
    require(contrast in CONTRASTS, f"contrast must be one of {sorted(CONTRASTS)}, got {contrast!r}")
    spacing = float(rng.uniform(3.5, 5.5)) if spacing_mm is None else float(spacing_mm)
    require(spacing > 0, f"spacing_mm must be > 0, got {spacing}")
    max_n = int((hi - lo) // spacing) + 1
    if n_slices is None:
        n_slices = int(rng.integers(min(8, max_n), max_n + 1))
    require(
        1 <= n_slices <= max_n,
        f"n_slices must be in [1, {max_n}] for slab {slab_mm} mm at {spacing:.2f} mm spacing, got {n_slices}",
    )
    free = (hi - lo) - (n_slices - 1) * spacing
    weights = tuple(float(w * rng.uniform(0.85, 1.15)) for w in CONTRASTS[contrast])
    return PhantomParams(
        contrast=contrast,
        weights=weights,  # type: ignore[arg-type]
        template_mix=float(rng.uniform(0.3, 0.7)) if contrast in ("t1", "t2") else 0.0,
        spacing_mm=spacing,
        n_slices=n_slices,
        z_start_mm=float(lo + rng.uniform(0.0, free)),
        rotation_deg=(float(rng.uniform(-10, 10)), float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3))),
        scale=tuple(float(s) for s in rng.uniform(0.9, 1.1) * rng.uniform(0.95, 1.05, size=3)),  # type: ignore[arg-type]
        shift_mm=(float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6))),
        elastic_mm=float(rng.uniform(1.0, 4.0)),
        bias=float(rng.uniform(0.0, 0.2)),
        phase0=float(rng.uniform(0.0, 2 * np.pi)),
        phase_std=float(rng.uniform(0.2, 1.2)),
        seed=int(rng.integers(2**31)),
    )


def _rotation(deg: tuple[float, float, float]) -> np.ndarray:
    az, ax, ay = np.deg2rad(deg)
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    return rz @ rx @ ry


def _smooth_field(rng: np.random.Generator, grid: int, points01: np.ndarray, std: float) -> np.ndarray:
    """A smooth random scalar field at ``points01`` (N, 3) in [0,1]^3.

    A ``grid^3`` lattice of N(0, std²) values, cubic-spline interpolated (so the field varies
    on the scale of a lattice cell).
    """
    from scipy.ndimage import map_coordinates

    lattice = rng.normal(0.0, std, size=(grid, grid, grid))
    coords = np.clip(points01, 0.0, 1.0).T * (grid - 1)
    return map_coordinates(lattice, coords, order=3, mode="nearest")


def make_phantom(
    template: MniTemplate,
    params: PhantomParams,
    image_size: int = 64,
    magnitude: bool = False,
) -> np.ndarray:
    """Synthesise one volume of axial slices.

    Parameters
    ----------
    template : MniTemplate
    params : PhantomParams
        From :func:`draw_params`.
    image_size : int
        In-plane matrix ``H = W`` (field of view 232 mm).
    magnitude : bool
        Return the magnitude image (float32) instead of the complex one.

    Returns
    -------
    ndarray (S, H, W)
        complex64 (or float32 when ``magnitude``), ``max |x| = 1``; H = anterior→posterior,
        W = patient right→left.
    """
    from scipy.ndimage import map_coordinates

    require(image_size >= 8, f"image_size must be >= 8, got {image_size}")
    rng = np.random.default_rng(params.seed)
    s, n = params.n_slices, image_size
    pixel = _FOV_MM / n
    # Output grid in "subject" mm: columns = x (right -> left), rows = y (anterior -> posterior).
    axis = (np.arange(n) - (n - 1) / 2) * pixel
    zs = params.z_start_mm + params.spacing_mm * np.arange(s)
    zc = zs.mean()
    gy, gx = np.meshgrid(-axis, axis, indexing="ij")
    pts = np.empty((s, n, n, 3))
    pts[..., 0] = gx[None]
    pts[..., 1] = gy[None]
    pts[..., 2] = (zs - zc)[:, None, None]
    pts = pts.reshape(-1, 3)
    # Small affine about the slab centre, then a smooth elastic displacement (all in mm).
    m = _rotation(params.rotation_deg) * np.asarray(params.scale)[None, :]
    centre = np.array([_BRAIN_CENTRE_MM[0] + params.shift_mm[0], _BRAIN_CENTRE_MM[1] + params.shift_mm[1], zc])
    world = pts @ m.T + centre
    vox_of = np.linalg.inv(template.affine)
    vox = world @ vox_of[:3, :3].T + vox_of[:3, 3]
    shape = np.asarray(template.t1.shape, dtype=float)
    unit = vox / (shape - 1)
    disp = np.stack([_smooth_field(rng, 6, unit, params.elastic_mm) for _ in range(3)], axis=1)
    vox = vox + disp  # 1 mm voxels: mm == voxels
    # Anti-alias for the output pixel / slice spacing, then sample [t1, gm, wm, csf].
    maps = _prefiltered(template, round(0.42 * pixel, 1), _SIGMA_Z_MM)
    t1, gm, wm, csf = (map_coordinates(mp, vox.T, order=1, mode="constant", cval=0.0) for mp in maps)
    w_gm, w_wm, w_csf = params.weights
    signal = w_gm * gm + w_wm * wm + w_csf * csf
    brain = np.clip(gm + wm + csf, 0.0, 1.0)
    if params.contrast == "t1":
        signal = (1 - params.template_mix) * signal + params.template_mix * t1
    elif params.contrast == "t2":
        signal = (1 - params.template_mix) * signal + params.template_mix * brain * np.clip(1.0 - t1, 0.0, 1.0)
    signal = signal * np.exp(_smooth_field(rng, 3, unit, params.bias))
    signal = np.clip(signal, 0.0, None).reshape(s, n, n).astype(np.float32)
    peak = float(signal.max())
    require(peak > 0, f"phantom slab z={params.z_start_mm:.1f} mm holds no brain (empty volume)")
    signal /= peak
    if magnitude:
        return signal
    phase = params.phase0 + _smooth_field(rng, 4, unit, params.phase_std).reshape(s, n, n)
    return (signal * np.exp(1j * phase)).astype(np.complex64)


def phantom_volumes(
    template: MniTemplate,
    count: int,
    split: str = "train",
    image_size: int = 64,
    seed: int = 0,
    magnitude: bool = False,
) -> list[np.ndarray]:
    """``count`` synthetic volumes of one split.

    Parameters
    ----------
    template : MniTemplate
    count : int
    split : {"train", "heldout"}
        ``train`` cuts slabs from :data:`TRAIN_SLAB_MM`, ``heldout`` from :data:`HELDOUT_SLAB_MM`;
        the two draw their parameters from disjoint seed streams.
    image_size : int
    seed : int
        Volume ``i`` of a split uses ``SeedSequence([seed, split_id, i])``, so a list is a prefix
        of any longer list with the same seed.
    magnitude : bool

    Returns
    -------
    list of ndarray (S_i, H, W)
        complex64 (float32 when ``magnitude``), each with ``max |x| = 1``.
    """
    require(split in _SPLIT_STREAMS, f"split must be 'train' or 'heldout', got {split!r}")
    require(count >= 1, f"count must be >= 1, got {count}")
    slab = TRAIN_SLAB_MM if split == "train" else HELDOUT_SLAB_MM
    vols = []
    for i in range(count):
        ss = np.random.SeedSequence([seed, _SPLIT_STREAMS[split], i])
        params = draw_params(int(ss.generate_state(1)[0]), slab_mm=slab)
        vols.append(make_phantom(template, params, image_size=image_size, magnitude=magnitude))
    return vols
