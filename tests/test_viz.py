"""Figures: files are written atomically, are valid images of the expected layout, bad input."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from mrirecon import viz
from mrirecon.data.simulate import phantom_volume
from mrirecon.errors import MrireconError
from mrirecon.metrics import evaluate


@pytest.fixture(scope="module")
def volumes():
    ref = phantom_volume(3, 40, 32, seed=0)
    rng = np.random.default_rng(0)
    recon = (ref + 0.05 * rng.standard_normal(ref.shape)) * 2.5 * np.exp(1j * 0.4)  # other scale
    return ref, recon


def _read(path):
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img


def test_comparison_layout_and_rows(tmp_path, volumes):
    ref, recon = volumes
    metrics = {"recon": evaluate(ref, recon)}
    out = viz.save_comparison(tmp_path / "figs" / "cmp.png", {"reference": ref, "recon": recon}, metrics=metrics)
    two_rows = _read(out)
    assert out.parent.name == "figs" and not list(out.parent.glob(".*tmp*"))
    # an uncertainty row makes the figure taller; more methods make it wider
    out3 = viz.save_comparison(
        tmp_path / "cmp3.png",
        {"reference": ref, "recon": recon},
        uncertainty={"recon": np.abs(recon - ref) * 0.1},
        slice_index=0,
    )
    three_rows = _read(out3)
    assert three_rows.shape[0] > 1.3 * two_rows.shape[0]
    wide = _read(viz.save_comparison(tmp_path / "w.png", {"a": ref[1], "b": recon[1], "c": ref[1] * 0.5}))
    assert wide.shape[1] > two_rows.shape[1]
    # a single panel has no error row
    single = _read(viz.save_comparison(tmp_path / "s.png", {"only": ref}))
    assert single.shape[0] < two_rows.shape[0]


def test_comparison_content():
    ref = np.zeros((2, 32, 32))
    ref[:, 8:24, 8:24] = 1.0
    ref[1] *= 2.0
    other = ref * 0.8
    other[:, 10, 10] = 0.0
    cmp = viz.prepare_comparison(
        {"m": 7j * ref, "ref": ref, "o": other},
        error_of="ref",
        uncertainty={"o": np.full(ref.shape, 0.1)},
        slice_index=-1,
    )
    assert cmp.order == ["ref", "m", "o"] and cmp.slice_index == 1
    assert cmp.vmax == 2.0  # the reference's max on the shown slice
    # a method equal to the reference up to a complex scale is drawn identically, error 0
    assert cmp.scales["m"] == pytest.approx(1 / 7)
    np.testing.assert_allclose(cmp.images["m"], ref[1], atol=1e-12)
    assert cmp.errors["m"].max() < 1e-12
    # the other method is scaled by its least-squares factor; the error shows the hole
    assert cmp.scales["o"] == pytest.approx(np.sum(ref[1] * other[1]) / np.sum(other[1] ** 2))
    assert np.unravel_index(np.argmax(cmp.errors["o"]), (32, 32)) == (10, 10)
    assert cmp.emax == pytest.approx(cmp.errors["o"].max())
    np.testing.assert_allclose(cmp.stds["o"], 0.1 * cmp.scales["o"])
    raw = viz.prepare_comparison({"ref": ref, "o": other}, normalize="none")
    assert raw.scales["o"] == 1.0 and raw.errors["o"][12, 12] == pytest.approx(0.4)


def test_strip_mask_plot(tmp_path, volumes):
    ref, _ = volumes
    strip = _read(viz.save_strip(tmp_path / "strip.png", ref, titles=["a", "b", "c"]))
    grid = _read(viz.save_strip(tmp_path / "grid.png", ref, ncols=1))
    assert strip.shape[1] > strip.shape[0] and grid.shape[0] > grid.shape[1]
    mask = np.zeros(32)
    mask[::4] = 1
    _read(viz.save_mask(tmp_path / "mask.png", mask, title="R4"))
    _read(viz.save_mask(tmp_path / "mask2.png", np.broadcast_to(mask, (40, 32))))
    series = {"zf": [30, 25, 20], "aid": [36, 33, 30]}
    _read(viz.save_plot(tmp_path / "p.png", [2, 4, 8], series, errors={"aid": [1, 1, 1]}))
    viz.save_plot(tmp_path / "p.pdf", [2, 4], {"zf": [30, 25]})
    assert (tmp_path / "p.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p, r: viz.save_comparison(p / "x.png", {}), "non-empty dict"),
        (lambda p, r: viz.save_comparison(p / "x.png", {"a": r, "b": r[:, :-1]}), r"panels\['b'\] has shape"),
        (lambda p, r: viz.save_comparison(p / "x.png", {"a": r}, error_of="z"), "error_of='z' is not one of"),
        (lambda p, r: viz.save_comparison(p / "x.png", {"a": r}, slice_index=9), "slice_index 9 out of range"),
        (lambda p, r: viz.save_comparison(p / "x.png", {"a": r, "b": r}, uncertainty={"a": r}), "must name a method"),
        (lambda p, r: viz.save_comparison(p / "x.png", {"a": r * np.nan}), "NaN"),
        (lambda p, r: viz.save_comparison(p / "x.jpg", {"a": r}), "must end in"),
        (lambda p, r: viz.save_comparison(p / "x.png", {"a": r}, normalize="max"), "normalize must be"),
        (lambda p, r: viz.save_strip(p / "x.png", r[0]), r"frames must be \(N, H, W\)"),
        (lambda p, r: viz.save_mask(p / "x.png", np.zeros(8)), "samples nothing"),
        (lambda p, r: viz.save_plot(p / "x.png", [1, 2], {"a": [1]}), "has 1 values, x has 2"),
    ],
)
def test_bad_input(tmp_path, volumes, call, match):
    with pytest.raises(MrireconError, match=match):
        call(tmp_path, volumes[0])
    assert not (tmp_path / "x.png").exists()
