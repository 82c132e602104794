"""Training loop for the AID Causal-UNet and its plain-UNet twin (``mrirecon train``).

One function, :func:`train`, serves a laptop CPU, one GPU and ``torchrun`` across nodes:

* objective: :func:`mrirecon.prior.losses.causal_loss` (teacher-forced sequences of
  ``seq_length + 1`` slices, one timestep per sequence) or :func:`~mrirecon.prior.losses.unet_loss`
  (single slices) — the ε-MSE plus the VLB on the variance head when ``learn_sigma``;
* AdamW, linear warm-up then constant or cosine learning rate, gradient clipping, gradient
  accumulation, an EMA of the weights (the weights shipped for inference), bf16 autocast on GPU;
* data parallel through ``torchrun`` (process group from the environment, a
  ``DistributedSampler`` per rank, DDP gradient averaging; only rank 0 writes);
* everything random is a function of ``(seed, rank, step)`` or ``(seed, epoch, index)`` and the
  data position is part of the checkpoint, so a resumed run continues exactly where the
  interrupted one stopped (same batches, same noise, same weights as an uninterrupted run).

Files in ``out_dir`` (rank 0, each written atomically through a temporary file + ``os.replace``):

``train_state.pt``
    model, EMA, optimiser, step, data position, RNG states, config and settings (``resume``).
``model.pt`` + ``model.yaml``
    the EMA weights as a plain state dict (the official checkpoints' format) and the config
    in the official YAML keys: ``load_prior("out_dir/model.pt")`` reads them.
``loss_log.csv``
    one row per ``log_every`` steps: step, loss, mse, vb, grad_norm, lr, elapsed_s.
``summary.json``
    settings, parameter count, step, wall time and the last logged loss (at every checkpoint).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

from mrirecon.devices import configure_threads, resolve_device
from mrirecon.distributed import DistContext, init_distributed
from mrirecon.errors import MrireconError, require
from mrirecon.files import atomic_path, atomic_write_text
from mrirecon.progress import StepProgress
from mrirecon.prior import DiffusionSchedule, PriorConfig, build_network
from mrirecon.prior.checkpoint import save_checkpoint
from mrirecon.prior.datasets import SliceWindows, Volume, load_volumes
from mrirecon.prior.losses import causal_loss, unet_loss

__all__ = ["TrainSettings", "TrainResult", "train", "is_causal_config", "resolve_config"]

_STATE = "train_state.pt"
_LOG = "loss_log.csv"
_LOG_FIELDS = ("step", "loss", "mse", "vb", "grad_norm", "lr", "elapsed_s")


@dataclass
class TrainSettings:
    """Optimisation settings (stored in the checkpoint; a resumed run must match them)."""

    steps: int
    batch_size: int = 8
    lr: float = 1e-4
    seed: int = 0
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    grad_accum: int = 1
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    min_lr_ratio: float = 0.1
    augment: bool = True
    checkpoint_every: int = 500
    log_every: int = 10
    amp: str = "auto"
    cond_noise: float = 0.0
    cold_start: float = 0.0

    def validate(self) -> None:
        require(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(0.0 <= self.ema_decay < 1.0, f"ema_decay must be in [0, 1), got {self.ema_decay}")
        require(self.grad_clip > 0, f"grad_clip must be > 0, got {self.grad_clip}")
        require(self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}")
        require(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        require(self.lr_schedule in ("constant", "cosine"), f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        require(0.0 <= self.min_lr_ratio <= 1.0, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        require(self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        require(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        require(self.amp in ("auto", "bf16", "off"), f"amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")
        require(0.0 <= self.cond_noise <= 1.0, f"cond_noise must be in [0, 1], got {self.cond_noise}")
        require(0.0 <= self.cold_start <= 1.0, f"cold_start must be in [0, 1], got {self.cold_start}")

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based): warm-up, then constant or cosine."""
        if self.warmup_steps and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    """What :func:`train` produced (on every rank; files exist only where rank 0 wrote them)."""

    out_dir: Path
    step: int
    num_params: int
    last_loss: float | None
    elapsed_s: float
    model_path: Path
    config_path: Path
    log_path: Path
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_config(config) -> PriorConfig:
    """A :class:`PriorConfig` from a config object, a dict of official keys or a YAML path."""
    if isinstance(config, PriorConfig):
        return config
    if isinstance(config, dict):
        return PriorConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        require(path.is_file(), f"config {path} does not exist")
        return PriorConfig.from_yaml(path)
    raise MrireconError(f"config must be a PriorConfig, a dict or a YAML path, got {type(config).__name__}")


