#!/usr/bin/env python
"""Time one ``Prior.predict_next`` of the official 320×320 AID architecture (random weights).

    python benchmarks/bench_prior.py                  # 320×320, CPU (+ CUDA when present)
    python benchmarks/bench_prior.py --quick          # 64×64 input, same architecture
    python benchmarks/bench_prior.py --devices cpu --warmup 0 --repeats 1   # one call per row
    python benchmarks/bench_prior.py --devices cuda --precisions fp32,tf32,bf16 --channels-last both

For every device × precision (× attention mode, × channels-last setting) it reports the median
wall time of one call (window of ``seq_length`` = 10 clean frames + 1 noisy frame, batch 1,
``position=-1``), the FLOPs of that call counted with ``torch.utils.flop_counter.FlopCounterMode``
(on the meta device: shapes only, no compute), GFLOP/s, and peak CUDA memory. A rich table is
printed and everything is written to JSON.

``attention="reference"`` runs the conditioning path on one frame (the official samplers'
semantics); ``"full"`` on the whole causal prefix of 10 frames. ``--models aid,unet`` adds
the plain UNet ("Guide") ``predict`` for comparison.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from mrirecon.prior import Prior, PriorConfig, build_network

# scripts/configs/fastmri_320_cplx.yaml (network keys); the UNet twin drops seq_length
OFFICIAL_AID = {
    "image_size": 320,
    "in_channels": 2,
    "seq_length": 10,
    "learn_sigma": True,
    "attention_resolutions": "20,10",
}
OFFICIAL_UNET = {k: v for k, v in OFFICIAL_AID.items() if k != "seq_length"}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=int, default=320, help="input H = W (a multiple of 64); default 320")
    p.add_argument("--quick", action="store_true", help="64×64 input (same architecture, ~25× less work)")
    p.add_argument("--devices", default="auto", help="comma list of cpu,cuda (default: cpu and cuda if present)")
    p.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32,bf16,tf32")
    p.add_argument("--attention", default="reference,full", help="comma list of reference,full")
    p.add_argument("--models", default="aid", help="comma list of aid,unet")
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off", "both"))
    p.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 3 on CPU, 20 on CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 1 on CPU, 3 on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--matmul-peak", action="store_true",
                   help="also measure the device's bf16 matmul rate (8192³ on CUDA, 1024³ on CPU): the peak to compare with")
    p.add_argument("--compile", action="store_true", help="add rows with torch.compile(network) (CUDA)")
    p.add_argument("--out", type=Path, default=Path("bench_prior.json"), help="JSON results file")
    return p.parse_args()


def count_flops(model: str, size: int, attention: str) -> int:
    """FLOPs of one call, counted on the meta device (no memory, no compute)."""
    cfg = PriorConfig.from_dict(OFFICIAL_AID if model == "aid" else OFFICIAL_UNET)
    net = build_network(cfg, device="meta").eval()
    x, t = torch.zeros(1, 2, size, size, device="meta"), torch.zeros(1, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if model == "aid":
            frames = 1 if attention == "reference" else cfg.seq_length
            net.forward_next(torch.zeros(1, frames, 2, size, size, device="meta"), x, t)
        else:
            net(x, t)
    return int(counter.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - tic)
    return times


def one_call(prior: Prior, mode: str, window: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The timed call: AID ``predict_next`` (window of 10, last position) or UNet ``predict``."""
    if prior.kind == "aid":
        return prior.predict_next(window, noisy, t, -1, attention=mode)
    return prior.predict(noisy[:, 0], t)


def measure(call, device: torch.device, warmup: int, repeats: int, n_flops: int) -> dict:
    """Median/min wall time of ``call``, GFLOP/s and peak CUDA memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = time_call(call, device, warmup, repeats)
    median = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "device": str(device), "median_ms": 1e3 * median, "min_ms": 1e3 * min(times), "repeats": repeats,
        "warmup": warmup, "gflop": n_flops / 1e9, "gflop_per_s": n_flops / median / 1e9, "peak_mem_gb": peak,
    }  # fmt: skip


def matmul_peak(device: torch.device) -> dict:
    """TFLOP/s of a large bf16 matrix product on ``device`` (median of 10 after 3 warm-ups)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    times = time_call(lambda: a @ b, device, 3, 10)
    return {"device": str(device), "n": n, "tflop_per_s": 2 * n**3 / statistics.median(times) / 1e12}


