"""Batch evaluation machinery: resumable CSV, sharding/merging across ranks, grid, summary."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch.multiprocessing as mp

from mrirecon.distributed import (
    barrier,
    context_from_env,
    distributed_session,
    gather_objects,
    resolve_device,
    shard,
)
from mrirecon.errors import MrireconError
from mrirecon.data.scan import mask_seed, parse_slices
from mrirecon.evaluation import (
    ResultsTable,
    WorkItem,
    make_grid,
    merge_tables,
    part_files,
    part_path,
    summarize,
    summary_markdown,
)


def _row(item: WorkItem, psnr: float = 30.0) -> dict:
    return {
        "file": item.file,
        "mask": item.mask,
        "acceleration": item.acceleration,
        "method": item.method,
        "status": "ok",
        "effective_acceleration": item.acceleration * 0.9,
        "mask_seed": mask_seed(item.file),
        "slices": "0:2",
        "n_slices": 2,
        "psnr": psnr,
        "ssim": 0.9,
        "nmse": 0.01,
        "nrmse": 0.1,
        "normalization": "lstsq",
        "scale": 1.0,
        "seconds": 0.5,
        "device": "cpu",
        "sens": "direct",
        "note": "",
        "per_slice": json.dumps({"slice": [0, 1], "psnr": [psnr, psnr], "ssim": [0.9, 0.9],
                                 "nmse": [0.01, 0.01], "nrmse": [0.1, 0.1]}),
    }


GRID = make_grid(["a.h5", "b.h5", "c.h5"], ["random", "equispaced"], [4, 8], ["zero-filled", "aid"])


# --------------------------------------------------------------------------------------------
# ResultsTable


def test_table_roundtrip_types_and_keys(tmp_path):
    t = ResultsTable(tmp_path / "m.csv")
    for it in GRID[:3]:
        t.append(_row(it, psnr=31.25))
    rows = ResultsTable(tmp_path / "m.csv").rows()
    assert [r["method"] for r in rows] == [it.method for it in GRID[:3]]
    assert rows[0]["psnr"] == 31.25 and isinstance(rows[0]["n_slices"], int)
    assert ResultsTable(tmp_path / "m.csv").keys() == {it.key for it in GRID[:3]}
    # exactly one header line
    assert (tmp_path / "m.csv").read_text().count("file,mask,") == 1


def test_table_float_precision_roundtrips(tmp_path):
    t = ResultsTable(tmp_path / "m.csv")
    row = _row(GRID[0], psnr=1 / 3)
    t.append(row)
    assert t.rows()[0]["psnr"] == 1 / 3


def test_torn_last_line_is_ignored_then_cut(tmp_path):
    path = tmp_path / "m.csv"
    t = ResultsTable(path)
    t.append(_row(GRID[0]))
    t.append(_row(GRID[1]))
    full = path.read_bytes()
    # the process died inside the write of the third row
    third = ResultsTable(tmp_path / "x.csv")
    third.append(_row(GRID[2]))
    line = (tmp_path / "x.csv").read_bytes().split(b"\n")[1]
    path.write_bytes(full + line[: len(line) // 2])
    t2 = ResultsTable(path)
    assert t2.keys() == {GRID[0].key, GRID[1].key}
    t2.append(_row(GRID[3]))
    text = path.read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 4  # header + 3 rows, torn bytes gone
    assert ResultsTable(path).keys() == {GRID[0].key, GRID[1].key, GRID[3].key}


def test_torn_header_is_recovered(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"file,mask,accel")  # died while writing the very first line
    t = ResultsTable(path)
    assert t.rows() == []
    t.append(_row(GRID[0]))
    assert ResultsTable(path).keys() == {GRID[0].key}


def test_foreign_header_is_refused(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(MrireconError, match="has columns"):
        ResultsTable(path).rows()
    with pytest.raises(MrireconError, match="new output folder"):
        ResultsTable(path).append(_row(GRID[0]))


def test_row_missing_columns_is_refused(tmp_path):
    row = _row(GRID[0])
    del row["ssim"]
    with pytest.raises(MrireconError, match="ssim"):
        ResultsTable(tmp_path / "m.csv").append(row)


# --------------------------------------------------------------------------------------------
# sharding and merging


@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("grouped", [False, True])
def test_shard_partitions_work(world, grouped):
    key = (lambda it: it.file) if grouped else None
    shards = [shard(GRID, r, world, key=key) for r in range(world)]
    flat = [it for s in shards for it in s]
    assert sorted(flat) == sorted(GRID) and len(flat) == len(GRID)
    for s in shards:  # order is preserved within a shard
        assert s == [it for it in GRID if it in s]
    if grouped:  # a file never spans ranks
        owners = {}
        for r, s in enumerate(shards):
            for it in s:
                assert owners.setdefault(it.file, r) == r
    else:
        sizes = [len(s) for s in shards]
        assert max(sizes) - min(sizes) <= 1


def test_shard_rejects_bad_rank():
    with pytest.raises(MrireconError, match="rank"):
        shard(GRID, 2, 2)


def test_merge_dedups_sorts_and_removes_parts(tmp_path):
    main = tmp_path / "metrics.csv"
    ResultsTable(main).append(_row(GRID[5], psnr=1.0))
    # two ranks of a killed run, one of which duplicates a row of the main file
    ResultsTable(part_path(main, 0)).append(_row(GRID[3]))
    ResultsTable(part_path(main, 0)).append(_row(GRID[0]))
    ResultsTable(part_path(main, 1)).append(_row(GRID[5], psnr=2.0))
    ResultsTable(part_path(main, 1)).append(_row(GRID[1]))
    parts = part_files(main)
    assert [p.name for p in parts] == ["metrics.rank0.csv", "metrics.rank1.csv"]
    rows = merge_tables(main, parts, order=GRID)
    assert [(r["file"], r["method"], r["acceleration"]) for r in rows] == [
        (GRID[i].file, GRID[i].method, GRID[i].acceleration) for i in (0, 1, 3, 5)
    ]
    assert next(r for r in rows if (r["file"], r["mask"], r["method"]) == GRID[5].key[:2] + (GRID[5].method,))[
        "psnr"
    ] == 1.0  # the main file's copy wins
    assert part_files(main) == []
    assert ResultsTable(main).rows() == rows
    assert not list(tmp_path.glob(".*tmp*"))


# --------------------------------------------------------------------------------------------
# grid helpers


def test_mask_seed_is_stable_and_per_file():
    assert mask_seed("file_brain_AXT1_1.h5") == mask_seed("/other/dir/file_brain_AXT1_1.h5")
    assert mask_seed("a.h5") != mask_seed("b.h5")
    assert mask_seed("a.h5", 1) == (mask_seed("a.h5", 0) + 1) % 2**31
    # CRC-32 (IEEE 802.3) of b"a.h5", computed with a bitwise reference implementation:
    # the masks of a results folder must not change between Python or mrirecon versions
    assert mask_seed("a.h5") == 1805254940


@pytest.mark.parametrize(
    "spec,expected",
    [(None, [0, 1, 2, 3, 4]), ("all", [0, 1, 2, 3, 4]), ("2", [2]), ("1,3", [1, 3]),
     ("1:3", [1, 2]), ("-2:", [3, 4]), ("center:3", [1, 2, 3]), ("center:9", [0, 1, 2, 3, 4])],
)
def test_parse_slices(spec, expected):
    assert parse_slices(spec, 5) == expected


@pytest.mark.parametrize("spec", ["7", "x", "4:2", "center:0", "1,,", "1,1,0", "3,1", "2:9"])
def test_parse_slices_rejects(spec):
    """Repeats, reordering and ranges past the end are refused, not silently fixed."""
    with pytest.raises(MrireconError, match="--slices"):
        parse_slices(spec, 5)


def test_summary_mean_std_and_markdown():
    rows = [_row(WorkItem(f, "random", 4.0, "aid"), psnr=p) for f, p in (("a", 30.0), ("b", 32.0))]
    rows.append(_row(WorkItem("a", "random", 8.0, "aid"), psnr=25.0))
    s = summarize(rows)
    assert [(r.acceleration, r.n) for r in s] == [(4.0, 2), (8.0, 1)]
    assert s[0].psnr == pytest.approx(31.0) and s[0].psnr_std == pytest.approx(np.sqrt(2.0))
    assert s[1].psnr_std == 0.0
    md = summary_markdown(s, title="t")
    assert "| random | 4 | 3.60 | aid | 2 | 31.00 ± 1.41 |" in md
    assert "| random | 8 | 7.20 | aid | 1 | 25.00 (n=1) |" in md  # one volume: no ± 0.00


# --------------------------------------------------------------------------------------------
# distributed helpers


def test_single_process_defaults(monkeypatch):
    for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(v, raising=False)
    with distributed_session("cpu") as ctx:
        assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
        assert gather_objects({"x": 1}) == [{"x": 1}]
        barrier()


def test_env_is_validated(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(MrireconError, match="RANK"):
        context_from_env()


def test_resolve_device():
    assert str(resolve_device("cpu")) == "cpu"
    assert resolve_device("auto").type == ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    with pytest.raises(MrireconError, match="device must be auto"):
        resolve_device("tpu")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU message")
def test_resolve_device_without_gpu():
    with pytest.raises(MrireconError, match="no CUDA GPU"):
        resolve_device("cuda")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    main = Path(out) / "metrics.csv"
    with distributed_session("cpu") as ctx:
        assert ctx.backend == "gloo" and ctx.world_size == world
        mine = shard(GRID, ctx.rank, ctx.world_size, key=lambda it: it.file)
        table = ResultsTable(part_path(main, ctx.rank))
        for it in mine:
            table.append(_row(it, psnr=float(ctx.rank)))
        counts = gather_objects(len(mine))
        barrier()
        if ctx.is_main:
            rows = merge_tables(main, part_files(main), order=GRID)
            (Path(out) / "counts.json").write_text(json.dumps({"counts": counts, "rows": len(rows)}))
        barrier()


def test_two_gloo_ranks_shard_and_merge(tmp_path):
    """Real 2-process gloo job: disjoint shards, per-rank part files, rank-0 merge."""
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    result = json.loads((tmp_path / "counts.json").read_text())
    assert sum(result["counts"]) == len(GRID) and result["rows"] == len(GRID)
    rows = ResultsTable(tmp_path / "metrics.csv").rows()
    assert [(r["file"], r["mask"], r["acceleration"], r["method"]) for r in rows] == [
        (it.file, it.mask, it.acceleration, it.method) for it in GRID
    ]
    # files a.h5 and c.h5 went to rank 0, b.h5 to rank 1 (groups dealt round-robin)
    assert {r["file"]: r["psnr"] for r in rows} == {"a.h5": 0.0, "b.h5": 1.0, "c.h5": 0.0}
    assert part_files(tmp_path / "metrics.csv") == []


# --------------------------------------------------------------------------------------------
# run_evaluation end to end (classical methods on simulated files)


def _data(folder: Path, n: int = 2) -> Path:
    from mrirecon.data.simulate import phantom_volume, simulate_scan, write_simulated

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sim = simulate_scan(phantom_volume(3, 48, 48, seed=i), coils=4, snr_db=30, seed=i)
        write_simulated(folder / f"vol{i}.h5", sim)
    return folder


def _config(data: Path, out: Path, **kw):
    from mrirecon.evaluation import EvalConfig

    base = dict(
        data_dir=str(data), out_dir=str(out), masks=("random", "equispaced"), accelerations=(3.0, 4.0),
        methods=("zero-filled",), sens="direct", center_fraction=0.1, plots=False,
    )  # fmt: skip
    from mrirecon.recon import ReconSettings

    recon = {k: kw.pop(k) for k in ("steps", "n_samples", "seed") if k in kw} | kw.pop("sampler", {})
    base.update(kw)
    return EvalConfig(**base, settings=ReconSettings(**recon))


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    return _data(tmp_path_factory.mktemp("sim"))


def _comparable(rows):
    """Rows without the fields that legitimately differ between runs (timing, device)."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "device")} for r in rows]


