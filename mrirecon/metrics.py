"""Image-quality metrics with the fastMRI conventions, and explicit intensity normalisation.

Conventions (those of ``fastmri/evaluate.py``, the de facto reference since the fastMRI
leaderboards went offline):

* Metrics are computed on **magnitude volumes** ``(slices, H, W)``. Complex inputs are
  reduced with ``abs``; real inputs are used as given (as fastMRI does, so a signed real
  image is not silently rectified); everything is computed in float64.
* ``data_range`` (the "max" of PSNR and SSIM) is the maximum of the **reference volume**, not
  of each slice: per-slice maxima inflate or deflate PSNR by several dB on volumes whose
  intensity varies between slices (fastMRI issue #129).
* PSNR is computed on the whole volume at once (one MSE), SSIM is the mean over slices of
  scikit-image's ``structural_similarity`` (7x7 uniform window, K1 = 0.01, K2 = 0.03, sample
  covariance), NMSE = ``||ref - recon||^2 / ||ref||^2`` over the volume, NRMSE = sqrt(NMSE).
* The ``*_per_slice`` functions give one value per slice with the *same* volume data range;
  the mean of per-slice PSNRs is not the volume PSNR (the volume value is a log of a mean).

Normalisation. A reconstruction only determines the image up to a global complex factor
(the k-space scaling of the scanner, the intensity scaling of a diffusion prior, the phase
of the coil maps). Comparing raw numbers against a reference is therefore meaningless unless
the factor is fixed explicitly. :func:`evaluate` does this and records what it did:

* ``"lstsq"`` (default): multiply the reconstruction's magnitude by the real positive scale
  ``a* = argmin_a || |ref| - a |recon| ||_2^2 = <|ref|, |recon|> / <|recon|, |recon|>``
  (a least-squares fit on magnitudes, so it is also blind to the global phase). This favours
  no method: every reconstruction is compared at its best global intensity.
* ``"max"``: scale so that ``max |recon| == max |ref|`` (what many diffusion papers do; fragile
  to a single bright outlier pixel).
* ``"none"``: use ``|recon|`` as is (fastMRI leaderboard semantics: submissions must already
  be on the reference's intensity scale).

The chosen name and scale are stored in :class:`VolumeMetrics` so reported numbers say how
they were obtained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mrirecon.errors import MrireconError, require
from mrirecon.physics.fft import center_crop

__all__ = [
    "VolumeMetrics",
    "evaluate",
    "fit_scale",
    "nmse",
    "nmse_per_slice",
    "nrmse",
    "nrmse_per_slice",
    "psnr",
    "psnr_per_slice",
    "ssim",
    "ssim_per_slice",
]

Normalization = Literal["lstsq", "max", "none"]
_NORMALIZATIONS = ("lstsq", "max", "none")


# --------------------------------------------------------------------------------------------
# input checking


def _magnitude(x, name: str) -> np.ndarray:
    """Return a float64 numpy volume ``(S, H, W)``: ``abs(x)`` if complex, else ``x``."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise MrireconError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    require(
        x.dtype.kind in "biufc",
        f"{name} must hold numbers (real or complex), got dtype {x.dtype}",
    )
    require(
        x.ndim == 3,
        f"{name} must be a volume (slices, H, W), got shape {x.shape} (use x[None] for one slice)",
    )
    require(x.size > 0, f"{name} is empty (shape {x.shape})")
    require(bool(np.isfinite(x).all()), f"{name} contains NaN or Inf values")
    if x.dtype.kind == "c":
        x = np.abs(x)
    return x.astype(np.float64, copy=False)


def _pair(gt, pred) -> tuple[np.ndarray, np.ndarray]:
    g = _magnitude(gt, "gt")
    p = _magnitude(pred, "pred")
    require(g.shape == p.shape, f"gt and pred shapes differ: {g.shape} vs {p.shape}")
    return g, p


def _data_range(g: np.ndarray, maxval: float | None) -> float:
    value = float(g.max()) if maxval is None else float(maxval)
    require(
        np.isfinite(value) and value > 0,
        f"maxval (data range) must be a positive finite number, got {value}"
        + (" (the reference volume is all zero)" if maxval is None else ""),
    )
    return value


def _ssim_slice(g: np.ndarray, p: np.ndarray, data_range: float) -> float:
    require(
        min(g.shape) >= 7,
        f"SSIM needs slices of at least 7x7 pixels (7x7 window), got {g.shape}",
    )
    return float(structural_similarity(g, p, data_range=data_range))


# --------------------------------------------------------------------------------------------
# metrics


