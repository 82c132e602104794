#!/usr/bin/env python
"""Rebuild mrirecon's bundled default priors, sample scan and model card with one command.

    pip install -e ".[train]"            # nilearn ships the MNI ICBM152 2009 template
    python scripts/build_default_prior.py --work build/default_prior

or, with only the nilearn wheel at hand (``pip download --no-deps nilearn``)::

    python scripts/build_default_prior.py --template nilearn-0.14.1-py3-none-any.whl

Stages (``--stages``, comma separated, default all, in this order):

``data``
    MNI phantoms (:mod:`mrirecon.data.phantoms`): training volumes from the training slab,
    held-out evaluation volumes from the held-out slab, cached in ``WORK/data/*.npz``.
``train``
    the AID Causal-UNet and its plain-UNet twin (same backbone), both with
    :func:`mrirecon.prior.train.train`; on CPU they run concurrently, one thread each
    (``--sequential`` runs them one after another with every thread). Runs in ``WORK/aid``
    and ``WORK/unet``; an interrupted build resumes them.
``export``
    EMA weights as fp16 safetensors + config YAML in ``mrirecon/assets``
    (``aid_default.*``, ``unet_default.*``).
``scan``
    ``mrirecon/assets/sample_scan.h5``: a held-out phantom (held-out slab and seed stream)
    simulated as an 8-coil fastMRI scan with 2x readout oversampling and noise, on a 2x finer
    grid than the scan (no inverse crime).
``card``
    held-out denoising errors, loss curves and generated frames: ``docs/model_card.md``,
    ``docs/figures/default_prior_*.png`` and ``mrirecon/assets/default_prior_card.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "mrirecon" / "assets"
DOCS = ROOT / "docs"
FIGURES = DOCS / "figures"

#: The bundled AID prior (official config keys). The UNet twin drops ``seq_length``.
AID_CONFIG = {
    "image_size": 64,
    "in_channels": 2,
    "seq_length": 4,
    "num_channels": 32,
    "channel_mult": "1,2,2,4",
    "attention_resolutions": "8",
    "num_res_blocks": 1,
    "num_heads": 4,
    "learn_sigma": True,
    "mag": False,
    "dataset": "mni_phantoms",
    "pixel_size_mm": "3.6",  # 64 pixels over the phantoms' 232 mm field of view
}
#: Priors v3 (``--anatomy``): the same network on 128 x 128 crops of real anatomy at 0.7-2.5 mm
#: pixels; attention at 1/8 resolution as above (16 px at 128), so v2 weights fine-tune into it.
REAL_CONFIG = AID_CONFIG | {
    "image_size": 128,
    "attention_resolutions": "16",
    "dataset": "real_anatomy",
    "pixel_size_mm": "0.7,2.5",
}
#: Small cropped boxes (hard rectangular edges, one spine subject): not used.
SKIPPED_SUBJECTS = ("sct_spine_t1w", "sct_spine_t2")
STAGES = ("data", "train", "export", "scan", "card")
EVAL_TIMESTEPS = (50, 200, 500, 800)
SCAN_SEED = 2024  # draws the sample scan's held-out phantom (a stream no other volume uses)


def aid_config(args) -> dict:
    """The AID config of this build: MNI phantoms (v2) or real anatomy (``--anatomy``, v3)."""
    return REAL_CONFIG if getattr(args, "anatomy", None) else AID_CONFIG


def unet_config(aid: dict) -> dict:
    return {k: v for k, v in aid.items() if k != "seq_length"}


# -- data ---------------------------------------------------------------------------------------


def _save_volumes(path: Path, vols: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{f"vol_{i:04d}": v for i, v in enumerate(vols)})
    tmp.replace(path)


def _load_volumes(path: Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files)]


def _data_dir(args) -> Path:
    """Where the phantom volumes are cached (``--data``, default ``WORK/data``)."""
    return args.data if args.data is not None else args.work / "data"


def anatomy_subjects(folder: Path) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files) of an anatomy folder (``../shared/data/anatomy``)."""
    files = sorted(f for f in folder.iterdir() if f.name.endswith((".nii", ".nii.gz", ".npz")))
    from mrirecon.data.anatomy import HELDOUT_SUBJECTS

    stem = lambda f: f.name.split(".")[0]  # noqa: E731
    held = [f for f in files if stem(f) in HELDOUT_SUBJECTS]
    train = [f for f in files if stem(f) not in HELDOUT_SUBJECTS + SKIPPED_SUBJECTS]
    return train, held


