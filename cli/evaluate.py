"""``mrirecon evaluate``: batch evaluation over files x masks x accelerations x methods."""

from __future__ import annotations

from pathlib import Path

import typer

from mrirecon.recon.settings import DEFAULTS
from mrirecon.cli._common import (
    DC_OPTION,
    DC_STEPS_OPTION,
    DEVICE_OPTION,
    ETA_OPTION,
    FIRST_SLICE_OPTION,
    LAG_OPTION,
    SAMPLES_OPTION,
    SCHEDULE_OPTION,
    SENS_OPTION,
    SPACING_OPTION,
    STEPS_OPTION,
    THREADS_OPTION,
    UPDATE_OPTION,
    command,
    console,
    err_console,
    examples,
    info,
    parse_list,
    recon_settings,
    saved,
    start,
)


@command(
    "evaluate",
    epilog=examples(
        "mrirecon evaluate data/multicoil_val --masks random,equispaced,poisson --accelerations 4,8,12 "
        "--methods aid,unet,l1-wavelet,zero-filled -o results/",
        "mrirecon evaluate data/ -o results/ --methods aid,unet,l1-wavelet,l1-wavelet-tuned,sense,sense-tuned",
        "mrirecon evaluate data/ -o results/ --limit 10 --slices center:8 --steps 50 --device cuda",
        "torchrun --nproc-per-node 4 -m mrirecon.cli evaluate data/ -o results/ --device cuda",
        "mrirecon evaluate data/ -o results/   # after a crash or Ctrl-C: resumes, skips finished rows",
    ),
)
def evaluate_cmd(
    data_dir: Path = typer.Argument(..., help="Folder of fully sampled fastMRI .h5 files (with reconstruction_rss)."),
    out: Path = typer.Option(..., "--out", "-o", help="Results folder (created; reused to resume)."),
    masks: str = typer.Option("random,equispaced,poisson", "--masks", help="Comma-separated mask kinds."),
    accelerations: str = typer.Option("4,8,12", "--accelerations", help="Comma-separated nominal accelerations."),
    methods: str = typer.Option(
        "aid,unet,l1-wavelet,zero-filled",
        "--methods",
        help="Comma-separated: aid, unet, l1-wavelet, sense, zero-filled; l1-wavelet-tuned / sense-tuned "
        "(oracle sweep of lambda against the evaluated slices' reference: the ceiling); l1-wavelet-tuned-slice / "
        "sense-tuned-slice (lambda swept on one slice next to the evaluated ones, then applied to them).",
    ),
    limit: int = typer.Option(None, "--limit", help="Use only the first N files (sorted by name)."),
    slices: str = typer.Option("all", "--slices", help="Slices per volume: all, I, I,J,K, A:B or center:N."),
    steps: int = STEPS_OPTION,
    samples: int = SAMPLES_OPTION,
    seed: int = typer.Option(DEFAULTS.seed, "--seed", help="Seed of the sampler; mask seed = crc32(file name) + seed."),
    center_fraction: float = typer.Option(
        None, "--center-fraction", help="Fully sampled centre (default: fastMRI's per acceleration, 0.08 at 4x, 0.04 at 8x)."
    ),
    sens: str = SENS_OPTION,
    prior: str = typer.Option("default", "--prior", help="Prior of the 'aid' method: registry name or CONFIG:WEIGHTS."),
    unet_prior: str = typer.Option("default-unet", "--unet-prior", help="Prior of the 'unet' method."),
    normalize: str = typer.Option(
        "lstsq", "--normalize", help="Intensity normalisation before metrics: lstsq, max, none."
    ),
    update: str = UPDATE_OPTION,
    eta: float = ETA_OPTION,
    dc: str = DC_OPTION,
    dc_steps: int = DC_STEPS_OPTION,
    first_slice: str = FIRST_SLICE_OPTION,
    spacing: str = SPACING_OPTION,
    schedule: str = SCHEDULE_OPTION,
    lag: int = LAG_OPTION,
    device: str = DEVICE_OPTION,
    threads: int = THREADS_OPTION,
    save_recons: bool = typer.Option(False, "--save-recons", help="Also write every reconstruction (.h5)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write metric-vs-acceleration PNGs."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first unreadable or unevaluable file (exit 2) "
                                "instead of writing its rows as skipped and going on."),  # fmt: skip
) -> None:
    """Evaluate methods on a folder of fastMRI files; resumable, shardable with torchrun.

    For every file x mask x acceleration x method one row with volume PSNR, SSIM, NMSE and
    NRMSE (fastMRI conventions, per-slice values as JSON) is appended to OUT/metrics.csv. A
    cell that cannot be computed (e.g. no calibration data for coil maps) is a 'skipped' row
    with the reason; the rest goes on. Rerunning the same command skips finished rows. At the
    end: OUT/summary.md (mean ± std per setting), OUT/summary.csv, OUT/metrics_per_slice.csv
    and OUT/plot_MASK_METRIC.png.
    """
    from rich import box
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.markup import escape
    from rich.table import Table

    from mrirecon.distributed import context_from_env
    from mrirecon.evaluation import EvalConfig, run_evaluation, summary_cells
    from mrirecon.progress import hosted

    settings = recon_settings(steps=steps, n_samples=samples, seed=seed, update=update, eta=eta, dc=dc, dc_steps=dc_steps,
                              first_slice=first_slice, spacing=spacing, schedule=schedule, lag=lag)  # fmt: skip
    start(device, threads)
    config = EvalConfig(
        data_dir=str(data_dir),
        out_dir=str(out),
        masks=parse_list(masks, "--masks"),
        accelerations=parse_list(accelerations, "--accelerations", float),
        methods=parse_list(methods, "--methods"),
        limit=limit,
        slices=None if slices == "all" else slices,
        settings=settings,
        center_fraction=center_fraction,
        sens=sens,
        aid_prior=prior,
        unet_prior=unet_prior,
        normalize=normalize,
        device=device,
        save_recons=save_recons,
        plots=plots,
        progress=True,
        strict=strict,
    )
    ctx = context_from_env()
    show = ctx.is_main
    rows_written = [0]
    progress = Progress(
        TextColumn("[bold]evaluate[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        disable=not show,
        transient=False,
    )
    task = progress.add_task("", total=None)
    metrics_csv = out / "metrics.csv"

    def on_event(event: str, data: dict) -> None:
        if event == "start":
            progress.update(task, total=data["mine"], completed=0)
            if show:
                info(
                    f"{data['total']} items, {data['total'] - data['todo']} already done, "
                    f"{data['todo']} to run on {data['world_size']} process(es)"
                    + (" (the bar follows rank 0)" if data["world_size"] > 1 else "")
                )
        elif event == "item":
            progress.update(task, description=f"{data['file']} {data['mask']} R={data['acceleration']:g} {data['method']}")
        elif event == "row":
            rows_written[0] += 1
            if rows_written[0] == 1:
                saved(f"{metrics_csv} (finished rows; rerun the same command to resume)")
            what = f"{data['file']} {data['mask']} R={data['acceleration']:g} {data['method']}"
            if data["status"] != "ok":
                progress.console.print(f"[yellow]skipped[/yellow] {what}: {data['note']}")
            progress.update(task, advance=1)

    with progress, hosted(progress):
        report = run_evaluation(config, progress=on_event)
    if not show:
        return
    counts = sorted({r.n for r in report.summary})
    volumes = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    table = Table(
        title=f"{data_dir}: mean ± std over {volumes} volume(s); full table in {out / 'summary.md'}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    header = ("mask", "R", "R eff.", "method", "volumes", "PSNR (dB)", "SSIM", "NRMSE")
    for h in header:
        table.add_column(h, justify="left" if h in ("mask", "method", "volumes") else "right", no_wrap=h != "volumes")
    for r in report.summary:
        table.add_row(*summary_cells(r, digits=3)[: len(header)])
    console.print(table)
    console.print(f"{report.done} rows computed, {report.skipped} reused from earlier runs.")
    if report.bad_files:
        console.print(f"[yellow]{len(report.bad_files)} file(s) skipped[/yellow] (unreadable or not evaluable; "
                      "--strict stops at the first):")  # fmt: skip
        for reason in report.bad_files.values():
            console.print(f"  {escape(reason)}")
    width = max((len(k) for k in report.paths), default=0)
    for name, path in report.paths.items():
        if path.exists():
            console.print(f"  {name:<{width}}  {path}")
