"""Hostile and broken inputs: no input is destroyed, nothing is unpickled, every bad input gets one line.

Each test names the defect it guards against (they were found by trying the toolbox as a new
user would, with broken and hostile files).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mrirecon.cli.main import app
from mrirecon.data.fastmri import open_scan, write_fastmri_scan
from mrirecon.data.simulate import phantom_volume, simulate_scan, write_simulated
from mrirecon.errors import MrireconError

runner = CliRunner()
SMALL = ["--center-fraction", "0.12"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(r, pattern: str) -> None:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    text = " ".join(r.output.split())
    assert "Error:" in text and pattern in text, r.output


@pytest.fixture()
def scan(tmp_path) -> Path:
    sim = simulate_scan(phantom_volume(3, 48, 48, seed=0), coils=4, snr_db=30, seed=0)
    return write_simulated(tmp_path / "scan.h5", sim)


def _bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


# --------------------------------------------------------------------------------------------
# data loss and security


@pytest.mark.parametrize("how", ["same", "symlink"])
def test_output_equal_to_the_input_is_refused_before_any_work(scan, tmp_path, how):
    before = _bytes(scan)
    target = scan
    if how == "symlink":
        target = tmp_path / "link.h5"
        os.symlink(scan, target)
    one_line_error(invoke("recon", scan, "-o", target, "--method", "zero-filled", *SMALL), "would destroy it")
    one_line_error(invoke("sens", scan, "-o", target), "would destroy it")
    one_line_error(invoke("sample", "--warm-start", scan, "-o", target, "-n", "1"), "would destroy it")
    assert _bytes(scan) == before


def test_an_input_named_like_the_checkpoint_is_never_taken_for_it(scan, tmp_path):
    """``X.partial.h5`` as input with ``-o X.h5``: refused, and the input is not touched."""
    partial = tmp_path / "X.partial.h5"
    partial.write_bytes(_bytes(scan))
    r = invoke("recon", partial, "-o", tmp_path / "X.h5", "--steps", "1", *SMALL)
    one_line_error(r, "keeps its checkpoint in")
    assert _bytes(partial) == _bytes(scan)


def test_train_resume_refuses_a_pickled_state(tmp_path):
    """A crafted train_state.pt that would run code on unpickling is refused in one line."""
    from mrirecon.prior.train import _load_state

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > pwned.txt",))

    path = tmp_path / "train_state.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(MrireconError, match="not a plain state dict") as e:
        _load_state(path)
    assert "\n" not in str(e.value) and not (tmp_path / "pwned.txt").exists()


def test_training_state_round_trips_with_weights_only(tmp_path):
    """The state holds tensors, numbers, strings, lists and dicts only: RNG states as tensors."""
    import random

    from mrirecon.prior.train import _rng_state, _set_rng_state

    state = _rng_state()
    torch.save({"rng": state}, tmp_path / "s.pt")
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)["rng"]
    a = (torch.rand(3), np.random.rand(3), random.random())
    _set_rng_state(loaded)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


# --------------------------------------------------------------------------------------------
# silent wrong results


def test_a_result_that_fails_its_checks_is_not_left_behind(tmp_path):
    sim = simulate_scan(phantom_volume(2, 48, 48, seed=1), coils=4, snr_db=30, seed=1)
    path = tmp_path / "zero.h5"
    write_fastmri_scan(path, np.zeros_like(sim.kspace), sim.reference_rss, sim.header_xml)
    out = tmp_path / "out.h5"
    r = invoke("recon", path, "-o", out, "--method", "zero-filled", "--sens", "direct", *SMALL)
    assert r.exit_code == 2 and not out.exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--dc-steps", "0"], "dc_steps=0 ignores the measured data"),
        (["--slices", "1,1,0"], "names a slice twice"),
        (["--slices", "2,1"], "increasing order"),
        (["--slices", "1:9"], "outside the volume"),
    ],
)
def test_options_that_would_be_silently_changed_are_refused(scan, tmp_path, extra, message):
    one_line_error(invoke("recon", scan, "-o", tmp_path / "o.h5", "--steps", "1", *SMALL, *extra), message)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: np.save(p, np.ones(48, np.complex64)), "real 0/1 values"),
        (lambda p: np.save(p, np.array(1.0)), "(W,) or (H, W)"),
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "not a NumPy .npy array"),
        (lambda p: p.write_bytes(b""), "not a NumPy .npy array"),
        (lambda p: p.write_text("1 0 1"), "not a NumPy .npy array"),
        (lambda p: np.save(p, np.full(48, 0.5, np.float32)), "only 0 and 1"),
    ],
)
def test_bad_mask_files(scan, tmp_path, make, message):
    mask = tmp_path / "m.npy"
    make(mask)
    one_line_error(invoke("recon", scan, "-o", tmp_path / "o.h5", "--mask-file", mask, "--method", "zero-filled"), message)
    npz = tmp_path / "m.npz"
    np.savez(npz, m=np.ones(48))
    one_line_error(invoke("recon", scan, "-o", tmp_path / "o.h5", "--mask-file", npz, "--method", "zero-filled"), ".npy")


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "not a NumPy .npy array"),
        (lambda p: p.write_bytes(b""), "not a NumPy .npy array"),
        (lambda p: np.save(p, np.zeros((3, 4))), "(slices, H, W)"),
    ],
)
def test_bad_warm_start_files(tmp_path, make, message):
    src = tmp_path / "w.npy"
    make(src)
    one_line_error(invoke("sample", "--warm-start", src, "--png", tmp_path / "s.png", "-n", "1"), message)


def test_warm_slices_past_the_end_are_refused(tmp_path):
    r = invoke("sample", "--warm-start", "sample", "--warm-slices", "6:20", "--png", tmp_path / "s.png", "-n", "1")
    one_line_error(r, "--warm-slices")


def test_a_config_with_another_seq_length_than_the_weights_warns(tmp_path):
    import shutil

    from mrirecon.prior import load_prior
    from mrirecon.prior.registry import resolve

    config, weights = resolve("default")
    shutil.copy(weights, tmp_path / "w.safetensors")
    text = config.read_text().replace("seq_length: 4", "seq_length: 2")
    (tmp_path / "other.yaml").write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_prior(config=tmp_path / "other.yaml", weights=tmp_path / "w.safetensors")
    assert any("trained with seq_length=4" in str(w.message) for w in caught)


def test_given_slices_are_excluded_and_subsets_use_the_volume_range():
    from mrirecon.metrics import evaluate

    rng = np.random.default_rng(0)
    ref = rng.random((3, 16, 16)).astype(np.float32) + 1
    ref[2] *= 4  # the brightest slice is not in the subset
    recon = ref + 0.01 * rng.standard_normal(ref.shape).astype(np.float32)
    recon[0] = ref[0]  # a copied (given) slice would flatter the metrics
    m = evaluate(ref[:2], recon[:2], exclude=[0], data_range=float(ref.max()))
    alone = evaluate(ref[1:2], recon[1:2], data_range=float(ref.max()))
    assert m.psnr == pytest.approx(alone.psnr) and m.shape == (1, 16, 16)
    assert evaluate(ref[1:2], recon[1:2]).psnr < alone.psnr  # the subset's own max understates the range


def test_training_and_reconstruction_crop_the_readout_alike(tmp_path):
    """A knee-like file (readout 2x48, recon 48x48, 56 phase-encode lines) reads as 48 rows everywhere."""
    from mrirecon.data.fastmri import make_ismrmrd_header
    from mrirecon.data.scan import prepare_scan
    from mrirecon.prior.datasets import load_volume_file

    sim = simulate_scan(phantom_volume(2, 48, 56, seed=2), coils=4, snr_db=30, seed=2)
    header = make_ismrmrd_header((96, 56), (48, 48), coils=4, slices=2)
    path = write_fastmri_scan(tmp_path / "knee.h5", sim.kspace, sim.reference_rss[..., 4:52], header)
    assert prepare_scan(path).kspace.shape[-2:] == (48, 56)
    assert load_volume_file(path).frames.shape[-2:] == (48, 56)


# --------------------------------------------------------------------------------------------
# one line, exit 2, no traceback


def test_unwritable_outputs_fail_before_computing(scan, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(invoke("recon", scan, "-o", blocker / "o.h5", "--method", "zero-filled", *SMALL), "is a file, not a folder")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        one_line_error(invoke("recon", scan, "-o", ro / "o.h5", "--method", "zero-filled", *SMALL), "cannot write in")
        one_line_error(invoke("recon", scan, "-o", tmp_path / "o.h5", "--png", ro / "p.png", "--method", "zero-filled",
                              *SMALL), "cannot write in")  # fmt: skip


def test_info_on_a_truncated_file(scan, tmp_path):
    cut = tmp_path / "cut.h5"
    cut.write_bytes(_bytes(scan)[:4000])
    one_line_error(invoke("info", cut), "cut.h5")


def test_stale_temporaries_of_the_same_output_are_removed(scan, tmp_path):
    out = tmp_path / "o.h5"
    stale = tmp_path / ".o.h5.999999999.tmp"  # a writer that was killed (no such pid)
    stale.write_bytes(b"half")
    r = invoke("recon", scan, "-o", out, "--method", "zero-filled", *SMALL)
    assert r.exit_code == 0, r.output
    assert out.exists() and not stale.exists()


def test_ambiguous_three_d_kspace_is_decided_by_the_file_or_refused(tmp_path):
    k = np.ones((4, 16, 16), np.complex64)
    with h5py.File(tmp_path / "amb.h5", "w") as f:
        f["kspace"] = k
    with pytest.raises(MrireconError, match="single-coil slices .* or one multi-coil slice"):
        open_scan(tmp_path / "amb.h5")
    with h5py.File(tmp_path / "single.h5", "w") as f:
        f["kspace"] = k
        f["reconstruction_esc"] = np.ones((4, 16, 16), np.float32)
    assert open_scan(tmp_path / "single.h5").kspace_shape == (4, 1, 16, 16)
    with h5py.File(tmp_path / "multi.h5", "w") as f:
        f["kspace"] = k
        f["reconstruction_rss"] = np.ones((1, 16, 16), np.float32)
    s = open_scan(tmp_path / "multi.h5")
    assert s.kspace_shape == (1, 4, 16, 16) and s.load_kspace().shape == (1, 4, 16, 16)


@pytest.mark.parametrize(
    ("kspace", "kw", "match"),
    [
        (np.zeros((1, 2, 16, 16), np.complex64), {}, "kspace is all zero"),
        (torch.zeros((1, 2, 16, 16), dtype=torch.complex64, device="meta"), {}, "'meta' tensor"),
        (np.ones((1, 2, 16, 16), np.complex64), {"checkpoint": "/proc/no/run.h5"}, "checkpoint '/proc/no/run.h5': cannot write"),
        (np.ones((1, 2, 16, 16), np.complex64), {"checkpoint": "x" * 300 + ".h5"}, "longer than file systems allow"),
    ],
)
def test_bad_api_input_is_one_line_before_work(kspace, kw, match):
    from mrirecon import reconstruct

    with pytest.raises(MrireconError, match=match):
        reconstruct(kspace, np.ones(16, np.float32), method="sense" if not kw else None, progress=False, **kw)


def test_huge_and_tiny_kspace_scale_through_the_classical_methods():
    """|k| ~ 1e30 squared overflows float32: the classical solvers work at unit scale and scale back."""
    from mrirecon import reconstruct

    rng = np.random.default_rng(0)
    k = (rng.standard_normal((1, 4, 16, 16)) + 1j * rng.standard_normal((1, 4, 16, 16))).astype(np.complex64)
    m = np.ones(16, np.float32)
    base = reconstruct(k, m, method="sense", sens="direct", lam=1e-2, progress=False).image
    for scale in (1e30, 1e-30):
        out = reconstruct(k * np.float32(scale), m, method="sense", sens="direct", lam=1e-2, progress=False).image
        np.testing.assert_allclose(out / np.float32(scale), base, rtol=1e-3, atol=1e-4 * np.abs(base).max())


def test_given_maps_far_from_normalised_are_refused():
    from mrirecon import reconstruct

    k = np.ones((1, 2, 16, 16), np.complex64)
    maps = np.full((1, 2, 16, 16), 1e20 / np.sqrt(2), np.complex64)
    with pytest.raises(MrireconError, match="sens maps must be normalised .* got a maximum of 1e\\+40"):
        reconstruct(k, np.ones(16, np.float32), method="sense", sens=maps, progress=False)


def test_commands_on_a_dangling_external_link_say_one_line(tmp_path):
    with h5py.File(tmp_path / "dangling.h5", "w") as f:
        f["kspace"] = h5py.ExternalLink("gone.h5", "/kspace")
    for args in (["info"], ["recon", "-o", str(tmp_path / "r.h5")], ["sens", "-o", str(tmp_path / "m.h5")]):
        r = CliRunner().invoke(app, [args[0], str(tmp_path / "dangling.h5"), *args[1:]])
        assert r.exit_code == 2 and "link to a missing file" in r.output and "Traceback" not in r.output, r.output


def test_output_names_longer_than_the_file_system_allows(tmp_path):
    r = CliRunner().invoke(app, ["recon", "sample", "-o", str(tmp_path / ("x" * 300 + ".h5")), "--method", "zero-filled"])
    assert r.exit_code == 2 and "longer than file systems allow" in r.output and "Traceback" not in r.output
