"""Sampling masks: fastMRI bit-for-bit, AID reference numbers, Poisson, Gaussian, seeds, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fastmri.data.subsample import EquispacedMaskFractionFunc, RandomMaskFunc

from mrirecon.errors import MrireconError
from mrirecon.physics.masks import (
    KINDS,
    Mask,
    default_center_fraction,
    equispaced_mask,
    gaussian_mask,
    make_mask,
    poisson_mask,
    random_mask,
)


def fastmri_columns(func_cls, cf: float, R: float, shape, seed: int) -> np.ndarray:
    """fastMRI's own mask for a (coils, H, W, 2) k-space tensor, seeded in the constructor."""
    mask, _ = func_cls([cf], [R], seed=seed)((4,) + tuple(shape) + (2,))
    assert mask.shape == (1, 1, shape[1], 1)  # fastMRI masks axis -2 of (.., H, W, 2): the columns W
    return mask.numpy().reshape(-1)


@pytest.mark.parametrize("kind,cls", [("random", RandomMaskFunc), ("equispaced", EquispacedMaskFractionFunc)])
@pytest.mark.parametrize("shape,R", [((640, 320), 4), ((640, 368), 8), ((37, 45), 3)])
def test_fastmri_bit_for_bit(kind, cls, shape, R):
    cf = default_center_fraction(R)
    for seed in (0, 1, 1234, 2**31 - 5):
        m = make_mask(kind, shape, R, seed=seed)
        expected = fastmri_columns(cls, cf, R, shape, seed)
        assert m.mask.shape == shape and m.mask.dtype == np.float32
        np.testing.assert_array_equal(m.mask, np.broadcast_to(expected, shape))
        assert m.acceleration == pytest.approx(shape[0] * shape[1] / m.mask.sum())


def test_fastmri_acs_lines_and_center_fraction_are_the_same_block():
    a = make_mask("random", (64, 320), 4, seed=3, acs_lines=26)
    b = make_mask("random", (64, 320), 4, seed=3, center_fraction=26 / 320)
    np.testing.assert_array_equal(a.mask, b.mask)
    # fastMRI's centre block: 26 columns from (320 - 26 + 1)//2 = 147
    assert a.mask[:, 147:173].all()


def test_default_center_fractions():
    assert default_center_fraction(4) == 0.08 and default_center_fraction(2) == 0.08
    assert default_center_fraction(8) == pytest.approx(0.04)
    # fastMRI's R=4 / cf 0.08 at W=320: 26 central lines
    m = make_mask("equispaced", (320, 320), 4, seed=0).mask[0]
    assert m[147:173].all()


def test_fastmri_accelerations_are_near_nominal():
    eq = [make_mask("equispaced", (16, 320), 4, seed=s).acceleration for s in range(20)]
    assert np.allclose(eq, 4.0, atol=0.1)  # the fraction-adjusted spacing hits R closely
    rnd = [make_mask("random", (16, 320), 4, seed=s).acceleration for s in range(50)]
    assert 3.7 < np.mean(rnd) < 4.3 and np.std(rnd) > 0  # exact only in expectation


@pytest.mark.parametrize(
    "kind,acs,expected",
    [
        ("equispaced", 8, (3.72, 6.81, 9.41)),
        ("random", 8, (3.64, 6.67, 9.41)),
        ("equispaced", 0, (4.00, 8.00, 11.85)),
        ("random", 0, (4.00, 8.00, 12.31)),
    ],
)
def test_aid_reference_accelerations(kind, acs, expected):
    """The reference's masks (``mri_utils.py``): the reference's effective R at W=320 (seed 1234)."""
    got = [make_mask(kind, (320, 320), R, seed=1234, acs_lines=acs, convention="aid").acceleration for R in (4, 8, 12)]
    assert [round(g, 2) for g in got] == list(expected)


def test_aid_equispaced_starts_at_column_zero_and_reproduces_the_reference():
    m = equispaced_mask((320, 320), 12, convention="aid").mask
    cols = np.flatnonzero(m[0])
    np.testing.assert_array_equal(cols, np.arange(0, 320, 12))
    assert m[0, 160] == 0  # the k-space centre is missed at R=12, as in the reference
    with_acs = equispaced_mask((320, 320), 12, convention="aid", acs_lines=8).mask[0]
    assert with_acs[156:164].all() and not with_acs[155] and with_acs[168]  # 160-4 … 160+3, plus 0, 12, …


def test_aid_random_is_the_reference_draw():
    """The reference draws np.random.seed(1234); np.random.choice(ny, ny//R, replace=False)."""
    m = random_mask((8, 320), 4, seed=1234, convention="aid").mask[0]
    expected = np.zeros(320, np.float32)
    expected[np.random.RandomState(1234).choice(range(320), 80, replace=False)] = 1
    np.testing.assert_array_equal(m, expected)


