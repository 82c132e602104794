"""The settings of one reconstruction: validated once, frozen, and the resume fingerprint.

:class:`ReconSettings` holds every option of :func:`mrirecon.recon.reconstruct` that changes
the numbers. It is built (and checked, one line per bad value) before any work starts; the
checkpoint of an interrupted diffusion reconstruction stores :meth:`ReconSettings.fingerprint`
together with digests of the data, maps and weights, and a resume with other settings is
refused naming the fields that differ.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from mrirecon.errors import check_choice, nonnegative_int, positive_int, positive_number, require

__all__ = ["DEFAULTS", "FIRST_SLICE", "INTENSITY", "UPDATES", "ReconSettings"]

#: How slice 0 of a sequential prior is reconstructed: a cold start (a zero context frame), given
#: fully sampled (the paper's protocol; excluded from metrics), by the prior's single-image twin,
#: or ``auto`` (the twin when one is known, else cold).
FIRST_SLICE = ("auto", "cold", "given", "twin")
#: The span of the intensity factor that takes the data into the prior's range.
INTENSITY = ("volume", "slice")
UPDATES = ("reference", "ddim")


@dataclass(frozen=True)
class ReconSettings:
    """Options of a reconstruction (see :func:`mrirecon.recon.reconstruct` for their meaning)."""

    steps: int = 100
    n_samples: int = 1
    seed: int = 0
    update: str = "reference"
    eta: float = 0.0
    temperature: float = 1.0
    dc: str = "cg"
    dc_steps: int = 8
    dc_step_size: float = 1.0
    scale: float | None = None
    intensity: str = "volume"
    attention: str = "reference"
    first_slice: str = "auto"
    precision: str | None = None
    batch_size: int | None = None
    support: bool = True
    spacing: str = "skip"
    schedule: str = "sequential"
    lag: int | None = None
    lam: float | None = None
    iters: int | None = None

    def __post_init__(self) -> None:
        # the choices live with the code that implements them (imported here: the CLI reads the
        # defaults at start-up without loading torch)
        from mrirecon.prior.api import ATTENTION_MODES, PRECISIONS
        from mrirecon.prior.schedule import RESPACINGS
        from mrirecon.recon.sampler import SLICE_SCHEDULES
        from mrirecon.recon.steps import DC_METHODS

        positive_int(self.steps, "steps")
        positive_int(self.n_samples, "n_samples")
        require(
            isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**63,
            f"seed must be an integer in [0, 2**63), got {self.seed!r}",
        )
        check_choice(self.update, UPDATES, "update")
        require(
            isinstance(self.eta, (int, float)) and not isinstance(self.eta, bool) and 0 <= self.eta <= 1,
            f"eta must be a number in [0, 1], got {self.eta!r}",
        )
        require(
            isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature >= 0,
            f"temperature must be a finite number >= 0, got {self.temperature!r}",
        )
        check_choice(self.dc, DC_METHODS, "dc")
        nonnegative_int(self.dc_steps, "dc_steps")
        positive_number(self.dc_step_size, "dc_step_size")
        require(
            self.scale is None or (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0),
            f"scale must be None (automatic) or a number > 0, got {self.scale!r}",
        )
        check_choice(self.intensity, INTENSITY, "intensity")
        check_choice(self.attention, ATTENTION_MODES, "attention")
        check_choice(self.first_slice, FIRST_SLICE, "first_slice")
        if self.precision is not None:
            check_choice(self.precision, PRECISIONS, "precision")
        if self.batch_size is not None:
            positive_int(self.batch_size, "batch_size")
        require(isinstance(self.support, bool), f"support must be True or False, got {self.support!r}")
        check_choice(self.spacing, RESPACINGS, "spacing")
        check_choice(self.schedule, SLICE_SCHEDULES, "schedule")
        if self.lag is not None:
            positive_int(self.lag, "lag")
            require(self.schedule == "pipelined", "lag is the pipelined schedule's: pass schedule='pipelined' too")
        if self.lam is not None:
            positive_number(self.lam, "lam")
        if self.iters is not None:
            positive_int(self.iters, "iters")

    @classmethod
    def build(cls, base: "ReconSettings | None" = None, **options) -> "ReconSettings":
        """``base`` (default: the defaults) with the ``options`` that differ from the defaults applied."""
        if base is None:
            return cls(**options)
        require(isinstance(base, cls), f"settings must be a ReconSettings, got {type(base).__name__}")
        changed = {k: v for k, v in options.items() if v != getattr(DEFAULTS, k)}
        return replace(base, **changed) if changed else base

    def require_data_consistency(self) -> None:
        """Diffusion priors must see the data: ``dc_steps >= 1``."""
        require(
            self.dc_steps >= 1,
            "dc_steps=0 ignores the measured data (the result would be a sample of the prior alone); "
            "use dc_steps >= 1 (default 8), or `mrirecon sample` to generate from the prior",
        )

    def fingerprint(self) -> dict:
        """JSON-ready fields that change a diffusion reconstruction's numbers."""
        d = asdict(self)
        d.pop("lam"), d.pop("iters")  # classical methods only
        d["normalize"] = d.pop("intensity")  # its name in checkpoints written before the rename
        for later in ("spacing", "schedule", "lag"):  # fields added later: at their defaults the fingerprint is unchanged
            if d[later] == getattr(DEFAULTS, later):
                d.pop(later)
        return d


class _Defaults:
    """The defaults of :class:`ReconSettings` as attributes (``DEFAULTS.steps``), read without building one."""

    def __getattr__(self, name: str):
        field_ = ReconSettings.__dataclass_fields__.get(name)
        if field_ is None:
            raise AttributeError(name)
        return field_.default

    def __repr__(self) -> str:
        return "DEFAULTS(" + ", ".join(f"{k}={v.default!r}" for k, v in ReconSettings.__dataclass_fields__.items()) + ")"


#: The default settings: each default value is written once, in :class:`ReconSettings`.
DEFAULTS = _Defaults()
