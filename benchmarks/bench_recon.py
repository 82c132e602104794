"""Benchmark the posterior sampler: seconds per slice and network evaluations per second.

Rows (each on a simulated multi-coil scan of the model's image size, cold first slice):

* ``default``: the bundled AID prior (CPU), or random weights of its config while the
  weights are not built yet; ``--device cuda`` runs it on the GPU instead.
* ``official-320``: the official ``fastmri_320_cplx`` AID architecture (139 M parameters,
  random weights) at 320 x 320, on CUDA when available, on the CPU only with ``--full``.

For each: ``mrirecon`` (fp32 and bf16 network precision x the sampler variants of
:data:`VARIANTS`: the reference sampler, DDIM, the default with CG data consistency) and the
**baseline**, a straight re-implementation of the AID reference's loop
(``fastmri_recon.ddim_diffusion``: fp32, one slice at a time, the network's output copied
to numpy at every step, data consistency and re-noising in numpy, back to torch for the next
call; the network call itself is the same ``Prior.predict_next``, so the comparison isolates
the sampling loop). Timings exclude coil-map estimation (maps are given) and follow one
warm-up run.

The **quality study** (``--curve``, ``--pipelined``) instead reconstructs held-out volumes
(``--heldout``, from ``scripts/make_heldout.py``; analytic phantoms without it) with both
anatomy priors: PSNR per posterior chain against network calls per slice for the sampler
settings of :data:`CURVE`, and the pipelined slice schedule against the sequential one
(slices/s, network calls, PSNR). Each chain of a volume is a seed's worth; rows are written as
they come, and ``--time-limit`` cuts the list in its order.

Usage::

    python benchmarks/bench_recon.py --curve --pipelined --heldout build/v3/data/heldout.npz --device cuda
    python benchmarks/bench_recon.py --curve --only "default@100,quad spacing@100" --acceleration 8
    python benchmarks/bench_recon.py                      # default prior on CPU
    python benchmarks/bench_recon.py --device cuda        # + official 320 on the GPU
    python benchmarks/bench_recon.py --full --steps 4     # official 320 on the CPU too (slow)

Prints a rich table and writes JSON (``--out``, default ``bench_recon.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_CONFIG = {
    # scripts/configs/fastmri_320_cplx.yaml of the reference (unset keys: reference defaults)
    "image_size": 320,
    "in_channels": 2,
    "seq_length": 10,
    "learn_sigma": True,
    "attention_resolutions": "20,10",
    "mag": False,
    "dataset": "fastmri",
}


def default_prior(device: str):
    """The bundled AID prior, or random weights of its config (and say which)."""
    from mrirecon.errors import MrireconError
    from mrirecon.prior import Prior, build_network, load_prior

    try:
        return load_prior("default", device=device), "bundled weights"
    except MrireconError:
        sys.path.insert(0, str(ROOT / "scripts"))
        from build_default_prior import AID_CONFIG

        torch.manual_seed(0)
        return Prior(build_network(AID_CONFIG), device=device), "random weights (bundled prior not built)"


def official_prior(device: str):
    from mrirecon.prior import Prior, build_network

    torch.manual_seed(0)
    return Prior(build_network(OFFICIAL_CONFIG), device=device), "random weights"


def make_scan(size: int, slices: int, coils: int = 8, seed: int = 0):
    """Simulated scan (no readout oversampling), its maps, and a 4x equispaced mask."""
    from mrirecon.data.simulate import phantom_volume, simulate_scan
    from mrirecon.physics.masks import make_mask

    sim = simulate_scan(phantom_volume(slices, size, size, seed=seed), coils=coils, snr_db=30, oversample=1, seed=seed)
    mask = make_mask("equispaced", (size, size), 4, seed=seed).mask
    return sim.kspace, sim.maps, mask


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


#: Sampler variants timed: (update, data consistency, its iterations per step); the last is the default.
VARIANTS = (("reference", "gradient", 4), ("ddim", "gradient", 4), ("reference", "cg", 8))


def bench_mrirecon(prior, kspace, maps, mask, steps: int, variant, precision: str, device: str, samples: int = 1) -> dict:
    from mrirecon.recon import reconstruct

    update, dc, dc_steps = variant
    kw = dict(prior=prior, update=update, dc=dc, dc_steps=dc_steps, precision=precision, progress=False, seed=0,
              first_slice="cold", n_samples=samples)  # fmt: skip
    k = torch.from_numpy(kspace).to(device)
    reconstruct(k[:1], mask, sens=maps[:1], steps=1, **kw)  # warm-up (kernels, allocator)
    sync(device)
    tic = time.perf_counter()
    res = reconstruct(k, mask, sens=maps, steps=steps, **kw)
    sync(device)
    seconds = time.perf_counter() - tic
    return {
        "seconds_per_slice": seconds / kspace.shape[0],  # all samples of a slice together
        "slice_samples_per_s": kspace.shape[0] * samples / seconds,
        "network_evals_per_s": res.info["network_evals"] / res.info["timings"]["sampling"],
        "network_evals": res.info["network_evals"],
        "samples": samples,
    }


def _fft2c(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def _ifft2c(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def reference_loop(prior, kspace, maps, mask, steps: int, dc_steps: int = 4, scale: float = 1.0, seed: int = 0):
    """The reference's reconstruction loop, ported as is (numpy between network calls).

    Slice 0 is reconstructed cold (zero window); slice k conditions on window position k-1.
    Returns the reconstructions (S, H, W) complex in model scale and the number of calls.
    """
    dev = prior.device
    rng = np.random.default_rng(seed)
    ac = np.asarray(prior.schedule.alphas_cumprod, np.float64)
    ts = prior.schedule.respace(steps)
    S, C, H, W = kspace.shape
    T = prior.seq_length
    window = np.zeros((1, T, 2, H, W), np.float32)
    out, calls = np.zeros((S, H, W), np.complex64), 0
    for s in range(S):
        y = kspace[s] * mask
        z = (np.conj(maps[s]) * _ifft2c(y)).sum(0)
        z = scale * z / np.abs(z).max()
        x = rng.standard_normal((1, 2, H, W)).astype(np.float32)
        pos = min(s, T) - 1 if s > 0 else 0
        for i, t in enumerate(ts):
            a = ac[t]
            an = ac[ts[i + 1]] if i + 1 < len(ts) else 1.0
            eps = prior.predict_next(
                torch.from_numpy(window).to(dev), torch.from_numpy(x[:, None]).to(dev), torch.tensor([int(t)]), pos
            )[:, 0, :2].cpu().numpy()
            calls += 1
            x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
            xc = x0[0, 0] + 1j * x0[0, 1]
            for _ in range(dc_steps):
                xc = xc - ((np.conj(maps[s]) * _ifft2c(mask * _fft2c(maps[s] * xc))).sum(0) - z)
            x0 = np.stack([xc.real, xc.imag])[None].astype(np.float32)
            x = x0 if an >= 1 else (math.sqrt(an) * x0 + math.sqrt(1 - an) * rng.standard_normal(x0.shape)).astype(np.float32)
        out[s] = x[0, 0] + 1j * x[0, 1]
        if s < T:
            window[0, s] = x[0]
        else:
            window = np.concatenate([window[:, 1:], x[:, None]], axis=1)
    return out, calls


def bench_baseline(prior, kspace, maps, mask, steps: int, device: str) -> dict:
    reference_loop(prior, kspace[:1], maps[:1], mask, 1)  # warm-up
    sync(device)
    tic = time.perf_counter()
    _, calls = reference_loop(prior, kspace, maps, mask, steps)
    sync(device)
    seconds = time.perf_counter() - tic
    return {"seconds_per_slice": seconds / kspace.shape[0], "slice_samples_per_s": kspace.shape[0] / seconds,
            "network_evals_per_s": calls / seconds, "network_evals": calls, "samples": 1}  # fmt: skip


def run_model(name, prior, origin, args, device, rows) -> None:
    from rich.console import Console

    size = prior.image_size
    kspace, maps, mask = make_scan(size, args.slices)
    console = Console(stderr=True)
    console.print(f"[bold]{name}[/bold]: {size}x{size}, {args.slices} slices, {args.steps} steps, {origin}, {device}")
    base = bench_baseline(prior, kspace, maps, mask, args.steps, device)
    rows.append(dict(model=name, origin=origin, device=device, impl="reference loop (numpy)", update="reference",
                     dc="gradient x4", precision="fp32", size=size, **base))
    precisions = ["fp32"] if args.quick else ["fp32", "bf16"]
    for precision in precisions:
        for variant in VARIANTS[-1:] if args.quick else VARIANTS:
            r = bench_mrirecon(prior, kspace, maps, mask, args.steps, variant, precision, device)
            rows.append(dict(model=name, origin=origin, device=device, impl="mrirecon", update=variant[0],
                             dc=f"{variant[1]} x{variant[2]}", precision=precision, size=size, **r))
            rows[-1]["speedup"] = r["slice_samples_per_s"] / base["slice_samples_per_s"]
            console.print(f"  {variant[0]:9s} {rows[-1]['dc']:12s} {precision}: {r['seconds_per_slice']:.3f} s/slice")
    if args.samples > 1:  # the same chains, n posterior samples per slice in one batch
        r = bench_mrirecon(prior, kspace, maps, mask, args.steps, VARIANTS[-1], precisions[-1], device, args.samples)
        rows.append(dict(model=name, origin=origin, device=device, impl=f"mrirecon, {args.samples} samples batched",
                         update=VARIANTS[-1][0], dc=f"{VARIANTS[-1][1]} x{VARIANTS[-1][2]}", precision=precisions[-1],
                         size=size, **r))
        rows[-1]["speedup"] = r["slice_samples_per_s"] / base["slice_samples_per_s"]


# -- quality per network call, and the pipelined schedule, on held-out volumes -------------------

#: Sampler settings of the PSNR-vs-network-calls study: (label, steps, overrides of ReconSettings).
#: The baseline ladder first (100, 400, 50, 25 steps, the defaults otherwise), candidates at 100
#: steps, 200, then candidates at 50; a time limit cuts the list, in this order.
CURVE = (
    ("default", 100, {}), ("default", 400, {}), ("default", 50, {}), ("default", 25, {}),
    ("quad spacing", 100, {"spacing": "quad"}),
    ("ddim eta 0", 100, {"update": "ddim", "eta": 0.0}),
    ("ddim eta 0.5", 100, {"update": "ddim", "eta": 0.5}),
    ("temperature 0.8", 100, {"temperature": 0.8}),
    ("cg 16", 100, {"dc_steps": 16}),
    ("quad + ddim eta 0.5", 100, {"spacing": "quad", "update": "ddim", "eta": 0.5}),
    ("even spacing", 100, {"spacing": "even"}),
    ("default", 200, {}),
    ("quad spacing", 50, {"spacing": "quad"}),
    ("ddim eta 0", 50, {"update": "ddim", "eta": 0.0}),
    ("ddim eta 0.5", 50, {"update": "ddim", "eta": 0.5}),
    ("temperature 0.8", 50, {"temperature": 0.8}),
)  # fmt: skip


def heldout_scans(path: Path | None, volumes: int, slices: int, size: int, coils: int = 8, acceleration: float = 4.0,
                  skip: int = 0):
    """(name, truth (S, H, W) complex, k-space (S, C, H, W), 4x equispaced fastMRI mask) of held-out volumes.

    ``path``: a ``.npz`` of complex volumes (``scripts/make_heldout.py``: subjects no prior was
    trained on); None: MNI-free analytic phantoms (the smoke run). Coils and noise are simulated
    (8 coils, 30 dB), seeded by the volume's index; ``acceleration`` of the fastMRI equispaced mask.
    """
    from mrirecon.data.simulate import phantom_volume, simulate_scan
    from mrirecon.physics.masks import make_mask

    if path is not None:
        with np.load(path) as z:
            vols = [(k, z[k]) for k in sorted(z.files)[skip : skip + volumes]]
    else:
        vols = [(f"phantom_{i}", phantom_volume(slices, size, size, seed=i)) for i in range(skip, skip + volumes)]
    out = []
    for i, (name, vol) in enumerate(vols, start=skip):
        mid = vol.shape[0] // 2
        vol = vol[max(0, mid - slices // 2) : max(0, mid - slices // 2) + slices]
        sim = simulate_scan(vol, coils=coils, snr_db=30, oversample=1, seed=i)
        mask = make_mask("equispaced", vol.shape[-2:], acceleration, seed=i).mask
        out.append((name, sim.image, sim.kspace, mask))
    return out


def study_maps(scans, device: str) -> dict:
    """The default coil maps of each held-out scan, estimated once (every sampler setting sees the same)."""
    from mrirecon.recon import reconstruct

    return {name: reconstruct(k, m, method="zero-filled", progress=False, device=device).maps for name, _, k, m in scans}


def _stats(psnrs: list[float]) -> dict:
    """Mean, sample standard deviation and count of per-chain PSNRs."""
    return dict(psnr=float(np.mean(psnrs)), psnr_std=float(np.std(psnrs, ddof=1)) if len(psnrs) > 1 else 0.0, n=len(psnrs))


def _sample_psnrs(truth, samples) -> list[float]:
    """PSNR of each posterior sample (one chain each: a seed's worth) against the truth, fastMRI conventions."""
    from mrirecon.metrics import evaluate

    return [evaluate(np.abs(truth), np.asarray(x)).psnr for x in samples]


def curve(args, device: str) -> list[dict]:
    """PSNR vs network calls per slice, both priors, ``args.seeds`` chains per volume (one batch)."""
    from rich.console import Console

    from mrirecon.prior import load_prior
    from mrirecon.recon import ReconSettings, reconstruct

    console = Console(stderr=True)
    scans = heldout_scans(args.heldout, args.volumes, args.slices, args.size, acceleration=args.acceleration, skip=args.skip_volumes)
    maps = study_maps(scans, device)
    priors = {spec: load_prior(spec, device=device) for spec in args.priors}
    plan = CURVE[: args.configs] if args.configs else CURVE
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        plan = [c for c in plan if f"{c[0]}@{c[1]}" in wanted]
    rows, t0 = [], time.perf_counter()
    for label, steps, over in plan:  # config-major: a time limit cuts both priors alike
        for spec, prior in priors.items():
            if args.time_limit and time.perf_counter() - t0 > args.time_limit:
                rows.append(dict(prior=spec, config=label, nfe=steps, status="not run (time limit)"))
                continue
            settings = ReconSettings(steps=max(1, steps // args.step_divisor), n_samples=args.seeds, seed=0, **over)
            psnrs, tic = [], time.perf_counter()
            for name, truth, kspace, mask in scans:
                res = reconstruct(kspace, mask, prior, settings=settings, sens=maps[name], return_samples=True,
                                  progress=False, device=device)  # fmt: skip
                psnrs += _sample_psnrs(truth, res.samples)
            sync(device)
            seconds = time.perf_counter() - tic
            rows.append(dict(prior=spec, config=label, nfe=settings.steps, status="ok", **_stats(psnrs), seconds=seconds,
                             volumes=len(scans)))  # fmt: skip
            console.print(f"  {spec} {label} @{settings.steps}: {rows[-1]['psnr']:.2f} ± {rows[-1]['psnr_std']:.2f} dB ({seconds:.1f} s)")
            if args.out:  # after every row: a run stopped at a time limit keeps what it measured
                args.out.write_text(json.dumps({"curve": rows, "partial": True}, indent=2) + "\n")
    return rows


def pipelined(args, device: str) -> list[dict]:
    """Sequential vs pipelined AID sampling: slices/s, network calls, PSNR (``args.seeds`` chains)."""
    from rich.console import Console

    from mrirecon.prior import load_prior
    from mrirecon.recon import ReconSettings, reconstruct

    console = Console(stderr=True)
    scans = heldout_scans(args.heldout, args.volumes, args.slices, args.size, acceleration=args.acceleration, skip=args.skip_volumes)
    prior = load_prior(args.priors[0], device=device)
    steps = max(1, 100 // args.step_divisor)
    variants = [("sequential", None)] + [("pipelined", lag) for lag in sorted({max(1, steps // d) for d in (2, 4, 10)}, reverse=True)]
    maps = study_maps(scans, device)
    reconstruct(scans[0][2][:1], scans[0][3], prior, steps=1, sens=maps[scans[0][0]][:1], progress=False, device=device)  # warm-up
    rows = []
    for schedule, lag in variants:
        settings = ReconSettings(steps=steps, n_samples=args.seeds, schedule=schedule, lag=lag)
        psnrs, calls, slices, seconds = [], 0, 0, 0.0
        for name, truth, kspace, mask in scans:
            res = reconstruct(kspace, mask, prior, settings=settings, sens=maps[name], return_samples=True, progress=False,
                              device=device)  # fmt: skip
            seconds += res.info["timings"]["sampling"]
            calls += res.info["network_evals"]
            slices += kspace.shape[0]
            psnrs += _sample_psnrs(truth, res.samples)
        rows.append(dict(prior=args.priors[0], schedule=schedule, lag=lag, steps=steps, device=device,
                         slices_per_s=slices / seconds, network_calls=calls, slices=slices, **_stats(psnrs)))  # fmt: skip
        console.print(f"  {schedule} lag {lag}: {rows[-1]['slices_per_s']:.2f} slices/s, {calls} calls, {rows[-1]['psnr']:.2f} dB")
    return rows


def print_study(curve_rows: list[dict], pipe_rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 130))
    if curve_rows:
        t = Table(title=f"PSNR vs network calls per slice ({title})")
        for col in ("prior", "sampler", "calls / slice", "PSNR (dB)", "± sd", "n", "seconds"):
            t.add_column(col, justify="left" if col in ("prior", "sampler") else "right")
        for r in sorted(curve_rows, key=lambda r: (r["prior"], r["config"] != "default", r["nfe"], r["config"])):
            ok = r["status"] == "ok"
            t.add_row(r["prior"], r["config"], str(r["nfe"]), f"{r['psnr']:.2f}" if ok else r["status"],
                      f"{r['psnr_std']:.2f}" if ok else "", str(r.get("n", "")), f"{r['seconds']:.1f}" if ok else "")  # fmt: skip
        console.print(t)
    if pipe_rows:
        t = Table(title=f"Pipelined vs sequential AID ({title})")
        for col in ("schedule", "lag", "steps", "device", "slices / s", "network calls", "PSNR (dB)", "± sd", "n"):
            t.add_column(col, justify="left" if col in ("schedule", "device") else "right")
        for r in pipe_rows:
            t.add_row(r["schedule"], str(r["lag"] or "-"), str(r["steps"]), r["device"], f"{r['slices_per_s']:.2f}",
                      str(r["network_calls"]), f"{r['psnr']:.2f}", f"{r['psnr_std']:.2f}", str(r["n"]))  # fmt: skip
        console.print(t)


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20, help="diffusion steps per slice (default 20)")
    p.add_argument("--slices", type=int, default=2, help="slices per scan (default 2)")
    p.add_argument("--samples", type=int, default=1, help="also time N posterior samples per slice in one batch")
    p.add_argument("--quick", action="store_true", help="only the default sampler in fp32 (a smoke run)")
    p.add_argument("--device", default="auto", help="'auto' (cuda if present), 'cpu' or 'cuda'")
    p.add_argument("--full", action="store_true", help="also run the official 320 architecture on the CPU")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("bench_recon.json"))
    study = p.add_argument_group("quality study (--curve, --pipelined): held-out volumes, both priors")
    study.add_argument("--curve", action="store_true", help="PSNR vs network calls per slice (CURVE)")
    study.add_argument("--pipelined", action="store_true", help="pipelined vs sequential AID")
    study.add_argument("--heldout", type=Path, default=None, help=".npz of held-out complex volumes (default: phantoms)")
    study.add_argument("--priors", default="anatomy,anatomy-unet", help="AID prior first, then the UNet prior")
    study.add_argument("--volumes", type=int, default=2)
    study.add_argument("--skip-volumes", type=int, default=0, help="start at this held-out volume")
    study.add_argument("--size", type=int, default=128, help="phantom size without --heldout")
    study.add_argument("--seeds", type=int, default=2, help="chains per volume (posterior samples, one batch)")
    study.add_argument("--configs", type=int, default=0, help="only the first N of CURVE (0: all)")
    study.add_argument("--step-divisor", type=int, default=1, help="divide every step count (smoke runs)")
    study.add_argument("--acceleration", type=float, default=4.0, help="of the equispaced mask")
    study.add_argument("--only", default="", help="curve rows to run, as LABEL@STEPS (comma-separated)")
    study.add_argument("--time-limit", type=float, default=0.0, help="seconds; later curve rows are not run")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = ("cuda" if cuda else "cpu") if args.device == "auto" else args.device
    if args.curve or args.pipelined:
        args.priors = [q for q in args.priors.split(",") if q]
        curve_rows = curve(args, device) if args.curve else []
        pipe_rows = pipelined(args, device) if args.pipelined else []
        title = (f"{args.heldout.name if args.heldout else 'phantoms'}, {args.volumes} volumes x {args.slices} slices, "
                 f"equispaced {args.acceleration:g}x, {args.seeds} chains, {device}")
        print_study(curve_rows, pipe_rows, title)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"title": title, "curve": curve_rows, "pipelined": pipe_rows, "args": vars(args) | {"heldout": str(args.heldout), "out": str(args.out)},
                                        "gpu": torch.cuda.get_device_name(0) if cuda else None}, indent=2) + "\n")  # fmt: skip
        Console(stderr=True).print(f"wrote {args.out}")
        return 0

    rows: list[dict] = []
    if not device.startswith("cuda") or args.full:
        prior, origin = default_prior("cpu")
        run_model("default", prior, origin, args, "cpu", rows)
    if device.startswith("cuda"):
        prior, origin = default_prior(device)
        run_model("default", prior, origin, args, device, rows)
    if device.startswith("cuda") or args.full:
        prior, origin = official_prior(device)
        run_model("official-320", prior, origin, args, device, rows)

    table = Table(title=f"Posterior sampling, {args.steps} steps/slice, {args.slices} slices, 1 sample")
    for col in ("model", "device", "implementation", "update", "DC", "precision", "s / slice", "slice-samples / s",
                "net evals / s", "speed-up"):
        table.add_column(col, justify="right" if col[0] in "sns" and col != "model" else "left")
    for r in rows:
        table.add_row(
            f"{r['model']} ({r['size']}²)", r["device"], r["impl"], r["update"], r["dc"], r["precision"],
            f"{r['seconds_per_slice']:.3f}", f"{r['slice_samples_per_s']:.2f}", f"{r['network_evals_per_s']:.1f}",
            f"{r['speedup']:.2f}x" if "speedup" in r else "1.00x (baseline)",
        )
    Console(width=max(Console().width, 150)).print(table)  # readable when piped (80 columns otherwise)
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
    }
    args.out.write_text(json.dumps({"settings": {"steps": args.steps, "slices": args.slices}, "env": env, "rows": rows},
                                   indent=2) + "\n")
    Console(stderr=True).print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
