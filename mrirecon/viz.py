"""PNG figures: reconstruction comparisons, image strips, sampling masks, metric curves.

Display conventions (stated once, used by every function here):

* Images are drawn as stored: rows = H (readout, kx) from top to bottom, columns = W (phase
  encode, ky) from left to right, origin at the upper left, no flips or transposes. This is
  what fastMRI's notebooks do (``plt.imshow(np.abs(x), cmap="gray")``), so fastMRI brain and
  knee images appear as in the fastMRI paper and viewers; the phase-encode (undersampled)
  direction is horizontal, so aliasing from 1-D masks shows as horizontal ghosts.
* Complex images are shown as their magnitude, in grey, from 0 to the reference's maximum
  (the same range for every image in a row, so intensity differences are visible). Error
  maps ``|method| - |reference|`` in absolute value share one range per figure ("inferno");
  uncertainty (posterior standard deviation) maps share another ("viridis").
* Figures are built with matplotlib's object API on the Agg canvas (no pyplot global state,
  no display needed) and written atomically (temporary file, then rename).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mrirecon.files import atomic_path
from mrirecon.errors import MrireconError, require
from mrirecon.metrics import fit_scale

__all__ = ["Comparison", "prepare_comparison", "save_comparison", "save_mask", "save_plot", "save_strip"]

_FORMATS = (".png", ".pdf", ".svg")
_PANEL_INCHES = 2.4


# --------------------------------------------------------------------------------------------
# helpers


def _array(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise MrireconError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    require(x.dtype.kind in "biufc", f"{name} must hold numbers, got dtype {x.dtype}")
    require(x.size > 0, f"{name} is empty (shape {x.shape})")
    require(bool(np.isfinite(x).all()), f"{name} contains NaN or Inf values")
    return x


def _magnitude(x: np.ndarray) -> np.ndarray:
    return np.abs(x).astype(np.float64) if x.dtype.kind == "c" else x.astype(np.float64)


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Render ``fig`` to ``path`` through a temporary file (no half-written figures)."""
    path = Path(path)
    suffix = path.suffix.lower()
    require(suffix in _FORMATS, f"figure path must end in {', '.join(_FORMATS)}, got {str(path)!r}")
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix[1:], dpi=110, bbox_inches="tight")
    return path


def _image_axis(ax, image: np.ndarray, vmin: float, vmax: float, cmap: str, title: str | None = None):
    handle = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", origin="upper")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return handle


