"""Prior configuration in the official AID YAML keys, validated once.

The official configs (``scripts/configs/fastmri_320_cplx.yaml`` and friends) list only the
keys that differ from guided-diffusion's defaults and mix network keys with training-run
keys (``lr``, ``data_dir``, ...). :class:`PriorConfig` reads such a file unchanged:

* a key that is missing takes the reference default (``script_util.py``: the Causal-UNet
  defaults when ``seq_length`` is present, the plain UNet's otherwise);
* ``channel_mult: ""`` resolves to the reference's per-image-size default
  (320 -> ``(0.5, 1, 1, 2, 2, 4, 4)``);
* ``attention_resolutions`` are feature-map sizes (``"20,10"`` at 320 = downsampling
  factors 16 and 32); sizes that match no U-Net level are ignored, as in the reference;
* training-run keys are kept verbatim in :attr:`PriorConfig.extra` and written back;
* keys for variants mrirecon does not build (``complicated_x0``, ``use_causal_gated``,
  ``concat_cond: false``, class conditioning, VQ latents, ...) raise :class:`MrireconError`
  unless they hold the value every shipped fastMRI config uses, and unknown keys raise too.

Which network a config builds: ``seq_length`` set -> AID Causal-UNet, absent -> plain UNet.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from mrirecon.errors import MrireconError, require

# Reference per-size channel multipliers (union of create_model and create_causal_seq_model).
DEFAULT_CHANNEL_MULT: dict[int, tuple[float, ...]] = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    320: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    192: (1, 1, 2, 2, 2, 4),
    160: (1, 1, 2, 2, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
    40: (1, 2, 2, 4),
    32: (1, 2, 2, 4),
}

NORM_GROUPS = 32  # guided-diffusion's GroupNorm(32, C): every width must be a multiple
NOISE_SCHEDULES = ("linear", "cosine")

# Keys of training runs / data loading in the official YAMLs: kept, never used by the network.
RUN_KEYS = frozenset(
    {
        "data_dir", "schedule_sampler", "lr", "weight_decay", "lr_anneal_steps", "batch_size",
        "microbatch", "ema_rate", "log_interval", "save_interval", "fp16_scale_growth", "logdir",
        "noisy_x0", "resume_checkpoint", "dataworkers", "devices", "multistage", "vq_config",
        "vq_ckpt", "vae", "use_checkpoint", "dilations", "pos_emb", "timestep_respacing",
    }
)  # fmt: skip
# pos_emb only creates parameters inside complicated_x0 blocks (the reference's ``guided_diffusion/unet2.py``), so it is a
# no-op here; use_checkpoint is a memory trick that does not change the maths; dilations belong
# to use_causal_gated; timestep_respacing is a sampler choice (DiffusionSchedule.respace).

# Keys accepted only with the value the shipped fastMRI models use (variants not built here).
FIXED_KEYS: dict[str, Any] = {
    "use_fp16": False,  # mixed precision is Prior(precision="bf16"), not fp16 weights
    "class_cond": False,
    "use_new_attention_order": False,
    "concat_cond": True,
    "use_causal_gated": False,
    "complicated_x0": False,
    "num_complicated": 0,
    "latent": False,
    "use_kl": False,
    "predict_xstart": False,
    "rescale_timesteps": False,
    "rescale_learned_sigmas": False,
}

_INT_FIELDS = ("image_size", "in_channels", "num_channels", "num_res_blocks", "num_heads", "diffusion_steps")


def _parse_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise MrireconError(f"config key {key!r} must be true or false, got {value!r}")


def _parse_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise MrireconError(f"config key {key!r} must be an integer, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise MrireconError(f"config key {key!r} must be an integer, got {value!r}") from None
    require(number.is_integer(), f"config key {key!r} must be an integer, got {value!r}")
    return int(number)


def _parse_numbers(value: Any, key: str, kind: type) -> tuple:
    """``"1,2,2"`` / ``[1, 2, 2]`` / ``16`` -> tuple of ``kind``."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        parts = [value]
    else:
        raise MrireconError(f"config key {key!r} must be a comma-separated list of numbers, got {value!r}")
    out = []
    for p in parts:
        try:
            number = float(p)
        except (TypeError, ValueError):
            raise MrireconError(
                f"config key {key!r} must be a comma-separated list of numbers, got {value!r}"
            ) from None
        if kind is int:
            require(number.is_integer(), f"config key {key!r} must list integers, got {value!r}")
            out.append(int(number))
        else:
            out.append(int(number) if number.is_integer() else number)
    return tuple(out)