def stage_data_anatomy(args) -> None:
    from mrirecon.data.anatomy import random_slabs, read_anatomy

    cfg = REAL_CONFIG
    t0 = time.perf_counter()
    train_files, held_files = anatomy_subjects(args.anatomy)
    out = {}
    for split, files, count in (("train", train_files, args.slabs), ("heldout", held_files, 8)):
        vols = []
        for i, f in enumerate(files):
            vols += random_slabs(read_anatomy(f), count, size=cfg["image_size"], slices=cfg["seq_length"] + 2,
                                 seed=args.seed * 1000 + i + (500 if split == "heldout" else 0))  # fmt: skip
        _save_volumes(_data_dir(args) / f"{split}.npz", vols)
        out[split] = (len(files), len(vols))
    print(
        f"data: {out['train'][1]} training slabs from {out['train'][0]} subjects, {out['heldout'][1]} held-out "
        f"slabs from {out['heldout'][0]} subjects in {time.perf_counter() - t0:.0f} s"
    )


def stage_data(args) -> None:
    if args.anatomy:
        return stage_data_anatomy(args)
    from mrirecon.data.phantoms import load_mni_template, phantom_volumes

    tpl = load_mni_template(args.template)
    t0 = time.perf_counter()
    train = phantom_volumes(tpl, args.volumes, "train", AID_CONFIG["image_size"], seed=args.seed)
    held = phantom_volumes(tpl, args.heldout_volumes, "heldout", AID_CONFIG["image_size"], seed=args.seed)
    _save_volumes(_data_dir(args) / "train.npz", train)
    _save_volumes(_data_dir(args) / "heldout.npz", held)
    print(
        f"data: {len(train)} training volumes ({sum(len(v) for v in train)} slices), "
        f"{len(held)} held-out volumes ({sum(len(v) for v in held)} slices) in {time.perf_counter() - t0:.0f} s"
    )


# -- train --------------------------------------------------------------------------------------


def _train_one(kind: str, args_dict: dict) -> None:
    from mrirecon.prior.train import train

    args = argparse.Namespace(**args_dict)
    cfg = aid_config(args) if kind == "aid" else unet_config(aid_config(args))
    out = args.work / kind
    vols = _load_volumes(_data_dir(args) / "train.npz")
    steps = args.steps_aid if kind == "aid" else args.steps_unet
    batch = args.batch_aid if kind == "aid" else args.batch_unet
    result = train(
        cfg,
        vols,
        out,
        steps=steps,
        batch_size=batch,
        lr=args.lr,
        seed=args.seed,
        resume=(out / "train_state.pt").is_file(),
        warmup_steps=args.warmup,
        lr_schedule=args.lr_schedule,
        ema_decay=args.ema,
        checkpoint_every=args.checkpoint_every,
        log_every=10,
        device=args.device,
        amp=args.amp,
        num_threads=args.threads,
        init=args.init_aid if kind == "aid" else args.init_unet,
        time_limit_s=None if args.time_limit_min is None else 60 * args.time_limit_min,
        cond_noise=args.cond_noise if kind == "aid" else 0.0,
        cold_start=args.cold_start if kind == "aid" else 0.0,
        progress=sys.stdout.isatty(),
    )
    print(f"train {kind}: {result.step} steps, last loss {result.last_loss:.4f}, {result.elapsed_s / 60:.1f} min")


def stage_train(args) -> None:
    payload = {k: v for k, v in vars(args).items()}
    kinds = [k.strip() for k in args.priors.split(",") if k.strip()]
    if args.sequential or args.device != "cpu" or len(kinds) == 1:
        for kind in kinds:
            _train_one(kind, payload)
        return
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_train_one, args=(kind, payload), name=kind) for kind in kinds]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.name for p in procs if p.exitcode != 0]
    if failed:
        raise SystemExit(f"training failed for: {', '.join(failed)}")


# -- export -------------------------------------------------------------------------------------


def stage_export(args) -> None:
    from mrirecon.prior import load_prior
    from mrirecon.prior.checkpoint import export_safetensors

    for kind, name in (("aid", "aid_default"), ("unet", "unet_default")):
        prior = load_prior(args.work / kind / "model.pt")
        path = export_safetensors(ASSETS / f"{name}.safetensors", prior.network, prior.config, dtype=torch.float16)
        for f in (path, path.with_suffix(".yaml")):
            f.chmod(0o644)  # package data must be readable by every user of an installation
        print(f"export: {path} ({path.stat().st_size / 1e6:.1f} MB)")


