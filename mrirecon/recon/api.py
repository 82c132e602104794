"""``reconstruct``: multi-coil k-space -> image, with a diffusion prior or a classical method.

A k-space array goes through four stages:

1. **prepare** (:func:`_prepare`): ``kspace`` (S, C, H, W) complex and ``mask`` (broadcastable,
   0/1) are checked; the measurement is ``y = mask · kspace``; coil maps are estimated from
   the calibration region (:func:`mrirecon.physics.coils.calibrate`, ``sens="auto"``), read
   from a file, or given; the operator ``A = M F S`` is built
   (:class:`~mrirecon.physics.operators.SenseOp`). Classical methods stop after it
   (:mod:`mrirecon.recon.classical`).
2. **intensity** (:mod:`mrirecon.recon.intensity`): the factor taking ``y`` into the prior's
   [-1, 1] range.
3. **sample** (:class:`~mrirecon.recon.sampler.PosteriorSampler`): sequential (AID) priors slice
   after slice, single-image priors all slices at once; ``n_samples`` posterior samples per
   slice in one batch. Where the maps vanish (ESPIRiT's support), the data say nothing:
   the prior's estimate is kept at zero there (``support=True``), as the training images'
   background is. Finished slices can be kept in a checkpoint (resume after Ctrl-C).
4. **summarise**: the posterior mean, the pixel-wise standard deviation
   ``sqrt(Σ_j |x_j - x̄|² / (N-1))`` (N > 1) and, on request, the samples,
   in the input's intensity scale, with ``info`` (how it was made).

The AID reference estimated maps from *fully sampled* data (``scripts/fastmri_recon.py`` of github.com/mrirecon/aid); to
reproduce that, pass ``sens=estimate_sens(kspace_full, mask=None)``.

Sizes: the networks are fully convolutional, so any matrix size works (sizes that are not a
multiple of the network's downsampling factor are zero-padded on the network grid). The prior
knows anatomy at the pixel sizes it was trained at (``prior.config.pixel_size_mm``); give the
scan's ``pixel_size_mm`` (``reconstruct_file`` reads it from the header) and a mismatch of
more than 1.5x is reported in ``info["warnings"]``. Magnitude priors (1 channel) are refused:
the data carry phase that such a prior cannot model.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrirecon.errors import MrireconError, require
from mrirecon.physics.operators import SenseOp, sense_operator
from mrirecon.recon.methods import CLASSICAL_METHODS
from mrirecon.recon.prepare import Prepared, check_pixel_size, note_warning, prepare
from mrirecon.recon.settings import DEFAULTS, ReconSettings

__all__ = ["CLASSICAL_METHODS", "ReconResult", "ReconSettings", "reconstruct", "reconstruct_file", "reconstruct_sweep"]

@dataclass
class ReconResult:
    """What :func:`reconstruct` returns.

    Arrays are numpy when the input k-space was numpy, else torch tensors on its device.

    Attributes
    ----------
    image : (S, H, W) complex64
        The reconstruction (posterior mean over ``n_samples``), input intensity scale.
    std : (S, H, W) float32 or None
        Pixel-wise posterior standard deviation (diffusion priors with ``n_samples > 1``).
    samples : (n_samples, S, H, W) complex64 or None
        The posterior samples (``return_samples=True``).
    info : dict
        How it was made: ``method``, ``prior``, ``steps``, ``update``, ``first_slice``,
        ``given_slices`` (slices copied from fully sampled data: excluded from metrics),
        ``acceleration`` (achieved, H·W / samples), ``sens`` (maps and how they were
        estimated), ``intensity_factor``, ``timings`` (seconds), ``network_evals``,
        ``warnings``, ...
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
# public


