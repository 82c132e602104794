"""The AID prior: Causal-UNet and plain UNet networks, diffusion schedule, loading, registry.

Typical use::

    from mrirecon.prior import load_prior
    prior = load_prior("default")                                     # bundled
    prior = load_prior(config="fastmri_320_cplx.yaml", weights="fastmri_320_cplx.pt",
                       device="cuda", precision="bf16")              # official checkpoint
    out = prior.predict_next(window, noisy, t, position=-1)           # (B, 1, 2C, H, W)

Modules: :mod:`~mrirecon.prior.config` (official YAML keys), :mod:`~mrirecon.prior.schedule`,
:mod:`~mrirecon.prior.layers`, :mod:`~mrirecon.prior.unet`, :mod:`~mrirecon.prior.causal_unet`,
:mod:`~mrirecon.prior.checkpoint`, :mod:`~mrirecon.prior.registry`, :mod:`~mrirecon.prior.api`;
training lives in :mod:`~mrirecon.prior.train` (imported on demand).
"""

from mrirecon.prior.api import ATTENTION_MODES, PRECISIONS, Prior, build_network, count_parameters, load_prior
from mrirecon.prior.causal_unet import CausalUNet
from mrirecon.prior.checkpoint import export_safetensors, save_checkpoint
from mrirecon.prior.config import PriorConfig
from mrirecon.prior.registry import PriorInfo, list_priors
from mrirecon.prior.schedule import DiffusionSchedule
from mrirecon.prior.unet import UNet

__all__ = [
    "ATTENTION_MODES",
    "PRECISIONS",
    "CausalUNet",
    "DiffusionSchedule",
    "Prior",
    "PriorConfig",
    "PriorInfo",
    "UNet",
    "build_network",
    "count_parameters",
    "export_safetensors",
    "list_priors",
    "load_prior",
    "save_checkpoint",
]