def is_causal_config(cfg: PriorConfig) -> bool:
    """True when the config builds the Causal-UNet (it has a ``seq_length``)."""
    return cfg.kind == "aid"


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load_init(network: torch.nn.Module, ema: torch.nn.Module, cfg: PriorConfig, init) -> None:
    """Copy the weights of prior ``init`` into ``network`` and ``ema`` (fine-tuning start)."""
    from mrirecon.prior import load_prior

    source = init if hasattr(init, "network") and hasattr(init, "config") else load_prior(init, device="cpu")
    mine, theirs = cfg.to_dict(), source.config.to_dict()
    # The network is fully convolutional: image_size only fixes where attention sits, so a
    # prior trained on other crop sizes transfers when its attention sits at the same depths.
    informational = ("name", "dataset", "pixel_size_mm", "image_size", "attention_resolutions")
    differ = [k for k in mine if k not in informational and mine.get(k) != theirs.get(k)]
    if cfg.attention_ds != source.config.attention_ds:
        differ.insert(0, "attention_resolutions (relative to image_size)")
    require(not differ, f"init={init}: its config differs from the training config in {differ[:5]}")
    weights = {k: v.float() for k, v in source.network.state_dict().items()}
    network.load_state_dict(weights)
    ema.load_state_dict(weights)


def _out_of_time(t_start: float, limit_s: float, dev: torch.device, ctx: DistContext) -> bool:
    """Rank 0's clock against the budget, shared so that every rank stops at the same step."""
    over = torch.tensor([float(time.perf_counter() - t_start >= limit_s)], device=dev)
    if ctx.distributed:
        torch.distributed.broadcast(over, 0)
    return bool(over.item())


def _step_seed(seed: int, rank: int, step: int, micro: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step, micro]).generate_state(1)[0])


class _Batches:
    """Deterministic, resumable batches of one rank: epoch ``e`` is ``DistributedSampler(seed)``'s
    permutation for ``e`` cut into ``batch_size`` chunks (the last partial chunk dropped)."""

    def __init__(self, dataset: SliceWindows, ctx: DistContext, batch_size: int, seed: int):
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = DistributedSampler(
            dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=True
        )
        self.per_epoch = len(self.sampler) // batch_size
        require(
            self.per_epoch >= 1,
            f"{len(dataset)} training windows are too few for batch_size {batch_size} x {ctx.world_size} processes",
        )
        self.epoch = 0
        self.position = 0
        self._order: list[int] | None = None

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None

    def next(self) -> torch.Tensor:
        if self.position >= self.per_epoch:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        if self._order is None:
            self.sampler.set_epoch(self.epoch)
            self.dataset.set_epoch(self.epoch)
            self._order = list(iter(self.sampler))
        idx = self._order[self.position * self.batch_size : (self.position + 1) * self.batch_size]
        self.position += 1
        return torch.stack([self.dataset[i] for i in idx])


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    ema_p = [p for p in ema.parameters()]
    model_p = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_p, model_p, 1.0 - decay)
    for eb, mb in zip(ema.buffers(), model.buffers()):
        eb.copy_(mb)