def main() -> None:
    args = parse_args()
    console = Console(width=None if Console().is_terminal else 132)  # full table in logs too
    if args.threads:
        torch.set_num_threads(args.threads)
    size = 64 if args.quick else args.size
    if size % 64:
        raise SystemExit(f"--size must be a multiple of 64 (the official U-Net downsamples 6 times), got {size}")
    devices = (
        ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.devices == "auto" else args.devices.split(",")
    )
    precisions = args.precisions.split(",")
    modes = args.attention.split(",")
    models = args.models.split(",")
    layouts = {"auto": [None], "on": [True], "off": [False], "both": [False, True]}[args.channels_last]

    flops = {(m, a): count_flops(m, size, a) for m in models for a in (modes if m == "aid" else ["-"])}
    rows = []
    peaks = {}
    for device_name in devices:
        device = torch.device(device_name)
        if device.type == "cuda" and not torch.cuda.is_available():
            console.print("[yellow]CUDA not available: skipping cuda rows[/]")
            continue
        if args.matmul_peak:
            peaks[str(device)] = matmul_peak(device)
            console.log(f"bf16 matmul on {device}: {peaks[str(device)]['tflop_per_s']:.1f} TFLOP/s")
        repeats = args.repeats or (20 if device.type == "cuda" else 3)
        warmup = args.warmup if args.warmup is not None else (3 if device.type == "cuda" else 1)
        for model in models:
            torch.manual_seed(args.seed)
            net = build_network(OFFICIAL_AID if model == "aid" else OFFICIAL_UNET)
            g = torch.Generator().manual_seed(args.seed)
            window = torch.randn(1, 10, 2, size, size, generator=g)
            noisy = torch.randn(1, 1, 2, size, size, generator=g)
            t = torch.tensor([500])
            for precision in precisions:
                for channels_last in layouts:
                    prior = Prior(net, device=device, precision=precision, channels_last=channels_last)
                    w, x = window.to(device), noisy.to(device)
                    variants = [False] + ([True] if args.compile and device.type == "cuda" else [])
                    for compiled in variants:
                        if compiled:
                            prior.network = torch.compile(prior.network)
                        for mode in modes if model == "aid" else ["-"]:
                            call = functools.partial(one_call, prior, mode, w, x, t)
                            rows.append(measure(call, device, warmup + 2 * compiled, repeats, flops[(model, mode)]))
                            rows[-1].update(model=model, precision=precision, channels_last=prior.channels_last)
                            rows[-1].update(attention=mode, size=size, compiled=compiled)
                            peak = peaks.get(str(device))
                            if peak:
                                rows[-1]["fraction_of_bf16_peak"] = rows[-1]["gflop_per_s"] / 1e3 / peak["tflop_per_s"]
                            ms = rows[-1]["median_ms"]
                            console.log(f"{model} {device} {precision} cl={prior.channels_last} {mode} "
                                        f"compiled={compiled}: {ms:.1f} ms")  # fmt: skip
                        if compiled:
                            prior.network = prior.network._orig_mod
            del net

    table = Table(title=f"Prior inference, official 320-architecture, input {size}×{size}, batch 1")
    numeric = ("GFLOP", "median ms", "GFLOP/s", "% bf16 peak", "peak GiB")
    for col in ("model", "device", "precision", "ch-last", "compiled", "attention") + numeric:
        table.add_column(col, justify="right" if col in numeric else "left")
    for r in rows:
        frac = r.get("fraction_of_bf16_peak")
        table.add_row(
            r["model"], r["device"], r["precision"], "yes" if r["channels_last"] else "no", "yes" if r["compiled"] else "no",
            r["attention"], f"{r['gflop']:.1f}", f"{r['median_ms']:.1f}", f"{r['gflop_per_s']:.0f}",
            "-" if frac is None else f"{100 * frac:.1f}", "-" if r["peak_mem_gb"] is None else f"{r['peak_mem_gb']:.2f}",
        )  # fmt: skip
    console.print(table)
    meta = {
        "torch": torch.__version__, "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "matmul_peak": peaks, "rows": rows}, indent=2) + "\n")
    console.print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
