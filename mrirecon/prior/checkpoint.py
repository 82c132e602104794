"""Reading and writing prior weights: official checkpoints load unchanged, strictly checked.

Files are read without executing code: ``torch.load(weights_only=True)`` for ``.pt``/``.pth``
(the official checkpoints are plain pickled ``OrderedDict[str, Tensor]``), or safetensors.
Accepted containers: a plain state dict (``model*.pt``, ``ema_0.9999_*.pt``), one wrapped in
``{"ema": …}`` / ``{"model": …}`` / ``{"state_dict": …}`` (the EMA weights are preferred),
and keys prefixed by ``module.`` (DDP) or ``_orig_mod.`` (``torch.compile``).

Key layout. mrirecon's module tree equals the reference's except for the Causal-UNet's
conditioning path, which the reference keeps in ``x0_blocks`` (a ModuleList of
``TimestepEmbedSequential`` whose sub-indices 0 and 2 are parameter-free reshapes). The one
table :data:`KEY_MAP` translates it; files are always *written* in the reference layout so
the official code can read them too.

=====================================  ================================
reference key prefix                   mrirecon key prefix
=====================================  ================================
``x0_blocks.0.0.``                     ``tsc.stem.``
``x0_blocks.{l+1}.1.`` (DiTBlock)      ``tsc.levels.{l}.dit.``
``x0_blocks.{l+1}.3.`` (ResBlock)      ``tsc.levels.{l}.res.``
=====================================  ================================
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping

import torch
import yaml
from torch import nn

from mrirecon.errors import MrireconError, require
from mrirecon.files import atomic_path

SAFETENSORS_SUFFIXES = (".safetensors",)
CONFIG_METADATA_KEY = "mrirecon_config"  # safetensors metadata: the config YAML, so one file suffices

# (reference pattern, mrirecon replacement, mrirecon pattern, reference replacement); keys that
# match no row (everything outside the conditioning path) are identical in both layouts.
KEY_MAP: tuple[tuple[str, Callable[[re.Match], str], str, Callable[[re.Match], str]], ...] = (
    (r"^x0_blocks\.0\.0\.", lambda m: "tsc.stem.", r"^tsc\.stem\.", lambda m: "x0_blocks.0.0."),
    (
        r"^x0_blocks\.([1-9]\d*)\.1\.",
        lambda m: f"tsc.levels.{int(m[1]) - 1}.dit.",
        r"^tsc\.levels\.(\d+)\.dit\.",
        lambda m: f"x0_blocks.{int(m[1]) + 1}.1.",
    ),
    (
        r"^x0_blocks\.([1-9]\d*)\.3\.",
        lambda m: f"tsc.levels.{int(m[1]) - 1}.res.",
        r"^tsc\.levels\.(\d+)\.res\.",
        lambda m: f"x0_blocks.{int(m[1]) + 1}.3.",
    ),
)
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _map_key(key: str, direction: int) -> str:
    for ref_pat, to_native, native_pat, to_ref in KEY_MAP:
        pattern, repl = (ref_pat, to_native) if direction == 0 else (native_pat, to_ref)
        m = re.match(pattern, key)
        if m:
            return repl(m) + key[m.end() :]
    return key


def from_reference_keys(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename reference (``x0_blocks.*``) keys to mrirecon's; other keys pass unchanged."""
    return OrderedDict((_map_key(k, 0), v) for k, v in state.items())


