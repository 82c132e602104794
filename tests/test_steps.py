"""The sampler's update rules (mrirecon.recon.steps): pure maths, checked against the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrirecon.errors import MrireconError
from mrirecon.physics.fft import fft2c, ifft2c
from mrirecon.recon.steps import (
    DDIMUpdate,
    ReferenceUpdate,
    StepSchedule,
    data_consistency,
    ddim_sigma,
    make_update,
    predict_x0,
)


def linear_alphas_cumprod(n: int = 1000) -> np.ndarray:
    return np.cumprod(1.0 - np.linspace(1e-4, 0.02, n, dtype=np.float64))


def test_step_schedule_pairs_each_step_with_its_target():
    ac = linear_alphas_cumprod()
    s = StepSchedule.from_alphas_cumprod(ac, [999, 500, 0])
    np.testing.assert_array_equal(s.abar, ac[[999, 500, 0]])
    np.testing.assert_array_equal(s.abar_next, [ac[500], ac[0], 1.0])
    assert len(s) == 3
    with pytest.raises(MrireconError, match="strictly decreasing"):
        StepSchedule.from_alphas_cumprod(ac, [0, 10])
    with pytest.raises(MrireconError, match="strictly decreasing"):
        StepSchedule.from_alphas_cumprod(ac, [1000, 0])


def test_predict_x0_inverts_forward_noising():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 2, 8, 8, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 2, 8, 8, generator=g, dtype=torch.float64)
    a = 0.37
    xt = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    torch.testing.assert_close(predict_x0(xt, eps, a), x0, rtol=0, atol=1e-12)


def _fourier_problem(seed: int = 0):
    """Single-coil Cartesian problem A = M F: AᴴA is an orthogonal projection."""
    g = torch.Generator().manual_seed(seed)
    x_true = torch.randn(6, 8, generator=g, dtype=torch.complex128)
    mask = torch.zeros(6, 8, dtype=torch.float64)
    mask[:, ::3] = 1
    y = mask * fft2c(x_true)
    normal = lambda x: ifft2c(mask * fft2c(x))  # noqa: E731
    return x_true, mask, y, normal, ifft2c(y)


def test_data_consistency_unit_step_replaces_sampled_lines():
    x_true, mask, y, normal, rhs = _fourier_problem()
    x = torch.zeros_like(x_true) + 0.3
    out = data_consistency(x, normal, rhs, n_steps=1, step_size=1.0)
    k_out, k_in = fft2c(out), fft2c(x)
    # sampled entries equal the data, the others are untouched
    torch.testing.assert_close(k_out[mask == 1], y[mask == 1], rtol=0, atol=1e-12)
    torch.testing.assert_close(k_out[mask == 0], k_in[mask == 0], rtol=0, atol=1e-12)
    # a projection: further unit steps change nothing
    torch.testing.assert_close(data_consistency(out, normal, rhs, 3, 1.0), out, rtol=0, atol=1e-12)
    assert data_consistency(x, normal, rhs, 0, 1.0) is x


def test_data_consistency_small_steps_converge_geometrically():
    x_true, mask, y, normal, rhs = _fourier_problem(1)
    x = torch.zeros_like(x_true)
    res = []
    for _ in range(5):
        x = data_consistency(x, normal, rhs, 1, 0.5)
        res.append(float(torch.linalg.norm(mask * fft2c(x) - y)))
    # on the sampled set each step multiplies the residual by (1 - η) = 0.5
    np.testing.assert_allclose(np.array(res[1:]) / np.array(res[:-1]), 0.5, rtol=1e-9)


def _coil_problem(seed: int = 0):
    """Two-coil Cartesian SENSE problem at R = 2 with Σ|S|² = 1: AᴴA is not a projection."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(2, 8, 8, generator=g, dtype=torch.complex128)
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(0))
    mask = torch.zeros(8, 8, dtype=torch.float64)
    mask[:, ::2] = 1
    x_true = torch.randn(8, 8, generator=g, dtype=torch.complex128)
    y = mask * fft2c(maps * x_true)
    normal = lambda x: (maps.conj() * ifft2c(mask * fft2c(maps * x[..., None, :, :]))).sum(-3)  # noqa: E731
    return x_true, mask, y, normal, (maps.conj() * ifft2c(y)).sum(-3)