def _metric_text(value) -> str:
    """``{"psnr": 31.2, "ssim": .91}`` -> ``"PSNR 31.20 dB\\nSSIM 0.910"``; strings pass through."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    require(isinstance(value, Mapping), f"metrics entries must be dicts or strings, got {type(value).__name__}")
    formats = {"psnr": "PSNR {:.2f} dB", "ssim": "SSIM {:.3f}", "nrmse": "NRMSE {:.4f}", "nmse": "NMSE {:.4f}"}
    parts = []
    for key, fmt in formats.items():
        if key == "nmse" and value.get("nrmse") is not None:
            continue  # NRMSE already says it
        if value.get(key) is not None:
            parts.append(fmt.format(float(value[key])))
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# figures


@dataclass
class Comparison:
    """What :func:`save_comparison` draws, computed by :func:`prepare_comparison`.

    Attributes
    ----------
    order : list[str]
        Panel names, reference first.
    reference : str
        Name of the reference panel.
    images : dict[str, ndarray (H, W)]
        Displayed magnitudes (methods multiplied by ``scales``).
    errors : dict[str, ndarray (H, W)]
        ``| images[m] - images[reference] |`` per method.
    stds : dict[str, ndarray (H, W)]
        Uncertainty maps (scaled like their method).
    scales : dict[str, float]
        Factor applied to each panel's magnitude (1 for the reference and with "none").
    vmax, emax, smax : float
        Top of the display range of the image, error and uncertainty rows.
    slice_index : int or None
        Shown slice of volume panels (None for 2-D panels).
    """

    order: list[str]
    reference: str
    images: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    stds: dict[str, np.ndarray]
    scales: dict[str, float]
    vmax: float
    emax: float
    smax: float
    slice_index: int | None


def prepare_comparison(
    panels: Mapping[str, np.ndarray],
    *,
    error_of: str | None = None,
    uncertainty: Mapping[str, np.ndarray] | None = None,
    slice_index: int | None = None,
    normalize: str = "lstsq",
) -> Comparison:
    """Check the inputs of :func:`save_comparison` and compute what it shows (no drawing).

    Arguments as in :func:`save_comparison`.
    """
    require(isinstance(panels, Mapping) and len(panels) > 0, "panels must be a non-empty dict of name -> image")
    require(normalize in ("lstsq", "none"), f"normalize must be 'lstsq' or 'none', got {normalize!r}")
    arrays = {str(k): _array(v, f"panels[{k!r}]") for k, v in panels.items()}
    names = list(arrays)
    shape = arrays[names[0]].shape
    require(len(shape) in (2, 3), f"panels must be images (H, W) or volumes (S, H, W), got shape {shape}")
    for name, a in arrays.items():
        require(a.shape == shape, f"panels[{name!r}] has shape {a.shape}, expected {shape} like {names[0]!r}")
    ref_name = names[0] if error_of is None else error_of
    require(ref_name in arrays, f"error_of={error_of!r} is not one of the panels {names}")
    unc = {str(k): _array(v, f"uncertainty[{k!r}]") for k, v in (uncertainty or {}).items()}
    for name, a in unc.items():
        require(name in arrays and name != ref_name, f"uncertainty[{name!r}] must name a method panel, one of {names}")
        require(a.shape == shape, f"uncertainty[{name!r}] has shape {a.shape}, expected {shape}")

    if len(shape) == 3:
        s = shape[0] // 2 if slice_index is None else slice_index
        require(
            isinstance(s, (int, np.integer)) and -shape[0] <= s < shape[0],
            f"slice_index {slice_index!r} out of range for {shape[0]} slices",
        )
        s = int(s) % shape[0]
    else:
        require(slice_index in (None, 0), f"slice_index {slice_index!r} given for 2-D panels")
        s = None

    def pick(a: np.ndarray) -> np.ndarray:
        return _magnitude(a if s is None else a[s])

    ref = pick(arrays[ref_name])
    vmax = float(ref.max())
    require(vmax > 0, f"panels[{ref_name!r}] (the reference) is all zero on the shown slice")
    order = [ref_name] + [n for n in names if n != ref_name]
    images, scales = {}, {}
    for name in order:
        img = pick(arrays[name])
        scales[name] = 1.0
        if name != ref_name and normalize == "lstsq" and img.any():
            scales[name] = float(fit_scale(ref, img))
        images[name] = img * scales[name]
    errors = {n: np.abs(images[n] - ref) for n in order[1:]}
    stds = {n: pick(unc[n]) * abs(scales[n]) for n in order if n in unc}
    return Comparison(
        order=order,
        reference=ref_name,
        images=images,
        errors=errors,
        stds=stds,
        scales=scales,
        vmax=vmax,
        emax=max((float(e.max()) for e in errors.values()), default=0.0) or 1.0,
        smax=max((float(v.max()) for v in stds.values()), default=0.0) or 1.0,
        slice_index=s,
    )


def _comparison_grid(cmp: Comparison, texts: Mapping[str, str]) -> Figure:
    """The panels of :func:`save_comparison`: images, error maps, std maps, one colour bar per row."""
    methods = cmp.order[1:]
    rows = 1 + (1 if methods else 0) + (1 if cmp.stds else 0)
    cols = len(cmp.order)
    h, w = cmp.images[cmp.reference].shape
    fig = Figure(figsize=(_PANEL_INCHES * cols + 0.6, _PANEL_INCHES * rows * h / w + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    row_handles: dict[int, object] = {}  # the last image drawn in each row, for its colour bar
    for j, name in enumerate(cmp.order):
        label = name + (" (reference)" if methods and j == 0 and "ref" not in name.lower() else "")
        text = texts.get(name, "")
        row_handles[0] = _image_axis(axes[0, j], cmp.images[name], 0.0, cmp.vmax, "gray", label + ("\n" + text if text else ""))
        extra = ([(cmp.errors, cmp.emax, "inferno", "|error|")] if methods else []) + (
            [(cmp.stds, cmp.smax, "viridis", "std")] if cmp.stds else []
        )
        for r, (maps, top, cmap, what) in enumerate(extra, start=1):
            if name in maps:
                row_handles[r] = _image_axis(axes[r, j], maps[name], 0.0, top, cmap, f"{what} {name}")
            else:
                axes[r, j].axis("off")
    for r, handle in row_handles.items():
        fig.colorbar(handle, ax=list(axes[r]), fraction=0.02, pad=0.01)
    return fig


def save_comparison(
    path: str | os.PathLike,
    panels: Mapping[str, np.ndarray],
    *,
    error_of: str | None = None,
    metrics: Mapping[str, Mapping | str] | None = None,
    uncertainty: Mapping[str, np.ndarray] | None = None,
    slice_index: int | None = None,
    normalize: str = "lstsq",
    title: str | None = None,
    slice_numbers: Sequence[int] | None = None,
    note: str | None = None,
) -> Path:
    """Grid figure: reference and methods, their error maps, and uncertainty maps.

    Layout (columns = panels in the given order, the reference moved first)::

        row 1  reference | method 1 | method 2 ...      magnitude, range [0, max |reference|]
        row 2            | |err 1|  | |err 2|  ...      | |method| - |reference| |, shared range
        row 3            | std 1    | std 2    ...      only if ``uncertainty`` is given

    Parameters
    ----------
    path : str or PathLike
        Output ``.png`` (or ``.pdf``/``.svg``).
    panels : dict[str, array (H, W) or (S, H, W)]
        Images by name, all the same shape; complex images are shown as magnitude.
    error_of : str, optional
        Name of the reference panel (default: the first panel). A single panel gets no
        error row.
    metrics : dict[str, dict or str], optional
        Per-panel text under the title, e.g. ``{"AID": {"psnr": 31.2, "ssim": 0.91}}`` or a
        :class:`mrirecon.metrics.VolumeMetrics`.
    uncertainty : dict[str, array], optional
        Per-method standard-deviation maps, same shape as the panels (the method's display
        scale is applied to them too).
    slice_index : int, optional
        Slice to show for volumes (default: the middle slice).
    normalize : {"lstsq", "none"}
        ``"lstsq"`` scales each method's magnitude to the reference by the least-squares
        factor (:func:`mrirecon.metrics.fit_scale`, on the shown slice), so methods with an
        arbitrary global intensity are comparable; ``"none"`` shows values as given.
    title : str, optional
        Figure title.
    slice_numbers : list of int, optional
        Volume slice number of each panel slice (e.g. the ``--slices`` selection), for the label.
    note : str, optional
        A last line of the title (e.g. what the metrics refer to).

    Returns
    -------
    Path
    """
    cmp = prepare_comparison(
        panels, error_of=error_of, uncertainty=uncertainty, slice_index=slice_index, normalize=normalize
    )
    for name in metrics or {}:
        require(name in cmp.images, f"metrics[{name!r}] does not name a panel, one of {cmp.order}")
    texts = {name: _metric_text(value) for name, value in (metrics or {}).items()}

    methods = cmp.order[1:]
    fig = _comparison_grid(cmp, texts)
    notes = [title] if title else []
    if cmp.slice_index is not None:
        number = cmp.slice_index if slice_numbers is None else int(list(slice_numbers)[cmp.slice_index])
        notes.append(f"volume slice {number}")
    if normalize == "lstsq" and methods:
        notes.append("methods scaled to the reference (least squares)")
    if notes or note:
        fig.suptitle(" - ".join(notes) + (f"\n{note}" if note else ""), fontsize=9)
    return _save(fig, path)


def save_strip(
    path: str | os.PathLike,
    frames,
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    vmax: float | None = None,
    title: str | None = None,
    colorbar: bool = False,
    mask=None,
    cmap: str = "gray",
) -> Path:
    """Frames ``(N, H, W)`` side by side (e.g. a generated slice sequence), one grey range.

    Parameters
    ----------
    frames : array (N, H, W), real or complex (magnitude shown)
    titles : list of N str, optional
    ncols : int, optional
        Frames per row (default: all in one row, at most 10 per row).
    vmax : float, optional
        Top of the display range (default: the maximum over all frames).
    colorbar : bool
        Add a colour bar (shared range).
    mask : array (H, W) bool, optional
        Pixels to show; the others are drawn black (e.g. the background of coil maps).
    cmap : str
        Colour map.
    """
    x = _array(frames, "frames")
    require(x.ndim == 3, f"frames must be (N, H, W), got shape {x.shape}")
    n = x.shape[0]
    require(titles is None or len(titles) == n, f"titles must have {n} entries, one per frame")
    cols = min(n, 10) if ncols is None else int(ncols)
    require(cols >= 1, f"ncols must be a positive integer, got {ncols!r}")
    mag = _magnitude(x)
    if mask is not None:
        keep = np.asarray(mask, bool)
        require(keep.shape == mag.shape[1:], f"mask must be (H, W) = {mag.shape[1:]}, got {keep.shape}")
        mag = np.where(keep[None], mag, 0.0)
    top = float(mag.max()) if vmax is None else float(vmax)
    require(top > 0, "frames are all zero (or vmax <= 0): nothing to show")
    rows = -(-n // cols)
    fig = Figure(figsize=(_PANEL_INCHES * 0.8 * cols, _PANEL_INCHES * 0.8 * rows * x.shape[1] / x.shape[2] + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    handle = None
    for i, ax in enumerate(axes.flat):
        if i < n:
            handle = _image_axis(ax, mag[i], 0.0, top, cmap, titles[i] if titles is not None else str(i))
        else:
            ax.axis("off")
    if colorbar and handle is not None:
        fig.colorbar(handle, ax=list(axes.flat), fraction=0.02, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def save_mask(path: str | os.PathLike, mask, *, title: str | None = None) -> Path:
    """A sampling mask (white = sampled), with its sampled fraction and acceleration.

    Parameters
    ----------
    mask : array (H, W) or (W,)
        0/1 mask (k-space layout: rows = kx, columns = ky); a 1-D mask over ky is drawn as
        identical rows. The acceleration is ``size / number sampled``.
    """
    m = _array(mask, "mask")
    require(m.ndim in (1, 2), f"mask must be (H, W) or (W,), got shape {m.shape}")
    m = np.abs(m).astype(np.float64)
    if m.ndim == 1:
        m = np.broadcast_to(m, (max(16, m.shape[0] // 4), m.shape[0]))
        fraction = float(np.mean(m[0] > 0))
    else:
        fraction = float(np.mean(m > 0))
    require(fraction > 0, "mask samples nothing (all zero)")
    fig = Figure(figsize=(3.6, 3.6 * m.shape[0] / m.shape[1] + 0.5))
    ax = fig.subplots()
    _image_axis(ax, m, 0.0, max(1.0, float(m.max())), "gray")
    ax.set_xlabel("ky (phase encode)", fontsize=8)
    ax.set_ylabel("kx (readout)", fontsize=8)
    info = f"sampled {100 * fraction:.1f} %, R = {1 / fraction:.2f}"
    ax.set_title(f"{title}\n{info}" if title else info, fontsize=8)
    return _save(fig, path)


def save_plot(
    path: str | os.PathLike,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    errors: Mapping[str, Sequence[float]] | None = None,
    xlabel: str = "acceleration R",
    ylabel: str = "PSNR (dB)",
    title: str | None = None,
) -> Path:
    """Line plot of metrics against e.g. acceleration, one line per method.

    Parameters
    ----------
    x : sequence of float, length N
        Abscissae (e.g. accelerations 2, 4, 8).
    series : dict[str, sequence of N float]
        Values per method.
    errors : dict[str, sequence of N float], optional
        Error-bar half-widths per method (e.g. 2 std over volumes).
    """
    xs = np.asarray(_array(np.asarray(x, dtype=np.float64), "x"))
    require(xs.ndim == 1, f"x must be 1-D, got shape {xs.shape}")
    require(isinstance(series, Mapping) and len(series) > 0, "series must be a non-empty dict of name -> values")
    fig = Figure(figsize=(4.8, 3.4))
    ax = fig.subplots()
    for name, values in series.items():
        ys = _array(np.asarray(values, dtype=np.float64), f"series[{name!r}]")
        require(ys.shape == xs.shape, f"series[{name!r}] has {ys.size} values, x has {xs.size}")
        err = None
        if errors and name in errors:
            err = _array(np.asarray(errors[name], dtype=np.float64), f"errors[{name!r}]")
            require(err.shape == xs.shape, f"errors[{name!r}] has {err.size} values, x has {xs.size}")
        ax.errorbar(xs, ys, yerr=err, marker="o", markersize=4, capsize=3, label=str(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)
