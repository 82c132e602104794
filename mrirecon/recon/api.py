"""``reconstruct``: multi-coil k-space -> image, with a diffusion prior or a classical method.

The path of a k-space array through :func:`reconstruct`:

1. Checks: ``kspace`` (S, C, H, W) complex, ``mask`` broadcastable to it (0/1 values);
   the measurement is ``y = mask · kspace``.
2. Coil sensitivities (``sens``): estimated from ``y`` (ESPIRiT or direct, from the
   calibration lines; :func:`mrirecon.physics.coils.estimate_sens`) or given as an array.
   The AID reference estimated them from *fully sampled* data (aid-reference.md §4.2); to
   reproduce that, estimate maps with ``estimate_sens(kspace_full, mask=None)`` and pass them.
3. Classical methods (``prior="zero-filled"|"sense"|"l1-wavelet"``) stop here
   (:mod:`mrirecon.recon.classical`).
4. Intensity. The prior works in [-1, 1] (training volumes are divided by their max |x|), so
   the measurement is multiplied by a factor ``c`` and the result divided by it:

   * ``scale=None`` (default, automatic). With a fully sampled centre (a calibration box of at
     least :data:`MIN_CALIBRATION` lines, as every fastMRI-style and Poisson mask has),
     ``c = 1 / max|z|`` with ``z = Aᴴy`` the zero-filled image: the centre holds the
     low-frequency energy that sets a brain image's peak, and on the bundled MNI sample scan
     ``max|z|`` is 0.96–1.07 of the fully sampled image's peak for equispaced, random and
     Poisson masks at R = 4 and 8 (the reference used ``--scale 1`` for its ACS masks).
     Without one, ``z`` keeps R folded copies at 1/R amplitude (0.53–0.60 of the peak on the
     sample scan), while the density-compensated ``z_dc = Aᴴ(D y)`` (``D = mask / d``, ``d``
     the local sampling density, :func:`sampling_density`) restores full amplitude but piles
     the copies up (1.3–4.2 of the peak); then ``c = 1 / sqrt(max|z| · max|z_dc|)``, which
     landed within 0.67–1.15 of the peak there (equispaced and random lines at R = 4 and 8),
     instead of the reference's hand-tuned ``--scale`` 0.15–0.3 (§4.6).
   * ``scale=s``: ``c = s / max|Aᴴy|``, the reference's ``--scale`` semantics.

   ``normalize="volume"`` (default) takes the max over the whole volume, like training;
   ``"slice"`` per slice, like the reference's reconstruction script.
5. Sampling (:mod:`mrirecon.recon.sampler`): AID priors slice after slice, UNet priors all
   slices at once; ``n_samples`` posterior samples per slice in one batch.
6. Result in the input's intensity scale: the posterior mean, the pixel-wise standard
   deviation ``sqrt(Σ_j |x_j - x̄|² / (N-1))`` (N > 1) and, on request, the samples.

Sizes: the networks are fully convolutional, so any matrix size works; sizes that are not a
multiple of the network's downsampling factor (``2**(levels-1)``) are zero-padded in the image
domain and cropped back. The prior only knows anatomy at the pixel size it was trained at
(the bundled priors see whole heads at ``image_size`` pixels): a matrix much larger or smaller
than ``image_size`` for the same field of view shows it structures at another scale, and its
help shrinks (data consistency still holds). Magnitude priors (1 channel) are refused: the
data carry phase that such a prior cannot model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrirecon.errors import check_finite, require
from mrirecon.physics.fft import center_crop, fft2c, ifft2c
from mrirecon.recon.sampler import ATTENTION_MODES, PRECISIONS, VolumeData, make_sampler
from mrirecon.recon.steps import DC_METHODS

__all__ = ["CLASSICAL_METHODS", "ReconResult", "reconstruct", "reconstruct_file"]

#: ``prior`` values that run a classical reconstruction instead of a diffusion prior.
CLASSICAL_METHODS = ("zero-filled", "sense", "l1-wavelet")
FIRST_SLICE = ("cold", "given")
NORMALIZE = ("volume", "slice")
SENS_METHODS = ("espirit", "direct")


@dataclass
class ReconResult:
    """What :func:`reconstruct` returns.

    Arrays are numpy when the input k-space was numpy, else torch tensors on its device.

    Attributes
    ----------
    image : (S, H, W) complex64
        The reconstruction (posterior mean over ``n_samples``), input intensity scale.
    std : (S, H, W) float32 or None
        Pixel-wise posterior standard deviation (``n_samples > 1``), same scale.
    samples : (n_samples, S, H, W) complex64 or None
        The posterior samples (``return_samples=True``).
    info : dict
        How it was made: ``method``, ``prior``, ``steps``, ``update``, ``first_slice``,
        ``given_slices`` (slices copied from fully sampled data: exclude them from metrics),
        ``acceleration`` (achieved, H·W / samples), ``sens``, ``intensity_factor``,
        ``timings`` (seconds), ``network_evals``, ...
    maps : (S, C, H, W) complex64
        The coil sensitivities used.
    reference : (S, H_r, W_r) float32 or None
        The file's reference image (:func:`reconstruct_file` only).
    """

    image: Any
    std: Any = None
    samples: Any = None
    info: dict = field(default_factory=dict)
    maps: Any = None
    reference: Any = None


# --------------------------------------------------------------------------------------------
# input checks


def _as_kspace(kspace) -> torch.Tensor:
    require(
        isinstance(kspace, (np.ndarray, torch.Tensor)),
        f"kspace must be a numpy array or torch tensor, got {type(kspace).__name__}",
    )
    require(
        kspace.ndim == 4,
        f"kspace must be (slices, coils, kx, ky), got shape {tuple(kspace.shape)} (use k[None] for one slice)",
    )
    t = kspace if isinstance(kspace, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(kspace))
    require(t.is_complex(), f"kspace must be complex, got dtype {t.dtype}")
    require(t.numel() > 0, f"kspace is empty, shape {tuple(t.shape)}")
    check_finite(t, "kspace")
    return t.detach().to("cpu", torch.complex64)  # maps and scale are computed on the host once


def _as_mask(mask, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """Any accepted mask -> (S or 1, H, W) float32 of 0/1 (see :func:`reconstruct`)."""
    S, C, H, W = shape
    if hasattr(mask, "mask") and not isinstance(mask, (np.ndarray, torch.Tensor)):
        mask = mask.mask  # a mrirecon.physics.masks.Mask
    require(
        isinstance(mask, (np.ndarray, torch.Tensor)),
        f"mask must be a numpy array, torch tensor or Mask, got {type(mask).__name__}",
    )
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    require(m.dtype.kind in "biuf", f"mask must be real (0/1 values), got dtype {m.dtype}")
    m = m.astype(np.float32)
    if m.ndim == 1:  # fastMRI's (ky,) mask dataset
        m = m[None, :]
    require(
        m.ndim <= 4,
        f"mask must be broadcastable to kspace (slices, coils, kx, ky) = {shape}, got shape {m.shape}",
    )
    m4 = m.reshape((1,) * (4 - m.ndim) + m.shape)
    try:
        ok = np.broadcast_shapes(m4.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    require(ok, f"mask of shape {m.shape} is not broadcastable to kspace (slices, coils, kx, ky) = {shape}")
    require(m4.shape[1] == 1, f"mask must be the same for every coil (size 1 on the coil axis), got shape {m.shape}")
    require(bool(np.isfinite(m4).all()), "mask contains NaN or Inf values")
    require(bool(np.all((m4 == 0) | (m4 == 1))), "mask must hold only 0 and 1 values")
    m3 = np.broadcast_to(m4[:, 0], (m4.shape[0], H, W)).copy()
    empty = np.flatnonzero(m3.reshape(m3.shape[0], -1).sum(1) == 0)
    require(empty.size == 0, f"mask samples nothing (slice {int(empty[0]) if empty.size else 0})")
    return torch.from_numpy(m3)


def _check_choice(value, allowed, name: str) -> None:
    require(value in allowed, f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _positive_int(value, name: str) -> int:
    require(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
        f"{name} must be an integer >= 1, got {value!r}",
    )
    return int(value)


# --------------------------------------------------------------------------------------------
# pieces


def _sensitivities(sens, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Maps (S, C, H, W) complex64 on the CPU and a label for ``info["sens"]``."""
    S, C, H, W = y.shape
    if isinstance(sens, str):
        _check_choice(sens, SENS_METHODS, "sens")
        from mrirecon.physics.coils import estimate_sens

        shared = mask.shape[0] == 1
        if shared:
            maps = estimate_sens(y.numpy(), mask=mask[0].numpy(), method=sens)
        else:  # per-slice masks: calibrate each slice on its own mask
            maps = np.concatenate(
                [estimate_sens(y[s : s + 1].numpy(), mask=mask[s].numpy(), method=sens) for s in range(S)]
            )
        return torch.as_tensor(np.asarray(maps)).to(torch.complex64), sens
    require(
        isinstance(sens, (np.ndarray, torch.Tensor)),
        f"sens must be 'espirit', 'direct' or an array of maps (slices, coils, kx, ky), got {type(sens).__name__}",
    )
    maps = sens.detach().cpu() if isinstance(sens, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(sens))
    if maps.ndim == 3:
        maps = maps[None]
    require(
        maps.ndim == 4 and maps.shape[1:] == (C, H, W) and maps.shape[0] in (1, S),
        f"sens maps must be (slices, coils, kx, ky) = {(S, C, H, W)} or (coils, kx, ky), got {tuple(sens.shape)}",
    )
    require(maps.is_complex(), f"sens maps must be complex, got dtype {maps.dtype}")
    check_finite(maps, "sens")
    return maps.to(torch.complex64).expand(S, C, H, W).contiguous(), "given"


