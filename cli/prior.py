"""Prior commands: ``priors`` (registry), ``train`` (fit a prior), ``sample`` (generate slices)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import numpy as np

from mrirecon.cli._common import (
    DEVICE_OPTION,
    THREADS_OPTION,
    command,
    console,
    examples,
    existing_file,
    fail,
    info,
    output_path,
    saved,
    start,
)


def _size(nbytes) -> str:
    if nbytes is None:
        return "-"
    n = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@command("priors", epilog=examples("mrirecon priors"))
def priors_cmd() -> None:
    """List the registered priors (name, kind, parameters, file size, origin)."""
    from rich.table import Table

    from mrirecon.prior import list_priors

    t = Table(title="Registered priors (use with --prior NAME; or --prior CONFIG.yaml:WEIGHTS.pt)")
    for h in ("name", "kind", "parameters", "size", "origin"):
        t.add_column(h, justify="right" if h in ("parameters", "size") else "left")
    for p in list_priors():
        params = getattr(p, "params", None)
        t.add_row(
            p.name,
            p.kind,
            f"{params:,}" if isinstance(params, int) else str(params or "-"),
            _size(getattr(p, "size", None)),
            str(getattr(p, "origin", "")),
        )
    console.print(t)


@command(
    "train",
    epilog=examples(
        "mrirecon train --config aid_small.yaml --data mni:64 -o runs/aid --steps 2000",
        "mrirecon train --config aid_small.yaml --data data/multicoil_train -o runs/aid --steps 20000 --device cuda",
        "mrirecon train --config aid_small.yaml --data data/ -o runs/aid --steps 40000 --resume",
        "torchrun --nproc-per-node 4 -m mrirecon.cli train --config aid.yaml --data data/ -o runs/aid --steps 100000 "
        "--device cuda",
    ),
)
def train_cmd(
    config: Path = typer.Option(..., "--config", help="Prior config YAML (official AID keys; seq_length set = AID)."),
    data: str = typer.Option(
        ..., "--data", help="Folder of fastMRI .h5 / .nii(.gz) / .npy volumes, or mni[:COUNT] (built-in phantoms)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints, model.pt + model.yaml, loss log."),
    steps: int = typer.Option(..., "--steps", help="Total optimiser steps (a resumed run continues up to it)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Examples per process per micro-batch."),
    lr: float = typer.Option(1e-4, "--lr", help="Peak learning rate (AdamW)."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, data order, noise."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in --out."),
    warmup_steps: int = typer.Option(0, "--warmup-steps", help="Linear learning-rate warm-up."),
    lr_schedule: str = typer.Option("constant", "--lr-schedule", help="constant or cosine."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-batches per optimiser step."),
    ema_decay: float = typer.Option(0.999, "--ema-decay", help="EMA of the weights (the shipped weights)."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", help="Steps between checkpoints."),
    log_every: int = typer.Option(10, "--log-every", help="Steps between loss-log rows."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda (cuda:LOCAL_RANK under torchrun) or cuda:N."),
    threads: int = THREADS_OPTION,
    cond_noise: float = typer.Option(
        0.0, "--cond-noise", help="AID: noise std (max) on the conditioning slices, for robustness to recon errors."
    ),
    cold_start: float = typer.Option(
        0.0, "--cold-start", help="AID: probability of a zeroed first conditioning slice (cold-start training)."
    ),
    init: str = typer.Option(
        None, "--init", help="Fine-tune from these weights (registry name or CONFIG:WEIGHTS; same config)."
    ),
) -> None:
    """Train an AID (Causal-UNet) or UNet prior; resumable, data-parallel under torchrun.

    The result, OUT/model.pt + OUT/model.yaml, is used with --prior OUT/model.yaml:OUT/model.pt.
    """
    from mrirecon.distributed import context_from_env
    from mrirecon.prior import load_prior
    from mrirecon.prior.train import train

    existing_file(config, "--config")
    output_path(out / "model.pt", (".pt",), "--out")
    start(device, threads)
    try:
        res = train(
            config,
            data,
            out,
            steps,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            resume=resume,
            warmup_steps=warmup_steps,
            lr_schedule=lr_schedule,
            grad_accum=grad_accum,
            ema_decay=ema_decay,
            checkpoint_every=checkpoint_every,
            log_every=log_every,
            device=device,
            cond_noise=cond_noise,
            cold_start=cold_start,
            init=None if init is None else load_prior(init, device="cpu"),
        )
    except KeyboardInterrupt:
        state = out / "train_state.pt"
        if state.exists():
            saved(f"{state} (the last checkpoint; continue with --resume)")
        raise
    if context_from_env().is_main:
        saved(res.model_path)
        loss = "-" if res.last_loss is None else f"{res.last_loss:.4g}"
        console.print(
            f"Trained {res.num_params:,} parameters to step {res.step} in {res.elapsed_s:.0f} s (last loss {loss})."
        )
        console.print(f"Use it with: --prior {res.config_path}:{res.model_path}")


@command(
    "sample",
    epilog=examples(
        "mrirecon sample --prior default -n 8 -o frames.h5 --png strip.png",
        "mrirecon sample --prior default --warm-start sample --warm-slices 0:4 -n 4 --png next4.png",
        "mrirecon sample --prior default -n 16 --steps 100 --eta 1 --seed 3 -o frames.h5 --device cuda",
    ),
)
def sample_cmd(
    prior: str = typer.Option("default", "--prior", help="Registry name or CONFIG.yaml:WEIGHTS.pt."),
    n: int = typer.Option(8, "-n", "--frames", help="Number of consecutive slices to generate."),
    out: Path = typer.Option(None, "--out", "-o", help="Output .h5 (dataset 'reconstruction' = magnitude, 'frames')."),
    png: Path = typer.Option(None, "--png", help="Picture of the frames side by side."),
    warm_start: str = typer.Option(
        None,
        "--warm-start",
        help="Known slices to continue from: a fastMRI .h5, .npy or .nii(.gz) volume, or 'sample' "
        "(the bundled sample scan). Default: cold start.",
    ),
    warm_slices: str = typer.Option(
        None, "--warm-slices", help="Slices of --warm-start to continue from: A:B, I,J,K or center:N (default: the first seq_length)."
    ),
    steps: int = typer.Option(100, "--steps", help="DDIM steps per frame."),
    eta: float = typer.Option(
        1.0, "--eta", help="DDIM eta in [0, 1] (1: ancestral, more robust for small priors; 0: deterministic)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial noise."),
    device: str = DEVICE_OPTION,
    threads: int = THREADS_OPTION,
) -> None:
    """Generate a sequence of adjacent slices from a prior alone (no data).

    An AID prior generates each slice conditioned on the ones before it, so the frames form a
    plausible volume; a UNet prior generates independent slices. With --warm-start the
    generation continues a real volume: its slices are coil-combined and normalised as for
    training, resampled to the prior's matrix, and fill the conditioning window.
    """
    import numpy as np

    from mrirecon.data.fastmri import write_reconstruction
    from mrirecon.physics.fft import channels_to_complex
    from mrirecon.prior import load_prior
    from mrirecon.recon import CLASSICAL_METHODS, generate_sequence

    if out is None and png is None:
        fail("give --out FRAMES.h5 and/or --png STRIP.png")
    warm_file = None if warm_start in (None, "sample") else Path(warm_start)
    if out is not None:
        output_path(out, (".h5",), "--out", [warm_file])
    if png is not None:
        output_path(png, (".png",), "--png", [warm_file])
    if prior in CLASSICAL_METHODS:
        fail(f"--prior {prior} is a classical method; sample needs a learned prior (see mrirecon priors)")
    device = start(device, threads)
    p = load_prior(prior, device=device)
    given = None
    if warm_start is not None:
        given = _warm_start_frames(warm_start, warm_slices, p)
    elif warm_slices is not None:
        fail("--warm-slices needs --warm-start")
    start_text = "cold start" if given is None else f"continuing {len(given)} slices of {warm_start}"
    info(f"Generating {n} frames with {prior} ({'AID' if p.sequential else 'UNet'}), {steps} steps, {start_text} ...")
    frames = np.asarray(generate_sequence(p, n, warm_start=given, steps=steps, eta=eta, seed=seed, progress=True))

    def complex_frames(x: np.ndarray) -> np.ndarray:
        return channels_to_complex(x) if x.shape[1] == 2 else x[:, 0]

    images = complex_frames(frames)
    if out is not None:
        attrs = {"prior": prior, "steps": steps, "eta": eta, "seed": seed, "kind": "aid" if p.sequential else "unet"}
        extra = {"frames": frames.astype(np.float32)}
        if given is not None:
            attrs.update(warm_start=str(warm_start), warm_slices=str(warm_slices or "first seq_length"))
            extra["warm_start"] = given
        write_reconstruction(out, images, attrs=attrs, extra=extra)
        saved(out)
        console.print(f"Wrote {out}: frames {tuple(frames.shape)} (N, C, H, W) in [-1, 1].")
    if png is not None:
        from mrirecon.viz import save_strip

        strip, titles = images, [f"gen {i + 1}" for i in range(n)]
        if given is not None:
            strip = np.concatenate([complex_frames(given), images])
            titles = [f"given {i + 1}" for i in range(len(given))] + titles
        save_strip(png, strip, titles=titles, title=f"{prior}: {n} generated slices ({steps} steps, seed {seed}; {start_text})")
        saved(png)
        console.print(f"Wrote {png}.")


def _warm_start_frames(source: str, spec: str | None, prior) -> np.ndarray:
    """The warm-start window ``(T0, C, H, W)`` in [-1, 1] from a volume file, as training reads it."""
    from mrirecon.assets import sample_scan_path
    from mrirecon.data.scan import parse_slices
    from mrirecon.prior.datasets import load_volume_file

    path = sample_scan_path() if source == "sample" else existing_file(Path(source), "--warm-start")
    if not prior.sequential:
        fail("--warm-start conditions an AID prior; a UNet prior generates independent slices")
    volume = load_volume_file(path, image_size=prior.image_size, magnitude=prior.in_channels == 1)
    T = int(prior.seq_length)
    idx = parse_slices(spec, len(volume), "--warm-slices") if spec is not None else list(range(min(T, len(volume))))
    if idx != list(range(idx[0], idx[-1] + 1)):
        fail(f"--warm-slices {spec!r} must select consecutive slices, got {idx}")
    return volume.frames[idx].numpy()