def reconstruct(
    kspace,
    mask,
    prior="default",
    *,
    method: str | None = None,
    settings: ReconSettings | None = None,
    sens="auto",
    sens_options: dict | None = None,
    steps: int = DEFAULTS.steps,
    n_samples: int = DEFAULTS.n_samples,
    seed: int = DEFAULTS.seed,
    device: str | None = None,
    update: str = DEFAULTS.update,
    eta: float = DEFAULTS.eta,
    dc_steps: int = DEFAULTS.dc_steps,
    dc_step_size: float = DEFAULTS.dc_step_size,
    dc: str = DEFAULTS.dc,
    scale: float | None = DEFAULTS.scale,
    intensity: str = DEFAULTS.intensity,
    attention: str = DEFAULTS.attention,
    first_slice: str = DEFAULTS.first_slice,
    twin=None,
    temperature: float = DEFAULTS.temperature,
    precision: str | None = DEFAULTS.precision,
    batch_size: int | None = DEFAULTS.batch_size,
    support: bool = DEFAULTS.support,
    spacing: str = DEFAULTS.spacing,
    schedule: str = DEFAULTS.schedule,
    lag: int | None = DEFAULTS.lag,
    pixel_size_mm: float | tuple[float, float] | None = None,
    return_samples: bool = False,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    lam: float | None = DEFAULTS.lam,
    iters: int | None = DEFAULTS.iters,
    normalize: str | None = None,
) -> ReconResult:
    """Reconstruct undersampled multi-coil k-space.

    Parameters
    ----------
    kspace : array (S, C, H, W) complex
        Multi-coil k-space (numpy or torch), H = readout, W = phase encode, readout
        oversampling removed (:func:`mrirecon.data.crop_readout`). Fully sampled or already
        undersampled: the mask is applied (``y = mask · kspace``).
    mask : array or Mask
        0/1 sampling mask broadcastable to ``kspace`` and equal across coils: (W,), (H, W),
        (S, 1, H, W), ... or a :class:`mrirecon.physics.masks.Mask`.
    prior : str or Prior
        The diffusion prior: a registry name (``"default"``, ``"default-unet"``; see ``mrirecon
        priors``), ``CONFIG.yaml:WEIGHTS.pt``, a checkpoint path or a
        :func:`mrirecon.prior.load_prior` result (every spelling :func:`~mrirecon.prior.load_prior` takes).
        Classical method names here still work, with a ``DeprecationWarning``: use ``method=``.
    method : {"zero-filled", "sense", "l1-wavelet"}, optional
        Run a classical method instead of the diffusion prior (:mod:`mrirecon.recon.classical`).
    settings : ReconSettings, optional
        All the options below at once (one validated, frozen object; ``evaluate`` and the CLI
        build one). Keyword options that differ from their defaults override its fields.
    sens : str, path or array
        Coil sensitivities: a method of :func:`mrirecon.physics.coils.calibrate` (``"auto"``:
        ESPIRiT adapted to the calibration region, JSENSE for tiny regions; ``"espirit"``,
        ``"direct"``, ``"jsense"``, ``"espirit-sigpy"``), a maps file (``.h5`` from ``mrirecon
        sens``, ``.npy``, BART ``.cfl``), or an array (S, C, H, W) / (C, H, W) complex.
    sens_options : dict, optional
        ``calib``, ``kernel``, ``threshold``, ``crop`` of the estimator.
    steps : int
        Diffusion steps (network evaluations) per slice, ``1..1000``; timesteps
        ``floor(i·1000/steps)`` as in the reference (1000, 250, 100, 50, ...).
    n_samples : int
        Posterior samples per slice (one batch); ``image`` is their mean.
    seed : int
        Seeds every random draw; on CPU equal arguments give bit-identical results.
    device : str, optional
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``; default: the
        prior's device for a loaded prior, else ``"auto"``.
    update : {"reference", "ddim"}
        ``reference``: x̂0 -> DC -> re-noise with fresh noise (the AID reference's ``ddim_diffusion``);
        ``ddim``: DDIM with parameter ``eta`` on the data-consistent x̂0.
    eta : float
        DDIM η ∈ [0, 1] (0: deterministic given the initial noise).
    dc_steps : int
        K >= 1 data-consistency iterations on ½‖Ax - y‖² per diffusion step (default 8).
    dc_step_size : float
        η of the gradient steps (``dc="gradient"``); must satisfy ``η · max Σ_c |S_c|² < 2``.
    dc : {"cg", "gradient"}
        ``cg`` (default): K conjugate-gradient iterations on ``AᴴA x = Aᴴy`` from x̂0 (as the
        decomposed diffusion sampler); ``gradient``: the reference's gradient steps.
    scale : float, optional
        Intensity: None = automatic; else ``c = scale / max|Aᴴy|`` (the reference's ``--scale``).
    intensity : {"volume", "slice"}
        Whether the intensity factor is one for the volume (like training) or per slice.
    attention : {"reference", "full"}
        AID window semantics (:mod:`mrirecon.recon.sampler`).
    first_slice : {"auto", "cold", "given", "twin"}
        Slice 0 of an AID prior: a cold start (a zero context frame), given fully sampled (the
        paper's protocol; slice 0 of ``kspace`` must be fully sampled; it is listed in
        ``info["given_slices"]`` and excluded from metrics), reconstructed by the prior's
        single-image twin (``twin``), or ``auto``: the twin when one is known, else cold.
    twin : str or Prior, optional
        The single-image prior for ``first_slice="twin"`` (default: ``prior.twin``, e.g.
        ``default-unet`` for ``default``; the official ``normal_<name>`` file beside ``<name>``).
    temperature : float
        τ scaling the noise injected at each step.
    precision : {"fp32", "bf16", "tf32"}, optional
        Network precision: bf16 autocast (CUDA or CPU), TF32 matmuls (CUDA); the update maths
        stay fp32. Default: fp32 for a registry name, the prior's own for a loaded prior.
    batch_size : int, optional
        Most images per network call for single-image priors (default: all slices × samples).
    support : bool
        Keep the diffusion estimate at zero where the coil maps vanish (the data cannot
        constrain it there).
    spacing : {"skip", "even", "quad"}
        How the ``steps`` timesteps spread over the 1000 of training: ``skip`` (the reference's
        ``floor(i·1000/steps)``), ``even``, or ``quad`` (DDIM's quadratic: more steps near the
        clean image).
    schedule : {"sequential", "pipelined"}
        AID priors: finish each slice before the next, or run a wavefront of slices, ``lag``
        steps apart, in one batched network call per step (:class:`PosteriorSampler`).
    lag : int, optional
        Steps between consecutive slices' starts with ``schedule="pipelined"`` (default: a
        quarter of ``steps``).
    pixel_size_mm : float or (float, float), optional
        The scan's pixel size; compared with the prior's training pixel sizes.
    return_samples : bool
        Also return the individual posterior samples.
    callback : callable, optional
        ``callback(slice_idx, step_idx, x0_hat)`` after each step's data consistency;
        ``x0_hat`` (n_samples, H, W) complex torch tensor on the device, input intensity scale.
    progress : bool
        A rich progress bar over every step of the volume, with ETA (stderr).
    checkpoint : path, optional
        Diffusion priors: an ``.h5`` file that keeps the finished slices (rewritten atomically
        after each one). If it exists, the run resumes after its last slice, with a result
        equal to an uninterrupted run; it must come from the same data, prior and settings
        (else an error names what differs). Deleted when the reconstruction completes.
    normalize : str, optional
        Deprecated name of ``intensity`` (``normalize`` is the metrics' intensity fit).
    lam, iters : float, int, optional
        ``sense``: Tikhonov weight (relative to AᴴA); ``l1-wavelet``: weight relative to
        ``max|Aᴴy|``. Default: :data:`mrirecon.recon.classical.DEFAULT_LAMBDA` (chosen on tuning
        scans, within 0.5 dB of the best there); iterations 50 / 100.

    Returns
    -------
    ReconResult

    Raises
    ------
    MrireconError
        On bad input (one line naming the argument and what was expected).
    """
    t_start = time.perf_counter()
    if normalize is not None:
        import warnings

        warnings.warn("reconstruct(normalize=...) is deprecated: use intensity=...", DeprecationWarning, stacklevel=2)
        intensity = normalize
    options = dict(
        steps=steps, n_samples=n_samples, seed=int(seed) if isinstance(seed, np.integer) else seed,
        update=update, eta=eta, temperature=temperature, dc=dc, dc_steps=dc_steps, dc_step_size=dc_step_size,
        scale=scale, intensity=intensity, attention=attention, first_slice=first_slice, precision=precision,
        batch_size=batch_size, support=support, spacing=spacing, schedule=schedule, lag=lag, lam=lam, iters=iters,
    )  # fmt: skip
    settings = ReconSettings.build(settings, **options)
    method, prior = _method(method, prior)
    require(callback is None or callable(callback), f"callback must be callable, got {type(callback).__name__}")
    if checkpoint is not None:
        from mrirecon.files import check_output

        check_output(checkpoint, "checkpoint")  # before any work: a writable place, not a folder
    like_numpy = isinstance(kspace, np.ndarray)
    out_device = kspace.device if isinstance(kspace, torch.Tensor) else torch.device("cpu")
    classical = method is not None
    prior_obj = prior_name = None
    load_s = 0.0
    if classical:
        from mrirecon.devices import resolve_device

        device = str(resolve_device(device or "auto"))
    else:
        settings.require_data_consistency()
        tic = time.perf_counter()
        prior_obj, prior_name = _diffusion_prior(prior, device, settings.precision)
        load_s = time.perf_counter() - tic
        device = str(prior_obj.device)
    prep = prepare(kspace, mask, sens, sens_options, settings, device)
    prep.info.update(n_samples=settings.n_samples, seed=settings.seed)
    if load_s:
        prep.info["timings"]["load_prior"] = load_s
    if classical:
        image = _classical(method, prep, settings, device)
        prep.info["timings"]["total"] = time.perf_counter() - t_start
        return ReconResult(image=_out(image, like_numpy, out_device), info=prep.info, maps=_out(prep.maps, like_numpy, out_device))
    check_pixel_size(prior_obj, pixel_size_mm, prep.info)
    samples = _sample(prior_obj, prior_name, prep, settings, twin, callback, progress, checkpoint)
    return _summarise(samples, prep, settings, return_samples, like_numpy, out_device, t_start)


