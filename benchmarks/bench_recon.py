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

Usage::

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
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = ("cuda" if cuda else "cpu") if args.device == "auto" else args.device

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
