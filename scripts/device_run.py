"""One prepared GPU run: CUDA tests, GPU benchmarks and a training probe, results under one folder.

    bash scripts/device_run.sh --out $OUT --heldout build/v3/data/heldout.npz   # on a CUDA machine (--budget s)
    bash scripts/device_run.sh --out $OUT --train-minutes 5     # + 5 minutes of training per prior
    bash scripts/device_run.sh --dry-run --out /tmp/x           # the same steps on the CPU, tiny sizes

Steps (each one's failure is recorded and the next still runs):

1. ``pytest -m cuda``: every CUDA-only test (they skip without a GPU);
2. ``benchmarks/bench_recon.py --curve --pipelined``: PSNR per network call of sampler settings
   and the pipelined schedule, on the held-out volumes of ``--heldout`` (carried along), both
   anatomy priors, time-boxed;
3. ``benchmarks/bench_physics.py`` (SENSE and ESPIRiT, GPU against SigPy on the CPU),
   ``benchmarks/bench_prior.py`` (the official 320² AID architecture, random weights, fp32 /
   tf32 / bf16, ``torch.compile``, network TFLOP/s against the bf16 matmul peak measured in the
   same run) and ``benchmarks/bench_recon.py`` (mrirecon batched over slices and samples
   against a straight port of the reference loop, at equal steps);
4. a training probe of the bundled pair: steps/s at a useful batch size with bf16; with
   ``--train-minutes N`` it fine-tunes each bundled prior for N minutes and writes the weights
   (``aid.safetensors``, ``unet.safetensors``) for a later session to evaluate and ship.

Everything lands in ``--out`` as at most 8 files, no deeper than ``OUT/file``: ``device_run.json``
(every number), ``device_run.md`` (the tables), ``device_run.log`` (all output), and the
weights. The training data come from ``--data`` (a ``train.npz`` of
``scripts/build_default_prior.py``'s data stage, carried along) or, in a dry run, analytic
phantoms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], log, timeout: float) -> tuple[int, float]:
    """Run ``cmd`` from the repository root, its output appended to ``log``; (exit status, seconds)."""
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    tic = time.perf_counter()
    try:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode  # fmt: skip
    except subprocess.TimeoutExpired:
        rc = 124
    return rc, time.perf_counter() - tic


def training_probe(args, log) -> list[dict]:
    """Steps/s of each bundled prior at ``args.batch`` (bf16 on CUDA); N minutes of fine-tuning if asked."""
    import numpy as np
    import torch

    from mrirecon.devices import resolve_device
    from mrirecon.prior import load_prior
    from mrirecon.prior.train import train

    device = str(resolve_device("cpu" if args.dry_run else "auto"))
    if args.data is not None:
        with np.load(args.data) as z:
            volumes = [z[k] for k in sorted(z.files)]
    else:
        from mrirecon.data.phantoms import analytic_template, phantom_volumes

        volumes = phantom_volumes(analytic_template(8.0 if args.dry_run else 4.0), 2 if args.dry_run else 24, "train", 64, seed=0)
    rows = []
    for name in ("default", "default-unet"):
        prior = load_prior(name, device="cpu")
        work = Path(args.work) / name
        steps = 1 if args.dry_run else 40
        kw = dict(batch_size=2 if args.dry_run else args.batch, lr=1e-4, seed=0, device=device, amp="auto",
                  init=prior, progress=False, checkpoint_every=10**6, log_every=1)  # fmt: skip
        if args.dry_run:
            kw["amp"] = "off"
        tic = time.perf_counter()
        res = train(prior.config, volumes, work / "probe", steps, **kw)
        probe_s = time.perf_counter() - tic
        rows.append(dict(prior=name, device=device, batch=kw["batch_size"], steps=res.step, seconds=probe_s,
                         steps_per_s=res.step / probe_s, last_loss=res.last_loss))  # fmt: skip
        log.write(f"training probe {name}: {res.step / probe_s:.2f} steps/s at batch {kw['batch_size']}\n")
        if args.train_minutes > 0:
            long = train(prior.config, volumes, work / "long", 10**7, time_limit_s=60 * args.train_minutes,
                         **{**kw, "checkpoint_every": 500, "log_every": 50})  # fmt: skip
            from mrirecon.prior.checkpoint import export_safetensors

            trained = load_prior(long.model_path, device="cpu")
            stem = "aid" if name == "default" else "unet"
            export_safetensors(Path(args.out) / f"{stem}.safetensors", trained.network, trained.config, dtype=torch.float16)
            (Path(args.out) / f"{stem}.yaml").unlink(missing_ok=True)  # the config is embedded in the file
            rows[-1].update(trained_steps=long.step, trained_seconds=long.elapsed_s, trained_loss=long.last_loss)
    return rows


def markdown(result: dict) -> str:
    lines = ["# mrirecon device run", "", f"device: {result['device']}", "", "| step | status | seconds |", "|---|---|---:|"]
    for s in result["steps"]:
        lines.append(f"| {s['name']} | {'ok' if s['rc'] == 0 else 'exit ' + str(s['rc'])} | {s['seconds']:.1f} |")
    for key, title in (("bench_physics", "Physics"), ("bench_prior", "Prior"), ("bench_recon", "Sampler"),
                       ("bench_quality", "Quality per network call")):
        got = result.get(key) or {}
        rows = got.get("rows") or got.get("results") or got.get("curve", []) + got.get("pipelined", [])
        if not rows:
            continue
        cols = list(dict.fromkeys(c for r in rows for c in r if not isinstance(r[c], (list, dict))))
        lines += ["", f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            lines.append("| " + " | ".join(f"{r.get(c):.4g}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols) + " |")
    if result.get("training"):
        lines += ["", "## Training probe", "", "| prior | device | batch | steps/s | trained steps |", "|---|---|---:|---:|---:|"]
        for r in result["training"]:
            lines.append(f"| {r['prior']} | {r['device']} | {r['batch']} | {r['steps_per_s']:.2f} | {r.get('trained_steps', '-')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "device_out"))
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: tests the script itself")
    p.add_argument("--train-minutes", type=float, default=0.0, help="fine-tune each bundled prior this long")
    p.add_argument("--batch", type=int, default=64, help="training probe batch size (GPU)")
    p.add_argument("--data", default=None, help="train.npz of the bundled priors' data stage")
    p.add_argument("--heldout", default=None, help="held-out volumes (.npz) of the quality study (bench_recon --curve)")
    p.add_argument("--skip", default="", help="comma-separated steps to leave out (e.g. bench_prior,bench_recon)")
    p.add_argument("--budget", type=float, default=540.0, help="seconds for the whole run (the device's limit is 600)")
    p.add_argument("--work", default="/tmp/mrirecon_device_work", help="scratch folder (not returned)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    tmp = Path(args.work)
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)  # scratch of an earlier run
    tmp.mkdir(parents=True)
    import torch

    result = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (dry run)" if args.dry_run else "cpu",
              "torch": torch.__version__, "dry_run": args.dry_run, "steps": []}  # fmt: skip
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: use --dry-run on a CPU machine", file=sys.stderr)
        return 2
    d = args.dry_run
    held = ["--heldout", args.heldout] if args.heldout else []
    plan = [
        ("cuda tests", [py, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"], 110),
        ("bench_quality", [py, "benchmarks/bench_recon.py", "--curve", "--pipelined", "--out", str(tmp / "bench_quality.json")]
         + (["--device", "cpu", "--priors", "default,default-unet", "--volumes", "1", "--slices", "2", "--size", "32",
             "--configs", "2", "--step-divisor", "50"] if d
            else ["--device", "cuda", "--volumes", "2", "--slices", "3", "--time-limit", "230"] + held), 300),
        ("bench_physics", [py, "benchmarks/bench_physics.py", "--out", str(tmp / "bench_physics.json")]
         + (["--quick", "--size", "64", "--coils", "4"] if d else ["--slices", "8", "--coils", "8", "--espirit-slices", "1", "--repeats", "1", "--l1-slices", "2"]), 90),
        ("bench_recon", [py, "benchmarks/bench_recon.py", "--out", str(tmp / "bench_recon.json")]
         + (["--device", "cpu", "--steps", "1", "--slices", "1", "--samples", "2", "--quick"] if d
            else ["--device", "cuda", "--steps", "10", "--slices", "4", "--samples", "4"]), 60),
        ("bench_prior", [py, "benchmarks/bench_prior.py", "--out", str(tmp / "bench_prior.json"), "--matmul-peak"]
         + (["--quick", "--devices", "cpu", "--precisions", "fp32", "--attention", "reference", "--repeats", "1",
             "--warmup", "0"] if d else ["--devices", "cuda", "--precisions", "fp32,tf32,bf16"]), 50),
    ]  # fmt: skip
    def write() -> None:  # after every step: a run stopped at the device's limit still returns what it did
        (out / "device_run.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "device_run.md").write_text(markdown(result))

    deadline = time.perf_counter() + args.budget
    with open(out / "device_run.log", "w") as log:
        for name, cmd, timeout in plan:
            if name in args.skip.split(","):
                continue
            left = deadline - time.perf_counter() - 45  # keep time for the training probe
            if left < 20:
                result["steps"].append({"name": name, "rc": 125, "seconds": 0.0, "note": "no time left"})
                continue
            rc, seconds = run(cmd, log, min(timeout, left))
            result["steps"].append({"name": name, "rc": rc, "seconds": seconds})
            f = tmp / f"{name}.json"
            if f.exists():
                result[name] = json.loads(f.read_text())
            write()
        tic = time.perf_counter()
        try:
            result["training"] = training_probe(args, log)
            rc = 0
        except Exception as e:  # record and go on: the other results still come back
            log.write(f"training probe failed: {type(e).__name__}: {e}\n")
            rc = 1
        result["steps"].append({"name": "training probe", "rc": rc, "seconds": time.perf_counter() - tic})
    write()
    print(markdown(result))
    return 0 if all(s["rc"] == 0 for s in result["steps"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