def test_run_evaluation_interrupt_then_resume(sim_dir, tmp_path):
    from mrirecon.evaluation import run_evaluation

    out = tmp_path / "res"
    seen = []

    def stop_after_three(event, info):
        if event == "row":
            seen.append(info)
            if len(seen) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_evaluation(_config(sim_dir, out), progress=stop_after_three)
    first = ResultsTable(out / "metrics.csv").rows()
    assert first == seen  # every reported row is on disk, nothing more
    events = []
    report = run_evaluation(_config(sim_dir, out), progress=lambda e, i: events.append((e, i)))
    start = next(i for e, i in events if e == "start")
    assert start == {"total": 8, "todo": 5, "mine": 5, "rank": 0, "world_size": 1}
    assert report.done == 5 and report.skipped == 3 and len(report.rows) == 8
    assert report.rows[:3] == first  # resumed rows kept bit for bit, grid order
    # the masks depend on the file name and seed only: a fresh run gives the same numbers
    fresh = run_evaluation(_config(sim_dir, tmp_path / "fresh"))
    assert _comparable(fresh.rows) == _comparable(report.rows)
    assert (out / "summary.md").exists() and (out / "metrics_per_slice.csv").exists()
    # sampler settings change the numbers: resuming with others is refused in one line
    with pytest.raises(MrireconError, match="sampler="):
        run_evaluation(_config(sim_dir, out, sampler={"dc": "gradient"}))