def _format_numbers(values: tuple) -> str:
    return ",".join(str(v) for v in values)


@dataclass(frozen=True)
class PriorConfig:
    """Architecture and diffusion settings of an AID Causal-UNet or plain UNet prior.

    Field names are the official YAML keys. Build one with :meth:`from_yaml` /
    :meth:`from_dict` (which apply the reference defaults); the constructor validates.

    Attributes
    ----------
    image_size : int
        Training image size (square). Networks accept any ``H, W`` that are multiples of
        :attr:`downsampling`; the size fixes which levels carry attention.
    in_channels : int
        Image channels C: 2 (real, imag) for complex priors, 1 for magnitude.
    seq_length : int or None
        Frames the Causal-UNet was trained on (``None`` = plain UNet).
    num_channels : int
        Base width; level widths are ``int(m * num_channels)`` for ``m`` in ``channel_mult``.
    channel_mult : tuple of float
        Width multiplier per U-Net level (resolved; never empty).
    attention_resolutions : tuple of int
        Feature-map sizes that get spatial self-attention.
    num_res_blocks, num_heads, num_head_channels, num_heads_upsample : int
        guided-diffusion meanings (``-1`` = unused / same as ``num_heads``).
    dropout : float
    use_scale_shift_norm, resblock_updown, learn_sigma : bool
    diffusion_steps : int
    noise_schedule : {"linear", "cosine"}
    mag : bool
        Magnitude data rather than real/imag channels (default: ``in_channels == 1``).
    dataset : str
        Data-set tag of the official configs (informational).
    name : str or None
        Registry name when loaded through the registry (informational).
    pixel_size_mm : tuple of float
        In-plane pixel sizes (mm) of the training images: one value, or the (smallest,
        largest) of a multi-scale training; empty when unknown (the official configs).
        :func:`mrirecon.recon.reconstruct` warns when a scan's pixel size is far outside it.
    extra : dict
        Training-run keys of the source YAML, kept for round trips.
    """

    image_size: int
    in_channels: int
    seq_length: int | None = None
    num_channels: int = 128
    channel_mult: tuple[float, ...] = ()
    attention_resolutions: tuple[int, ...] = (16, 8)
    num_res_blocks: int = 2
    num_heads: int = 4
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    dropout: float = 0.0
    use_scale_shift_norm: bool = True
    resblock_updown: bool = False
    learn_sigma: bool = False
    diffusion_steps: int = 1000
    noise_schedule: str = "linear"
    mag: bool = False
    dataset: str = "fastmri"
    name: str | None = None
    pixel_size_mm: tuple[float, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)

    # -- construction --------------------------------------------------------------------

    def __post_init__(self) -> None:
        for key in _INT_FIELDS:
            v = getattr(self, key)
            require(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                f"config key {key!r} must be an integer >= 1, got {v!r}",
            )
        if self.seq_length is not None:
            v = self.seq_length
            require(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                f"config key 'seq_length' must be an integer >= 1, got {v!r}",
            )
        mult = self.channel_mult
        if not mult:
            require(
                self.image_size in DEFAULT_CHANNEL_MULT,
                f"config key 'channel_mult' is empty and image_size {self.image_size} has no reference default "
                f"(sizes with defaults: {sorted(DEFAULT_CHANNEL_MULT)}); set channel_mult, e.g. '1,2,2,4'",
            )
            object.__setattr__(self, "channel_mult", DEFAULT_CHANNEL_MULT[self.image_size])
        require(
            all(m > 0 for m in self.channel_mult),
            f"config key 'channel_mult' must be positive, got {self.channel_mult}",
        )
        for width in self.level_widths:
            require(
                width % NORM_GROUPS == 0,
                f"config keys num_channels={self.num_channels} and channel_mult="
                f"{_format_numbers(self.channel_mult)} give a level width of {width}, which "
                f"GroupNorm({NORM_GROUPS}) cannot split; use multiples of {NORM_GROUPS}",
            )
        require(
            self.image_size % self.downsampling == 0,
            f"config key 'image_size' ({self.image_size}) must be a multiple of 2**(levels-1) = {self.downsampling}",
        )
        require(
            all(r >= 1 for r in self.attention_resolutions),
            f"config key 'attention_resolutions' must be >= 1, got {self.attention_resolutions}",
        )
        for w in self._attention_widths():
            heads = self.heads_for(w)
            require(
                heads >= 1 and w % heads == 0,
                f"attention width {w} is not divisible into {heads} heads (num_heads / num_head_channels)",
            )
        if self.seq_length is not None:
            # DiT blocks of the conditioning path run at every level's input width.
            for w in self.level_widths:
                require(
                    w % self.num_heads == 0,
                    f"config key 'num_heads' ({self.num_heads}) must divide every level width, not {w}",
                )
        require(
            isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1,
            f"config key 'dropout' must be in [0, 1), got {self.dropout!r}",
        )
        require(
            self.noise_schedule in NOISE_SCHEDULES,
            f"config key 'noise_schedule' must be one of {NOISE_SCHEDULES}, got {self.noise_schedule!r}",
        )
        require(
            self.num_head_channels == -1 or self.num_head_channels >= 1,
            f"config key 'num_head_channels' must be -1 or >= 1, got {self.num_head_channels}",
        )
        require(
            self.num_heads_upsample == -1 or self.num_heads_upsample >= 1,
            f"config key 'num_heads_upsample' must be -1 or >= 1, got {self.num_heads_upsample}",
        )
        require(
            len(self.pixel_size_mm) <= 2 and all(p > 0 for p in self.pixel_size_mm)
            and list(self.pixel_size_mm) == sorted(self.pixel_size_mm),
            f"config key 'pixel_size_mm' must be one size or 'smallest,largest' in mm, got {self.pixel_size_mm}",
        )  # fmt: skip

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PriorConfig":
        """Config from official YAML keys; missing keys take the reference defaults."""
        require(isinstance(values, Mapping), f"config must be a mapping of keys, got {type(values).__name__}")
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(k for k in values if k not in known and k not in RUN_KEYS and k not in FIXED_KEYS)
        require(
            not unknown,
            f"unknown config key(s) {', '.join(map(repr, unknown))}; supported: "
            f"{', '.join(sorted(known | set(FIXED_KEYS)))} (plus training-run keys such as lr, data_dir)",
        )
        for key, want in FIXED_KEYS.items():
            if key in values:
                got = values[key]
                ok = (got == want) if not isinstance(want, bool) else _parse_bool(got, key) == want
                require(
                    ok,
                    f"config key {key!r}: {got!r} is not supported by mrirecon "
                    f"(only {want!r}, as in the official fastMRI models)",
                )

        causal = values.get("seq_length") is not None
        kw: dict[str, Any] = {
            # reference defaults: causal_model_and_diffusion_defaults / model_and_diffusion_defaults
            "image_size": 128 if causal else 64,
            "in_channels": 1 if causal else 2,
        }
        for key in ("image_size", "in_channels", "num_channels", "num_res_blocks", "num_heads", "diffusion_steps",
                    "num_head_channels", "num_heads_upsample"):  # fmt: skip
            if key in values:
                kw[key] = _parse_int(values[key], key)
        if causal:
            kw["seq_length"] = _parse_int(values["seq_length"], "seq_length")
        for key in ("use_scale_shift_norm", "resblock_updown", "learn_sigma"):
            if key in values:
                kw[key] = _parse_bool(values[key], key)
        if "dropout" in values:
            try:
                kw["dropout"] = float(values["dropout"])
            except (TypeError, ValueError):
                raise MrireconError(f"config key 'dropout' must be a number, got {values['dropout']!r}") from None
        if "noise_schedule" in values:
            kw["noise_schedule"] = str(values["noise_schedule"])
        mult = values.get("channel_mult", "")
        kw["channel_mult"] = () if mult in ("", None) else _parse_numbers(mult, "channel_mult", float)
        if "attention_resolutions" in values:
            kw["attention_resolutions"] = _parse_numbers(values["attention_resolutions"], "attention_resolutions", int)
        kw["mag"] = _parse_bool(values["mag"], "mag") if "mag" in values else kw["in_channels"] == 1
        if "dataset" in values:
            kw["dataset"] = str(values["dataset"])
        if values.get("name") is not None:
            kw["name"] = str(values["name"])
        if values.get("pixel_size_mm") not in (None, ""):
            kw["pixel_size_mm"] = _parse_numbers(values["pixel_size_mm"], "pixel_size_mm", float)
        kw["extra"] = {k: values[k] for k in values if k in RUN_KEYS}
        return cls(**kw)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "PriorConfig":
        """Read an official-style YAML config file."""
        path = Path(path)
        require(path.is_file(), f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise MrireconError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        require(
            isinstance(values, dict), f"config file {path} must hold a mapping of keys, got {type(values).__name__}"
        )
        try:
            return cls.from_dict(values)
        except MrireconError as exc:
            raise MrireconError(f"config file {path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Official YAML keys (every network key explicit) plus the kept training-run keys."""
        out: dict[str, Any] = {"image_size": self.image_size, "in_channels": self.in_channels}
        if self.seq_length is not None:
            out["seq_length"] = self.seq_length
        out.update(
            num_channels=self.num_channels,
            # "" when it is the per-size default: the reference parses explicit values with int()
            channel_mult=""
            if DEFAULT_CHANNEL_MULT.get(self.image_size) == self.channel_mult
            else _format_numbers(self.channel_mult),
            attention_resolutions=_format_numbers(self.attention_resolutions),
            num_res_blocks=self.num_res_blocks,
            num_heads=self.num_heads,
            num_head_channels=self.num_head_channels,
            num_heads_upsample=self.num_heads_upsample,
            dropout=float(self.dropout),
            use_scale_shift_norm=self.use_scale_shift_norm,
            resblock_updown=self.resblock_updown,
            learn_sigma=self.learn_sigma,
            diffusion_steps=self.diffusion_steps,
            noise_schedule=self.noise_schedule,
            mag=self.mag,
            dataset=self.dataset,
        )
        if self.name is not None:
            out["name"] = self.name
        if self.pixel_size_mm:
            out["pixel_size_mm"] = _format_numbers(self.pixel_size_mm)
        out.update(self.extra)
        return out

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """YAML text of :meth:`to_dict`; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def replace(self, **changes: Any) -> "PriorConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- derived quantities ----------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"aid"`` (Causal-UNet) when ``seq_length`` is set, else ``"unet"``."""
        return "unet" if self.seq_length is None else "aid"

    @property
    def out_channels(self) -> int:
        """Network output channels: ε (C) plus the variance interpolation v (C) if learn_sigma."""
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def level_widths(self) -> tuple[int, ...]:
        """Channel width of each U-Net level, ``int(m * num_channels)``."""
        return tuple(int(m * self.num_channels) for m in self.channel_mult)

    @property
    def downsampling(self) -> int:
        """Total downsampling factor ``2**(levels-1)``: image sides must be multiples of it."""
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def attention_ds(self) -> frozenset[int]:
        """Downsampling factors with spatial attention (``image_size // resolution``)."""
        return frozenset(self.image_size // r for r in self.attention_resolutions)

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.num_channels

    def heads_for(self, width: int, upsample: bool = False) -> int:
        """Attention heads of a spatial attention block of ``width`` channels."""
        if self.num_head_channels != -1:
            return width // self.num_head_channels
        if upsample and self.num_heads_upsample != -1:
            return self.num_heads_upsample
        return self.num_heads

    def _attention_widths(self) -> list[int]:
        widths = [w for level, w in enumerate(self.level_widths) if 2**level in self.attention_ds]
        return widths + [self.level_widths[-1]]  # the middle block always has attention
