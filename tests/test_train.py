"""Prior training (mrirecon.prior.train / losses) and the shipped default priors + sample scan."""

from __future__ import annotations

import csv
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from mrirecon.data.phantoms import analytic_template, phantom_volumes
from mrirecon.errors import MrireconError
from mrirecon.prior import load_prior
from mrirecon.prior import DiffusionSchedule
from mrirecon.prior.losses import (
    causal_loss,
    denoising_error,
    discretised_gaussian_log_likelihood,
    hybrid_loss,
    vlb_terms,
)
from mrirecon.prior.train import train

TINY = {
    "image_size": 16,
    "in_channels": 2,
    "seq_length": 2,
    "num_channels": 32,
    "channel_mult": "1,2",
    "attention_resolutions": "8",
    "num_res_blocks": 1,
    "num_heads": 2,
    "learn_sigma": True,
    "mag": False,
}
TINY_UNET = {k: v for k, v in TINY.items() if k != "seq_length"}


@pytest.fixture(scope="module")
def volumes() -> list[np.ndarray]:
    """Six small complex phantom volumes (analytic template: no nilearn needed)."""
    return phantom_volumes(analytic_template(), 6, "train", image_size=16, seed=0)


def _sched() -> DiffusionSchedule:
    return DiffusionSchedule.named("linear", 1000)


def _quick(tmp: Path, vols, steps: int, cfg=TINY, resume=False, **kw):
    opts = dict(batch_size=4, lr=2e-3, seed=0, checkpoint_every=3, log_every=1, num_threads=1, progress=False)
    opts.update(kw)
    return train(cfg, vols, tmp, steps=steps, resume=resume, **opts)


# --- losses -----------------------------------------------------------------------------------


def test_discretised_likelihood_is_a_distribution():
    """Summed over all 256 bins of [-1, 1] the decoder probabilities add up to one."""
    levels = torch.linspace(-1, 1, 256)
    for mean, log_scale in ((0.3, -2.0), (-0.95, -4.0), (0.0, 0.5)):
        logp = discretised_gaussian_log_likelihood(levels, torch.full_like(levels, mean), torch.full_like(levels, log_scale))
        assert math.isclose(float(logp.exp().sum()), 1.0, rel_tol=1e-4)


def test_vlb_zero_for_exact_posterior():
    """Perfect ε and v = -1 (variance = posterior variance) give KL = 0 for t > 0."""
    s = _sched()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 2, 4, 4, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([1, 400, 999])
    xt = s.q_sample(x0, t, eps)
    vb = vlb_terms(s, x0, xt, t, eps, -torch.ones_like(x0))
    assert float(vb.abs().max()) < 1e-5
    # A wrong variance (β_t instead of β̃_t, which differ most at small t) costs bits; the
    # hybrid loss reports both terms per example.
    t = torch.tensor([1, 2, 5])
    xt = s.q_sample(x0, t, eps)
    terms = hybrid_loss(s, torch.cat([eps, torch.ones_like(x0)], 1), x0, xt, eps, t, learn_sigma=True)
    assert terms.loss.shape == (3,) and float(terms.mse.abs().max()) == 0.0 and bool((terms.vb > 1e-3).all())


def test_vlb_gradient_reaches_only_variance_head(volumes):
    """The VLB uses a detached ε̂: it moves v only, the MSE moves ε̂ only."""
    s = _sched()
    out = torch.zeros(2, 4, 8, 8, requires_grad=True)
    x0 = torch.rand(2, 2, 8, 8) * 2 - 1
    noise = torch.randn_like(x0)
    t = torch.tensor([10, 600])
    xt = s.q_sample(x0, t, noise)
    terms = hybrid_loss(s, out, x0, xt, noise, t, learn_sigma=True)
    (grad_vb,) = torch.autograd.grad(terms.vb.sum(), out, retain_graph=True)
    (grad_mse,) = torch.autograd.grad(terms.mse.sum(), out)
    assert float(grad_vb[:, :2].abs().max()) == 0.0 and float(grad_vb[:, 2:].abs().max()) > 0
    assert float(grad_mse[:, 2:].abs().max()) == 0.0 and float(grad_mse[:, :2].abs().max()) > 0