def test_run_evaluation_resumes_a_diffusion_volume_mid_way(sim_dir, tmp_path, monkeypatch):
    """Ctrl-C right after the first slice of an AID row is kept: the rerun continues from
    ``partial/`` and its row equals a fresh run's."""
    from mrirecon.evaluation import run_evaluation
    from mrirecon.recon.resume import SliceCheckpoint

    kw = dict(masks=("equispaced",), accelerations=(4.0,), methods=("aid",), steps=2, limit=1)
    save = SliceCheckpoint.save

    def save_then_interrupt(self, samples):
        save(self, samples)
        raise KeyboardInterrupt

    monkeypatch.setattr(SliceCheckpoint, "save", save_then_interrupt)
    out = tmp_path / "res"
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(_config(sim_dir, out, **kw))
    (kept,) = (out / "partial").iterdir()
    assert kept.name == "vol0_equispaced_R4_aid.h5"
    monkeypatch.setattr(SliceCheckpoint, "save", save)
    resumed = run_evaluation(_config(sim_dir, out, **kw))
    assert not (out / "partial").exists()
    fresh = run_evaluation(_config(sim_dir, tmp_path / "fresh", **kw))
    assert _comparable(resumed.rows) == _comparable(fresh.rows) and len(fresh.rows) == 1


