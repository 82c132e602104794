"""The Gaussian diffusion schedule of the priors (ε-prediction, guided-diffusion conventions).

Forward process ``q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)`` with ``ᾱ_t = ∏_{s≤t} (1 − β_s)``,
``t = 0 … T−1``. Tables are float64 NumPy arrays (as in the reference); the tensor helpers
gather them at integer timesteps and return the input's dtype.

Reverse-process variance (``learn_sigma``, guided-diffusion ``LEARNED_RANGE``): the network's
variance channels ``v ∈ [−1, 1]`` interpolate, in log space, between the posterior variance
``β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)`` and ``β_t``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mrirecon.errors import MrireconError, require

RESPACINGS = ("skip", "even", "quad")


def linear_betas(num_steps: int) -> np.ndarray:
    """Ho et al.'s linear β from 1e-4 to 0.02, rescaled by ``1000 / num_steps`` (guided-diffusion)."""
    scale = 1000.0 / num_steps
    return np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)


def cosine_betas(num_steps: int, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule ``ᾱ(s) = cos²((s + 0.008)/1.008 · π/2)``, β clipped at 0.999."""

    def abar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    steps = np.arange(num_steps, dtype=np.float64)
    betas = [1.0 - abar((i + 1) / num_steps) / abar(i / num_steps) for i in steps]
    return np.minimum(np.asarray(betas, dtype=np.float64), max_beta)


class DiffusionSchedule:
    """β/ᾱ tables and the closed-form Gaussian quantities used in training and sampling.

    Parameters
    ----------
    betas : array_like (T,)
        Noise variances β_t in (0, 1).

    Attributes
    ----------
    betas, alphas_cumprod, alphas_cumprod_prev : ndarray (T,) float64
        β_t, ᾱ_t and ᾱ_{t−1} (ᾱ_{−1} = 1).
    posterior_variance : ndarray (T,) float64
        β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) (0 at t = 0).
    posterior_log_variance_clipped : ndarray (T,) float64
        log β̃_t with the t = 0 entry replaced by log β̃_1 (guided-diffusion).
    posterior_mean_coef1, posterior_mean_coef2 : ndarray (T,) float64
        μ̃_t(x_0, x_t) = coef1 · x_0 + coef2 · x_t.
    """

    def __init__(self, betas) -> None:
        betas = np.asarray(betas, dtype=np.float64)
        require(betas.ndim == 1 and betas.size >= 1, f"betas must be a 1-D array, got shape {betas.shape}")
        require(bool(((betas > 0) & (betas < 1)).all()), "betas must lie in (0, 1)")
        self.betas = betas
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        first = self.posterior_variance[1] if betas.size > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(first, self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self._tables = {
            "sqrt_abar": np.sqrt(self.alphas_cumprod),
            "sqrt_one_minus_abar": np.sqrt(1.0 - self.alphas_cumprod),
            "sqrt_recip_abar": np.sqrt(1.0 / self.alphas_cumprod),
            "sqrt_recipm1_abar": np.sqrt(1.0 / self.alphas_cumprod - 1.0),
            "log_betas": np.log(betas),
            "posterior_variance": self.posterior_variance,
            "posterior_log_variance_clipped": self.posterior_log_variance_clipped,
            "posterior_mean_coef1": self.posterior_mean_coef1,
            "posterior_mean_coef2": self.posterior_mean_coef2,
        }
        self._on_device: dict[tuple[str, torch.device], torch.Tensor] = {}

    def _gather(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``table[t]`` shaped (B, 1, …, 1) to broadcast against ``like`` (B, …), in like's dtype.

        Tables are copied to each device once (float64) and cast after the lookup.
        """
        require(
            t.ndim == 1 and t.shape[0] == like.shape[0], f"t must have shape ({like.shape[0]},), got {tuple(t.shape)}"
        )
        idx = t.to(device=like.device).long()
        require(bool(((idx >= 0) & (idx < self.num_steps)).all()), f"timesteps must lie in [0, {self.num_steps - 1}]")
        key = (name, like.device)
        if key not in self._on_device:
            self._on_device[key] = torch.from_numpy(self._tables[name]).to(like.device)
        dtype = like.dtype if like.is_floating_point() else torch.float32
        return self._on_device[key][idx].to(dtype).view(-1, *([1] * (like.ndim - 1)))

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def named(cls, name: str = "linear", num_steps: int = 1000) -> "DiffusionSchedule":
        """``"linear"`` (the AID/guided-diffusion default) or ``"cosine"`` with ``num_steps`` steps."""
        require(
            isinstance(num_steps, (int, np.integer)) and num_steps >= 1,
            f"num_steps must be an integer >= 1, got {num_steps!r}",
        )
        if name == "linear":
            return cls(linear_betas(int(num_steps)))
        if name == "cosine":
            return cls(cosine_betas(int(num_steps)))
        raise MrireconError(f"noise_schedule must be 'linear' or 'cosine', got {name!r}")

    @classmethod
    def from_config(cls, config) -> "DiffusionSchedule":
        """The schedule of a :class:`~mrirecon.prior.PriorConfig` (noise_schedule, diffusion_steps)."""
        return cls.named(config.noise_schedule, config.diffusion_steps)

    @property
    def num_steps(self) -> int:
        """T, the number of training timesteps."""
        return int(self.betas.size)

    def __repr__(self) -> str:
        return f"DiffusionSchedule(num_steps={self.num_steps}, beta=[{self.betas[0]:.3g}, {self.betas[-1]:.3g}])"

    # -- forward process ------------------------------------------------------------------------

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw ``x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε``.

        Parameters
        ----------
        x0, noise : Tensor (B, …)
        t : Tensor (B,) integer timesteps

        Returns
        -------
        Tensor (B, …), x0's dtype.
        """
        return self._gather("sqrt_abar", t, x0) * x0 + self._gather("sqrt_one_minus_abar", t, x0) * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert :meth:`q_sample` for x_0: ``x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t`` (no clipping).

        Shapes as in :meth:`q_sample`.
        """
        return self._gather("sqrt_recip_abar", t, x_t) * x_t - self._gather("sqrt_recipm1_abar", t, x_t) * eps

    def q_posterior_mean_variance(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of ``q(x_{t−1} | x_t, x_0)``.

        Parameters
        ----------
        x0, x_t : Tensor (B, …)
        t : Tensor (B,) integer timesteps

        Returns
        -------
        mean : Tensor (B, …)
            μ̃_t = coef1 · x_0 + coef2 · x_t.
        variance, log_variance : Tensor (B, 1, …, 1)
            β̃_t and its clipped log (broadcastable against x_t).
        """
        mean = self._gather("posterior_mean_coef1", t, x_t) * x0 + self._gather("posterior_mean_coef2", t, x_t) * x_t
        return mean, self._gather("posterior_variance", t, x_t), self._gather("posterior_log_variance_clipped", t, x_t)

    def learned_range_log_variance(self, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Model log-variance from the network's variance channels (``LEARNED_RANGE``).

        ``log σ²_t = f · log β_t + (1 − f) · log β̃_t`` with ``f = (v + 1) / 2``.

        Parameters
        ----------
        v : Tensor (B, C, …)
            Variance channels of the network output, nominally in [−1, 1].
        t : Tensor (B,) integer timesteps

        Returns
        -------
        Tensor (B, C, …)
        """
        frac = (v + 1) / 2
        min_log = self._gather("posterior_log_variance_clipped", t, v)
        max_log = self._gather("log_betas", t, v)
        return frac * max_log + (1 - frac) * min_log

    # -- sampling timesteps -----------------------------------------------------------------------

    def respace(self, num_steps: int, mode: str = "skip") -> np.ndarray:
        """Descending timesteps of a ``num_steps``-step sampler.

        ``mode="skip"`` (the AID reference's MRI samplers): ``t_i = ⌊i · T / num_steps⌋`` for
        ``i = num_steps−1, …, 0`` — ``(num_steps−1, …, 0) · skip`` with ``skip = T / num_steps``
        (T=1000, 100 steps: 990, 980, …, 0). ``mode="even"`` (guided-diffusion
        ``space_timesteps`` with one section): ``round(i · (T−1) / (num_steps−1))``, which
        starts at T−1.

        Returns
        -------
        ndarray (num_steps,) int64, strictly decreasing, ending at 0.
        """
        T = self.num_steps
        require(
            isinstance(num_steps, (int, np.integer)) and not isinstance(num_steps, bool) and 1 <= num_steps <= T,
            f"num_steps must be an integer in [1, {T}], got {num_steps!r}",
        )
        require(mode in RESPACINGS, f"mode must be one of {RESPACINGS}, got {mode!r}")
        if mode == "skip":
            i = np.arange(num_steps - 1, -1, -1, dtype=np.int64)
            return (i * T) // num_steps
        if num_steps == 1:
            return np.zeros(1, dtype=np.int64)
        if mode == "quad":
            t = np.floor(np.linspace(0.0, np.sqrt(T - 1), num_steps) ** 2).astype(np.int64)
            for k in range(1, num_steps):  # the first few squares round to equal integers
                t[k] = max(t[k], t[k - 1] + 1)
            t = np.minimum(t, np.arange(T - num_steps, T))  # and the last ones must stay below T
            return t[::-1].copy()
        stride, position, steps = (T - 1) / (num_steps - 1), 0.0, []
        for _ in range(num_steps):  # accumulate like the reference, so rounding ties agree
            steps.append(round(position))
            position += stride
        return np.asarray(steps[::-1], dtype=np.int64)
