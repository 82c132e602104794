"""The scripts in examples/ run end to end on the bundled data (small settings)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import h5py
import pytest

from mrirecon.evaluation import ResultsTable

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pipeline_on_the_sample_scan(tmp_path):
    psnr = _load("pipeline").main(["--steps", "3", "--samples", "2", "--slices", "center:2", "--out", str(tmp_path)])
    assert set(psnr) == {"zero-filled", "L1-wavelet", "AID"}
    assert psnr["L1-wavelet"] > psnr["zero-filled"]  # compressed sensing beats zero-filling at R = 4
    assert (tmp_path / "comparison.png").stat().st_size > 10_000
    with h5py.File(tmp_path / "aid.h5", "r") as f:
        assert f["reconstruction"].shape == (2, 64, 64) and f["std"].shape == (2, 64, 64)


def test_batch_evaluate_simulates_runs_and_resumes(tmp_path):
    example = _load("batch_evaluate")
    args = ["--simulate", "2", "--size", "48", "--out", str(tmp_path), "--masks", "equispaced",
            "--accelerations", "4", "--methods", "zero-filled,aid", "--steps", "2",
            "--center-fraction", "0.1"]  # fmt: skip
    report = example.main(args)
    assert report.done == 4 and len(report.rows) == 4
    assert {r["method"] for r in report.rows} == {"zero-filled", "aid"}
    assert (tmp_path / "summary.md").exists() and (tmp_path / "plot_equispaced_psnr.png").exists()
    again = example.main(args)  # resumable: everything is reused
    assert again.done == 0 and again.skipped == 4
    assert ResultsTable(tmp_path / "metrics.csv").rows() == report.rows


@pytest.mark.parametrize("name", ["pipeline", "batch_evaluate"])
def test_examples_document_themselves(name):
    module = _load(name)
    assert module.__doc__ and "python examples/" in module.__doc__