def test_run_evaluation_skips_test_files_or_rejects_them_when_strict(tmp_path):
    from mrirecon.data.fastmri import write_fastmri_scan
    from mrirecon.evaluation import run_evaluation

    d = tmp_path / "data"
    d.mkdir()
    write_fastmri_scan(d / "test.h5", np.ones((2, 2, 16, 16), np.complex64))  # no reference
    report = run_evaluation(_config(d, tmp_path / "res"))
    assert "no reference image" in report.bad_files["test.h5"]
    assert report.rows and all(r["status"] == "skipped" for r in report.rows)
    with pytest.raises(MrireconError, match="no reference image"):
        run_evaluation(_config(d, tmp_path / "res2", strict=True))


def _eval_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    from mrirecon.evaluation import run_evaluation

    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
    )  # fmt: skip
    report = run_evaluation(_config(Path(data), Path(out)))
    (Path(out) / f"report{rank}.json").write_text(json.dumps({"done": report.done, "rows": len(report.rows)}))


def test_run_evaluation_on_two_gloo_ranks_matches_one_process(sim_dir, tmp_path):
    """torchrun-style job (2 processes, gloo): shards by file, rank 0 merges the part files."""
    from mrirecon.evaluation import run_evaluation

    out = tmp_path / "dist"
    mp.spawn(_eval_worker, args=(2, _free_port(), str(sim_dir), str(out)), nprocs=2, join=True)
    r0 = json.loads((out / "report0.json").read_text())
    r1 = json.loads((out / "report1.json").read_text())
    assert r0 == {"done": 8, "rows": 8} and r1["rows"] == 0  # only rank 0 holds the merged rows
    assert part_files(out / "metrics.csv") == []
    single = run_evaluation(_config(sim_dir, tmp_path / "single"))
    assert _comparable(ResultsTable(out / "metrics.csv").rows()) == _comparable(single.rows)


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_run_evaluation_on_cuda(sim_dir, tmp_path):
    from mrirecon.evaluation import run_evaluation

    report = run_evaluation(
        _config(sim_dir, tmp_path / "gpu", masks=("equispaced",), accelerations=(4.0,), methods=("zero-filled", "aid"),
                steps=2, device="cuda")  # fmt: skip
    )
    assert len(report.rows) == 4 and {r["device"] for r in report.rows} == {"cuda:0"}
    assert all(np.isfinite(r["psnr"]) for r in report.rows)


