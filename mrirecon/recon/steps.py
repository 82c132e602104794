"""Update rules of the diffusion posterior sampler: pure tensor maths, no network, no physics.

One reverse step goes from timestep ``t`` to the next, smaller, timestep ``t'`` of a respaced
schedule (:meth:`mrirecon.prior.DiffusionSchedule.respace`, the reference's spacing
``floor(i·1000/steps)``). Notation (all images in the network's layout ``(B, C, H, W)``, real channels)::

    ᾱ_t, ᾱ_t'   cumulative products of (1 - β); ᾱ after the last step is 1 (clean image)
    ε̂           the network's noise prediction at (x_t, t)
    x̂0 = (x_t - √(1-ᾱ_t) ε̂) / √ᾱ_t                       ε-parametrisation, no clipping
    x̂0 ← x̂0 - η (AᴴA x̂0 - Aᴴy)        (K times)            data consistency (DC): gradient
                                                            descent on ½‖A x - y‖² (or K
                                                            conjugate-gradient iterations)

followed by one of the two re-noising rules:

* ``reference`` (AID reference, ``scripts/fastmri_recon.py``, ``ddim_diffusion``,
  github.com/mrirecon/aid; DDNM-style "predict, project, re-noise")::

      x_t' = √ᾱ_t' x̂0 + τ √(1-ᾱ_t') n,        n ~ N(0, I) fresh at every step

  There is no ε-direction term: all the noise is new. It is DDIM with σ² = 1 - ᾱ_t'.
* ``ddim`` (Song et al. 2021, eq. 12), with the data-consistent x̂0 and the network's ε̂ in the
  direction term (as DDNM / DDS do)::

      σ    = η_DDIM √((1-ᾱ_t')/(1-ᾱ_t)) √(1 - ᾱ_t/ᾱ_t')
      x_t' = √ᾱ_t' x̂0 + √(1-ᾱ_t'-σ²) ε + τ σ n

  ``η_DDIM = 0`` is deterministic given x_T; ``η_DDIM = 1`` has the DDPM posterior variance.

``τ`` (``temperature``) scales only the injected noise (as MAR does); the initial x_T is
always N(0, I). On the final step (ᾱ_t' = 1) both rules return x̂0 itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mrirecon.errors import MrireconError, require
from mrirecon.physics.solvers import conjugate_gradient

__all__ = [
    "DC_METHODS",
    "DDIMUpdate",
    "ReferenceUpdate",
    "StepSchedule",
    "UpdateRule",
    "data_consistency",
    "ddim_sigma",
    "make_update",
    "predict_x0",
]


@dataclass(frozen=True)
class StepSchedule:
    """The ᾱ values a sampler walks through, precomputed on the host.

    Attributes
    ----------
    timesteps : ndarray (K,) int64
        Network timesteps, strictly decreasing.
    abar : ndarray (K,) float64
        ᾱ at each timestep.
    abar_next : ndarray (K,) float64
        ᾱ of the step's target (the next timestep; 1.0 after the last one).
    """

    timesteps: np.ndarray
    abar: np.ndarray
    abar_next: np.ndarray

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod, timesteps) -> "StepSchedule":
        """Pick ᾱ at ``timesteps`` (descending) from the training schedule's table (T,)."""
        table = np.asarray(alphas_cumprod, dtype=np.float64)
        ts = np.asarray(timesteps, dtype=np.int64)
        require(ts.ndim == 1 and ts.size >= 1, f"timesteps must be a non-empty 1-D sequence, got shape {ts.shape}")
        require(
            bool(np.all(np.diff(ts) < 0)) and ts[-1] >= 0 and ts[0] < table.size,
            f"timesteps must be strictly decreasing within [0, {table.size}), got {ts.tolist()[:8]}...",
        )
        abar = table[ts]
        abar_next = np.append(abar[1:], 1.0)
        return cls(timesteps=ts, abar=abar, abar_next=abar_next)

    def __len__(self) -> int:
        return int(self.timesteps.size)


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, abar_t: float) -> torch.Tensor:
    """Clean-image estimate ``x̂0 = (x_t - √(1-ᾱ_t) ε̂) / √ᾱ_t`` (no clipping).

    Parameters
    ----------
    x_t, eps : Tensor (..., C, H, W)
    abar_t : float
    """
    return (x_t - math.sqrt(1.0 - abar_t) * eps) / math.sqrt(abar_t)


#: Data-consistency methods: the reference's gradient steps, or conjugate gradients (as DDS).
DC_METHODS = ("gradient", "cg")