# -- sample scan --------------------------------------------------------------------------------


def stage_scan(args) -> None:
    from mrirecon.data.phantoms import HELDOUT_SLAB_MM, draw_params, load_mni_template, make_phantom
    from mrirecon.data.simulate import simulate_scan, write_simulated

    tpl = load_mni_template(args.template)
    n = AID_CONFIG["image_size"]
    params = draw_params(SCAN_SEED, slab_mm=HELDOUT_SLAB_MM, n_slices=8, spacing_mm=3.5, contrast="t1")
    fine = make_phantom(tpl, params, image_size=2 * n, magnitude=True)  # 2x finer grid, same FOV
    sim = simulate_scan(fine, coils=8, snr_db=30.0, oversample=2, seed=SCAN_SEED, fine_grid=True)
    path = write_simulated(
        ASSETS / "sample_scan.h5",
        sim,
        acquisition="AXT1",
        patient_id="mni-heldout-2024",
        attrs={
            "source": "MNI ICBM152 2009a phantom (mrirecon.data.phantoms), held-out slab and seed; see NOTICE_MNI.txt",
            "phantom_contrast": params.contrast,
            "phantom_slab_mm": [params.z_start_mm, params.z_start_mm + 7 * params.spacing_mm],
        },
    )
    print(f"scan: {path} kspace {sim.kspace.shape} ({path.stat().st_size / 1e6:.2f} MB)")


# -- model card ---------------------------------------------------------------------------------


def _heldout_windows(args, length: int) -> torch.Tensor:
    from mrirecon.prior.datasets import SliceWindows, to_volume

    vols = [to_volume(v, f"heldout-{i}") for i, v in enumerate(_load_volumes(_data_dir(args) / "heldout.npz"))]
    ds = SliceWindows(vols, length, augment=False)
    return torch.stack([ds[i] for i in range(len(ds))])


def _read_round(work: Path, kind: str) -> dict:
    """One training round of one prior: its summary and loss log (``WORK/<kind>``)."""
    import csv

    summ = json.loads((work / kind / "summary.json").read_text())
    with (work / kind / "loss_log.csv").open() as f:
        log = list(csv.DictReader(f))
    st = summ["settings"]
    return {
        "steps": summ["step"],
        "elapsed_s": summ["elapsed_s"],
        "last_loss": summ["last_loss"],
        "num_params": summ["num_params"],
        "num_windows": summ["num_windows"],
        "num_volumes": summ["num_volumes"],
        "init": summ.get("init"),
        "log": [(float(r["step"]), float(r["mse"]), float(r["vb"])) for r in log],
        **{k: st.get(k, 0.0) for k in ("batch_size", "lr", "lr_schedule", "warmup_steps", "ema_decay",
                                      "cond_noise", "cold_start", "seed")},
    }  # fmt: skip


def _rounds(args) -> dict[str, list[dict]]:
    """Training rounds per prior, oldest first: ``--history`` entries, then ``--work``.

    A history entry is an earlier work folder or an earlier card JSON (whose run folders are
    gone: its recorded totals are kept, without a loss curve).
    """
    sources = [h.strip() for h in (args.history or "").split(",") if h.strip()] + [str(args.work)]
    rounds: dict[str, list[dict]] = {"aid": [], "unet": []}
    for src in sources:
        for kind in rounds:
            if src.endswith(".json"):
                old = json.loads(Path(src).read_text())["training"][kind]
                old = old[-1] if isinstance(old, list) else old
                rounds[kind].append({**old, "steps": old.get("steps", old.get("step")), "log": [], "init": None})
            else:
                rounds[kind].append(_read_round(Path(src), kind))
    return rounds