def sampling_density(mask: np.ndarray) -> np.ndarray:
    """Local sampling density of a 0/1 mask (H, W), in (0, 1].

    Line masks (identical rows) are smoothed along the phase-encode axis with a Gaussian of
    standard deviation R (the achieved acceleration), 2-D masks along both axes with √R: wide
    enough to flatten an equispaced comb of period R to 1/R, narrow enough to keep a fully
    sampled centre at 1.
    """
    from scipy.ndimage import gaussian_filter, gaussian_filter1d

    m = mask.astype(np.float64)
    r = m.size / max(m.sum(), 1.0)
    if np.all(m == m[:1]):
        d = np.broadcast_to(gaussian_filter1d(m[0], sigma=r, mode="reflect"), m.shape)
    else:
        d = gaussian_filter(m, sigma=np.sqrt(r), mode="reflect")
    return np.clip(d, 1e-6, 1.0)


#: Calibration box (lines) from which the plain zero-filled peak is trusted (module docstring).
MIN_CALIBRATION = 2


def _intensity_factor(op_cls, y, maps, mask, scale, normalize) -> torch.Tensor:
    """Factor ``c`` (S,) float32 taking measurements into the prior's range (module docstring)."""
    from mrirecon.physics.coils import calib_region

    S = y.shape[0]
    z = op_cls(maps, mask[:, None]).adjoint(y)
    peak = z.abs().flatten(1).amax(1)  # (S,)
    if scale is None:
        masks = mask.cpu().numpy()  # (1 shared or S, H, W)
        for i, m in enumerate(masks):
            if min(calib_region(m)) >= MIN_CALIBRATION:
                continue
            # no calibration box: the plain peak misses the folded intensity; bracket it
            rows = slice(None) if len(masks) == 1 else slice(i, i + 1)
            w = torch.from_numpy((m / sampling_density(m)).astype(np.float32)).to(y.device)
            peak_dc = op_cls(maps[rows], w).adjoint(y[rows]).abs().flatten(1).amax(1)
            peak[rows] = torch.sqrt(peak[rows] * peak_dc)
    if normalize == "volume":
        peak = peak.amax().expand(S)
    require(bool((peak > 0).all()), "the zero-filled image is all zero: kspace holds no signal where the mask samples")
    return ((1.0 if scale is None else float(scale)) / peak).to(torch.float32)