def psnr(gt, pred, maxval: float | None = None) -> float:
    """Volume PSNR in dB, ``10 log10(maxval^2 / MSE)`` with one MSE over the whole volume.

    Parameters
    ----------
    gt, pred : array (S, H, W)
        Reference and reconstruction (magnitude is taken of complex input).
    maxval : float, optional
        Data range; defaults to ``gt.max()`` (the volume maximum), as in fastMRI.
    """
    g, p = _pair(gt, pred)
    return float(peak_signal_noise_ratio(g, p, data_range=_data_range(g, maxval)))


def psnr_per_slice(gt, pred, maxval: float | None = None) -> np.ndarray:
    """PSNR of each slice ``(S,)`` float64, with the volume data range (``gt.max()``)."""
    g, p = _pair(gt, pred)
    dr = _data_range(g, maxval)
    mse = np.mean((g - p) ** 2, axis=(1, 2))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(dr**2 / mse)


def ssim(gt, pred, maxval: float | None = None) -> float:
    """Mean over slices of the 2-D SSIM (7x7 uniform window, K1 .01, K2 .03), fastMRI style.

    ``maxval`` defaults to ``gt.max()`` over the volume and is used for every slice.
    """
    return float(np.mean(ssim_per_slice(gt, pred, maxval)))


def ssim_per_slice(gt, pred, maxval: float | None = None) -> np.ndarray:
    """SSIM of each slice ``(S,)`` float64, with the volume data range."""
    g, p = _pair(gt, pred)
    dr = _data_range(g, maxval)
    return np.array([_ssim_slice(g[s], p[s], dr) for s in range(g.shape[0])])


def nmse(gt, pred) -> float:
    """Normalised MSE over the volume: ``||gt - pred||^2 / ||gt||^2``."""
    g, p = _pair(gt, pred)
    den = float(np.sum(g**2))
    require(den > 0, "gt is all zero: NMSE is undefined")
    return float(np.sum((g - p) ** 2) / den)