@pytest.mark.parametrize("kind", KINDS)
def test_seeds_are_deterministic_and_matter(kind):
    shape = (48, 40)
    a, b = make_mask(kind, shape, 3, seed=7), make_mask(kind, shape, 3, seed=7)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.acceleration == b.acceleration
    np.testing.assert_array_equal(make_mask(kind, shape, 3).mask, make_mask(kind, shape, 3, seed=0).mask)
    others = [make_mask(kind, shape, 3, seed=s).mask for s in range(8, 14)]
    assert any(not np.array_equal(a.mask, o) for o in others)
    assert isinstance(a, Mask) and set(np.unique(a.mask)) <= {0.0, 1.0}


def test_gaussian_line_count_and_density():
    m = gaussian_mask((16, 320), 4, seed=0)
    cols = m.mask[0]
    assert cols.sum() == 80 and m.acceleration == 4.0
    assert (m.mask == cols).all()  # identical rows
    assert cols[147:173].all()  # fastMRI default centre block
    central, outer = cols[80:240].mean(), np.concatenate([cols[:80], cols[240:]]).mean()
    assert central > 2 * outer  # variable density


@pytest.mark.parametrize("shape,R,acs", [((64, 64), 4, 8), ((64, 48), 3, 6), ((37, 30), 3, 5), ((64, 64), 6, None)])
def test_poisson_calibration_box_and_acceleration(shape, R, acs):
    m = poisson_mask(shape, R, seed=3, acs_lines=acs)
    h, w = shape
    assert m.mask.dtype == np.float32 and m.mask.shape == shape
    assert abs(m.acceleration - R) < 0.1 and m.acceleration == pytest.approx(h * w / m.mask.sum())
    c = acs if acs is not None else round(w * default_center_fraction(R))
    ch, cw = (c + 1 if (n % 2 == 0 and c % 2) else c for n in shape)
    box = m.mask[h // 2 - ch // 2 : h // 2 - ch // 2 + ch, w // 2 - cw // 2 : w // 2 - cw // 2 + cw]
    assert box.shape == (ch, cw) and box.all()  # centred on (h//2, w//2)
    assert not np.all(m.mask == m.mask[:1])  # a 2-D pattern: the readout is undersampled too


def test_poisson_with_seed_and_calibration_does_not_hang():
    """sigpy issue #102: seed + calib could loop forever; here every seed returns or raises."""
    for seed in range(12):
        m = poisson_mask((40, 40), 5, seed=seed, acs_lines=6)
        assert abs(m.acceleration - 5) < 0.1
    with pytest.raises(MrireconError, match="cannot reach acceleration"):
        poisson_mask((40, 40), 5, seed=0, acs_lines=6, tol=1e-9, max_iter=5)


@pytest.mark.parametrize(
    "args,kw,match",
    [
        (("radial", (32, 32), 4), {}, "unknown mask kind 'radial'; valid kinds: random, equispaced, poisson, gaussian"),
        (("random", (32, 32), 1), {}, "acceleration must be > 1"),
        (("random", (32, 32), 0.5), {}, "acceleration must be > 1"),
        (("random", (32, 32), 33), {}, "acceleration must be > 1 and <= the number of phase-encode lines W=32"),
        (("random", (32, 32), math.nan), {}, "acceleration must be > 1"),
        (("random", (32, 32), "4"), {}, "acceleration must be a number"),
        (("random", (32,), 4), {}, r"shape must be \(H, W\)"),
        (("random", (32, 0), 4), {}, r"shape must be \(H, W\)"),
        (("random", (32, 32), 4), {"center_fraction": 0.1, "acs_lines": 3}, "either center_fraction or acs_lines"),
        (("random", (32, 32), 4), {"acs_lines": 8}, "uses up the sampling budget"),
        (("equispaced", (32, 32), 4), {"center_fraction": 1.5}, r"center_fraction must be a number in \[0, 1\)"),
        (("random", (32, 32), 4), {"convention": "bart"}, "convention must be one of 'fastmri', 'aid'"),
        (("poisson", (32, 32), 4), {"convention": "aid"}, "applies to random and equispaced masks only"),
        (("gaussian", (32, 32), 4), {"offset": 2}, "gaussian mask does not take offset"),
        (("random", (32, 32), 4), {"seed": -1}, "seed must be None or an integer"),
        (("gaussian", (32, 32), 4), {"std": 0}, "std must be a positive number"),
    ],
)
def test_bad_input(args, kw, match):
    with pytest.raises(MrireconError, match=match):
        make_mask(*args, **kw)