def _to_output(x: torch.Tensor | None, like_numpy: bool, device: torch.device):
    if x is None:
        return None
    return x.cpu().numpy() if like_numpy else x.to(device)


# --------------------------------------------------------------------------------------------
# public


def reconstruct(
    kspace,
    mask,
    prior="default",
    *,
    sens="espirit",
    steps: int = 100,
    n_samples: int = 1,
    seed: int = 0,
    device: str | None = None,
    update: str = "reference",
    eta: float = 0.0,
    dc_steps: int = 8,
    dc_step_size: float = 1.0,
    dc: str = "cg",
    scale: float | None = None,
    normalize: str = "volume",
    attention: str = "reference",
    first_slice: str = "cold",
    temperature: float = 1.0,
    precision: str | None = None,
    batch_size: int | None = None,
    return_samples: bool = False,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    lam: float | None = None,
    iters: int | None = None,
) -> ReconResult:
    """Reconstruct undersampled multi-coil k-space.

    Parameters
    ----------
    kspace : array (S, C, H, W) complex
        Multi-coil k-space (numpy or torch), H = readout, W = phase encode. Fully sampled or
        already undersampled: the mask is applied (``y = mask · kspace``).
    mask : array or Mask
        0/1 sampling mask broadcastable to ``kspace`` and equal across coils: (W,), (H, W),
        (S, 1, H, W), ... or a :class:`mrirecon.physics.masks.Mask`.
    prior : str or Prior
        A registry name (``"default"``, ``"default-unet"``, ...), a
        :func:`mrirecon.prior.load_prior` result, or ``"zero-filled"``, ``"sense"``,
        ``"l1-wavelet"`` for the classical methods.
    sens : {"espirit", "direct"} or array (S, C, H, W) / (C, H, W) complex
        Coil sensitivities: estimated from the calibration region of ``y``, or given.
    steps : int
        Diffusion steps (network evaluations) per slice, ``1..1000``; timesteps
        ``floor(i·1000/steps)`` as in the reference (1000, 250, 100, 50, ...).
    n_samples : int
        Posterior samples per slice (one batch); ``image`` is their mean.
    seed : int
        Seeds every random draw; on CPU equal arguments give bit-identical results.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``; default: the prior's device for a loaded prior,
        else ``"cpu"``.
    update : {"reference", "ddim"}
        ``reference``: x̂0 -> DC -> re-noise with fresh noise (the AID reference, §4.4);
        ``ddim``: DDIM with parameter ``eta`` on the data-consistent x̂0.
    eta : float
        DDIM η ∈ [0, 1] (0: deterministic given the initial noise).
    dc_steps : int
        K data-consistency iterations on ½‖Ax - y‖² per diffusion step (default 8).
    dc_step_size : float
        η of the gradient steps (1.0); must satisfy ``η · max Σ_c |S_c|² < 2``.
    dc : {"cg", "gradient"}
        ``cg`` (default): K conjugate-gradient iterations on ``AᴴA x = Aᴴy`` from x̂0 (as the
        decomposed diffusion sampler, DDS), which unfold the coils where gradient steps crawl
        (``dc_step_size`` unused). ``gradient``: K gradient steps of size ``dc_step_size``, the
        reference's rule (it uses K = 4: with Σ|S|² = 1 and η = 1 the first step almost
        replaces the sampled lines). ``update="reference", dc="gradient", dc_steps=4`` is the
        AID reference's sampler; on the bundled sample scan CG gains 2.2–6.0 dB PSNR
        (docs/evaluation.md).
    scale : float, optional
        Intensity: None = automatic, else the reference's ``--scale`` (module docstring).
    normalize : {"volume", "slice"}
        Where the intensity factor's max is taken.
    attention : {"reference", "full"}
        AID window semantics: previous slice only (official), or the causal prefix of up to
        ``seq_length`` earlier slices. Ignored by UNet priors.
    first_slice : {"cold", "given"}
        ``cold``: slice 0 is reconstructed from its own undersampled data (conditioned on a
        zero frame). ``given``: the paper's protocol, slice 0 must be fully sampled in
        ``kspace``; its SENSE-combined image is used as is and listed in
        ``info["given_slices"]`` (exclude it from metrics).
    temperature : float
        τ scaling the noise injected at each step.
    precision : {"fp32", "bf16", "tf32"}, optional
        Network precision: bf16 autocast (CUDA or CPU), TF32 matmuls (CUDA); the update maths
        stay fp32. Default: fp32 for a registry name, the prior's own for a loaded prior.
    batch_size : int, optional
        Most images per network call for UNet priors (default: all slices × samples).
    return_samples : bool
        Also return the individual posterior samples.
    callback : callable, optional
        ``callback(slice_idx, step_idx, x0_hat)`` after each step's data consistency;
        ``x0_hat`` (n_samples, H, W) complex torch tensor on the device, input intensity scale.
    progress : bool
        Rich progress bars (per slice, per step) on stderr.
    checkpoint : path, optional
        Diffusion priors: an ``.h5`` file that keeps the finished slices (rewritten atomically
        after each one). If it exists, the run resumes after its last slice, with a result
        equal to an uninterrupted run; it must come from the same data, prior and settings
        (else an error names what differs). Deleted when the reconstruction completes.
        ``info["resumed_slices"]`` counts the slices taken from it.
    lam, iters : float, int, optional
        Regularisation weight and iterations of ``sense`` / ``l1-wavelet`` (their defaults if
        None).

    Returns
    -------
    ReconResult
        ``image`` (S, H, W) complex, ``std`` (S, H, W) or None, ``samples`` or None, ``info``.

    Raises
    ------
    MrireconError
        On bad input (one line naming the argument and what was expected).
    """
    t_start = time.perf_counter()
    like_numpy = isinstance(kspace, np.ndarray)
    out_device = kspace.device if isinstance(kspace, torch.Tensor) else torch.device("cpu")
    k = _as_kspace(kspace)
    S, C, H, W = k.shape
    m = _as_mask(mask, (S, C, H, W))
    n_samples = _positive_int(n_samples, "n_samples")
    _positive_int(steps, "steps")
    require(isinstance(seed, (int, np.integer)) and not isinstance(seed, bool), f"seed must be an integer, got {seed!r}")
    _check_choice(update, ("reference", "ddim"), "update")
    _check_choice(dc, DC_METHODS, "dc")
    _check_choice(attention, ATTENTION_MODES, "attention")
    _check_choice(first_slice, FIRST_SLICE, "first_slice")
    _check_choice(normalize, NORMALIZE, "normalize")
    if precision is not None:
        _check_choice(precision, PRECISIONS, "precision")
    require(
        scale is None or (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0),
        f"scale must be None (automatic) or a number > 0, got {scale!r}",
    )
    require(callback is None or callable(callback), f"callback must be callable, got {type(callback).__name__}")

    y = k * m[:, None]
    acceleration = float(H * W / m.sum(dim=(1, 2)).mean())
    info: dict[str, Any] = {
        "acceleration": acceleration,
        "shape": [S, C, H, W],
        "n_samples": n_samples,
        "seed": int(seed),
        "first_slice": first_slice,
        "given_slices": [0] if first_slice == "given" else [],
    }
    given_full = None
    if first_slice == "given":
        unsampled = k[0] * (1 - m[0])
        require(
            bool((unsampled.abs() > 0).any()) or bool((m[0] == 1).all()),
            "first_slice='given' needs slice 0 fully sampled in kspace, but it is zero wherever the mask is 0",
        )
        given_full = k[0]

    timings: dict[str, float] = {}
    classical_method = isinstance(prior, str) and prior in CLASSICAL_METHODS
    if not classical_method:
        prior_obj, prior_name = _diffusion_prior(prior, device, precision, timings)

    tic = time.perf_counter()
    maps, sens_label = _sensitivities(sens, y, m)
    timings["sens"] = time.perf_counter() - tic
    info["sens"] = sens_label

    if classical_method:
        return _classical(prior, y, m, maps, info, timings, t_start, like_numpy, out_device, lam, iters, device)

    # -- diffusion prior ----------------------------------------------------------------------
    from mrirecon.physics.operators import SenseOp

    dev = torch.device(prior_obj.device)
    user_cb = callback

    def scaled_callback(s: int, i: int, x0: torch.Tensor) -> None:
        user_cb(s, i, x0 / c[s])

    sampler = make_sampler(
        prior_obj,
        steps=steps,
        update=update,
        eta=eta,
        temperature=temperature,
        dc_steps=dc_steps,
        dc_step_size=dc_step_size,
        dc=dc,
        precision=precision,
        attention=attention,
        batch_size=batch_size,
        progress=progress,
        callback=scaled_callback if user_cb is not None else None,
    )
    maxsens = float((maps.abs() ** 2).sum(1).max())
    require(
        dc == "cg" or dc_step_size * maxsens < 2.0,  # CG picks its own steps
        f"dc_step_size={dc_step_size} with sensitivities whose Σ|S|² reaches {maxsens:.3g} makes the "
        f"data-consistency steps diverge (need dc_step_size · max Σ|S|² < 2)",
    )
    y_d, maps_d, m_d = y.to(dev), maps.to(dev), m.to(dev)
    c = _intensity_factor(SenseOp, y_d, maps_d, m_d, scale, normalize)  # (S,)
    given = None
    if given_full is not None:
        g = SenseOp(maps_d[0], torch.ones_like(m_d[0])).adjoint(given_full.to(dev))
        c0 = (1.0 / g.abs().max()) if normalize == "slice" else c[0]
        c = c.clone()
        c[0] = c0
        given = g * c0

    data = VolumeData(kspace=y_d * c[:, None, None, None], maps=maps_d, mask=m_d, given=given)
    resume = {}
    ckpt = None
    if checkpoint is not None:
        from mrirecon.recon.resume import SliceCheckpoint, digest

        settings = dict(
            shape=[S, C, H, W], n_samples=n_samples, seed=int(seed), timesteps=[int(t) for t in sampler.schedule.timesteps],
            update=update, eta=float(eta), temperature=float(temperature), dc=dc, dc_steps=int(dc_steps),
            dc_step_size=float(dc_step_size), attention=attention, first_slice=first_slice, scale=scale,
            normalize=normalize, precision=sampler.precision, device=dev.type, sens=sens_label, prior=prior_name,
            batch_size=batch_size if prior_obj.kind == "unet" else None,  # UNet batches change the rounding
        )  # fmt: skip
        settings.update(
            data=digest(y, m), maps=digest(maps), prior_weights=digest(*prior_obj.network.state_dict().values())
        )
        ckpt = SliceCheckpoint(checkpoint, settings)
        done = ckpt.load()
        resume = dict(done=done, on_slices=lambda out, stop: ckpt.save(out[:, :stop]))
        info["resumed_slices"] = 0 if done is None else int(done.shape[1])
        info["checkpoint"] = str(checkpoint)
    tic = time.perf_counter()
    with torch.inference_mode():
        samples = sampler.sample_volume(data, n_samples=n_samples, seed=int(seed), **resume)
    timings["sampling"] = time.perf_counter() - tic
    if ckpt is not None:
        ckpt.remove()
    samples = samples / c[None, :, None, None]
    mean = samples.mean(0)
    std = samples.std(0, correction=1) if n_samples > 1 else None
    if std is not None:
        std = std.real if std.is_complex() else std
    sampled = S - max(len(info["given_slices"]), info.get("resumed_slices", 0))  # slices sampled in this run
    timings["per_slice"] = timings["sampling"] / max(sampled, 1)
    timings["total"] = time.perf_counter() - t_start
    info.update(
        method=prior_obj.kind,
        prior=prior_name,
        steps=len(sampler.schedule),
        update=update,
        eta=float(eta) if update == "ddim" else None,
        temperature=float(temperature),
        dc_steps=int(dc_steps),
        dc_step_size=float(dc_step_size),
        dc=dc,
        attention=attention if prior_obj.kind == "aid" else None,
        seq_length=int(getattr(prior_obj, "seq_length", 0) or 0) or None,
        precision=sampler.precision,
        device=str(dev),
        scale=scale,
        normalize=normalize,
        intensity_factor=[float(v) for v in c.cpu()],
        network_grid=list(sampler.grid((H, W))),
        padded=sampler.grid((H, W)) != (H, W),
        network_evals=sampler.network_calls,
        network_images=sampler.network_images,
        timings=timings,
    )
    return ReconResult(
        image=_to_output(mean, like_numpy, out_device),
        std=_to_output(std, like_numpy, out_device),
        samples=_to_output(samples, like_numpy, out_device) if return_samples else None,
        info=info,
        maps=_to_output(maps, like_numpy, out_device),
    )


