"""DiffusionSchedule: the reference's β tables, Gaussian identities, timestep respacing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrirecon.errors import MrireconError
from mrirecon.prior import DiffusionSchedule, PriorConfig


def test_linear_schedule_is_the_reference_one():
    s = DiffusionSchedule.from_config(PriorConfig.from_dict({"image_size": 32}))
    assert s.num_steps == 1000 and s.betas[0] == 1e-4 and s.betas[-1] == pytest.approx(0.02, abs=1e-15)
    assert s.alphas_cumprod.dtype == np.float64
    assert s.alphas_cumprod[-1] == pytest.approx(4.04e-5, rel=1e-2)  # the reference's linear schedule, T = 1000
    half = DiffusionSchedule.named("linear", 500)  # guided-diffusion rescales β by 1000/T
    np.testing.assert_allclose(half.betas[[0, -1]], [2e-4, 0.04])


def test_cosine_schedule_follows_its_alpha_bar():
    s = DiffusionSchedule.named("cosine", 1000)

    def abar(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2 / math.cos(0.008 / 1.008 * math.pi / 2) ** 2

    for t in (0, 100, 500, 900):
        assert s.alphas_cumprod[t] == pytest.approx(abar((t + 1) / 1000), rel=1e-9)
    assert s.betas.max() <= 0.999 and np.all(np.diff(s.alphas_cumprod) < 0)


def test_q_sample_and_predict_x0_invert_each_other():
    s = DiffusionSchedule.named()
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    t = torch.tensor([0, 500, 999])
    xt = s.q_sample(x0, t, eps)
    torch.testing.assert_close(s.predict_x0(xt, t, eps), x0, rtol=0, atol=2e-4)
    a = torch.tensor(s.alphas_cumprod[[0, 500, 999]], dtype=torch.float32).view(3, 1, 1, 1)
    torch.testing.assert_close(xt, a.sqrt() * x0 + (1 - a).sqrt() * eps)


def test_posterior_mean_is_the_ddpm_epsilon_mean():
    # μ̃(x̂0(x_t, ε), x_t) = (x_t − β_t/√(1−ᾱ_t) · ε)/√α_t  (Ho et al. eq. 11)
    s = DiffusionSchedule.named()
    g = torch.Generator().manual_seed(1)
    xt, eps = (
        torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64),
        torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64),
    )
    t = torch.tensor([1, 10, 400, 999])
    mean, var, logvar = s.q_posterior_mean_variance(s.predict_x0(xt, t, eps), xt, t)
    b = torch.tensor(s.betas[t.numpy()]).view(4, 1, 1, 1)
    ab = torch.tensor(s.alphas_cumprod[t.numpy()]).view(4, 1, 1, 1)
    ab_prev = torch.tensor(s.alphas_cumprod[t.numpy() - 1]).view(4, 1, 1, 1)
    torch.testing.assert_close(mean, (xt - b / (1 - ab).sqrt() * eps) / (1 - b).sqrt())
    torch.testing.assert_close(var, b * (1 - ab_prev) / (1 - ab))
    torch.testing.assert_close(logvar, var.log())


def test_learned_range_interpolates_between_posterior_and_beta():
    s = DiffusionSchedule.named()
    t = torch.tensor([0, 5, 999])
    lo = s.learned_range_log_variance(-torch.ones(3, 2, 1, 1), t)
    hi = s.learned_range_log_variance(torch.ones(3, 2, 1, 1), t)
    mid = s.learned_range_log_variance(torch.zeros(3, 2, 1, 1), t)
    np.testing.assert_allclose(lo[:, 0, 0, 0].numpy(), s.posterior_log_variance_clipped[[0, 5, 999]], rtol=1e-6)
    assert lo[0, 0, 0, 0] == pytest.approx(math.log(s.posterior_variance[1]), rel=1e-6)  # t=0 clipped
    np.testing.assert_allclose(hi[:, 0, 0, 0].numpy(), np.log(s.betas[[0, 5, 999]]), rtol=1e-6)
    torch.testing.assert_close(mid, (lo + hi) / 2)


def test_respacing_conventions():
    s = DiffusionSchedule.named()
    np.testing.assert_array_equal(s.respace(1000), np.arange(999, -1, -1))
    np.testing.assert_array_equal(s.respace(100), np.arange(990, -1, -10))
    # reference MRI samplers: times (T−1 … 0)·skip, skip = 1000/T, truncated to integers
    skip = 1000 / 300
    np.testing.assert_array_equal(s.respace(300), [int(i * skip) for i in range(299, -1, -1)])
    # guided-diffusion space_timesteps(1000, "10"): stride 999/9 = 111
    np.testing.assert_array_equal(s.respace(10, mode="even"), np.arange(999, -1, -111))
    assert list(s.respace(1, mode="even")) == [0] and list(s.respace(1)) == [0]
    for bad in (0, 1001, 2.5):
        with pytest.raises(MrireconError, match="num_steps"):
            s.respace(bad)
    with pytest.raises(MrireconError, match="mode"):
        s.respace(10, mode="ddim")


def test_timesteps_out_of_range_are_rejected():
    s = DiffusionSchedule.named()
    with pytest.raises(MrireconError, match="timesteps"):
        s.q_sample(torch.zeros(1, 2), torch.tensor([1000]), torch.zeros(1, 2))
