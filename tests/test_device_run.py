"""The prepared GPU run (scripts/device_run.sh) works end to end: its --dry-run on the CPU."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_run_dry_run_writes_the_tables(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(["bash", "scripts/device_run.sh", "--dry-run", "--out", str(out), "--work", str(tmp_path / "w")],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((out / "device_run.json").read_text())
    assert [s["name"] for s in result["steps"]] == ["cuda tests", "bench_quality", "bench_physics", "bench_recon",
                                                     "bench_prior", "training probe"]  # fmt: skip
    assert all(s["rc"] == 0 for s in result["steps"])
    assert result["bench_prior"]["matmul_peak"] and result["bench_recon"]["rows"]
    assert result["bench_quality"]["curve"] and result["bench_quality"]["pipelined"]
    assert any(r["impl"] == "mrirecon torch" for r in result["bench_physics"]["results"])  # the L1-wavelet rows
    assert {r["prior"] for r in result["training"]} == {"default", "default-unet"}
    md = (out / "device_run.md").read_text()
    assert "## Sampler" in md and "## Training probe" in md and "## Quality per network call" in md
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in files)  # what comes back from a device
