"""Reconstruction commands: ``demo`` (the bundled example end to end) and ``recon`` (one file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from mrirecon.cli._common import (
    DC_OPTION,
    DC_STEPS_OPTION,
    ETA_OPTION,
    UPDATE_OPTION,
    check_device,
    command,
    console,
    examples,
    existing_file,
    fail,
    info,
    output_path,
    saved,
    sampler_options,
)
from mrirecon.errors import require
from mrirecon.evaluation import CLASSICAL, resolve_prior


def prior_label(spec: str, prior) -> str:
    """Short display name: the classical method, or ``AID (default)`` / ``UNET (model)``."""
    if isinstance(prior, str):
        return prior
    name = spec if ":" not in spec and not Path(spec).exists() else Path(spec.split(":")[-1]).stem
    return f"{prior.kind.upper()} ({name})"


def detect_mask(scan) -> np.ndarray | None:
    """The sampling mask (W,) of prospectively undersampled data, or None if fully sampled.

    fastMRI test/challenge files carry a ``mask`` dataset; other undersampled files are
    recognised by phase-encode columns of exact zeros (in every coil and readout sample of
    the middle slice) inside the header's acquired range (columns outside it are the zero
    padding of fully sampled knee data, not undersampling).
    """
    if scan.mask is not None:
        return scan.mask.astype(np.float32)
    k = scan.kspace_slice(scan.num_slices // 2)
    sampled = np.any(k != 0, axis=(0, 1))
    lo, hi = 0, sampled.size
    if scan.header is not None:
        lo, hi = max(scan.header.padding_left, 0), min(scan.header.padding_right, sampled.size)
    inside = sampled[lo:hi]
    if inside.size == 0 or inside.all():
        return None
    return sampled.astype(np.float32)


def _metrics_table(title: str, rows: dict[str, object]) -> Table:
    t = Table(
        title=title,
        caption="fastMRI volume metrics vs the RSS reference, least-squares intensity",
    )
    for h in ("method", "PSNR (dB)", "SSIM", "NRMSE", "time (s)"):
        t.add_column(h, justify="left" if h == "method" else "right")
    for name, (m, seconds) in rows.items():
        t.add_row(name, f"{m.psnr:.2f}", f"{m.ssim:.4f}", f"{m.nrmse:.4f}", f"{seconds:.1f}")
    return t


# --------------------------------------------------------------------------------------------
# recon


@command(
    "recon",
    epilog=examples(
        "mrirecon recon file_brain_AXT1POST_200_6002026.h5 -o recon.h5 --mask equispaced -R 4 --png recon.png",
        "mrirecon recon scan.h5 -o recon.h5 --mask-file mask.npy --prior default --steps 100 --samples 4 --device cuda",
        "mrirecon recon scan.h5 -o recon.h5 --prior fastmri_320_cplx.yaml:fastmri_320_cplx.pt --device cuda",
        "mrirecon recon file_brain_test.h5 -o recon.h5   # test/challenge file: its own mask is used",
        "mrirecon recon scan.h5 -o zf.h5 --prior zero-filled",
    ),
)
def recon_cmd(
    input: Path = typer.Argument(..., help="fastMRI .h5 file (fully sampled, or undersampled test/challenge data)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .h5 (dataset 'reconstruction', fastMRI layout)."),
    mask: str = typer.Option(
        None, "--mask", help="Retrospective mask kind: random, equispaced, poisson, gaussian (default for fully "
        "sampled files: equispaced)."
    ),
    acceleration: float = typer.Option(4.0, "--acceleration", "-R", help="Nominal acceleration of --mask."),
    center_fraction: float = typer.Option(None, "--center-fraction", help="Fully sampled centre (default per kind)."),
    seed: int = typer.Option(
        0, "--seed", help="Seed: mask seed = crc32(file name) + seed (as evaluate); sampler seed."
    ),
    mask_file: Path = typer.Option(None, "--mask-file", help="Mask (W,) or (H, W) as .npy (from mrirecon mask)."),
    prior: str = typer.Option(
        "default", "--prior", help="Registry name, CONFIG.yaml:WEIGHTS.pt, or zero-filled / sense / l1-wavelet."
    ),
    sens: str = typer.Option("espirit", "--sens", help="Coil maps from the calibration lines: espirit or direct."),
    steps: int = typer.Option(100, "--steps", help="Diffusion steps per slice."),
    samples: int = typer.Option(1, "--samples", help="Posterior samples per slice (> 1 adds an uncertainty map)."),
    slices: str = typer.Option("all", "--slices", help="Slices: all, I, I,J,K, A:B or center:N."),
    update: str = UPDATE_OPTION,
    eta: float = ETA_OPTION,
    dc: str = DC_OPTION,
    dc_steps: int = DC_STEPS_OPTION,
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    png: Path = typer.Option(None, "--png", help="Comparison figure (reference, zero-filled, result, error, std)."),
) -> None:
    """Reconstruct one fastMRI file (retrospectively or prospectively undersampled).

    With a diffusion prior, finished slices are kept in OUT.partial.h5 while the job runs:
    after Ctrl-C or a crash, the same command resumes from there (and gives the same result
    as an uninterrupted run); the file is removed when the reconstruction completes.
    """
    from mrirecon.data.fastmri import open_scan, write_reconstruction
    from mrirecon.evaluation import mask_seed, parse_slices
    from mrirecon.metrics import evaluate
    from mrirecon.physics.fft import center_crop
    from mrirecon.physics.masks import make_mask
    from mrirecon.recon import reconstruct_file

    existing_file(input)
    output_path(out, (".h5",), "--out")
    if png is not None:
        output_path(png, (".png",), "--png")
    if mask is not None and mask_file is not None:
        fail("give either --mask or --mask-file, not both")
    device = check_device(device)
    scan = open_scan(input)
    idx = parse_slices(slices, scan.num_slices)
    H, W = scan.recon_size[0], scan.kspace_shape[3]

    prospective = detect_mask(scan)
    if prospective is not None:
        if mask is not None or mask_file is not None:
            fail(f"{input} is already undersampled ({int(prospective.sum())}/{prospective.size} lines); "
                 "drop --mask/--mask-file to reconstruct it as acquired")
        m, how = prospective, f"as acquired ({int(prospective.sum())}/{prospective.size} lines)"
    elif mask_file is not None:
        existing_file(mask_file, "--mask-file")
        require(mask_file.suffix == ".npy", f"--mask-file must be a .npy file, got '{mask_file}'")
        m, how = np.load(mask_file).astype(np.float32), f"from {mask_file}"
    else:
        kind = mask or "equispaced"
        mk = make_mask(kind, (H, W), acceleration, seed=mask_seed(input.name, seed), center_fraction=center_fraction)
        m, how = mk, f"{kind}, R = {acceleration:g} (effective {mk.acceleration:.2f})"
    info(f"{input.name}: {len(idx)} slices, mask {how}, prior {prior}")

    p = resolve_prior(prior, device)
    label = prior_label(prior, p)
    kwargs = dict(slices=idx, sens=sens, seed=seed)
    partial = out.with_name(out.stem + ".partial.h5")  # finished slices of an interrupted run
    if prior not in CLASSICAL:
        kwargs.update(steps=steps, n_samples=samples, device=device, **sampler_options(update, eta, dc, dc_steps))
        kwargs.update(checkpoint=partial)
        if partial.exists():
            info(f"Resuming from {partial} (finished slices of an earlier run).")
    try:
        res = reconstruct_file(input, m, prior=p, **kwargs)
    except KeyboardInterrupt:
        if partial.exists():
            saved(f"{partial} (the finished slices; rerun the same command to resume)")
        raise
    crop = scan.recon_size
    image = center_crop(res.image, crop)
    extra = {"image": image.astype(np.complex64), "mask": np.asarray(getattr(m, "mask", m), dtype=np.float32)}
    if res.std is not None:
        extra["std"] = center_crop(res.std, crop).astype(np.float32)
    attrs = {
        "source": str(input),
        "prior": prior,
        "slices": json.dumps(res.info["slices"]),
        "acceleration": float(res.info["acceleration"]),
        "seed": seed,
        "info": json.dumps({k: v for k, v in res.info.items() if k != "timings"}, default=str),
    }
    write_reconstruction(out, image, attrs=attrs, extra=extra)
    saved(out)
    console.print(f"Wrote {out}: reconstruction {tuple(image.shape)} (R = {res.info['acceleration']:.2f}).")
    if res.reference is not None:
        ref = res.reference
        metric = evaluate(ref, center_crop(image, ref.shape[-2:]))
        console.print(_metrics_table(f"{input.name} vs reconstruction_rss",
                                     {label: (metric, res.info["timings"]["total"])}))
    if png is not None:
        from mrirecon.viz import save_comparison

        panels = {}
        if res.reference is not None:
            panels["reference"] = res.reference
        shape = res.reference.shape[-2:] if res.reference is not None else crop
        if prior != "zero-filled":  # the baseline every method should beat
            zf = reconstruct_file(input, m, prior="zero-filled", slices=idx, sens=res.maps)
            panels["zero-filled"] = center_crop(zf.image, shape)
        panels[label] = center_crop(res.image, shape)
        unc = {label: center_crop(res.std, shape)} if res.std is not None else None
        save_comparison(png, panels, uncertainty=unc, title=f"{input.name}: {how}")
        saved(png)
        console.print(f"Wrote {png}.")


# --------------------------------------------------------------------------------------------
# demo


@command(
    "demo",
    epilog=examples(
        "mrirecon demo",
        "mrirecon demo --out demo6 --mask random --acceleration 6",
        "mrirecon demo --acceleration 8 --center-fraction 0.0625   # 4 calibration lines",
        "mrirecon demo --steps 200 --samples 8 --device cuda",
    ),
)
def demo_cmd(
    out: Path = typer.Option(Path("mrirecon_demo"), "--out", "-o", help="Output folder."),
    mask: str = typer.Option("equispaced", "--mask", help="Mask kind: random, equispaced, poisson, gaussian."),
    acceleration: float = typer.Option(4.0, "--acceleration", "-R", help="Nominal acceleration."),
    center_fraction: float = typer.Option(
        0.125, "--center-fraction", help="Fully sampled centre (8 of the 64 lines: enough to calibrate coil maps)."
    ),
    sens: str = typer.Option("direct", "--sens", help="Coil maps from the calibration lines: direct or espirit."),
    steps: int = typer.Option(50, "--steps", help="Diffusion steps per slice (AID and UNet)."),
    samples: int = typer.Option(4, "--samples", help="AID posterior samples per slice (uncertainty map)."),
    slices: str = typer.Option("all", "--slices", help="Slices of the sample scan: all, I, A:B or center:N."),
    seed: int = typer.Option(0, "--seed", help="Seed of the mask and of the sampler."),
    prior: str = typer.Option("default", "--prior", help="AID prior (registry name or CONFIG:WEIGHTS)."),
    unet_prior: str = typer.Option("default-unet", "--unet-prior", help="UNet prior ('none' to skip it)."),
    update: str = UPDATE_OPTION,
    eta: float = ETA_OPTION,
    dc: str = DC_OPTION,
    dc_steps: int = DC_STEPS_OPTION,
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
) -> None:
    """Reconstruct the bundled sample scan with the bundled AID prior and the baselines.

    Retrospectively undersamples the sample scan, reconstructs it with zero-filling,
    L1-wavelet compressed sensing, the UNet twin prior and the AID prior (with posterior
    samples for an uncertainty map), prints PSNR/SSIM/NRMSE against the fully sampled
    reference and writes OUT/demo.png (reference | methods, error maps, uncertainty),
    OUT/recon.h5 (the AID reconstruction, fastMRI layout, with std, mask and the baselines)
    and OUT/metrics.json.
    """
    from mrirecon.assets import sample_scan_path
    from mrirecon.data.fastmri import open_scan, write_reconstruction
    from mrirecon.evaluation import mask_seed, parse_slices
    from mrirecon.metrics import evaluate
    from mrirecon.physics.fft import center_crop
    from mrirecon.physics.masks import make_mask
    from mrirecon.recon import reconstruct_file
    from mrirecon.viz import save_comparison, save_mask

    device = check_device(device)
    path = sample_scan_path()
    scan = open_scan(path)
    idx = parse_slices(slices, scan.num_slices)
    H, W = scan.recon_size[0], scan.kspace_shape[3]
    mk = make_mask(mask, (H, W), acceleration, seed=mask_seed(path.name, seed), center_fraction=center_fraction)
    methods = [("zero-filled", "zero-filled"), ("L1-wavelet", "l1-wavelet")]
    if unet_prior != "none":
        methods.append(("UNet", unet_prior))
    methods.append(("AID", prior))
    info(
        f"Sample scan {path.name}: {len(idx)} slices, {scan.num_coils} coils, {H}x{W}; "
        f"{mask} mask R = {acceleration:g} (effective {mk.acceleration:.2f}); "
        f"{steps} steps, {samples} AID samples, device {device}"
    )
    out.mkdir(parents=True, exist_ok=True)
    results, metrics, maps = {}, {}, sens
    for label, spec in methods:
        info(f"[bold]{label}[/bold] ...")
        p = resolve_prior(spec, device)
        kwargs = dict(slices=idx, sens=maps, seed=seed)
        if spec not in CLASSICAL:
            kwargs.update(steps=steps, n_samples=samples if label == "AID" else 1, device=device,
                          **sampler_options(update, eta, dc, dc_steps))
        res = reconstruct_file(path, mk, prior=p, **kwargs)
        maps = res.maps  # estimate coil maps once, share them
        ref = res.reference
        res.image = center_crop(res.image, ref.shape[-2:])
        if res.std is not None:
            res.std = center_crop(res.std, ref.shape[-2:])
        results[label] = res
        metrics[label] = (evaluate(ref, res.image), res.info["timings"]["total"])
    console.print(_metrics_table(f"{path.name}: {mask} R={acceleration:g}, {len(idx)} slices", metrics))
    aid = results["AID"]
    panels = {"reference": ref, **{label: r.image for label, r in results.items()}}
    fig = save_comparison(
        out / "demo.png",
        panels,
        error_of="reference",
        metrics={label: m for label, (m, _) in metrics.items()},
        uncertainty={"AID": aid.std} if aid.std is not None else None,
        title=f"{path.name}: {mask} mask, R = {acceleration:g} (effective {mk.acceleration:.2f})",
    )
    saved(fig)
    save_mask(out / "mask.png", mk.mask, title=f"{mask}, R = {acceleration:g}")
    extra = {"image": aid.image.astype(np.complex64), "mask": np.asarray(mk.mask, np.float32)}
    if aid.std is not None:
        extra["std"] = aid.std.astype(np.float32)
    for label, r in results.items():
        if label != "AID":
            extra[label.lower().replace("-", "_")] = np.abs(r.image).astype(np.float32)
    h5 = write_reconstruction(
        out / "recon.h5",
        aid.image,
        attrs={"source": path.name, "prior": prior, "mask": mask, "acceleration": acceleration,
               "steps": steps, "n_samples": samples, "seed": seed},
        extra=extra,
    )
    saved(h5)
    summary = {label: {**m.as_dict(), "seconds": s} for label, (m, s) in metrics.items()}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    saved(out / "metrics.json")
    console.print(f"Wrote {fig}, {h5}, {out / 'mask.png'} and {out / 'metrics.json'}.")