def reconstruct_sweep(kspace, mask, method: str, lams, *, sens="auto", sens_options: dict | None = None,
                      settings: ReconSettings | None = None, device: str | None = None) -> list[ReconResult]:
    """A classical method at each λ of ``lams``, the data prepared once (checks, device, coil maps).

    What an oracle λ sweep (``mrirecon evaluate --methods l1-wavelet-tuned``) and a λ study need:
    :func:`reconstruct` per λ would re-check the data and re-estimate the maps every time.

    Parameters
    ----------
    kspace, mask, sens, sens_options, device
        As :func:`reconstruct`.
    method : {"sense", "l1-wavelet"}
    lams : sequence of float
        λ values (relative, as ``reconstruct``'s ``lam``).
    settings : ReconSettings, optional
        Other options (``iters``); its ``lam`` is replaced by each of ``lams``.

    Returns
    -------
    list of ReconResult, one per λ, in order (each with its own ``info``; the maps are shared).
    """
    from mrirecon.devices import resolve_device

    require(method in ("sense", "l1-wavelet"), f"reconstruct_sweep sweeps 'sense' or 'l1-wavelet', got {method!r}")
    lams = [float(v) for v in lams]
    require(lams and all(v > 0 for v in lams), f"lams must be numbers > 0, got {lams!r}")
    settings = settings or ReconSettings()
    like_numpy = isinstance(kspace, np.ndarray)
    out_device = kspace.device if isinstance(kspace, torch.Tensor) else torch.device("cpu")
    device = str(resolve_device(device or "auto"))
    prep = prepare(kspace, mask, sens, sens_options, settings, device)
    maps = _out(prep.maps, like_numpy, out_device)
    results = []
    for lam in lams:
        one = replace(prep, info=copy.deepcopy(prep.info))
        image = _classical(method, one, replace(settings, lam=lam), device)
        results.append(ReconResult(image=_out(image, like_numpy, out_device), info=one.info, maps=maps))
    return results


