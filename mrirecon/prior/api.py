"""``load_prior`` and :class:`Prior`: a loaded network plus its config and schedule, for inference.

Two kinds of prior share this interface:

``"aid"``
    AID Causal-UNet. :meth:`Prior.predict_next` evaluates one new frame after a window of
    clean frames; :meth:`Prior.predict_teacher_forced` evaluates a whole sequence at once.
``"unet"``
    plain guided-diffusion U-Net ("Guide"): :meth:`Prior.predict`.

Outputs are the raw network output ``[ε̂ (C channels), v (C channels)]`` as float32 (``v``,
the learned-range variance interpolation, only with ``learn_sigma``); see
:class:`~mrirecon.prior.DiffusionSchedule` for turning them into x̂₀ or variances.

Window attention of :meth:`Prior.predict_next` (as the reference's ``scripts/sample.py`` calls the network):

``attention="reference"``
    what every official sampling/reconstruction script computes: the conditioning feature
    at window position ``p`` is computed from frame ``p`` alone (the reference slices one
    token before its attention), i.e. a first-order model. Needs the TSC path for one frame.
``attention="full"``
    the causal model as trained: the feature sees frames ``0 … p``, so the result equals
    position ``p`` of :meth:`Prior.predict_teacher_forced`. Needs the TSC path for ``p + 1``
    frames. The two modes differ whenever ``p > 0``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch import Tensor

from mrirecon.devices import resolve_device
from mrirecon.errors import MrireconError, require
from mrirecon.prior.causal_unet import CausalUNet
from mrirecon.prior.checkpoint import load_weights, read_embedded_config
from mrirecon.prior.config import PriorConfig
from mrirecon.prior.registry import file_twin, registered_names, registered_twin, resolve
from mrirecon.prior.schedule import DiffusionSchedule
from mrirecon.prior.unet import UNet

PRECISIONS = ("fp32", "bf16", "tf32")
ATTENTION_MODES = ("reference", "full")
_CONFIG_SUFFIXES = (".yaml", ".yml")


def as_config(config: PriorConfig | Mapping | str | os.PathLike) -> PriorConfig:
    """A :class:`PriorConfig` from itself, a dict of official keys, or a YAML path."""
    if isinstance(config, PriorConfig):
        return config
    if isinstance(config, Mapping):
        return PriorConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return PriorConfig.from_yaml(config)
    raise MrireconError(f"config must be a PriorConfig, a dict or a YAML path, got {type(config).__name__}")


def build_network(
    config: PriorConfig | Mapping | str | os.PathLike, *, device: str | torch.device | None = None
) -> UNet | CausalUNet:
    """Build the network a config describes, with fresh (guided-diffusion) initialisation.

    Parameters
    ----------
    config : PriorConfig, dict of official keys, or YAML path
        ``seq_length`` set -> :class:`CausalUNet`, else :class:`UNet`.
    device : str or torch.device, optional
        Where to allocate; ``"meta"`` builds shapes only (no memory).

    Returns
    -------
    UNet or CausalUNet, in training mode.
    """
    cfg = as_config(config)
    cls = CausalUNet if cfg.seq_length is not None else UNet
    with torch.device(device) if device is not None else contextlib.nullcontext():
        return cls(cfg)


def count_parameters(config: PriorConfig | Mapping | str | os.PathLike) -> int:
    """Number of parameters of the network a config builds (counted on the meta device)."""
    return sum(p.numel() for p in build_network(config, device="meta").parameters())


@contextlib.contextmanager
def precision_context(device: torch.device, precision: str) -> Iterator[None]:
    """Numerics for a forward pass: ``bf16`` autocast, ``tf32`` matmuls/convs (CUDA), or plain fp32.

    On CUDA, ``fp32`` really is fp32: PyTorch lets cuDNN convolutions use TF32 by default
    (``torch.backends.cudnn.allow_tf32``), which moved the conformance fixture's output by
    3e-4 relative on an H200; the flags are set for the call and restored after it.
    """
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    elif device.type == "cuda":
        tf32 = precision == "tf32"
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    else:
        yield


class Prior:
    """A diffusion prior ready for inference (eval mode, no gradients).

    Parameters
    ----------
    network : UNet or CausalUNet
    config : PriorConfig, optional
        Defaults to ``network.config``.
    device : str or torch.device, optional
        Move the network there (default: where its parameters are).
    precision : {"fp32", "bf16", "tf32"}
        ``bf16``: autocast to bfloat16 (CPU or CUDA); ``tf32``: TensorFloat-32 matmuls and
        convolutions on CUDA (fp32 elsewhere). Outputs are float32 in every case.
    channels_last : bool, optional
        Store conv weights channels-last (faster cuDNN kernels); default: on CUDA only.

    Attributes
    ----------
    network, config, schedule, kind ("aid" | "unet"), device, precision, in_channels,
    image_size, seq_length (None for "unet"), twin (a spec of the single-image prior trained
    beside a sequential one, or None).
    """

    def __init__(
        self,
        network: UNet | CausalUNet,
        config: PriorConfig | None = None,
        *,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        channels_last: bool | None = None,
    ):
        require(
            isinstance(network, (UNet, CausalUNet)),
            f"network must be a UNet or CausalUNet, got {type(network).__name__}",
        )
        require(precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.config = network.config if config is None else config
        require(self.config == network.config, "config does not match the network's config")
        self.network = network.eval()
        self.kind = "aid" if isinstance(network, CausalUNet) else "unet"
        self.schedule = DiffusionSchedule.from_config(self.config)
        self.precision = precision
        self.twin: str | None = None
        self._channels_last = channels_last
        self.to(next(network.parameters()).device if device is None else device)

    # -- properties ---------------------------------------------------------------------------

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def seq_length(self) -> int | None:
        return self.config.seq_length

    @property
    def sequential(self) -> bool:
        """True when the prior conditions a frame on earlier frames (AID): slices are sampled in order."""
        return self.seq_length is not None

    @property
    def channels_last(self) -> bool:
        return self.device.type == "cuda" if self._channels_last is None else bool(self._channels_last)

    def __repr__(self) -> str:
        return (
            f"Prior(kind={self.kind!r}, image_size={self.image_size}, in_channels={self.in_channels}, "
            f"seq_length={self.seq_length}, device={str(self.device)!r}, precision={self.precision!r})"
        )

    def at_precision(self, precision: str | None) -> "Prior":
        """This prior, or a shallow copy sharing the network that runs at ``precision``."""
        if precision is None or precision == self.precision:
            return self
        require(precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {precision!r}")
        twin = copy.copy(self)
        twin.precision = precision
        return twin

    def to(self, device: str | torch.device) -> "Prior":
        """Move the network to ``device`` (in place, conv weights channels-last if enabled); returns self."""
        self.device = resolve_device(device)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.network.to(device=self.device, memory_format=fmt)  # only 4-D (conv) weights change layout
        return self

    # -- input handling ---------------------------------------------------------------------

    def _images(self, x, name: str, ndim: int, layout: str) -> Tensor:
        require(isinstance(x, Tensor), f"{name} must be a torch tensor {layout}, got {type(x).__name__}")
        require(
            x.ndim == ndim and not x.is_complex(), f"{name} must be a real tensor {layout}, got shape {tuple(x.shape)}"
        )
        m = self.config.downsampling
        require(
            x.shape[-3] == self.in_channels and x.shape[-2] % m == 0 and x.shape[-1] % m == 0 and x.shape[-1] > 0,
            f"{name} must have C={self.in_channels} and H, W multiples of {m}, got shape {tuple(x.shape)}",
        )
        x = x.to(self.device, torch.float32)
        if ndim == 4 and self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _timesteps(self, t, batch: int) -> Tensor:
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            t = torch.tensor([t] * batch, dtype=torch.float32 if isinstance(t, float) else torch.int64)
        require(isinstance(t, Tensor), f"t must be a tensor (B,) or a number, got {type(t).__name__}")
        if t.ndim == 0:
            t = t.expand(batch)
        require(t.shape == (batch,), f"t must have shape ({batch},), got {tuple(t.shape)}")
        T = self.schedule.num_steps
        require(bool(((t >= 0) & (t <= T - 1)).all()), f"t must lie in [0, {T - 1}]")
        return t.to(self.device)

    def _require_kind(self, kind: str, method: str) -> None:
        require(self.kind == kind, f"{method} needs an {kind!r} prior, this one is {self.kind!r}")

    def _window_length(self, frames: int, name: str) -> None:
        require(
            1 <= frames <= self.seq_length,
            f"{name} must hold 1..seq_length={self.seq_length} frames, got {frames}",
        )

    # -- inference ----------------------------------------------------------------------------

    def predict_teacher_forced(self, cond: Tensor, noisy: Tensor, t) -> Tensor:
        """All T conditionals of a sequence in one pass (AID).

        Parameters
        ----------
        cond : Tensor (B, T, C, H, W)
            Clean frames 0..T−1, ``T ≤ seq_length``.
        noisy : Tensor (B, T, C, H, W)
            Position n: target frame n+1 noised to ``t``.
        t : Tensor (B,) or number
            One timestep per sequence (integer or float).

        Returns
        -------
        Tensor (B, T, out_channels, H, W) float32: position n is ``[ε̂, v]`` for target n+1
        given clean frames 0..n.
        """
        self._require_kind("aid", "predict_teacher_forced")
        cond = self._images(cond, "cond", 5, "(B, T, C, H, W)")
        noisy = self._images(noisy, "noisy", 5, "(B, T, C, H, W)")
        require(
            noisy.shape == cond.shape, f"noisy must have cond's shape {tuple(cond.shape)}, got {tuple(noisy.shape)}"
        )
        self._window_length(cond.shape[1], "cond")
        t = self._timesteps(t, cond.shape[0])
        with torch.inference_mode(), precision_context(self.device, self.precision):
            return self.network(cond, noisy, t).float()

    def predict_next(self, window: Tensor, noisy: Tensor, t, position: int, attention: str = "reference") -> Tensor:
        """One noisy frame conditioned on the clean frame at window ``position`` (AID).

        Parameters
        ----------
        window : Tensor (B, T, C, H, W)
            Clean frames, ``T ≤ seq_length``.
        noisy : Tensor (B, 1, C, H, W)
            The frame to denoise (it follows window frame ``position``).
        t : Tensor (B,) or number
        position : int
            Window slot of the conditioning frame, ``-T ≤ position < T`` (−1 = last).
        attention : {"reference", "full"}
            ``"reference"``: the feature sees frame ``position`` only (the official samplers);
            ``"full"``: it sees frames ``0 … position`` (equals teacher forcing).

        Returns
        -------
        Tensor (B, 1, out_channels, H, W) float32.
        """
        self._require_kind("aid", "predict_next")
        require(attention in ATTENTION_MODES, f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        window = self._images(window, "window", 5, "(B, T, C, H, W)")
        noisy = self._images(noisy, "noisy", 5, "(B, 1, C, H, W)")
        b, frames = window.shape[:2]
        self._window_length(frames, "window")
        require(
            noisy.shape == (b, 1, *window.shape[2:]),
            f"noisy must have shape {(b, 1, *window.shape[2:])}, got {tuple(noisy.shape)}",
        )
        require(
            isinstance(position, int) and not isinstance(position, bool) and -frames <= position < frames,
            f"position must be an integer in [{-frames}, {frames - 1}], got {position!r}",
        )
        p = position % frames
        cond = window[:, p : p + 1] if attention == "reference" else window[:, : p + 1]
        t = self._timesteps(t, b)
        x = noisy[:, 0].contiguous(memory_format=torch.channels_last) if self.channels_last else noisy[:, 0]
        with torch.inference_mode(), precision_context(self.device, self.precision):
            return self.network.forward_next(cond, x, t).float()[:, None]

    def epsilon(self, noisy: Tensor, t, context=None, attention: str = "reference") -> Tensor:
        """The noise prediction ε̂(x_t, t, context): the one denoiser interface of every prior.

        Parameters
        ----------
        noisy : Tensor (B, C, H, W)
            Images at noise level ``t``.
        t : Tensor (B,) or number
        context : SliceWindow, optional
            Sequential (AID) priors: the window of earlier frames (:class:`~mrirecon.prior.context.SliceWindow`,
            batch B). Required for them; must be None for single-image priors.
        attention : {"reference", "full"}
            Window semantics of sequential priors (:meth:`predict_next`).

        Returns
        -------
        Tensor (B, C, H, W) float32: ε̂ (the variance head, if any, is dropped).
        """
        C = self.in_channels
        if not self.sequential:
            require(context is None, "a single-image (UNet) prior takes no context window")
            return self.predict(noisy, t)[:, :C]
        require(context is not None, "a sequential (AID) prior needs a context window (SliceWindow) to denoise a frame")
        require(
            context.batch == noisy.shape[0],
            f"context window batch {context.batch} differs from the images' batch {noisy.shape[0]}",
        )
        out = self.predict_next(context.frames, noisy[:, None], t, context.position, attention=attention)
        return out[:, 0, :C]

    def predict(self, noisy: Tensor, t) -> Tensor:
        """Plain UNet output for single images.

        Parameters
        ----------
        noisy : Tensor (B, C, H, W)
        t : Tensor (B,) or number

        Returns
        -------
        Tensor (B, out_channels, H, W) float32.
        """
        self._require_kind("unet", "predict")
        noisy = self._images(noisy, "noisy", 4, "(B, C, H, W)")
        t = self._timesteps(t, noisy.shape[0])
        with torch.inference_mode(), precision_context(self.device, self.precision):
            return self.network(noisy, t).float()


def _is_config_path(value) -> bool:
    return isinstance(value, (str, os.PathLike)) and Path(value).suffix.lower() in _CONFIG_SUFFIXES


def load_prior(
    name_or_config: str | os.PathLike | PriorConfig | Mapping | None = None,
    *,
    config: str | os.PathLike | PriorConfig | Mapping | None = None,
    weights: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    channels_last: bool | None = None,
) -> Prior:
    """Load a prior: the one entry point for every spelling (strictly checked).

    Parameters
    ----------
    name_or_config : str, PathLike, PriorConfig, dict or Prior, optional
        A registry name (``"default"``, ``"default-unet"``; see ``list_priors()``), a weights
        file (its config is the ``.yaml`` beside it with the same stem, or the config embedded
        in a ``.safetensors`` written by mrirecon), ``"CONFIG.yaml:WEIGHTS.pt"`` (the official
        checkpoints, e.g. ``fastmri_320_cplx.yaml:fastmri_320_cplx.pt``; what ``--prior``
        takes), a config (YAML path / object) — then ``weights`` is required —, or an already
        loaded :class:`Prior`, returned as it is (on its own device).
    config : YAML path, PriorConfig or dict, optional
        The config (official keys, e.g. ``fastmri_320_cplx.yaml``).
    weights : str or PathLike, optional
        ``.pt`` / ``.pth`` / ``ema_*.pt`` (``torch.load(weights_only=True)``) or ``.safetensors``.
    device : str or torch.device
    precision : {"fp32", "bf16", "tf32"}
    channels_last : bool, optional
        See :class:`Prior`.

    Returns
    -------
    Prior
    """
    require(precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {precision!r}")
    spec, name = name_or_config, None
    if isinstance(spec, Prior):
        require(config is None and weights is None, "a loaded prior takes no config/weights")
        return spec
    dev = resolve_device(device)
    if isinstance(spec, str) and ":" in spec and spec not in registered_names() and not Path(spec).exists():
        config, weights = spec.split(":", 1)  # CONFIG.yaml:WEIGHTS.pt
        require(Path(config).is_file(), f"prior {spec}: config file '{config}' does not exist")
        require(Path(weights).is_file(), f"prior {spec}: weights file '{weights}' does not exist")
        spec = None
    if isinstance(spec, str) and spec in registered_names():
        require(
            config is None and weights is None, f"prior {spec!r} is a registry name; do not also pass config/weights"
        )
        config, weights = resolve(spec)
        name = spec
    elif isinstance(spec, (PriorConfig, Mapping)) or _is_config_path(spec):
        require(config is None, "pass the config either positionally or as config=, not both")
        config = spec
    elif isinstance(spec, (str, os.PathLike)):
        require(
            Path(spec).is_file(),
            f"prior {str(spec)!r} is neither a registered name ({', '.join(registered_names())}) nor an existing file",
        )
        require(weights is None, "pass the weights file either positionally or as weights=, not both")
        weights = spec
    elif spec is not None:
        raise MrireconError(f"load_prior expects a name, a path or a config, got {type(spec).__name__}")

    require(weights is not None, "load_prior needs weights: a registry name, a weights file, or weights=...")
    weights = Path(weights)
    require(weights.is_file(), f"weights file {weights} does not exist")
    if config is None:
        sibling = weights.with_suffix(".yaml")
        embedded = read_embedded_config(weights)
        if sibling.is_file():
            config = sibling
        elif embedded is not None:
            config = embedded
        else:
            raise MrireconError(f"no config for weights {weights}: pass config=... (the YAML it was trained with)")
    cfg = as_config(config)
    if name is not None:
        cfg = cfg.replace(name=name)
    with torch.device("meta"):
        network = build_network(cfg)
    network = network.to_empty(device="cpu")
    load_weights(network, weights)
    _warn_seq_length(cfg, weights)
    prior = Prior(network, cfg, device=dev, precision=precision, channels_last=channels_last)
    if prior.sequential:
        prior.twin = registered_twin(name) if name is not None else file_twin(
            Path(config) if isinstance(config, (str, os.PathLike)) else None, weights
        )
    return prior


def _warn_seq_length(cfg: PriorConfig, weights: Path) -> None:
    """Warn when the config's ``seq_length`` differs from the one the weights were trained with."""
    embedded = read_embedded_config(weights)
    if embedded is None or cfg.seq_length is None:
        return
    trained = embedded.get("seq_length")
    if trained is not None and int(trained) != cfg.seq_length:
        warnings.warn(
            f"{weights}: trained with seq_length={trained}, but the config says {cfg.seq_length}; "
            "the network runs, but it never saw windows of that length",
            stacklevel=3,
        )