def test_impossible_cells_are_skipped_rows_and_the_rest_goes_on(tmp_path):
    """A mask whose centre has no calibration data for any coil-map estimate: a 'skipped' row with
    the reason; the other cells are computed; the summary counts the skipped volume."""
    from mrirecon.evaluation import run_evaluation

    data = _data(tmp_path / "data", n=1)
    cfg = _config(data, tmp_path / "res", masks=("equispaced",), accelerations=(3.0,), methods=("zero-filled", "sense"),
                  sens="espirit", center_fraction=None)  # fmt: skip
    # random masks with the AID convention have no ACS at all: coil maps need JSENSE's central samples
    cfg_bad = _config(data, tmp_path / "res2", masks=("random",), accelerations=(12.0,), methods=("zero-filled",),
                      sens="espirit", center_fraction=0.02)  # fmt: skip
    report = run_evaluation(cfg)
    assert {r["status"] for r in report.rows} == {"ok"}
    bad = run_evaluation(cfg_bad)
    assert [r["status"] for r in bad.rows] == ["skipped"] and "ESPIRiT needs" in bad.rows[0]["note"]
    assert bad.summary[0].n == 0 and bad.summary[0].skipped == 1
    assert "skipped" in (tmp_path / "res2" / "summary.md").read_text()


def test_a_run_that_produced_nothing_does_not_lock_the_folder(sim_dir, tmp_path):
    from mrirecon.evaluation import run_evaluation

    out = tmp_path / "res"

    def stop_at_once(event, info):
        if event == "item":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_evaluation(_config(sim_dir, out), progress=stop_at_once)
    assert not (out / "run.json").exists()
    report = run_evaluation(_config(sim_dir, out, sampler={"dc": "gradient"}))  # other settings: accepted
    assert len(report.rows) == 8 and (out / "run.json").exists()


def test_tuned_methods_sweep_lambda_and_the_slice_variant_never_sees_the_evaluated_slices(sim_dir, tmp_path):
    """``-tuned`` is the oracle sweep on the evaluated slices; ``-tuned-slice`` picks λ on slice 0
    (next to the evaluated slice 1) and so can only match the oracle, never beat it; with every
    slice evaluated there is no tuning slice: a skipped row."""
    import re

    from mrirecon.evaluation import LAMBDA_SWEEP, run_evaluation

    methods = ("sense", "sense-tuned", "sense-tuned-slice")
    rows = run_evaluation(_config(sim_dir, tmp_path / "a", masks=("equispaced",), accelerations=(4.0,),
                                  methods=methods, slices="1")).rows  # fmt: skip
    for file in {r["file"] for r in rows}:
        by = {r["method"]: r for r in rows if r["file"] == file}
        assert {r["status"] for r in by.values()} == {"ok"}
        oracle = float(re.search(r"best lam ([0-9.e+-]+) of 9", by["sense-tuned"]["note"]).group(1))
        picked = re.search(r"lam ([0-9.e+-]+): best of 9 on slice 0 ", by["sense-tuned-slice"]["note"])
        assert picked, by["sense-tuned-slice"]["note"]
        grid = LAMBDA_SWEEP["sense"]
        assert min(abs(v - oracle) / v for v in grid) < 1e-2 and min(abs(v - float(picked.group(1))) / v for v in grid) < 1e-2
        assert by["sense-tuned"]["psnr"] >= max(by["sense"]["psnr"], by["sense-tuned-slice"]["psnr"]) - 1e-3
    every = run_evaluation(_config(sim_dir, tmp_path / "b", masks=("equispaced",), accelerations=(4.0,),
                                   methods=("sense-tuned-slice",), slices="all")).rows  # fmt: skip
    assert {r["status"] for r in every} == {"skipped"} and "outside the evaluated" in every[0]["note"]