def nmse_per_slice(gt, pred) -> np.ndarray:
    """NMSE of each slice ``(S,)``; a slice whose reference is all zero gives NaN."""
    g, p = _pair(gt, pred)
    num = np.sum((g - p) ** 2, axis=(1, 2))
    den = np.sum(g**2, axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def nrmse(gt, pred) -> float:
    """Normalised RMSE over the volume: ``||gt - pred|| / ||gt|| = sqrt(NMSE)``."""
    return float(np.sqrt(nmse(gt, pred)))


def nrmse_per_slice(gt, pred) -> np.ndarray:
    """NRMSE of each slice ``(S,)``."""
    return np.sqrt(nmse_per_slice(gt, pred))


# --------------------------------------------------------------------------------------------
# normalisation


def fit_scale(ref, recon, *, complex_scale: bool = False) -> float | complex:
    """Least-squares global scale that best maps ``recon`` onto ``ref``.

    Parameters
    ----------
    ref, recon : array (..., H, W), same shape
        Reference and reconstruction (numpy or torch; any number of leading axes).
    complex_scale : bool
        False (default): real scale on magnitudes (complex input is reduced with ``abs``,
        real input is used as given), positive whenever the inputs are,
        ``a = argmin_a || |ref| - a |recon| ||^2 = <|ref|,|recon|> / ||recon||^2``.
        True: complex scale on the complex data (fits a global phase too),
        ``a = argmin_a || ref - a recon ||^2 = <recon, ref> / ||recon||^2``
        (``<u, v> = sum conj(u) v``); BART's ``nrmse -s`` does this.

    Returns
    -------
    float or complex
        The scale ``a`` to multiply ``recon`` by.
    """
    r = ref.detach().cpu().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    x = recon.detach().cpu().numpy() if isinstance(recon, torch.Tensor) else np.asarray(recon)
    require(r.shape == x.shape, f"ref and recon shapes differ: {r.shape} vs {x.shape}")
    require(bool(np.isfinite(r).all()), "ref contains NaN or Inf values")
    require(bool(np.isfinite(x).all()), "recon contains NaN or Inf values")
    if complex_scale:
        r = r.astype(np.complex128)
        x = x.astype(np.complex128)
    else:
        r = (np.abs(r) if r.dtype.kind == "c" else r).astype(np.float64)
        x = (np.abs(x) if x.dtype.kind == "c" else x).astype(np.float64)
    den = float(np.vdot(x, x).real)
    require(den > 0, "recon is all zero: no scale can fit it to the reference")
    a = np.vdot(x, r) / den
    return complex(a) if complex_scale else float(a.real)


@dataclass
class VolumeMetrics:
    """Metrics of one reconstructed volume against its reference.

    Attributes
    ----------
    psnr, ssim, nmse, nrmse : float
        Volume values (fastMRI conventions, see the module docstring).
    per_slice : dict[str, np.ndarray]
        ``psnr``, ``ssim``, ``nmse``, ``nrmse`` arrays of shape ``(S,)``.
    normalization : str
        ``"lstsq"``, ``"max"`` or ``"none"``: how ``recon`` was scaled before comparison.
    scale : float
        The factor applied to ``|recon|``.
    data_range : float
        Max of the (cropped) reference volume, used by PSNR and SSIM.
    shape : tuple
        Shape ``(S, H, W)`` the metrics were computed on (after the crop).
    """

    psnr: float
    ssim: float
    nmse: float
    nrmse: float
    per_slice: dict[str, np.ndarray] = field(repr=False)
    normalization: str
    scale: float
    data_range: float
    shape: tuple[int, int, int]

    def as_dict(self, per_slice: bool = False) -> dict:
        """Plain-Python dict (JSON-serialisable); per-slice arrays as lists if requested."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        if per_slice:
            d["per_slice"] = {k: [float(v) for v in arr] for k, arr in self.per_slice.items()}
        else:
            d.pop("per_slice")
        return d


def evaluate(
    ref,
    recon,
    normalize: Normalization = "lstsq",
    crop: tuple[int, int] | None = None,
    data_range: float | None = None,
    exclude: list[int] | tuple[int, ...] = (),
) -> VolumeMetrics:
    """Compare a reconstruction with its reference after an explicit global normalisation.

    Parameters
    ----------
    ref : array (S, H, W)
        Reference volume, e.g. fastMRI's ``reconstruction_rss`` (magnitude taken if complex).
    recon : array (S, H, W)
        Reconstruction, real or complex, on any global scale/phase.
    normalize : {"lstsq", "max", "none"}
        How ``|recon|`` is scaled before the metrics (see the module docstring).
    crop : (h, w), optional
        Centre-crop both volumes to this size first (fastMRI's evaluate crops to
        ``(W_ref, W_ref)``). The scale is fitted on the cropped volumes.
    data_range : float, optional
        The "max" of PSNR/SSIM; default: the max of the whole (cropped) ``ref``, the slices in
        ``exclude`` included (fastMRI's semantics). When ``ref`` holds only some slices of a
        volume, pass the whole reference volume's max.
    exclude : list of int
        Slices left out of every metric, e.g. ``info["given_slices"]`` (copied from fully
        sampled data, so they would flatter the reconstruction).

    Returns
    -------
    VolumeMetrics
    """
    require(
        normalize in _NORMALIZATIONS,
        f"normalize must be one of {', '.join(_NORMALIZATIONS)}, got {normalize!r}",
    )
    g, p = _pair(ref, recon)
    if crop is not None:
        require(
            len(tuple(crop)) == 2 and all(int(c) > 0 for c in crop),
            f"crop must be (h, w) with positive sizes, got {crop!r}",
        )
        require(
            crop[0] <= g.shape[1] and crop[1] <= g.shape[2],
            f"crop {tuple(crop)} is larger than the images {g.shape[1:]}",
        )
        g = np.ascontiguousarray(center_crop(g, tuple(crop)))
        p = np.ascontiguousarray(center_crop(p, tuple(crop)))
    # The whole (cropped) reference volume sets the range, excluded slices included: fastMRI's max.
    data_range = _data_range(g, data_range)
    if exclude:
        keep = [i for i in range(g.shape[0]) if i not in set(int(e) for e in exclude)]
        require(keep, f"exclude={list(exclude)} leaves no slice to evaluate")
        g, p = g[keep], p[keep]
    if normalize == "lstsq":
        scale = fit_scale(g, p)
    elif normalize == "max":
        pmax = float(p.max())
        require(pmax > 0, "recon is all zero: cannot normalise by its maximum")
        scale = float(g.max()) / pmax
    else:
        scale = 1.0
    p = p * scale
    dr = data_range  # validated above, before ``exclude``
    per = {
        "psnr": psnr_per_slice(g, p, dr),
        "ssim": ssim_per_slice(g, p, dr),
        "nmse": nmse_per_slice(g, p),
    }
    per["nrmse"] = np.sqrt(per["nmse"])
    vol_nmse = nmse(g, p)
    return VolumeMetrics(
        psnr=psnr(g, p, dr),
        ssim=float(np.mean(per["ssim"])),
        nmse=vol_nmse,
        nrmse=float(np.sqrt(vol_nmse)),
        per_slice=per,
        normalization=normalize,
        scale=float(scale),
        data_range=dr,
        shape=tuple(int(s) for s in g.shape),
    )