def _method(method, prior) -> tuple[str | None, Any]:
    """(classical method or None, diffusion prior); the old ``prior="sense"`` spelling still works, with a warning."""
    if method is not None:
        require(method in CLASSICAL_METHODS, f"method must be one of {CLASSICAL_METHODS} (or None for a diffusion prior), got {method!r}")
        return method, None
    if isinstance(prior, str) and prior in CLASSICAL_METHODS:
        import warnings

        warnings.warn(f"reconstruct(..., prior={prior!r}) is deprecated: use method={prior!r}", DeprecationWarning, stacklevel=3)
        return prior, None
    return None, prior


def _out(x: torch.Tensor | None, like_numpy: bool, device: torch.device):
    if x is None:
        return None
    return x.cpu().numpy() if like_numpy else x.to(device)


def _classical(name: str, prep: Prepared, settings: ReconSettings, device) -> torch.Tensor:
    """zero-filled / CG-SENSE / L1-wavelet (:mod:`mrirecon.recon.classical`) on the prepared data."""
    from mrirecon.devices import resolve_device
    from mrirecon.recon import classical

    dev = resolve_device(device)
    m = prep.mask[:, None].to(dev)
    A = sense_operator(prep.maps.to(dev), m)  # two sets of maps: soft-SENSE
    peak = prep.y.abs().amax().clamp_min(1e-30)
    y = (prep.y / peak).to(dev)  # solved at unit scale: |y|² of data near 1e30 overflows float32 (λ is scale-free)
    tic = time.perf_counter()
    info = prep.info
    info.update(method=name, prior=None, given_slices=[])
    if name == "zero-filled":
        image = classical.zero_filled(A, y)
    else:
        iters = settings.iters or classical.DEFAULT_ITERS[name]
        lam, l2, source = settings.lam, 0.0, "given"
        if lam is None:
            chosen = classical.holdout_lambda(name, A.maps, y, prep.mask[0].cpu().numpy(), iters)
            lam, l2 = chosen["lam"], chosen["l2"] or 0.0
            source = "holdout" if lam is not None else "default (too few lines outside the calibration region to hold out)"
            lam = classical.DEFAULT_LAMBDA[name] if lam is None else lam
            if chosen["errors"]:
                info["lam_holdout_error"] = {k: round(v, 5) for k, v in chosen["errors"].items()}
            if "sparsity_gain" in chosen:  # L1's hold-out gain over CG-SENSE's solution, and its standard error
                info["lam_sparsity_gain"] = chosen["sparsity_gain"]
        image = classical.solve(name, A, y, lam, iters, l2)
        if l2:
            info["lam_l2"] = l2
        if name == "l1-wavelet":
            levels, padded = classical.wavelet_levels(tuple(y.shape[-2:]))
            info.update(wavelet="db4", wavelet_levels=levels, wavelet_grid=list(padded))
        info.update(lam=lam, iters=iters, lam_source=source)
    info["timings"]["recon"] = time.perf_counter() - tic
    if prep.maps.ndim == 5:  # one image per set of maps: their root-sum-of-squares, as BART's `rss`
        image = torch.linalg.vector_norm(image, dim=1)
        info["map_sets"] = int(prep.maps.shape[1])
    return (image * peak).to(torch.complex64)  # on the device; _out moves it where the input was