# --- training ---------------------------------------------------------------------------------


def _fixed_batch_loss(prior_network, vols) -> float:
    """Hybrid loss on fixed windows, timesteps and noise (comparable before/after training)."""
    from mrirecon.prior.datasets import SliceWindows, to_volume

    ds = SliceWindows([to_volume(v, "v") for v in vols], TINY["seq_length"] + 1, augment=False)
    batch = torch.stack([ds[i] for i in range(0, len(ds), max(1, len(ds) // 16))])
    with torch.no_grad():
        terms = causal_loss(prior_network, _sched(), batch, True, torch.Generator().manual_seed(123))
    return float(terms.mse.mean())


def test_conditioning_degradation_reaches_only_the_conditioning_frames(volumes):
    from mrirecon.prior.datasets import SliceWindows, to_volume

    class Recorder(torch.nn.Module):
        """Records what the loss feeds the network; predicts ε = 0 (and a flat variance)."""

        def forward(self, cond, noisy, t):
            self.cond, self.noisy = cond.clone(), noisy.clone()
            return torch.zeros(noisy.shape[:2] + (2 * noisy.shape[2],) + noisy.shape[3:])

    ds = SliceWindows([to_volume(v, "v") for v in volumes], 3, augment=False)
    batch = torch.stack([ds[i] for i in range(8)])
    net = Recorder()
    runs = {}
    for name, kw in {"plain": {}, "noisy": {"cond_noise": 0.2}, "cold": {"cold_start": 1.0}}.items():
        terms = causal_loss(net, _sched(), batch, True, torch.Generator().manual_seed(5), **kw)
        runs[name] = (net.cond, net.noisy, terms)
    plain_cond, plain_noisy, plain_terms = runs["plain"]
    assert torch.equal(plain_cond, batch[:, :-1])  # the reference objective: clean teacher forcing
    for name in ("noisy", "cold"):  # targets, timesteps and target noise are unchanged
        assert torch.equal(runs[name][1], plain_noisy)
    sigma = (runs["noisy"][0] - batch[:, :-1]).flatten(1).std(1)
    assert float(sigma.max()) < 0.2 and float(sigma.min()) >= 0 and float(sigma.std()) > 0.01  # per sequence
    cold = runs["cold"][0]
    assert float(cold[:, 0].abs().max()) == 0 and torch.equal(cold[:, 1:], batch[:, 1:-1])
    torch.testing.assert_close(runs["cold"][2].mse, plain_terms.mse)  # ε̂ = 0 ignores the condition


def test_tiny_prior_trains_saves_resumes_and_reloads(tmp_path, volumes):
    torch.manual_seed(0)
    from mrirecon.prior import PriorConfig, build_network

    untrained = build_network(PriorConfig.from_dict(TINY)).eval()
    full = _quick(tmp_path / "full", volumes, steps=30)
    assert full.step == 30 and len(full.history) == 30
    # The loss goes down: on fixed held data, and along the logged training curve.
    before = _fixed_batch_loss(untrained, volumes)
    prior = load_prior(full.model_path)
    after = _fixed_batch_loss(prior.network.eval(), volumes)
    assert after < 0.7 * before, (before, after)
    losses = [r["mse"] for r in full.history]
    assert np.mean(losses[-10:]) < np.mean(losses[:5])
    # Interrupted at step 12, resumed to 30: identical weights, optimiser state and log.
    part = _quick(tmp_path / "resumed", volumes, steps=12)
    assert part.step == 12
    state = torch.load(tmp_path / "resumed" / "train_state.pt", weights_only=False)
    assert state["step"] == 12 and state["optimizer"]["state"][0]["step"] == 12
    resumed = _quick(tmp_path / "resumed", volumes, steps=30, resume=True)
    assert resumed.step == 30
    a = torch.load(tmp_path / "full" / "train_state.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "train_state.pt", weights_only=False)
    for key in ("model", "ema"):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), (key, name)
    assert b["optimizer"]["state"][0]["step"] == 30
    with (tmp_path / "resumed" / "loss_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    assert [r["loss"] for r in rows] == [f"{h['loss']:.6g}" for h in full.history]
    # The exported inference weights are the EMA weights, loadable by load_prior.
    reloaded = load_prior(tmp_path / "resumed" / "model.pt")
    for name, value in reloaded.network.state_dict().items():
        assert torch.equal(value.float(), b["ema"][name].float()), name
    assert (tmp_path / "resumed" / "summary.json").is_file()
    # Resuming a finished run at its final step trains nothing and changes nothing.
    again = _quick(tmp_path / "resumed", volumes, steps=30, resume=True)
    assert again.step == 30 and len(again.history) == 30
    c = torch.load(tmp_path / "resumed" / "train_state.pt", weights_only=False)
    assert all(torch.equal(v, c["ema"][k]) for k, v in b["ema"].items())


def test_unet_twin_trains_on_slices(tmp_path, volumes):
    result = _quick(tmp_path / "unet", volumes, steps=4, cfg=TINY_UNET, batch_size=8)
    assert result.step == 4 and all(math.isfinite(r["loss"]) for r in result.history)
    prior = load_prior(result.model_path)
    x = torch.zeros(2, 2, 16, 16)
    assert prior.network(x, torch.tensor([5, 500])).shape == (2, 4, 16, 16)


def test_fine_tune_starts_from_the_given_weights(tmp_path, volumes):
    base = _quick(tmp_path / "base", volumes, steps=6)
    start = load_prior(base.model_path)
    before = _fixed_batch_loss(start.network.eval(), volumes)
    # A negligible step exports the initial weights: model and EMA both start from them.
    same = _quick(tmp_path / "zero", volumes, steps=1, lr=1e-12, init=base.model_path)
    copied = load_prior(same.model_path)
    for name, value in start.network.state_dict().items():
        assert torch.allclose(copied.network.state_dict()[name], value, atol=1e-6), name
    tuned = _quick(tmp_path / "tuned", volumes, steps=12, init=start)
    assert _fixed_batch_loss(load_prior(tuned.model_path).network.eval(), volumes) < before
    with pytest.raises(MrireconError, match="config differs.*num_channels"):
        _quick(tmp_path / "bad", volumes, steps=1, init=base.model_path, cfg=TINY | {"num_channels": 64})


def test_train_refuses_bad_runs(tmp_path, volumes):
    with pytest.raises(MrireconError, match="no training state"):
        _quick(tmp_path / "a", volumes, steps=2, resume=True)
    _quick(tmp_path / "b", volumes, steps=1)
    with pytest.raises(MrireconError, match="already holds a training run"):
        _quick(tmp_path / "b", volumes, steps=2)
    with pytest.raises(MrireconError, match="batch_size was 4, now 2"):
        _quick(tmp_path / "b", volumes, steps=2, resume=True, batch_size=2)
    with pytest.raises(MrireconError, match="in_channels is 2"):
        _quick(tmp_path / "c", volumes, steps=1, magnitude=True)
    with pytest.raises(MrireconError, match="steps must be >= 1"):
        _quick(tmp_path / "d", volumes, steps=0)
    with pytest.raises(MrireconError, match="plain UNet"):
        _quick(tmp_path / "e", volumes, steps=1, cfg=TINY_UNET, cond_noise=0.1)
    with pytest.raises(MrireconError, match="cold_start must be in"):
        _quick(tmp_path / "f", volumes, steps=1, cold_start=1.5)


def test_denoising_error_compares_priors(volumes):
    """Held-out denoising error is finite and grows with t for an untrained network too."""
    from mrirecon.prior import PriorConfig, build_network
    from mrirecon.prior.datasets import SliceWindows, to_volume

    torch.manual_seed(0)
    net = build_network(PriorConfig.from_dict(TINY))
    ds = SliceWindows([to_volume(v, "v") for v in volumes[:2]], 3, augment=False)
    windows = torch.stack([ds[i] for i in range(len(ds))])
    res = denoising_error(net, _sched(), windows, [50, 800], causal=True, seed=0)
    assert set(res) == {50, 800}
    assert res[50]["x0_psnr"] > res[800]["x0_psnr"]
    assert all(math.isfinite(v) for r in res.values() for v in r.values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str, vols) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    from mrirecon.distributed import shutdown_distributed

    try:
        res = train(TINY, vols, out, steps=2, batch_size=2, lr=1e-3, seed=0, log_every=1, num_threads=1, progress=False)
        torch.save({"step": res.step}, Path(out) / f"rank{rank}.pt")
    finally:
        shutdown_distributed()


@pytest.mark.slow
def test_ddp_two_cpu_ranks(tmp_path, volumes):
    """torchrun-style data parallel on CPU (gloo): both ranks step together, rank 0 writes."""
    import torch.multiprocessing as tmp_mp

    tmp_mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), volumes), nprocs=2, join=True)
    assert torch.load(tmp_path / "rank1.pt", weights_only=False)["step"] == 2
    assert (tmp_path / "train_state.pt").is_file() and (tmp_path / "model.pt").is_file()
    with (tmp_path / "loss_log.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2


# --- shipped assets ---------------------------------------------------------------------------


def test_shipped_default_priors_load():
    aid = load_prior("default")
    unet = load_prior("default-unet")
    assert aid.config.seq_length is not None and getattr(unet.config, "seq_length", None) is None
    assert aid.config.image_size == unet.config.image_size and aid.config.in_channels == 2
    n = aid.config.image_size
    cond = torch.zeros(1, aid.config.seq_length, 2, n, n)
    with torch.no_grad():
        out = aid.network(cond, torch.zeros_like(cond), torch.tensor([500]))
        assert out.shape == (1, aid.config.seq_length, 4, n, n) and bool(torch.isfinite(out).all())
        assert unet.network(torch.zeros(1, 2, n, n), torch.tensor([500])).shape == (1, 4, n, n)
    from importlib import resources

    assets = resources.files("mrirecon.assets")
    total = sum(p.stat().st_size for p in Path(str(assets)).iterdir() if p.is_file())
    assert total <= 35e6  # two fp16 prior pairs (default, anatomy: 14.4 MB each) and the sample scan
    assert "Louis Collins" in (assets / "NOTICE_MNI.txt").read_text()
    notice = (assets / "NOTICE_ANATOMY.txt").read_text()
    assert "BSD 2-Clause" in notice and "Apache License 2.0" in notice and "held out" in notice.lower()


def test_shipped_sample_scan_opens():
    from mrirecon.assets import sample_scan_path
    from mrirecon.data.fastmri import open_scan

    path = sample_scan_path()
    scan = open_scan(path)
    n = load_prior("default").config.image_size
    assert scan.kspace_shape == (8, 8, 2 * n, n)
    k = np.asarray(scan.load_kspace())
    assert np.isfinite(k).all() and np.abs(k).max() > 0


def test_fine_tune_across_crop_sizes_needs_attention_at_the_same_depth(tmp_path, volumes):
    """image_size only places attention: weights move to another crop size when the depths agree."""
    base = _quick(tmp_path / "base", volumes, steps=1)  # 16 px, attention at 8 px (depth 2)
    bigger = [np.kron(v, np.ones((1, 2, 2))) for v in volumes]  # 32 px crops
    moved = TINY | {"image_size": 32, "attention_resolutions": "16"}  # depth 2 again
    tuned = _quick(tmp_path / "moved", bigger, steps=1, lr=1e-12, init=base.model_path, cfg=moved)
    copied, start = load_prior(tuned.model_path), load_prior(base.model_path)
    assert copied.config.image_size == 32
    for name, value in start.network.state_dict().items():
        assert torch.allclose(copied.network.state_dict()[name], value, atol=1e-6), name
    with pytest.raises(MrireconError, match="attention_resolutions"):
        _quick(tmp_path / "bad", bigger, steps=1, init=base.model_path, cfg=moved | {"attention_resolutions": "32"})