def data_consistency(
    x: torch.Tensor,
    normal: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    n_steps: int,
    step_size: float,
    method: str = "gradient",
) -> torch.Tensor:
    """``n_steps`` iterations on ``½‖A x - y‖²`` starting from ``x``.

    ``gradient`` (the reference): ``x ← x - η (AᴴA x - Aᴴy)``. ``cg``: conjugate gradients on
    ``AᴴA x = Aᴴy`` from ``x`` (the decomposed diffusion sampler of Chung et al., ICLR 2024).
    Both change ``x`` only inside the range of ``AᴴA`` (what the data see) and keep the prior's
    null-space content; CG resolves the coil-unfolding directions, where ``AᴴA`` has small
    eigenvalues and gradient steps crawl, in a few iterations.

    Parameters
    ----------
    x : Tensor (..., H, W) complex
        Current image estimate.
    normal : callable
        ``x -> AᴴA x``.
    rhs : Tensor broadcastable to x
        ``Aᴴy`` (the measurement's adjoint, in the same intensity scale as ``x``).
    n_steps : int
        K; 0 returns ``x`` unchanged.
    step_size : float
        η of the gradient steps; converges for ``0 < η < 2 / ‖AᴴA‖`` (η = 1 with Σ_c |S_c|² = 1
        nearly replaces the sampled k-space lines, which is what the reference does). CG chooses
        its own steps.
    method : {"gradient", "cg"}
    """
    if method == "cg":
        return conjugate_gradient(normal, rhs.expand_as(x), x0=x, iters=n_steps) if n_steps else x
    for _ in range(n_steps):
        x = x - step_size * (normal(x) - rhs)
    return x


def ddim_sigma(abar_t: float, abar_next: float, eta: float) -> float:
    """DDIM noise level ``σ = η √((1-ᾱ_t')/(1-ᾱ_t)) √(1 - ᾱ_t/ᾱ_t')`` (0 on the last step)."""
    if abar_next >= 1.0:
        return 0.0
    return eta * math.sqrt((1.0 - abar_next) / (1.0 - abar_t)) * math.sqrt(1.0 - abar_t / abar_next)


class UpdateRule:
    """Maps ``(x_t, ε̂, x̂0)`` to ``x_t'``; subclasses say whether they need fresh noise."""

    name: str = ""

    def __init__(self, temperature: float = 1.0):
        require(
            isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0,
            f"temperature must be a finite number >= 0, got {temperature!r}",
        )
        self.temperature = float(temperature)

    def needs_noise(self, abar_t: float, abar_next: float) -> bool:
        """Whether :meth:`__call__` reads ``noise`` for this step (fixes the draw order)."""
        raise NotImplementedError

    def __call__(
        self,
        x_t: torch.Tensor,
        eps: torch.Tensor,
        x0: torch.Tensor,
        abar_t: float,
        abar_next: float,
        noise: torch.Tensor | None,
    ) -> torch.Tensor:
        raise NotImplementedError


class ReferenceUpdate(UpdateRule):
    """``x_t' = √ᾱ_t' x̂0 + τ √(1-ᾱ_t') n`` with fresh ``n`` (the AID reference's ``ddim_diffusion``)."""

    name = "reference"

    def needs_noise(self, abar_t: float, abar_next: float) -> bool:
        return abar_next < 1.0

    def __call__(self, x_t, eps, x0, abar_t, abar_next, noise):
        if abar_next >= 1.0:
            return x0
        return math.sqrt(abar_next) * x0 + (self.temperature * math.sqrt(1.0 - abar_next)) * noise

    def __repr__(self) -> str:
        return f"ReferenceUpdate(temperature={self.temperature})"


class DDIMUpdate(UpdateRule):
    """DDIM with parameter ``eta`` ∈ [0, 1] on the (data-consistent) x̂0 and the given ε."""

    name = "ddim"

    def __init__(self, eta: float = 0.0, temperature: float = 1.0):
        super().__init__(temperature)
        require(
            isinstance(eta, (int, float)) and 0.0 <= eta <= 1.0,
            f"eta must be a number in [0, 1] (0 = deterministic DDIM), got {eta!r}",
        )
        self.eta = float(eta)

    def needs_noise(self, abar_t: float, abar_next: float) -> bool:
        return ddim_sigma(abar_t, abar_next, self.eta) > 0.0 and self.temperature > 0.0

    def __call__(self, x_t, eps, x0, abar_t, abar_next, noise):
        if abar_next >= 1.0:
            return x0
        sigma = ddim_sigma(abar_t, abar_next, self.eta)
        out = math.sqrt(abar_next) * x0 + math.sqrt(max(1.0 - abar_next - sigma**2, 0.0)) * eps
        if self.needs_noise(abar_t, abar_next):
            out = out + (self.temperature * sigma) * noise
        return out

    def __repr__(self) -> str:
        return f"DDIMUpdate(eta={self.eta}, temperature={self.temperature})"


def make_update(update: str, eta: float = 0.0, temperature: float = 1.0) -> UpdateRule:
    """``"reference"`` -> :class:`ReferenceUpdate`, ``"ddim"`` -> :class:`DDIMUpdate`."""
    if update == "reference":
        return ReferenceUpdate(temperature)
    if update == "ddim":
        return DDIMUpdate(eta, temperature)
    raise MrireconError(f"update must be 'reference' or 'ddim', got {update!r}")