def _plot_losses(rounds: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for kind, label in (("aid", "AID Causal-UNet"), ("unet", "UNet (Guide)")):
        offset, steps, mse, vb = 0, [], [], []
        for r in rounds[kind]:
            for st, m, v in r["log"]:
                steps.append(offset + st)
                mse.append(m)
                vb.append(v)
            offset += r["steps"]
        step = np.array(steps)
        for j, y in enumerate((np.array(mse), np.array(vb))):
            k = max(1, len(y) // 40)
            smooth = np.convolve(y, np.ones(k) / k, mode="valid")
            ax[j].plot(step, y, alpha=0.25)
            ax[j].plot(step[k - 1 :], smooth, label=label, color=ax[j].lines[-1].get_color())
    boundaries = np.cumsum([r["steps"] for r in rounds["aid"]])[:-1]
    ax[0].set_title("ε-MSE (training batches)")
    ax[1].set_title("VLB term (bits/dim)")
    for a in ax:
        for b in boundaries:
            a.axvline(b, color="0.6", lw=0.8, ls="--")
        a.set_xlabel("optimiser step (dashed: start of a fine-tuning round)")
        a.set_yscale("log")
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _generate_frames(prior, warm: torch.Tensor, n_frames: int, steps: int, eta: float, seed: int) -> torch.Tensor:
    """Frames generated by the AID prior after a warm-start window (sampler's generation API)."""
    from mrirecon.recon.generate import generate_sequence

    out = generate_sequence(prior, n_frames=n_frames, warm_start=warm, steps=steps, eta=eta, seed=seed)
    return torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out).float()


def stage_card(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mrirecon.prior import load_prior
    from mrirecon.prior.losses import denoising_error

    torch.set_num_threads(args.threads_card)
    FIGURES.mkdir(parents=True, exist_ok=True)
    seq = AID_CONFIG["seq_length"]
    windows = _heldout_windows(args, seq + 1)
    results = {}
    for kind, name in (("aid", "default"), ("unet", "default-unet")):
        prior = load_prior(name)
        results[kind] = denoising_error(
            prior.network.float(), prior.schedule, windows, list(EVAL_TIMESTEPS), causal=(kind == "aid"), seed=0
        )
        print(kind, json.dumps(results[kind]))
    rounds = _rounds(args)
    _plot_losses(rounds, FIGURES / "default_prior_loss.png")
    # Generated frames: warm start on the first held-out window's first `seq` slices.
    aid = load_prior("default")
    gen = _generate_frames(aid, windows[0, :seq], n_frames=6, steps=args.gen_steps, eta=args.gen_eta, seed=0)  # not the training seed
    frames = torch.cat([windows[0, :seq], gen.reshape(-1, *windows.shape[2:])], 0)
    mag = torch.linalg.vector_norm(frames, dim=1)
    fig, ax = plt.subplots(1, len(mag), figsize=(1.6 * len(mag), 1.9))
    for i, a in enumerate(ax):
        a.imshow(mag[i].numpy(), cmap="gray", vmin=0, vmax=float(mag.max()))
        a.set_title("given" if i < seq else f"gen {i - seq + 1}", fontsize=8)
        a.axis("off")
    fig.tight_layout()
    fig.savefig(FIGURES / "default_prior_samples.png", dpi=110)
    plt.close(fig)
    training = {
        kind: [{k: v for k, v in r.items() if k != "log"} | {"unit": "windows" if kind == "aid" else "slices"}
               for r in rs]
        for kind, rs in rounds.items()
    }  # fmt: skip
    card = {
        "config": aid_config(args),
        "ema": args.ema,
        "warmup": args.warmup,
        "eval_timesteps": list(EVAL_TIMESTEPS),
        "heldout_windows": int(windows.shape[0]),
        "denoising": {k: {str(t): v for t, v in r.items()} for k, r in results.items()},
        "training": training,
        "generation": {"n_given": seq, "n_frames": int(gen.shape[0]), "steps": args.gen_steps, "eta": args.gen_eta},
        "total_minutes": sum(max(r[i]["elapsed_s"] for r in training.values()) for i in range(len(training["aid"]))) / 60
        + 5,
        "machine": f"a {os.cpu_count()}-core {platform.machine()} CPU (torch {torch.__version__})",
    }
    (ASSETS / "default_prior_card.json").write_text(json.dumps(card, indent=2) + "\n")
    write_model_card(card, DOCS / "model_card.md")
    print(json.dumps(card["denoising"], indent=2))


def write_model_card(card: dict, path: Path) -> None:
    """docs/model_card.md from the measured numbers (regenerated by every build)."""
    tr, den = card["training"], card["denoising"]
    cfg = card["config"]
    rows = "\n".join(
        f"| {t} | {den['aid'][str(t)]['eps_mse']:.4f} | {den['unet'][str(t)]['eps_mse']:.4f} "
        f"| {den['aid'][str(t)]['x0_psnr']:.2f} | {den['unet'][str(t)]['x0_psnr']:.2f} |"
        for t in card["eval_timesteps"]
    )

    def train_rows(kind: str, label: str) -> str:
        out = []
        for i, t in enumerate(tr[kind]):
            how = "from scratch" if i == 0 else "fine-tune of the previous round"
            cond = f", cond. noise ≤ {t['cond_noise']:g}, cold start {t['cold_start']:g}" if t.get("cond_noise") or t.get("cold_start") else ""
            sched = t.get("lr_schedule", "constant")
            out.append(
                f"| {label} | {i} ({how}) | {t['steps']} | {t['batch_size']} {t['unit']} "
                f"| {t['lr']:g} {sched}{cond} | {t['elapsed_s'] / 60:.0f} min | {t['last_loss']:.4f} |"
            )
        return "\n".join(out)

    total = {k: sum(r["steps"] for r in tr[k]) for k in tr}
    seeds = ", ".join(str(r.get("seed", 0)) for r in tr["aid"])
    first = {k: tr[k][0] for k in tr}
    text = f"""# Model card: the bundled default priors (`default`, `default-unet`)

mrirecon ships two small diffusion priors so that `mrirecon recon` and `mrirecon sample` run on
a fresh machine without downloading anything: an AID Causal-UNet (`load_prior("default")`) and
its plain-UNet twin, the paper's single-image "Guide" baseline (`load_prior("default-unet")`). A second pair, `anatomy` / `anatomy-unet`,
is the same networks after a first CPU round on real anatomy
([below](#priors-v3-real-anatomy-at-real-pixel-sizes-a-first-cpu-round)).
They are **demonstration-grade**: trained for {card['total_minutes'] / 60:.1f} hours on two CPU cores, on synthetic
brain-like images derived from a single anatomical template. They are not meant for real
patient data; for that use the official AID checkpoints (`load_prior` reads them) or train your
own with `mrirecon train` (docs: `mrirecon.prior.train`).

## Data

Synthetic complex axial brain slices from the MNI ICBM152 2009a symmetric template (T1 and
grey/white-matter probability maps, shipped inside the nilearn wheel), built by
`mrirecon.data.phantoms`:

* tissue-mixture contrasts (T1-, T2-, PD- and FLAIR-like signal weights with ±15 % jitter; CSF =
  brain mask − GM − WM), a smooth bias field;
* random small affine (rotation ±10° in-plane, ±3° tilt, ±10 % scale, ±6 mm shift) and a smooth
  elastic deformation of a few mm;
* a smooth random phase (uniform global phase + low-order field): two channels (real, imag);
* axial slices 3.5–5.5 mm apart, {cfg['image_size']}×{cfg['image_size']} pixels over a 232 mm field of view, each volume
  divided by its max |x|.

Training: {first['aid']['num_volumes']} volumes from the MNI z-slab −52…+30 mm ({first['aid']['num_windows']} windows of
{cfg['seq_length'] + 1} consecutive slices for AID, {first['unet']['num_windows']} single slices for the UNet), with random
flips, intensity scaling and global phase rotation. Windows never straddle two volumes.
Held out: the slab +40…+66 mm and a separate seed stream; {card['heldout_windows']} held-out windows give
the errors below and the sample scan `mrirecon/assets/sample_scan.h5` (8 slices, 8 birdcage coils,
2× readout oversampling, 30 dB per-coil SNR, simulated on a 2× finer grid) comes from there too.

**Pixel size.** 64 pixels over 232 mm: 3.6 mm, recorded as `pixel_size_mm` in the configs.
`reconstruct` warns when a scan's pixels are more than 1.5x away (fastMRI brain: 0.7 mm; the
held-out 128² scans: 2 mm). The networks are fully convolutional and run at any size, but they
have only seen anatomy at 3.6 mm.

## Architecture

Guided-diffusion U-Net, official config keys (`mrirecon/assets/aid_default.yaml`):
`image_size {cfg['image_size']}`, `in_channels {cfg['in_channels']}`, `num_channels {cfg['num_channels']}`,
`channel_mult {cfg['channel_mult']}`, `num_res_blocks {cfg['num_res_blocks']}`,
`attention_resolutions {cfg['attention_resolutions']}`, `num_heads {cfg['num_heads']}`, `learn_sigma true`;
the AID model adds the temporal-spatial conditioning path with `seq_length {cfg['seq_length']}`.
Linear β schedule (1e-4 → 0.02, 1000 steps), ε-prediction with learned-range variance.
Weights are the EMA weights, stored as fp16 safetensors.

## Training

Objective as the AID reference: one timestep per sequence, ε-MSE on every target frame given the
earlier frames (teacher forcing) plus the VLB term for the variance head (ε̂ detached);
the UNet gets single slices of the same volumes. AdamW (no weight decay), linear warm-up,
gradient clipping 1.0, EMA decay {card['ema']} (the shipped weights). Training ran in rounds, each
starting from the previous round's EMA weights (`train(..., init=...)`, `mrirecon train --init`);
both priors got the same rounds and steps ({total['aid']} for AID, {total['unet']} for the UNet). The AID
rounds marked in the table also train for what reconstruction feeds the network and the
reference's teacher forcing never shows it: conditioning slices with noise of a random std up to
`cond_noise` (reconstructed slices are imperfect) and, with probability `cold_start`, a zeroed
first conditioning slice (the cold start of a scan's first slice); see
`mrirecon.prior.losses.causal_loss`. Training seeds by round: {seeds} (a repeated seed revisits the
same batch order). Both priors trained at the same
time, one CPU thread each, on {card['machine']}, at times shared with other jobs, so wall times are
not benchmarks. The first round's loss log was not kept (only its totals).

| prior | round | steps | batch | lr | wall time | last logged loss |
|---|---|---|---|---|---|---|
{train_rows('aid', 'AID Causal-UNet (`default`)')}
{train_rows('unet', 'UNet (`default-unet`)')}

![training loss](figures/default_prior_loss.png)

## Held-out denoising error

One-step denoising of the held-out target frames noised at timestep t (same noise for both priors).
AID sees the clean previous slices (teacher forcing, as in training); the UNet sees the noisy slice
alone. ε-MSE per element (lower is better) and PSNR of x̂0 clipped to [−1, 1] (peak-to-peak 2,
higher is better).

| t | AID ε-MSE | UNet ε-MSE | AID x̂0 PSNR (dB) | UNet x̂0 PSNR (dB) |
|---|---|---|---|---|
{rows}

## Generated frames

`mrirecon sample --prior default` style generation: {card['generation']['n_given']} held-out slices as a warm start, then
{card['generation']['n_frames']} frames generated one after another ({card['generation']['steps']} DDIM steps each,
η = {card['generation']['eta']:g}; `mrirecon sample --prior default --steps {card['generation']['steps']} --eta {card['generation']['eta']:g}`):

![generated frames](figures/default_prior_samples.png)

These frames show the priors' main limitation: prior-only generation leaves the anatomy within a
frame or two, even after four real slices. A few CPU hours teach the network to denoise and to
draw on the previous slice (the errors above), not to generate from noise. Inside a
reconstruction, data consistency supplies what generation lacks; see `docs/evaluation.md` for
what the priors do there, including the honest comparison of AID with its UNet twin.

## Reproduce

Five commands rebuild the data, both priors (the rounds above), the assets, the figures
and this card (about {card['total_minutes']:.0f} min on 2 CPU cores; much faster with `--device cuda --sequential`):

```
pip install -e ".[train]"
B="python scripts/build_default_prior.py --data build/r0/data --lr-schedule cosine --warmup 20"
python scripts/build_default_prior.py --work build/r0 --stages data,train --cond-noise 0 --cold-start 0
$B --work build/r1 --stages train --init-aid build/r0/aid/model.pt --init-unet build/r0/unet/model.pt \\
    --lr 3e-4 --cond-noise 0 --cold-start 0
$B --work build/r2 --stages train --init-aid build/r1/aid/model.pt --init-unet build/r1/unet/model.pt \\
    --lr 2e-4 --cond-noise 0.1 --cold-start 0.1
$B --work build/r3 --stages train --init-aid build/r2/aid/model.pt --init-unet build/r2/unet/model.pt \\
    --lr 2e-4 --cond-noise 0.1 --cold-start 0.25 --seed 1 --steps-aid 2500 --steps-unet 2500
$B --work build/r4 --stages train,export,card --init-aid build/r3/aid/model.pt --init-unet build/r3/unet/model.pt \\
    --lr 2e-4 --cond-noise 0.15 --cold-start 0.25 --seed 2 --steps-aid 3000 --steps-unet 3000 \\
    --checkpoint-every 100 --history build/r0,build/r1,build/r2,build/r3
```

The sample scan (`--stages scan`) does not depend on the training.
(`--template nilearn-*.whl` reads the template from a downloaded wheel instead of an installed
nilearn.) The numbers here come from `mrirecon/assets/default_prior_card.json`.

## Limitations

One template anatomy under random deformations is far narrower than real brains: no skull,
scalp or lesions, smooth template texture, no real noise or coil-combination artefacts. Expect the
priors to hallucinate template-like anatomy on real data. The held-out slab tests generalisation
across slice levels and random draws, not across subjects.

## Licence

Weights and sample scan are derived from the MNI ICBM152 2009a template:
Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological
Institute, McGill University (permissive: use, copy, modify and distribute for any purpose
without fee, keeping the notice). The full notice is in `mrirecon/assets/NOTICE_MNI.txt`.
"""
    # The v3 section (real anatomy) is written by hand from its own runs: keep it across rebuilds.
    old = path.read_text() if path.is_file() else ""
    if V3_HEADING in old:
        v3 = old[old.index(V3_HEADING) : old.index("## Licence", old.index(V3_HEADING))]
        text = text.replace("## Licence", v3 + "## Licence", 1)
    path.write_text(text)


V3_HEADING = "## Priors v3: real anatomy"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=ROOT / "build" / "default_prior", help="runs, logs and cached data")
    p.add_argument("--data", type=Path, default=None, help="phantom cache folder (default WORK/data; share it between rounds)")
    p.add_argument("--template", default=None, help="nilearn wheel or template folder (default: installed nilearn)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--anatomy", type=Path, default=None,
                   help="priors v3: train on real anatomy volumes in this folder (../shared/data/anatomy)")
    p.add_argument("--slabs", type=int, default=120, help="--anatomy: augmented slabs per training subject")
    p.add_argument("--time-limit-min", type=float, default=None, help="stop each training run after this long")
    p.add_argument("--volumes", type=int, default=160, help="training phantom volumes")
    p.add_argument("--heldout-volumes", type=int, default=12)
    p.add_argument("--steps-aid", type=int, default=1000)
    p.add_argument("--steps-unet", type=int, default=1000)
    p.add_argument("--init-aid", default=None, help="fine-tune the AID prior from these weights (e.g. default)")
    p.add_argument("--init-unet", default=None, help="fine-tune the UNet prior from these weights (e.g. default-unet)")
    p.add_argument("--cond-noise", type=float, default=0.1, help="AID: max noise std on conditioning slices")
    p.add_argument("--cold-start", type=float, default=0.1, help="AID: probability of a zeroed first condition")
    p.add_argument("--batch-aid", type=int, default=3, help="windows of seq_length+1 slices per step")
    p.add_argument("--batch-unet", type=int, default=8, help="slices per step")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument(
        "--lr-schedule",
        default="constant",
        choices=("constant", "cosine"),
        help="constant (after warm-up) makes a run stopped at step N equal a run of N steps",
    )
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "off"))
    p.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    p.add_argument("--threads-card", type=int, default=1, help="torch threads for the model-card stage")
    p.add_argument(
        "--history",
        default=None,
        help="card stage: earlier training rounds, oldest first (work folders or earlier card JSONs, comma separated)",
    )
    p.add_argument("--sequential", action="store_true", help="train AID then UNet instead of concurrently")
    p.add_argument("--priors", default="aid,unet", help="which priors the train stage trains (aid, unet or both)")
    p.add_argument("--gen-steps", type=int, default=100, help="DDIM steps per generated frame (model card)")
    p.add_argument("--gen-eta", type=float, default=1.0, help="DDIM eta of the generated frames (model card)")
    args = p.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        p.error(f"--stages: unknown stage(s) {unknown}; choose from {list(STAGES)}")
    bad = sorted({k.strip() for k in args.priors.split(",")} - {"aid", "unet"})
    if bad:
        p.error(f"--priors: unknown prior(s) {bad}; choose from aid, unet")
    args.work = args.work.resolve()
    for stage in STAGES:
        if stage in stages:
            t0 = time.perf_counter()
            globals()[f"stage_{stage}"](args)
            print(f"[{stage}] done in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