def _bad_files(folder: Path) -> dict[str, str]:
    """A folder of good files next to bad ones (issue: one bad file stopped the whole batch)."""
    import h5py

    from mrirecon.data import write_fastmri_scan

    _data(folder, 2)
    good = (folder / "vol0.h5").read_bytes()
    (folder / "truncated.h5").write_bytes(good[: len(good) // 3])
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((2, 4, 48, 48)) + 1j * rng.standard_normal((2, 4, 48, 48))).astype(np.complex64)
    write_fastmri_scan(folder / "noref.h5", k)  # a test/challenge-style file: no reconstruction_rss
    with h5py.File(folder / "dangling.h5", "w") as f:
        f["kspace"] = h5py.ExternalLink("gone.h5", "/kspace")
        f["reconstruction_rss"] = np.ones((2, 48, 48), np.float32)
    with h5py.File(folder / "shapes.h5", "w") as f:
        f["kspace"] = np.ones((48, 48), np.complex64)
        f["reconstruction_rss"] = np.ones((2, 48, 48), np.float32)
    return {"truncated.h5": "truncated", "noref.h5": "reference", "dangling.h5": "link", "shapes.h5": "kspace"}


def test_bad_files_are_skipped_rows_and_the_rest_goes_on(tmp_path):
    from mrirecon.evaluation import run_evaluation

    bad = _bad_files(tmp_path / "data")
    cfg = _config(tmp_path / "data", tmp_path / "out", masks=("equispaced",), accelerations=(4.0,))
    report = run_evaluation(cfg)
    assert set(report.bad_files) == set(bad)
    for name, word in bad.items():
        assert name in report.bad_files[name] and word in report.bad_files[name].lower(), report.bad_files[name]
        assert "\n" not in report.bad_files[name]
    by_file = {r["file"]: r for r in report.rows}
    assert by_file["vol0.h5"]["status"] == by_file["vol1.h5"]["status"] == "ok"
    assert all(by_file[name]["status"] == "skipped" for name in bad)
    again = run_evaluation(cfg)  # a rerun reuses the skipped rows, computes nothing
    assert again.done == 0 and len(again.rows) == len(report.rows)


def test_strict_stops_at_the_first_bad_file(tmp_path):
    from mrirecon.evaluation import run_evaluation

    _bad_files(tmp_path / "data")
    with pytest.raises(MrireconError, match=r"\.h5"):
        run_evaluation(_config(tmp_path / "data", tmp_path / "out", strict=True))


def test_cli_evaluate_over_bad_files_exits_0_with_a_count(tmp_path):
    from typer.testing import CliRunner

    from mrirecon.cli.main import app

    bad = _bad_files(tmp_path / "data")
    args = ["evaluate", str(tmp_path / "data"), "-o", str(tmp_path / "out"), "--masks", "equispaced",
            "--accelerations", "4", "--methods", "zero-filled", "--sens", "direct", "--no-plots"]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"{len(bad)} file(s) skipped" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, [*args[:3], str(tmp_path / "out2"), *args[4:], "--strict"])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    from mrirecon.evaluation import run_evaluation

    (tmp_path / "afile").write_text("x")
    with pytest.raises(MrireconError, match="exists and is not a folder"):
        run_evaluation(_config(tmp_path, tmp_path / "afile"))
