"""Prospective generation of an image sequence from a prior alone (``mrirecon sample``).

Each new frame is sampled with DDIM (η ∈ [0, 1]) conditioned on a sliding window of the
``seq_length`` frames before it, exactly the window bookkeeping of the posterior sampler
(:mod:`mrirecon.recon.sampler`) without data consistency:

* **warm start**: the last ``seq_length`` given frames fill the window; frame ``n`` is
  conditioned on window position ``count - 1``, which holds the frame just before it; once
  full, the window slides (drop the oldest, append the newest).
* **cold start** (no frames given): the first frame is conditioned on a zero frame at position
  0 (the AID network has no unconditional mode); from then on the window holds generated
  frames and frame ``n`` reads the position of frame ``n-1``. The reference's ``sample.py``
  instead writes frame ``i-1`` to position ``i-1`` but reads position ``i``, still zero, so
  every cold-start frame there is conditioned on a zero frame (the reference's ``scripts/sample.py``); the
  reference's MRI code is consistent, and so is this.

x̂0 is clipped to [-1, 1] by default (the training range, as guided-diffusion does when
sampling), and the DDIM direction then uses the ε implied by the clipped x̂0. A UNet prior
generates independent frames.
"""

from __future__ import annotations

import numpy as np
import torch

from mrirecon.errors import positive_int, require
from mrirecon.prior.api import ATTENTION_MODES
from mrirecon.prior.context import SliceWindow
from mrirecon.progress import StepProgress
from mrirecon.recon.sampler import grid_for, slice_generator
from mrirecon.recon.steps import DDIMUpdate, StepSchedule, predict_x0

__all__ = ["generate_sequence"]


def _frames_and_size(prior, warm_start, image_size, dev) -> tuple[torch.Tensor | None, tuple[int, int]]:
    """The checked warm-start frames (T0, C, H, W) on ``dev`` (or None) and the frame size."""
    C = int(prior.in_channels)
    frames0 = None
    if warm_start is not None:
        require(
            isinstance(warm_start, (np.ndarray, torch.Tensor)),
            f"warm_start must be a numpy array or torch tensor, got {type(warm_start).__name__}",
        )
        w = torch.as_tensor(np.asarray(warm_start)) if isinstance(warm_start, np.ndarray) else warm_start.detach()
        require(
            w.ndim == 4 and w.shape[1] == C and w.shape[0] >= 1 and not w.is_complex(),
            f"warm_start must be real frames (T0, {C}, H, W) in [-1, 1], got shape {tuple(w.shape)}",
        )
        require(bool(torch.isfinite(w).all()), "warm_start contains NaN or Inf values")
        frames0 = w.to(dev, torch.float32)
        H, W = int(w.shape[-2]), int(w.shape[-1])
    else:
        size = prior.image_size if image_size is None else image_size
        H, W = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    mult = int(prior.config.downsampling)
    require(
        grid_for((H, W), mult) == (H, W) and H > 0 and W > 0,
        f"frame size ({H}, {W}) must be a positive multiple of the network's downsampling factor {mult}",
    )
    return frames0, (H, W)


def generate_sequence(
    prior,
    n_frames: int,
    *,
    warm_start=None,
    steps: int = 50,
    eta: float = 0.0,
    seed: int = 0,
    attention: str = "reference",
    device: str | None = None,
    temperature: float = 1.0,
    clip: bool = True,
    image_size: int | tuple[int, int] | None = None,
    precision: str | None = None,
    progress: bool = False,
):
    """Generate ``n_frames`` consecutive frames (slices) with the prior.

    Parameters
    ----------
    prior : Prior
        An AID prior (``kind="aid"``; a UNet prior gives independent frames).
    n_frames : int
        Frames to generate (the warm-start frames are not included in the output).
    warm_start : array (T0, C, H, W) float, optional
        Known frames in the prior's range [-1, 1], oldest first (numpy or torch); None =
        cold start.
    steps, eta : int, float
        DDIM steps per frame (timesteps ``floor(i·1000/steps)``) and η ∈ [0, 1] (0: deterministic).
    seed : int
        Frame ``n`` draws from a generator seeded from ``(seed, n)``.
    attention : {"reference", "full"}
        Window semantics (previous frame only, or the causal prefix).
    device : str, optional
        Must match the prior's device (default: the prior's).
    temperature, clip : float, bool
        τ on the injected noise (η > 0); clip x̂0 to [-1, 1] at every step.
    image_size : int or (H, W), optional
        Frame size for a cold start (default: the prior's ``image_size``); with a warm start
        the frames' size is used.
    precision : {"fp32", "bf16", "tf32"}, optional
        Network precision (default: the prior's own).
    progress : bool
        Rich progress bars.

    Returns
    -------
    frames : (n_frames, C, H, W) float32
        numpy when ``warm_start`` is numpy, else a torch tensor on the CPU.
    """
    require(hasattr(prior, "epsilon"), f"prior must be a loaded AID or UNet prior, got {type(prior).__name__}")
    n_frames = positive_int(n_frames, "n_frames")
    require(attention in ATTENTION_MODES, f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
    dev = torch.device(prior.device)
    if device is not None:
        require(torch.device(device) == dev, f"device={device!r} but the prior is on {dev}")
    C = int(prior.in_channels)
    like_numpy = isinstance(warm_start, np.ndarray)

    frames0, (H, W) = _frames_and_size(prior, warm_start, image_size, dev)

    sched = StepSchedule.from_alphas_cumprod(np.asarray(prior.schedule.alphas_cumprod, np.float64), prior.schedule.respace(steps))
    rule = DDIMUpdate(eta, temperature)
    prior = prior if precision is None else prior.at_precision(precision)
    window = _window(prior, frames0, (C, H, W), dev)

    out = torch.empty((n_frames, C, H, W), dtype=torch.float32, device=dev)
    label = f"generate ({'AID' if prior.sequential else 'UNet'})"
    with torch.inference_mode(), StepProgress(progress, n_frames * len(sched), label) as bar:
        for n in range(n_frames):
            bar.describe(f"frame {n + 1}/{n_frames}")
            g = slice_generator(seed, n, dev)
            x = _denoise_frame(prior, sched, rule, torch.randn((1, C, H, W), generator=g, device=dev), window, attention,
                               clip, g, bar)  # fmt: skip
            out[n] = x[0]
            if window is not None:
                window.push(x[0])
    out = out.cpu()
    return out.numpy() if like_numpy else out


def _window(prior, frames0, frame_shape, dev) -> SliceWindow | None:
    """The context window of a sequential prior, holding the last warm-start frames; None for a UNet."""
    if not prior.sequential:
        return None
    window = SliceWindow(1, int(prior.seq_length), frame_shape, dev)
    for f in () if frames0 is None else frames0[-window.length :]:
        window.push(f)
    return window


def _denoise_frame(prior, sched, rule, x, window, attention, clip, g, bar) -> torch.Tensor:
    """One frame's reverse chain from ``x = x_T`` (1, C, H, W): DDIM, x̂0 clipped to [-1, 1] if ``clip``."""
    for i in range(len(sched)):
        a, an = float(sched.abar[i]), float(sched.abar_next[i])
        t = torch.full((1,), int(sched.timesteps[i]), dtype=torch.long, device=x.device)
        eps = prior.epsilon(x, t, window, attention=attention).float()
        x0 = predict_x0(x, eps, a)
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - a**0.5 * x0) / (1.0 - a) ** 0.5
        noise = torch.randn(x.shape, generator=g, device=x.device) if rule.needs_noise(a, an) else None
        x = rule(x, eps, x0, a, an, noise)
        bar.advance()
    return x
