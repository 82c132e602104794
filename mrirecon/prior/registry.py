"""Named priors bundled with the package (``load_prior("default")``, ``mrirecon priors``).

Each name resolves to ``<stem>.yaml`` + ``<stem>.safetensors`` in ``mrirecon/assets/``. The
files are produced by ``scripts/build_default_prior.py``; an installation without them
reports so in one line instead of failing later.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mrirecon.errors import MrireconError, require


@dataclass(frozen=True)
class _Entry:
    kind: str
    stem: str
    origin: str
    twin: str | None = None  # the single-image prior trained beside a sequential one


_REGISTRY: dict[str, _Entry] = {
    "default": _Entry(
        "aid",
        "aid_default",
        "bundled AID Causal-UNet, trained on MNI ICBM152 phantoms (scripts/build_default_prior.py)",
        twin="default-unet",
    ),
    "default-unet": _Entry(
        "unet", "unet_default", "bundled plain UNet ('Guide') twin of 'default', same data and backbone"
    ),
    "anatomy": _Entry(
        "aid",
        "aid_anatomy",
        "'default' fine-tuned on real anatomy at 0.7-2.5 mm pixels, one CPU round (docs/model_card.md, priors v3)",
        twin="anatomy-unet",
    ),
    "anatomy-unet": _Entry("unet", "unet_anatomy", "plain UNet twin of 'anatomy', same data and round"),
}


@dataclass(frozen=True)
class PriorInfo:
    """One registry entry as listed by :func:`list_priors`.

    Attributes
    ----------
    name : str
        Name for :func:`~mrirecon.prior.load_prior`.
    kind : {"aid", "unet"}
    params : int or None
        Parameter count (None while the files are missing).
    size : int or None
        Size of the weights file in bytes (None while missing).
    origin : str
        Where the weights come from.
    config_path, weights_path : Path
    available : bool
        Both files exist.
    """

    name: str
    kind: str
    params: int | None
    size: int | None
    origin: str
    config_path: Path
    weights_path: Path
    available: bool


def assets_dir() -> Path:
    """The package's ``mrirecon/assets`` folder."""
    return Path(str(resources.files("mrirecon.assets")))


def registered_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def resolve(name: str) -> tuple[Path, Path]:
    """``(config_path, weights_path)`` of a registered prior; clear error if unknown or missing."""
    require(
        name in _REGISTRY, f"unknown prior {name!r}; registered priors: {', '.join(_REGISTRY)} (or pass a weights file)"
    )
    entry = _REGISTRY[name]
    config, weights = assets_dir() / f"{entry.stem}.yaml", assets_dir() / f"{entry.stem}.safetensors"
    missing = [p.name for p in (config, weights) if not p.is_file()]
    if missing:
        raise MrireconError(
            f"prior {name!r} is not bundled in this installation: {' and '.join(missing)} missing from {assets_dir()} "
            "(build them with scripts/build_default_prior.py, or load a checkpoint with config=..., weights=...)"
        )
    return config, weights


def registered_twin(name: str) -> str | None:
    """The registered single-image twin of a registered sequential prior (``default`` -> ``default-unet``)."""
    entry = _REGISTRY.get(name)
    return None if entry is None else entry.twin


def file_twin(config: Path | None, weights: Path) -> str | None:
    """The official naming of a twin: ``normal_<stem>.pt`` (+ ``.yaml``) beside ``<stem>.pt``.

    The official AID checkpoint ``fastmri_320_cplx.pt`` and its single-image "Guide"
    ``normal_fastmri_320_cplx.pt`` are distributed that way. Returns ``CONFIG:WEIGHTS`` or None.
    """
    twin_w = weights.with_name(f"normal_{weights.name}")
    cfg = config if config is not None else weights.with_suffix(".yaml")
    twin_c = cfg.with_name(f"normal_{cfg.name}")
    if twin_w.is_file() and twin_c.is_file():
        return f"{twin_c}:{twin_w}"
    return None


def list_priors() -> list[PriorInfo]:
    """Every registered prior with its kind, parameter count, file size and origin."""
    from mrirecon.prior.api import count_parameters
    from mrirecon.prior.config import PriorConfig

    out = []
    for name, entry in _REGISTRY.items():
        config, weights = assets_dir() / f"{entry.stem}.yaml", assets_dir() / f"{entry.stem}.safetensors"
        available = config.is_file() and weights.is_file()
        params = count_parameters(PriorConfig.from_yaml(config)) if config.is_file() else None
        size = weights.stat().st_size if weights.is_file() else None
        out.append(PriorInfo(name, entry.kind, params, size, entry.origin, config, weights, available))
    return out