def _rng_state() -> dict[str, Any]:
    """Every RNG state as tensors, numbers and lists only (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
    }  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _load_state(path: Path) -> dict[str, Any]:
    """The training state, read without unpickling arbitrary objects (one line if that fails)."""
    from mrirecon.prior.checkpoint import unsafe_file_message

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors come in many types
        raise MrireconError(
            unsafe_file_message(path, exc, "--resume: training state").replace(
                "If you trust it", "It may come from an older mrirecon; if you trust it"
            )
        ) from None
    keys = ("model", "ema", "optimizer", "step", "data", "rng", "config", "settings")
    require(
        isinstance(state, dict) and all(k in state for k in keys),
        f"--resume: {path} is not a mrirecon training state (expected the keys {', '.join(keys)})",
    )
    return state


def _read_log(path: Path, upto: int) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return [r for r in rows if r["step"] <= upto]


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (int(r[k]) if k == "step" else f"{r[k]:.6g}") for k in _LOG_FIELDS})
    atomic_write_text(path, buf.getvalue())


def train(
    config,
    data,
    out_dir: str | os.PathLike,
    steps: int,
    batch_size: int = 8,
    lr: float = 1e-4,
    seed: int = 0,
    resume: bool = False,
    *,
    weight_decay: float = 0.0,
    ema_decay: float = 0.999,
    grad_clip: float = 1.0,
    grad_accum: int = 1,
    warmup_steps: int = 0,
    lr_schedule: str = "constant",
    augment: bool = True,
    checkpoint_every: int = 500,
    log_every: int = 10,
    device: str = "cpu",
    amp: str = "auto",
    cond_noise: float = 0.0,
    cold_start: float = 0.0,
    num_threads: int | None = None,
    magnitude: bool | None = None,
    template: str | os.PathLike | None = None,
    init: str | os.PathLike | None = None,
    progress: bool = True,
    time_limit_s: float | None = None,
) -> TrainResult:
    """Train a Causal-UNet (config with ``seq_length``) or a plain UNet prior.

    Parameters
    ----------
    config : PriorConfig, dict or YAML path
        Official config keys; ``seq_length`` set -> Causal-UNet on windows of ``seq_length+1``
        consecutive slices, unset -> plain UNet on single slices. ``mag`` picks magnitude data.
    data : str, PathLike or list
        ``"mni"`` / ``"mni:COUNT"`` (built-in MNI phantoms), a folder of fastMRI ``.h5`` files,
        a folder of ``.nii``/``.nii.gz``/``.npy`` volumes, or a list of volumes ``(S, H, W)``
        / :class:`~mrirecon.prior.datasets.Volume` (see :func:`~mrirecon.prior.datasets.load_volumes`).
    out_dir : path
        Checkpoints and logs (created).
    steps : int
        Total optimiser steps (a resumed run continues up to ``steps``).
    batch_size : int
        Examples (windows or slices) per process per micro-batch; the effective batch is
        ``batch_size · grad_accum · world_size``.
    lr, seed : float, int
    resume : bool
        Continue from ``out_dir/train_state.pt``. Without it, an existing state is refused.
    weight_decay, ema_decay, grad_clip, grad_accum, warmup_steps, lr_schedule, augment,
    checkpoint_every, log_every : see :class:`TrainSettings`
        The EMA decay ramps as ``min(ema_decay, (1+step)/(10+step))`` so short runs are not
        dominated by the initial weights.
    device : str
        ``"cpu"``, ``"cuda"`` (``cuda:<LOCAL_RANK>`` under torchrun) or ``"cuda:N"``.
    amp : {"auto", "bf16", "off"}
        bf16 autocast of the forward pass: ``auto`` on CUDA only, ``bf16`` on any device (CPUs
        with native bf16 such as AVX512-BF16/AMX gain ~1.5x), ``off`` never. Weights, optimiser
        and loss stay fp32.
    cond_noise, cold_start : float
        AID only: noise on the conditioning slices and the probability of a zeroed first
        conditioning slice (:func:`mrirecon.prior.losses.causal_loss`), for robustness to
        reconstructed (imperfect) conditioning and to the cold start of the first slice.
    num_threads : int, optional
        ``torch.set_num_threads`` for CPU training.
    magnitude : bool, optional
        Override the config's ``mag`` for the data.
    template : path, optional
        MNI template source for ``"mni"`` data (see :func:`mrirecon.data.phantoms.load_mni_template`).
    init : str, path or Prior, optional
        Fine-tune: start model and EMA from this prior's weights (a loaded prior, or anything
        :func:`mrirecon.prior.load_prior` reads) instead of a random initialisation.
        Its config must equal ``config``. Ignored when resuming (the state holds the weights).
    progress : bool
        Show a rich progress bar (rank 0).
    time_limit_s : float, optional
        Stop (and save) at the first step after this many seconds of this call: time-boxed
        training on a borrowed GPU. ``TrainResult.step`` says how far it got; ``--resume``
        continues. Every rank stops at the same step (rank 0's clock decides).

    Returns
    -------
    TrainResult
    """
    settings = TrainSettings(
        steps=steps, batch_size=batch_size, lr=lr, seed=seed, weight_decay=weight_decay, ema_decay=ema_decay,
        grad_clip=grad_clip, grad_accum=grad_accum, warmup_steps=warmup_steps, lr_schedule=lr_schedule,
        augment=augment, checkpoint_every=checkpoint_every, log_every=log_every, amp=amp,
        cond_noise=cond_noise, cold_start=cold_start,
    )  # fmt: skip
    settings.validate()
    cfg = resolve_config(config)
    causal = is_causal_config(cfg)
    require(
        causal or (settings.cond_noise == 0 and settings.cold_start == 0),
        "cond_noise and cold_start condition AID priors; this config (no seq_length) is a plain UNet",
    )
    if num_threads is not None:
        configure_threads(num_threads)
    ctx = init_distributed(device)
    dev = resolve_device(device, ctx.local_rank)
    out = Path(out_dir)
    state_path, log_path = out / _STATE, out / _LOG
    model_path = out / "model.pt"
    config_path = model_path.with_suffix(".yaml")

    state = None
    if resume:
        require(state_path.is_file(), f"--resume: no training state {state_path} to resume from")
        state = _load_state(state_path)
        saved = PriorConfig.from_dict(state["config"])
        require(saved.to_dict() == cfg.to_dict(), f"--resume: config differs from the one saved in {state_path}")
        old = state["settings"]
        for key in ("batch_size", "seed", "grad_accum", "augment"):
            require(old[key] == getattr(settings, key), f"--resume: {key} was {old[key]}, now {getattr(settings, key)}")
    else:
        require(
            not state_path.exists(),
            f"{out} already holds a training run ({_STATE}); pass resume=True (--resume) or choose another out_dir",
        )
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)

    # Data: identical on every rank; DistributedSampler splits it.
    mag = cfg.mag if magnitude is None else bool(magnitude)
    volumes: list[Volume] = load_volumes(data, cfg.image_size, magnitude=mag, seed=seed, template=template)
    in_ch = volumes[0].frames.shape[1]
    require(
        in_ch == cfg.in_channels,
        f"data have {in_ch} channel(s) ({'magnitude' if mag else 'real/imag'}) but config in_channels is {cfg.in_channels}",
    )
    length = cfg.seq_length + 1 if causal else 1
    dataset = SliceWindows(volumes, length, augment=settings.augment, seed=seed)
    batches = _Batches(dataset, ctx, settings.batch_size, seed)

    torch.manual_seed(seed)  # identical initial weights on every rank
    network = build_network(cfg).to(dev)
    ema = copy.deepcopy(network).requires_grad_(False).eval()
    num_params = sum(p.numel() for p in network.parameters())
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    step = 0
    if init is not None and state is None:
        _load_init(network, ema, cfg, init)
    if state is not None:
        network.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimiser.load_state_dict(state["optimizer"])
        step = int(state["step"])
        batches.load_state(state["data"])
        _set_rng_state(state["rng"])
    model = network
    if ctx.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    schedule = DiffusionSchedule.from_config(cfg)
    learn_sigma = cfg.learn_sigma
    use_amp = settings.amp == "bf16" or (settings.amp == "auto" and dev.type == "cuda")
    cudnn_sdp = torch.backends.cuda.cudnn_sdp_enabled()  # a process-wide flag: restored when training ends
    if dev.type == "cuda":
        # cuDNN's fused attention failed its backward pass here ("mha_graph.execute ... is_good()",
        # torch 2.11, H200, bf16); flash / memory-efficient attention compute the same thing
        torch.backends.cuda.enable_cudnn_sdp(False)
    gen = torch.Generator(device=dev)
    history = _read_log(log_path, step) if ctx.is_main else []
    elapsed0 = history[-1]["elapsed_s"] if history else 0.0
    t_start = time.perf_counter()
    window: list[tuple[float, float, float, float]] = []

    def save() -> None:
        if not ctx.is_main:
            return
        payload = {
            "step": step,
            "model": network.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimiser.state_dict(),
            "data": batches.state(),
            "rng": _rng_state(),
            "config": cfg.to_dict(),
            "settings": asdict(settings),
        }
        _atomic_torch_save(payload, state_path)
        save_checkpoint(model_path, ema, cfg)
        _write_log(log_path, history)
        summary = {
            "kind": cfg.kind,
            "config": cfg.to_dict(),
            "settings": asdict(settings),
            "num_params": num_params,
            "step": step,
            "elapsed_s": elapsed0 + time.perf_counter() - t_start,
            "last_loss": history[-1]["loss"] if history else None,
            "world_size": ctx.world_size,
            "device": str(dev),
            "num_windows": len(dataset),
            "num_volumes": len(volumes),
            "init": None if init is None else str(getattr(getattr(init, "config", None), "name", None) or init),
        }
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")

    bar = StepProgress(progress and ctx.is_main, settings.steps, f"train {'AID' if causal else 'UNet'}", {"loss": "-"})
    bar.__enter__()
    bar.update(completed=step)
    saved_at = None
    network.train()
    try:
        while step < settings.steps:
            lr_now = settings.lr_at(step)
            for g in optimiser.param_groups:
                g["lr"] = lr_now
            totals = torch.zeros(3, device=dev)
            for micro in range(settings.grad_accum):
                batch = batches.next().to(dev, non_blocking=True)
                gen.manual_seed(_step_seed(seed, ctx.rank, step, micro))
                amp_ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if use_amp else None
                sync = micro == settings.grad_accum - 1 or not ctx.distributed
                with model.no_sync() if not sync else contextlib.nullcontext():
                    if causal:
                        terms = causal_loss(
                            model, schedule, batch, learn_sigma, gen, amp_ctx, settings.cond_noise, settings.cold_start
                        )
                    else:
                        terms = unet_loss(model, schedule, batch[:, 0], learn_sigma, gen, amp_ctx)
                    (terms.loss.mean() / settings.grad_accum).backward()
                totals += torch.stack([terms.loss.mean(), terms.mse.mean(), terms.vb.mean()]).detach()
            grad_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), settings.grad_clip)
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
            step += 1
            _ema_update(ema, network, min(settings.ema_decay, (1 + step) / (10 + step)))
            totals /= settings.grad_accum
            if ctx.distributed:
                torch.distributed.all_reduce(totals)
                totals /= ctx.world_size
            loss, mse, vb = (float(v) for v in totals)
            require(math.isfinite(loss), f"training diverged: loss is {loss} at step {step} (lower lr or grad_clip)")
            window.append((loss, mse, vb, float(grad_norm)))
            if step % settings.log_every == 0 or step == settings.steps:
                mean = np.mean(np.asarray(window), axis=0)
                window = []
                row = {
                    "step": step, "loss": float(mean[0]), "mse": float(mean[1]), "vb": float(mean[2]),
                    "grad_norm": float(mean[3]),
                    "lr": lr_now, "elapsed_s": elapsed0 + time.perf_counter() - t_start,
                }  # fmt: skip
                if ctx.is_main:
                    history.append(row)
                    _write_log(log_path, history)
                bar.update(completed=step, loss=f"{row['loss']:.4f}")
            if step % settings.checkpoint_every == 0 or step == settings.steps:
                save()
                saved_at = step
            if time_limit_s is not None and _out_of_time(t_start, time_limit_s, dev, ctx):
                break
        if saved_at != step:  # e.g. resumed at its final step: refresh the exported files
            save()
    finally:
        bar.__exit__(None, None, None)
        torch.backends.cuda.enable_cudnn_sdp(cudnn_sdp)
    elapsed = elapsed0 + time.perf_counter() - t_start
    return TrainResult(
        out_dir=out,
        step=step,
        num_params=num_params,
        last_loss=history[-1]["loss"] if history else None,
        elapsed_s=elapsed,
        model_path=model_path,
        config_path=config_path,
        log_path=log_path,
        history=history,
    )