def _diffusion_prior(prior, device, precision) -> tuple[Any, str]:
    """A registry name (loaded here) or a loaded prior (checked) -> (Prior, name for info)."""
    from mrirecon.devices import resolve_device

    if isinstance(prior, (str, os.PathLike)):
        from mrirecon.prior import load_prior

        p = load_prior(str(prior), device=str(resolve_device(device or "auto")))
        return p.at_precision(precision or "fp32"), str(prior)
    require(
        hasattr(prior, "epsilon") and hasattr(prior, "schedule"),
        f"prior must be a registry name, a weights file or a load_prior() result (classical methods: method=), "
        f"got {type(prior).__name__}",
    )
    if device is not None and device != "auto":
        require(
            _same_device(resolve_device(device), torch.device(prior.device)),
            f"device={device!r} but the given prior is on {prior.device}; load it on that device or omit device",
        )
    return prior, getattr(prior.config, "name", None) or ("aid" if prior.sequential else "unet")


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:<current>`` are the same device."""
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device()
    return (current if a.index is None else a.index) == (current if b.index is None else b.index)


# --------------------------------------------------------------------------------------------
# stages 2 and 3: intensity and sampling


def _first_slice(prior, settings: ReconSettings, twin) -> tuple[str, Any]:
    """The effective first-slice mode and the twin prior to run (or None)."""
    mode = settings.first_slice
    if not prior.sequential:
        return ("given" if mode == "given" else "independent"), None
    spec = twin if twin is not None else prior.twin
    if mode == "auto":
        mode = "twin" if spec is not None else "cold"
    if mode != "twin":
        return mode, None
    require(spec is not None, "first_slice='twin' needs the prior's single-image twin: pass twin=... (a UNet prior)")
    if isinstance(spec, str):
        from mrirecon.prior import load_prior

        spec = load_prior(spec, device=str(prior.device))
    require(
        hasattr(spec, "sequential") and not spec.sequential,
        "twin must be a single-image (UNet) prior",
    )
    return "twin", spec


def _sample(prior, prior_name, prep: Prepared, settings: ReconSettings, twin, callback, progress, checkpoint):
    from mrirecon.physics.coils import map_support
    from mrirecon.recon.intensity import intensity_factor
    from mrirecon.recon.sampler import PosteriorSampler

    info, timings = prep.info, prep.info["timings"]
    S, C, H, W = prep.y.shape
    if prep.maps.ndim == 5:  # the priors model one image per slice: the first set of maps
        prep.maps = prep.maps[:, 0].contiguous()
        note_warning(info, "the diffusion priors use the first of the two sets of ESPIRiT maps (soft-SENSE is for the classical methods)")
    dev = torch.device(prior.device)
    mode, twin_prior = _first_slice(prior, settings, twin)
    maxsens = float((prep.maps.abs() ** 2).sum(1).max())
    require(
        settings.dc == "cg" or settings.dc_step_size * maxsens < 2.0,  # CG picks its own steps
        f"dc_step_size={settings.dc_step_size} with sensitivities whose Σ|S|² reaches {maxsens:.3g} makes the "
        f"data-consistency steps diverge (need dc_step_size · max Σ|S|² < 2)",
    )
    y, maps, m = prep.y.to(dev), prep.maps.to(dev), prep.mask.to(dev)
    op = SenseOp(maps, m[:, None])
    c = intensity_factor(op, y, m, settings.scale, settings.intensity)  # (S,)
    given = None
    if prep.given is not None:
        g = SenseOp(maps[0], torch.ones_like(m[0])).adjoint(prep.given.to(dev))
        c = c.clone()
        c[0] = (1.0 / g.abs().max()) if settings.intensity == "slice" else c[0]
        given = g * c[0]
    support = map_support(maps) if settings.support else None
    info["support_fraction"] = None if support is None else float(support.float().mean())
    if support is not None and bool(support.all()):
        support = None  # maps cover the field of view: nothing to keep at zero

    def scaled(s: int, i: int, x0: torch.Tensor) -> None:
        callback(s, i, x0 / c[s])

    cb = scaled if callback is not None else None
    sampler = PosteriorSampler.from_settings(prior, settings, progress=progress, callback=cb)
    yc = y * c[:, None, None, None]
    resume, ckpt = {}, None
    if checkpoint is not None:
        ckpt, done = _open_checkpoint(checkpoint, prep, settings, sampler, prior, prior_name, twin_prior, mode)
        resume = dict(done=done, on_slices=lambda out, stop: ckpt.save(out[:, :stop]))
        info["resumed_slices"] = 0 if done is None else int(done.shape[1])
        info["checkpoint"] = str(checkpoint)
    tic = time.perf_counter()
    with torch.inference_mode():
        if twin_prior is not None and resume.get("done") is None:
            # slice 0 by the single-image twin; the AID chain continues from it (its samples' windows)
            twin_settings = replace(settings, schedule="sequential", lag=None)  # one slice: nothing to pipeline
            first = PosteriorSampler.from_settings(twin_prior, twin_settings, progress=progress, callback=cb)
            resume["done"] = first.sample_volume(op.select(slice(0, 1)), yc[:1], settings.n_samples, settings.seed,
                                                 support=None if support is None else support[:1])  # fmt: skip
            if ckpt is not None:
                ckpt.save(resume["done"])
        samples = sampler.sample_volume(op, yc, settings.n_samples, settings.seed, given=given, support=support, **resume)
    timings["sampling"] = time.perf_counter() - tic
    if ckpt is not None:
        ckpt.remove()
    info.update(_sampling_info(prior, prior_name, settings, sampler, mode, given, twin_prior, c, (H, W)))
    sampled = S - max(len(info["given_slices"]), info.get("resumed_slices", 0))
    timings["per_slice"] = timings["sampling"] / max(sampled, 1)
    return samples / c[None, :, None, None]


def _sampling_info(prior, prior_name, settings, sampler, mode, given, twin_prior, c, shape) -> dict:
    """What a diffusion reconstruction records in ``info``."""
    H, W = shape
    return dict(
        method="aid" if prior.sequential else "unet",
        prior=prior_name,
        first_slice=mode,
        given_slices=[0] if given is not None else [],
        twin=getattr(getattr(twin_prior, "config", None), "name", None) if twin_prior is not None else None,
        steps=len(sampler.schedule),
        spacing=settings.spacing,
        schedule=sampler.slice_schedule,
        lag=sampler.lag,
        update=settings.update,
        eta=float(settings.eta) if settings.update == "ddim" else None,
        temperature=float(settings.temperature),
        dc_steps=int(settings.dc_steps),
        dc_step_size=float(settings.dc_step_size),
        dc=settings.dc,
        attention=settings.attention if prior.sequential else None,
        seq_length=sampler.seq_length,
        precision=sampler.precision,
        device=str(sampler.device),
        scale=settings.scale,
        intensity=settings.intensity,
        intensity_factor=[float(v) for v in c.cpu()],
        network_grid=list(sampler.grid((H, W))),
        padded=sampler.grid((H, W)) != (H, W),
        network_evals=sampler.network_calls,
        network_images=sampler.network_images,
    )


def _open_checkpoint(path, prep: Prepared, settings, sampler, prior, prior_name, twin_prior, mode):
    from mrirecon.recon.resume import SliceCheckpoint, digest

    fingerprint = settings.fingerprint()
    fingerprint.update(
        shape=list(prep.y.shape), timesteps=[int(t) for t in sampler.schedule.timesteps], first_slice=mode,
        precision=sampler.precision, device=sampler.device.type, sens=prep.info["sens"].get("method"), prior=prior_name,
        batch_size=settings.batch_size if not prior.sequential else None,  # UNet batches change the rounding
        data=digest(prep.y, prep.mask), maps=digest(prep.maps),
        prior_weights=digest(*prior.network.state_dict().values()),
        twin_weights=None if twin_prior is None else digest(*twin_prior.network.state_dict().values()),
    )  # fmt: skip
    ckpt = SliceCheckpoint(path, fingerprint)
    return ckpt, ckpt.load()


# --------------------------------------------------------------------------------------------
# stage 4: summarise


def _summarise(samples, prep: Prepared, settings, return_samples, like_numpy, out_device, t_start) -> ReconResult:
    mean = samples.mean(0)
    std = None
    if settings.n_samples > 1:
        std = samples.std(0, correction=1)
        std = (std.real if std.is_complex() else std).float()
    prep.info["timings"]["total"] = time.perf_counter() - t_start
    return ReconResult(
        image=_out(mean, like_numpy, out_device),
        std=_out(std, like_numpy, out_device),
        samples=_out(samples, like_numpy, out_device) if return_samples else None,
        info=prep.info,
        maps=_out(prep.maps, like_numpy, out_device),
    )


# --------------------------------------------------------------------------------------------
# files


def reconstruct_file(path, mask=None, *, slices=None, **kwargs) -> ReconResult:
    """Reconstruct a fastMRI HDF5 scan (multi-coil or single-coil).

    The file is read through :func:`mrirecon.data.prepare_scan`: readout oversampling removed
    (the header's reconstruction size, 640 -> 320 for brain), the phase-encode axis kept
    (compare with the reference after a centre crop to its size, as fastMRI's evaluation does),
    the scan's pixel size taken from the header.

    Parameters
    ----------
    path : str, PathLike or PreparedScan
        The ``.h5`` file, or the :func:`~mrirecon.data.prepare_scan` result of one (``slices``
        must then be None).
    mask : array, Mask or callable, optional
        Retrospective mask for the *cropped* k-space (S, C, H_crop, W) (line masks (W,) or
        (H, W) with identical rows also fit the uncropped readout), or ``mask(scan) -> Mask``
        (e.g. ``lambda s: s.retrospective_mask("equispaced", 4)``, seeded by the file name).
        Default: the file's own sampling (fastMRI test/challenge files and other undersampled
        data). A mask for an undersampled file is refused.
    slices : list of int, str or None
        Slices to reconstruct (all by default; a ``--slices`` spec such as ``"center:4"``);
        slice 0 of the selection is "slice 0" for ``first_slice``.
    **kwargs
        Passed to :func:`reconstruct` (``method=``, ``settings=``, ...).

    Returns
    -------
    ReconResult
        As :func:`reconstruct` (numpy arrays), with ``reference`` (S, H_r, W_r) float32 when the
        file has one and ``info["file"]``, ``info["slices"]``, ``info["num_slices"]``,
        ``info["recon_size"]``, ``info["mask_source"]``.
    """
    from mrirecon.data.scan import PreparedScan, prepare_scan

    if isinstance(path, PreparedScan):
        require(slices is None, "slices= selects slices of a file; a prepared scan has its own")
        scan = path
    else:
        scan = prepare_scan(path, slices)
    path = scan.path
    if mask is None:
        require(
            scan.acquired_mask is not None,
            f"{path}: the file is fully sampled and no mask was given; pass mask= (e.g. mrirecon.make_mask(...))",
        )
        mask, source = scan.acquired_mask, "acquired"
    else:
        if scan.acquired_mask is not None:
            raise MrireconError(
                f"{path} is already undersampled ({int(scan.acquired_mask.sum())}/{scan.shape[1]} lines); "
                "reconstruct it as acquired (mask=None; on the command line, without --mask/--mask-file)"
            )
        mask = _fit_line_mask(mask(scan) if callable(mask) else mask, scan.shape, path)
        source = "retrospective"
    kwargs.setdefault("pixel_size_mm", scan.pixel_size_mm)
    result = reconstruct(scan.kspace, mask, **kwargs)
    result.reference = scan.reference
    result.info.update(file=str(Path(path)), slices=scan.slices, num_slices=scan.num_slices, readout_crop=list(scan.readout),
                       recon_size=list(scan.recon_size), reference_max=scan.reference_max, mask_source=source)  # fmt: skip
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