def to_reference_keys(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Rename mrirecon keys to the reference layout (inverse of :func:`from_reference_keys`)."""
    return OrderedDict((_map_key(k, 1), v) for k, v in state.items())


def _strip_wrappers(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    out = OrderedDict()
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def _unwrap(obj, path: Path) -> Mapping[str, torch.Tensor]:
    """The tensor mapping inside a loaded checkpoint object (EMA weights preferred)."""
    require(isinstance(obj, Mapping), f"weights file {path} holds a {type(obj).__name__}, expected a state dict")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    for key in ("ema", "model", "state_dict"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    raise MrireconError(
        f"weights file {path} is not a state dict (expected tensors, or an 'ema'/'model'/'state_dict' entry)"
    )


def unsafe_file_message(path: Path, exc: Exception, what: str) -> str:
    """One line for a torch file that ``torch.load(weights_only=True)`` refuses (never torch's own advice).

    Loading such a file would run the code its pickle names; mrirecon never does. A *trusted*
    file can be converted once into a plain one.
    """
    text = str(exc)
    found = re.search(r"(?:Unsupported global|GLOBAL)[: ]+([\w.]+)", text)
    culprit = f" (it names the Python object {found[1]})" if found else ""
    if isinstance(exc, (EOFError, OSError)) or "pickle" not in text.lower() and "global" not in text.lower():
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return f"{what} {path} is not a readable torch file ({first})"
    return (
        f"{what} {path} is not a plain state dict of tensors{culprit}, so mrirecon will not load it (unpickling "
        "could run code). If you trust it, save its tensors as a plain state dict once: python -c \"import torch; "
        f"s = torch.load('{path}', weights_only=False); "
        "torch.save({k: v for k, v in s.items() if torch.is_tensor(v)}, 'plain.pt')\""
    )


def read_state_dict(path: str | os.PathLike) -> "OrderedDict[str, torch.Tensor]":
    """Read a weights file into a state dict with mrirecon keys (on the CPU).

    Parameters
    ----------
    path : str or PathLike
        ``.safetensors``, or a torch file (``.pt``, ``.pth``, ``ema_*.pt``, …) that
        ``torch.load(weights_only=True)`` accepts.

    Returns
    -------
    OrderedDict[str, Tensor]
        ``module.`` / ``_orig_mod.`` prefixes removed, reference keys mapped (:data:`KEY_MAP`).
    """
    path = Path(path)
    require(path.is_file(), f"weights file {path} does not exist")
    if path.suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise MrireconError(f"weights file {path} is not a readable safetensors file ({exc})") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors come in many types; report them on one line
            raise MrireconError(unsafe_file_message(path, exc, "weights file")) from None
        state = _unwrap(obj, path)
    return from_reference_keys(_strip_wrappers(state))


def read_embedded_config(path: str | os.PathLike) -> dict | None:
    """The config dict stored in a ``.safetensors`` file's metadata by :func:`save_checkpoint`, or None."""
    path = Path(path)
    if path.suffix not in SAFETENSORS_SUFFIXES or not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        text = (f.metadata() or {}).get(CONFIG_METADATA_KEY)
    return yaml.safe_load(text) if text else None


def _fmt_shape(shape) -> str:
    return "(" + ",".join(str(int(s)) for s in shape) + ")"


def check_state_dict(network: nn.Module, state: Mapping[str, torch.Tensor], source: str, limit: int = 3) -> None:
    """Raise a one-line :class:`MrireconError` unless ``state`` matches ``network`` key for key and shape.

    The message names the first ``limit`` missing, unexpected and shape-mismatched keys, in
    the reference layout (the names the official files use).
    """
    expected = to_reference_keys(network.state_dict())
    state = to_reference_keys(state)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        items = ", ".join(f"{k} {_fmt_shape(expected[k].shape)}" for k in missing[:limit])
        parts.append(f"{len(missing)} missing key(s) [{items}{', …' if len(missing) > limit else ''}]")
    if unexpected:
        items = ", ".join(f"{k} {_fmt_shape(state[k].shape)}" for k in unexpected[:limit])
        parts.append(f"{len(unexpected)} unexpected key(s) [{items}{', …' if len(unexpected) > limit else ''}]")
    if shapes:
        items = ", ".join(
            f"{k}: file {_fmt_shape(state[k].shape)} vs config {_fmt_shape(expected[k].shape)}" for k in shapes[:limit]
        )
        parts.append(f"{len(shapes)} shape mismatch(es) [{items}{', …' if len(shapes) > limit else ''}]")
    raise MrireconError(f"weights {source} do not match the config: " + "; ".join(parts))


def load_weights(network: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a weights file into ``network`` strictly (see :func:`read_state_dict`, :func:`check_state_dict`)."""
    state = read_state_dict(path)
    check_state_dict(network, state, str(path))
    network.load_state_dict(state, strict=True)
    return network


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def save_checkpoint(path: str | os.PathLike, network: nn.Module, config, *, dtype: torch.dtype | None = None) -> Path:
    """Write ``network``'s weights in the official layout plus its config YAML beside them.

    Parameters
    ----------
    path : str or PathLike
        ``*.safetensors`` (config also embedded in the metadata) or a torch file (``*.pt``:
        a plain ``OrderedDict[str, Tensor]``, loadable by the reference code).
    network : nn.Module
        A :class:`~mrirecon.prior.UNet` / :class:`~mrirecon.prior.CausalUNet` (or DDP wrapper).
    config : PriorConfig
        Written to ``path.with_suffix(".yaml")`` in the official keys.
    dtype : torch.dtype, optional
        Cast floating-point tensors (e.g. ``torch.float16`` to halve a bundled file); loading
        casts back to the network's float32 parameters.

    Returns
    -------
    Path of the weights file. Both files are written atomically (temporary file + rename).
    """
    path = Path(path)
    state = to_reference_keys(_strip_wrappers(network.state_dict()))
    state = OrderedDict(
        (k, (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous().clone())
        for k, v in state.items()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    text = config.to_yaml()
    if path.suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import save_file

        _atomic(path, lambda p: save_file(state, str(p), metadata={CONFIG_METADATA_KEY: text}))
    else:
        _atomic(path, lambda p: torch.save(state, p))
    _atomic(path.with_suffix(".yaml"), lambda p: p.write_text(text))
    return path


def export_safetensors(path: str | os.PathLike, network: nn.Module, config, dtype: torch.dtype = torch.float16) -> Path:
    """Bundle a prior as ``.safetensors`` (fp16 by default) + YAML: :func:`save_checkpoint` for shipping."""
    path = Path(path)
    require(path.suffix in SAFETENSORS_SUFFIXES, f"export path {path} must end in .safetensors")
    return save_checkpoint(path, network, config, dtype=dtype)
