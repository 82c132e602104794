"""Training objectives of the AID Causal-UNet and the plain UNet ("Guide") prior.

The objective is the guided-diffusion *hybrid* loss used by the AID reference
(the reference's ``GaussianDiffusion.training_losses_temporal``): for clean data ``x0``, one timestep ``t`` per sequence and
``x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε``,

    L = mean ‖ε − ε̂(x_t, t)‖²  +  L_vlb,

where, when the network also predicts the variance interpolation ``v ∈ [−1, 1]``
(``learn_sigma``, guided-diffusion's LEARNED_RANGE), the variational term is

    L_vlb = KL( q(x_{t−1} | x0, x_t) ‖ p(x_{t−1} | x_t) ) / ln 2          for t > 0,
    L_vlb = −log p(x0 | x_1) / ln 2 (discretised Gaussian decoder)        for t = 0,

with ``p``'s mean computed from a **detached** ε̂ (so the VLB only trains ``v``, the MSE only
trains ε̂) and log-variance ``log σ² = f·log β_t + (1−f)·log β̃_t``, ``f = (v + 1)/2``.
Both terms are averaged over every element of a sequence (T·C·H·W), then over the batch.

For the Causal-UNet the network sees the clean frames 0..T−1 and the noisy targets 1..T and
predicts every target at once (teacher forcing); output position ``n`` is frame ``n+1`` given
clean frames ``0..n``. The plain UNet gets single slices of the same data.

All schedule quantities (q_sample, the posterior q(x_{t−1} | x_t, x0), the learned-range
variance) come from :class:`~mrirecon.prior.DiffusionSchedule`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mrirecon.prior.schedule import DiffusionSchedule

__all__ = [
    "LossTerms",
    "causal_loss",
    "denoising_error",
    "discretised_gaussian_log_likelihood",
    "gaussian_kl",
    "hybrid_loss",
    "unet_loss",
    "vlb_terms",
]

_LN2 = math.log(2.0)


@dataclass
class LossTerms:
    """Per-example loss terms, each ``(B,)``; ``loss = mse + vb`` (``vb`` is 0 without learned σ)."""

    loss: Tensor
    mse: Tensor
    vb: Tensor


def gaussian_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """Elementwise KL( N(mean1, e^logvar1) ‖ N(mean2, e^logvar2) ) in nats."""
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def discretised_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor, bins: int = 256) -> Tensor:
    """Elementwise log-probability (nats) of data ``x ∈ [−1, 1]`` quantised to ``bins`` levels.

    Each value owns the bin ``[x − 1/(bins−1), x + 1/(bins−1)]`` of N(mean, e^{2·log_scale}); the
    outermost bins extend to ±∞ (DDPM's decoder ``p(x0 | x1)``).
    """
    half = 1.0 / (bins - 1)
    inv_std = torch.exp(-log_scale)
    upper = torch.special.ndtr((x - mean + half) * inv_std)
    lower = torch.special.ndtr((x - mean - half) * inv_std)
    tiny = 1e-12
    log_upper = torch.log(upper.clamp(min=tiny))  # P(X <= x + half): left-most bin
    log_one_minus_lower = torch.log((1.0 - lower).clamp(min=tiny))  # right-most bin
    log_delta = torch.log((upper - lower).clamp(min=tiny))
    edge = 1.0 - half
    return torch.where(x < -edge, log_upper, torch.where(x > edge, log_one_minus_lower, log_delta))


def vlb_terms(schedule: DiffusionSchedule, x_start: Tensor, x_t: Tensor, t: Tensor, eps: Tensor, v: Tensor) -> Tensor:
    """Elementwise variational bound (bits) of one reverse step, with learned-range variance.

    Parameters
    ----------
    schedule : DiffusionSchedule
    x_start, x_t : Tensor (B, ...)
        Clean data and its noised version at ``t``.
    t : Tensor (B,) int
    eps : Tensor (B, ...)
        Predicted noise; callers pass it detached so only ``v`` learns from this term.
    v : Tensor (B, ...)
        Variance interpolation in [−1, 1].

    Returns
    -------
    Tensor (B, ...)
        KL(q ‖ p) / ln 2 for t > 0 and the decoder NLL / ln 2 for t = 0.
    """
    true_mean, _, true_logvar = schedule.q_posterior_mean_variance(x_start, x_t, t)
    model_mean, _, _ = schedule.q_posterior_mean_variance(schedule.predict_x0(x_t, t, eps), x_t, t)
    model_logvar = schedule.learned_range_log_variance(v, t)
    kl = gaussian_kl(true_mean, true_logvar.expand_as(true_mean), model_mean, model_logvar) / _LN2
    nll = -discretised_gaussian_log_likelihood(x_start, model_mean, 0.5 * model_logvar) / _LN2
    first = (t == 0).reshape(t.shape[0], *([1] * (x_t.ndim - 1)))
    return torch.where(first, nll, kl)


def _mean_per_example(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).mean(dim=1)


def hybrid_loss(
    schedule: DiffusionSchedule,
    output: Tensor,
    x_start: Tensor,
    x_t: Tensor,
    noise: Tensor,
    t: Tensor,
    learn_sigma: bool,
) -> LossTerms:
    """ε-MSE (+ VLB on the variance head) per example.

    Parameters
    ----------
    output : Tensor (B, ..., 2C | C, H, W)
        Network output with channels on dim ``-3``: ``[ε̂, v]`` (learn_sigma) or ``ε̂``.
    x_start, x_t, noise : Tensor (B, ..., C, H, W)
    t : Tensor (B,)
    learn_sigma : bool
    """
    output = output.float()
    c = x_start.shape[-3]
    if learn_sigma:
        eps_hat, v = output.split(c, dim=-3)
    else:
        eps_hat, v = output, None
    mse = _mean_per_example((noise - eps_hat) ** 2)
    if v is None:
        return LossTerms(loss=mse, mse=mse, vb=torch.zeros_like(mse))
    vb = _mean_per_example(vlb_terms(schedule, x_start, x_t, t, eps_hat.detach(), v))
    return LossTerms(loss=mse + vb, mse=mse, vb=vb)


def causal_loss(
    network: torch.nn.Module,
    schedule: DiffusionSchedule,
    windows: Tensor,
    learn_sigma: bool,
    generator: torch.Generator | None = None,
    autocast: torch.autocast | None = None,
    cond_noise: float = 0.0,
    cold_start: float = 0.0,
) -> LossTerms:
    """Teacher-forced AID loss on windows of ``T+1`` consecutive slices.

    Teacher forcing conditions every target on *clean* earlier slices, while a reconstruction
    conditions on *reconstructed* ones, whose errors then carry from slice to slice, and its
    first slice on a zero frame the reference never trains. ``cond_noise`` and ``cold_start``
    train both cases (0 for both is the reference's objective).

    Parameters
    ----------
    network : CausalUNet
        ``forward(cond (B,T,C,H,W), noisy (B,T,C,H,W), t (B,)) -> (B,T,2C|C,H,W)``.
    schedule : DiffusionSchedule
    windows : Tensor (B, T+1, C, H, W)
        Clean slices; frames ``0..T−1`` condition, frames ``1..T`` are the noised targets.
    learn_sigma : bool
    generator : torch.Generator, optional
        Draws ``t ~ U{0..N−1}`` (one per sequence) and ε, on the generator's device.
    autocast : torch.autocast, optional
        Mixed-precision context for the forward pass (bf16 on GPU).
    cond_noise : float
        Each sequence's conditioning frames get Gaussian noise of std ``U(0, cond_noise)``
        (a stand-in for reconstruction errors; images lie in [-1, 1]).
    cold_start : float
        Probability that a sequence's first conditioning frame is zeroed, as in a cold-start
        reconstruction of the first slice.

    Returns
    -------
    LossTerms
        Each ``(B,)``, averaged over the T target frames.
    """
    cond, target = windows[:, :-1], windows[:, 1:]
    t, noise = _draw(schedule, target, generator)
    if cond_noise > 0 or cold_start > 0:
        cond = _degrade(cond, cond_noise, cold_start, generator)
    x_t = schedule.q_sample(target, t, noise)
    with autocast if autocast is not None else contextlib.nullcontext():
        out = network(cond, x_t, t)
    return hybrid_loss(schedule, out, target, x_t, noise, t, learn_sigma)


def unet_loss(
    network: torch.nn.Module,
    schedule: DiffusionSchedule,
    images: Tensor,
    learn_sigma: bool,
    generator: torch.Generator | None = None,
    autocast: torch.autocast | None = None,
) -> LossTerms:
    """Single-slice loss of the plain UNet.

    Parameters
    ----------
    network : UNet
        ``forward(x (B,C,H,W), t (B,)) -> (B,2C|C,H,W)``.
    images : Tensor (B, C, H, W)
    """
    t, noise = _draw(schedule, images, generator)
    x_t = schedule.q_sample(images, t, noise)
    with autocast if autocast is not None else contextlib.nullcontext():
        out = network(x_t, t)
    return hybrid_loss(schedule, out, images, x_t, noise, t, learn_sigma)


def _degrade(cond: Tensor, noise_std: float, zero_prob: float, generator: torch.Generator | None) -> Tensor:
    """Conditioning frames (B, T, C, H, W) with per-sequence noise and zeroed first frames."""
    dev = generator.device if generator is not None else cond.device
    b = cond.shape[0]
    sigma = noise_std * torch.rand(b, generator=generator, device=dev)
    noise = torch.randn(cond.shape, generator=generator, device=dev, dtype=cond.dtype)
    keep = (torch.rand(b, generator=generator, device=dev) >= zero_prob).to(cond.dtype)
    out = cond + sigma.to(cond)[:, None, None, None, None] * noise.to(cond.device)
    first = out[:, :1] * keep.to(cond.device)[:, None, None, None, None]
    return torch.cat([first, out[:, 1:]], dim=1)


def _draw(schedule: DiffusionSchedule, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """One uniform timestep per example and standard-normal noise like ``x``."""
    dev = generator.device if generator is not None else x.device
    t = torch.randint(0, schedule.num_steps, (x.shape[0],), generator=generator, device=dev)
    noise = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
    return t.to(x.device), noise.to(x.device)


@torch.no_grad()
def denoising_error(
    network: torch.nn.Module,
    schedule: DiffusionSchedule,
    windows: Tensor,
    timesteps: list[int],
    causal: bool,
    seed: int = 0,
    batch_size: int = 8,
) -> dict[int, dict[str, float]]:
    """Held-out one-step denoising error of a prior at fixed timesteps.

    Every target frame ``windows[:, 1:]`` is noised at ``t`` with the same seeded noise for
    both kinds of prior; the Causal-UNet also sees the clean earlier frames (teacher forcing),
    the plain UNet sees the noisy frame alone, so the two numbers are directly comparable.

    Parameters
    ----------
    network : CausalUNet or UNet
    schedule : DiffusionSchedule
    windows : Tensor (N, T+1, C, H, W)
        Held-out clean windows in [−1, 1].
    timesteps : list of int
    causal : bool
        True for a Causal-UNet, False for a plain UNet.
    seed : int
        Seeds the noise (identical across networks for the same windows and seed).
    batch_size : int

    Returns
    -------
    dict
        ``{t: {"eps_mse": mean ‖ε − ε̂‖² per element, "x0_psnr": 10 log10(4 / MSE(x̂0, x0)) dB}}``;
        the PSNR uses the data's peak-to-peak range 2 (values in [−1, 1]) and ``x̂0`` clipped
        to [−1, 1].
    """
    network.eval()
    dev = next(network.parameters()).device
    c = windows.shape[2]
    out: dict[int, dict[str, float]] = {}
    for t_val in timesteps:
        gen = torch.Generator().manual_seed(seed * 1000 + int(t_val))
        sq_eps = sq_x0 = count = 0.0
        for start in range(0, windows.shape[0], batch_size):
            win = windows[start : start + batch_size].to(dev).float()
            cond, target = win[:, :-1], win[:, 1:]
            noise = torch.randn(target.shape, generator=gen).to(dev)
            t = torch.full((win.shape[0],), int(t_val), device=dev, dtype=torch.long)
            x_t = schedule.q_sample(target, t, noise)
            if causal:
                eps_hat = network(cond, x_t, t)[:, :, :c].float()
            else:
                b, n = target.shape[:2]
                flat = x_t.reshape(b * n, *x_t.shape[2:])
                eps_hat = network(flat, t.repeat_interleave(n))[:, :c].float().reshape(target.shape)
            x0_hat = schedule.predict_x0(x_t, t, eps_hat).clamp(-1, 1)
            sq_eps += float(((eps_hat - noise) ** 2).sum())
            sq_x0 += float(((x0_hat - target) ** 2).sum())
            count += target.numel()
        out[int(t_val)] = {
            "eps_mse": sq_eps / count,
            "x0_psnr": 10.0 * math.log10(4.0 / max(sq_x0 / count, 1e-20)),
        }
    return out