def _diffusion_prior(prior, device, precision, timings) -> tuple[Any, str]:
    """A registry name (loaded here) or a loaded prior (checked) -> (Prior, name for info)."""
    if isinstance(prior, str):
        from mrirecon.prior import load_prior

        dev = device or "cpu"
        _resolve(dev)
        tic = time.perf_counter()
        prior_obj = load_prior(prior, device=dev, precision=precision or "fp32")
        timings["load_prior"] = time.perf_counter() - tic
        return prior_obj, prior
    require(
        hasattr(prior, "kind") and hasattr(prior, "schedule"),
        f"prior must be a registry name, a load_prior() result or one of {CLASSICAL_METHODS}, "
        f"got {type(prior).__name__}",
    )
    if device is not None:
        require(
            _same_device(_resolve(device), torch.device(prior.device)),
            f"device={device!r} but the given prior is on {prior.device}; load it on that device or omit device",
        )
    return prior, getattr(prior.config, "name", None) or prior.kind


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:<current>`` are the same device."""
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device()
    return (current if a.index is None else a.index) == (current if b.index is None else b.index)


def _resolve(device: str) -> torch.device:
    from mrirecon.distributed import resolve_device

    require(isinstance(device, (str, torch.device)), f"device must be a string like 'cpu' or 'cuda', got {device!r}")
    return resolve_device(str(device))


def _classical(name, y, m, maps, info, timings, t_start, like_numpy, out_device, lam, iters, device) -> ReconResult:
    """zero-filled / SENSE-CG / L1-wavelet through :mod:`mrirecon.recon.classical`."""
    from mrirecon.recon import classical

    kwargs = {}
    if name != "zero-filled":
        if lam is not None:
            kwargs["lam"] = float(lam)
        if iters is not None:
            kwargs["iters"] = _positive_int(iters, "iters")
    fn = {"zero-filled": classical.zero_filled, "sense": classical.sense_cg, "l1-wavelet": classical.l1_wavelet}[name]
    if name != "l1-wavelet" and device is not None:  # SigPy's L1-wavelet runs on the CPU
        kwargs["device"] = str(_resolve(device))
    tic = time.perf_counter()
    mask_arg = m.numpy() if m.shape[0] > 1 else m[0].numpy()
    image = fn(y.numpy(), mask_arg, maps.numpy(), **kwargs)
    timings["recon"] = time.perf_counter() - tic
    timings["total"] = time.perf_counter() - t_start
    image = torch.as_tensor(np.asarray(image)).to(torch.complex64)
    info.update(method=name, prior=None, timings=timings, **{k: v for k, v in kwargs.items() if k != "device"})
    return ReconResult(
        image=_to_output(image, like_numpy, out_device),
        info=info,
        maps=_to_output(maps, like_numpy, out_device),
    )


def reconstruct_file(
    path: str | os.PathLike,
    mask=None,
    *,
    slices=None,
    **kwargs,
) -> ReconResult:
    """Reconstruct a fastMRI HDF5 scan (multi-coil or single-coil).

    The readout oversampling is removed first, in the image domain: every coil image is
    centre-cropped to the header's reconstruction size along the readout (640 -> 320 for
    brain), then transformed back; the phase-encode axis keeps its size (cropping it would
    change the sampling pattern), so compare with the reference after a centre crop to its
    width (as fastMRI's evaluation does).

    Parameters
    ----------
    path : str or PathLike
        The ``.h5`` file.
    mask : array or Mask, optional
        Retrospective mask for the *cropped* k-space (S, C, H_crop, W) (line masks (W,) or
        (H, W) with identical rows also fit the uncropped readout). Default: the file's own
        ``mask`` dataset (fastMRI test/challenge files, already undersampled).
    slices : int, sequence of int or slice, optional
        Slices to reconstruct (all by default); slice 0 of the selection is "slice 0" for
        ``first_slice``.
    **kwargs
        Passed to :func:`reconstruct`.

    Returns
    -------
    ReconResult
        As :func:`reconstruct` (numpy arrays), with ``reference`` (S, H_r, W_r) float32 when the
        file has one and ``info["file"]``, ``info["slices"]``.
    """
    from mrirecon.data.fastmri import open_scan

    scan = open_scan(path)
    with scan:
        kspace = scan.load_kspace(slices)
        reference = scan.load_reference(slices)
        h_crop = scan.recon_size[0]
    n = scan.num_slices
    if slices is None or isinstance(slices, slice):
        indices = list(range(n))[slices or slice(None)]
    else:
        indices = [int(i) % n for i in np.atleast_1d(slices)]
    S, C, H, W = kspace.shape
    if h_crop < H:
        kspace = fft2c(center_crop(ifft2c(kspace), (h_crop, W))).astype(np.complex64)
    if mask is None:
        require(
            scan.mask is not None,
            f"{path}: no mask given and the file has no 'mask' dataset; pass mask= (e.g. mrirecon.make_mask(...))",
        )
        mask = scan.mask
    else:
        mask = _fit_line_mask(mask, (kspace.shape[-2], W), path)
    result = reconstruct(kspace, mask, **kwargs)
    result.reference = reference
    result.info["file"] = str(Path(path))
    result.info["slices"] = indices
    result.info["readout_crop"] = [H, int(kspace.shape[-2])]
    return result


def _fit_line_mask(mask, shape: tuple[int, int], path) -> Any:
    """A line mask drawn for the uncropped readout (identical rows) is cut to the cropped one."""
    m = mask.mask if hasattr(mask, "mask") and not isinstance(mask, (np.ndarray, torch.Tensor)) else mask
    if isinstance(m, (np.ndarray, torch.Tensor)) and m.ndim >= 2 and m.shape[-2] not in (1, shape[0]):
        arr = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
        require(
            bool(np.all(arr == arr[..., :1, :])),
            f"{path}: mask has {arr.shape[-2]} readout rows but the cropped k-space has {shape[0]}; "
            "only line masks (identical rows) can be cut to size",
        )
        return np.ascontiguousarray(arr[..., : shape[0], :])
    return m