def test_cg_data_consistency_fits_faster_than_gradient_steps():
    x_true, mask, y, normal, rhs = _coil_problem()
    x = torch.zeros(3, 8, 8, dtype=torch.complex128)  # a batch of three "x̂0"
    x[1] += 0.5
    for k, factor in ((4, 0.6), (16, 0.3), (32, 0.1)):  # CG's lead grows with the iterations
        res = {}
        for method in ("gradient", "cg"):
            out = data_consistency(x, normal, rhs, n_steps=k, step_size=1.0, method=method)
            assert out.shape == x.shape
            res[method] = float(torch.linalg.vector_norm(normal(out) - rhs))
        assert res["cg"] < factor * res["gradient"], (k, res)
    assert data_consistency(x, normal, rhs, 0, 1.0, "cg") is x


def test_reference_update_formula_and_final_step():
    g = torch.Generator().manual_seed(2)
    x0, n, xt, eps = (torch.randn(3, 2, 4, 4, generator=g) for _ in range(4))
    rule = ReferenceUpdate(temperature=0.7)
    a, an = 0.2, 0.6
    assert rule.needs_noise(a, an) and not rule.needs_noise(a, 1.0)
    expected = math.sqrt(an) * x0 + 0.7 * math.sqrt(1 - an) * n
    torch.testing.assert_close(rule(xt, eps, x0, a, an, n), expected)
    assert rule(xt, eps, x0, a, 1.0, None) is x0  # last step: the clean estimate itself


def test_ddim_eta0_is_deterministic_and_exact_on_a_consistent_pair():
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64)
    a, an = 0.3, 0.8
    xt = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    rule = DDIMUpdate(eta=0.0)
    assert not rule.needs_noise(a, an)
    out = rule(xt, eps, predict_x0(xt, eps, a), a, an, None)
    # DDIM (η = 0) moves along the same noise direction: x_t' = √ᾱ' x0 + √(1-ᾱ') ε
    torch.testing.assert_close(out, math.sqrt(an) * x0 + math.sqrt(1 - an) * eps, rtol=0, atol=1e-12)


def test_ddim_eta1_sigma_is_the_ddpm_posterior_std():
    ac = linear_alphas_cumprod()
    betas = np.linspace(1e-4, 0.02, 1000)
    for t in (1, 10, 500, 999):
        beta_tilde = (1 - ac[t - 1]) / (1 - ac[t]) * betas[t]
        assert ddim_sigma(ac[t], ac[t - 1], 1.0) == pytest.approx(math.sqrt(beta_tilde), rel=1e-9)
    assert ddim_sigma(ac[5], 1.0, 1.0) == 0.0


@pytest.mark.parametrize("rule", [DDIMUpdate(0.0), DDIMUpdate(0.5), DDIMUpdate(1.0), ReferenceUpdate()])
def test_updates_keep_the_forward_marginal(rule):
    """With the true x0 and ε, x_t' has the q(x_t' | x0) marginal N(√ᾱ' x0, 1-ᾱ') for every rule."""
    g = torch.Generator().manual_seed(4)
    n = 200_000
    x0 = torch.full((n,), 0.4, dtype=torch.float64)
    eps = torch.randn(n, generator=g, dtype=torch.float64)
    noise = torch.randn(n, generator=g, dtype=torch.float64)
    a, an = 0.25, 0.7
    xt = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    out = rule(xt, eps, x0, a, an, noise if rule.needs_noise(a, an) else None)
    assert float(out.mean()) == pytest.approx(math.sqrt(an) * 0.4, abs=5e-3)
    assert float(out.var()) == pytest.approx(1 - an, rel=2e-2)


def test_temperature_scales_only_the_injected_noise():
    g = torch.Generator().manual_seed(5)
    x0, eps, noise = (torch.randn(2, 2, 4, 4, generator=g) for _ in range(3))
    xt = 0.5 * x0 + 0.8 * eps
    a, an = 0.25, 0.7
    cold = DDIMUpdate(1.0, temperature=0.0)
    assert not cold.needs_noise(a, an)
    torch.testing.assert_close(cold(xt, eps, x0, a, an, None), DDIMUpdate(1.0)(xt, eps, x0, a, an, 0 * noise))
    hot = DDIMUpdate(1.0, temperature=2.0)(xt, eps, x0, a, an, noise)
    base = DDIMUpdate(1.0, temperature=1.0)(xt, eps, x0, a, an, noise)
    torch.testing.assert_close(hot - base, ddim_sigma(a, an, 1.0) * noise)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(MrireconError, match="eta"):
        DDIMUpdate(eta=1.5)
    with pytest.raises(MrireconError, match="temperature"):
        ReferenceUpdate(temperature=-1)
    with pytest.raises(MrireconError, match="update must be 'reference' or 'ddim'"):
        make_update("ddpm")
    assert isinstance(make_update("ddim", eta=0.3), DDIMUpdate)
    assert isinstance(make_update("reference"), ReferenceUpdate)
