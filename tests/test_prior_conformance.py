"""The priors reproduce the AID reference implementation (tests/fixtures/aid, random weights).

Every array of the fixtures' io.npz is reproduced after a strict load of model.pt, the two
official 320×320 architectures are rebuilt key for key on the meta device, and the two
window-attention modes are checked against teacher forcing and causality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mrirecon.errors import MrireconError
from mrirecon.prior import CausalUNet, PriorConfig, UNet, build_network, count_parameters, load_prior
from mrirecon.prior.checkpoint import from_reference_keys, to_reference_keys

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "aid"
TOL = 1e-5  # max abs error relative to the output scale


@pytest.fixture(autouse=True)
def _plain_cpu_convolutions(request, monkeypatch):
    """Tiny fp32 convolutions run faster on PyTorch's native kernels than through oneDNN, whose
    per-shape kernel generation costs seconds per new network here; bf16 tests keep oneDNN."""
    if "bf16" not in request.node.name:
        monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)


def _rel_err(got: torch.Tensor, want: np.ndarray) -> float:
    return float(np.abs(got.detach().cpu().numpy() - want).max() / np.abs(want).max())


@pytest.fixture(scope="module")
def causal():
    d = FIXTURES / "causal_tiny"
    io = dict(np.load(d / "io.npz"))
    return load_prior(config=d / "config.yaml", weights=d / "model.pt"), io


@pytest.fixture(scope="module")
def unet():
    d = FIXTURES / "unet_tiny"
    return load_prior(config=d / "config.yaml", weights=d / "model.pt"), dict(np.load(d / "io.npz"))


def test_causal_teacher_forced_matches_reference(causal):
    prior, io = causal
    assert prior.kind == "aid" and prior.seq_length == io["x0"].shape[1]
    out = prior.predict_teacher_forced(
        torch.from_numpy(io["x0"]), torch.from_numpy(io["xt"]), torch.from_numpy(io["t_train"])
    )
    assert out.dtype == torch.float32 and out.shape == io["out_train"].shape
    assert _rel_err(out, io["out_train"]) <= TOL


@pytest.mark.parametrize("position", [0, 1, 2, 3, -1])
def test_causal_reference_sampling_call_matches_reference(causal, position):
    prior, io = causal
    key = "out_sample_idxm1" if position == -1 else f"out_sample_idx{position}"
    window, noisy = torch.from_numpy(io["x0"]), torch.from_numpy(io["xt"][:, [position]])
    t = torch.from_numpy(io["t_sample"])  # float timesteps, as the MRI scripts pass them
    out = prior.predict_next(window, noisy, t, position, attention="reference")
    assert out.shape == io[key].shape
    assert _rel_err(out, io[key]) <= TOL


def test_schedule_matches_reference(causal, unet):
    for prior, io in (causal, (unet[0], causal[1])):
        np.testing.assert_allclose(prior.schedule.betas, io["betas"], rtol=0, atol=1e-15)
        np.testing.assert_allclose(prior.schedule.alphas_cumprod, io["alphas_cumprod"], rtol=1e-12, atol=0)


def test_unet_matches_reference(unet):
    prior, io = unet
    assert prior.kind == "unet" and prior.seq_length is None
    out = prior.predict(torch.from_numpy(io["x"]), torch.from_numpy(io["t"]))
    assert out.shape == io["out"].shape
    assert _rel_err(out, io["out"]) <= TOL


def test_full_attention_equals_teacher_forcing_and_reference_mode_differs(causal):
    prior, io = causal
    window, xt, t = torch.from_numpy(io["x0"]), torch.from_numpy(io["xt"]), torch.from_numpy(io["t_sample"])
    forced = prior.predict_teacher_forced(window, xt, t).numpy()
    for n in range(window.shape[1]):
        full = prior.predict_next(window, xt[:, [n]], t, n, attention="full")
        assert _rel_err(full[:, 0], forced[:, n]) <= TOL
        reference = torch.from_numpy(io[f"out_sample_idx{n}"][:, 0])  # the reference's own call
        if n == 0:  # a one-frame prefix: both modes are the same computation
            assert _rel_err(reference, forced[:, 0]) <= TOL
        else:  # the reference's sampling call drops frames 0..n-1 (its scripts/sample.py)
            assert _rel_err(reference, forced[:, n]) > 1e-4


def test_teacher_forcing_is_causal_and_accepts_shorter_sequences(causal):
    prior, io = causal
    cond, xt, t = torch.from_numpy(io["x0"]), torch.from_numpy(io["xt"]), torch.from_numpy(io["t_train"])
    base = prior.predict_teacher_forced(cond, xt, t)
    bumped = cond.clone()
    bumped[:, 2] += 0.5
    changed = (prior.predict_teacher_forced(bumped, xt, t) - base).abs().amax(dim=(0, 2, 3, 4))
    assert torch.all(changed[:2] == 0) and torch.all(changed[2:] > 0)
    # T < seq_length: by causality the prefix gives the same first positions
    short = prior.predict_teacher_forced(cond[:, :2], xt[:, :2], t)
    torch.testing.assert_close(short, base[:, :2], rtol=0, atol=1e-5 * float(base.abs().max()))


def test_reference_mode_sees_only_its_frame(causal):
    prior, io = causal
    window, xt, t = torch.from_numpy(io["x0"]), torch.from_numpy(io["xt"][:, [1]]), torch.from_numpy(io["t_sample"])
    base = prior.predict_next(window, xt, t, 2)
    other = window.clone()
    other[:, [0, 1, 3]] = torch.randn(other[:, [0, 1, 3]].shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(prior.predict_next(other, xt, t, 2), base, rtol=0, atol=1e-6)
    assert torch.equal(prior.predict_next(window, xt, t, -1), prior.predict_next(window, xt, t, 3))


def test_bf16_and_channels_last_stay_close(causal):
    prior, io = causal
    d = FIXTURES / "causal_tiny"
    fast = load_prior(config=d / "config.yaml", weights=d / "model.pt", precision="bf16", channels_last=True)
    window, xt, t = torch.from_numpy(io["x0"]), torch.from_numpy(io["xt"][:, [3]]), torch.from_numpy(io["t_sample"])
    out = fast.predict_next(window, xt, t, -1)
    assert out.dtype == torch.float32
    assert _rel_err(out, io["out_sample_idxm1"]) < 3e-2
    assert not _rel_err(out, io["out_sample_idxm1"]) == 0  # bf16 really ran


def test_input_errors_are_one_line(causal, unet):
    prior, io = causal
    window = torch.from_numpy(io["x0"])
    noisy = torch.from_numpy(io["xt"][:, [0]])
    cases = [
        (lambda: prior.predict_next(window, noisy, 5, 4), "position"),
        (lambda: prior.predict_next(window, noisy, 5, 0, attention="partial"), "attention"),
        (lambda: prior.predict_next(window, noisy[:, :, :1], 5, 0), "noisy"),
        (lambda: prior.predict_next(window, noisy, 1000, 0), "t must lie"),
        (lambda: prior.predict_next(torch.cat([window, window], 1), noisy, 5, 0), "seq_length"),
        (lambda: prior.predict(noisy[:, 0], 5), "'unet'"),
        (lambda: unet[0].predict(noisy[:, 0, :, :31, :31], 5), "multiples"),
    ]
    for call, needle in cases:
        with pytest.raises(MrireconError, match=needle) as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["fastmri_320_cplx", "normal_fastmri_320_cplx"])
def test_official_architectures_match_manifests(name):
    manifest = json.loads((FIXTURES / f"{name}.manifest.json").read_text())
    cfg = PriorConfig.from_yaml(FIXTURES / f"{name}.yaml")
    assert cfg.channel_mult == (0.5, 1, 1, 2, 2, 4, 4) and cfg.attention_ds == {16, 32}
    net = build_network(cfg, device="meta")
    assert isinstance(net, CausalUNet if manifest["causal"] else UNet)
    shapes = {k: list(v.shape) for k, v in to_reference_keys(net.state_dict()).items()}
    assert shapes == manifest["keys"]
    assert count_parameters(cfg) == manifest["n_params"]
    # the key table maps the official names onto this module tree, and back
    native = from_reference_keys(dict.fromkeys(manifest["keys"]))
    assert set(native) == set(net.state_dict())
    assert list(to_reference_keys(native)) == list(manifest["keys"])  # order kept too


def test_teacher_forcing_is_differentiable_under_bf16_autocast():
    cfg = PriorConfig.from_dict(
        {"image_size": 16, "in_channels": 2, "seq_length": 3, "num_channels": 32, "channel_mult": "1,2",
         "attention_resolutions": "8", "num_res_blocks": 1, "num_heads": 2, "learn_sigma": True}
    )  # fmt: skip
    torch.manual_seed(0)
    net = build_network(cfg)
    with torch.no_grad():  # the zero-initialised output convs would block every gradient
        for p in net.parameters():
            p.normal_(0.0, 0.05)
    cond, noisy = torch.randn(2, 3, 2, 16, 16), torch.randn(2, 3, 2, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(cond, noisy, torch.tensor([3, 900]))
    assert out.shape == (2, 3, 4, 16, 16)
    out.float().square().mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads)
    assert net.tsc.stem.weight.grad.abs().sum() > 0  # the conditioning path learns


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_cuda_precisions_agree_with_cpu(causal):
    _, io = causal
    d = FIXTURES / "causal_tiny"
    window, xt, t = torch.from_numpy(io["x0"]), torch.from_numpy(io["xt"][:, [3]]), torch.from_numpy(io["t_sample"])
    for precision, tol in (("fp32", 1e-4), ("tf32", 1e-2), ("bf16", 3e-2)):
        prior = load_prior(config=d / "config.yaml", weights=d / "model.pt", device="cuda", precision=precision)
        assert prior.channels_last
        assert _rel_err(prior.predict_next(window, xt, t, -1), io["out_sample_idxm1"]) < tol


@pytest.mark.parametrize(
    "variant", [{"resblock_updown": True}, {"use_scale_shift_norm": False}, {"num_head_channels": 16}]
)
def test_guided_diffusion_variants_build_and_run(variant):
    base = {"image_size": 16, "in_channels": 1, "num_channels": 32, "channel_mult": "1,2", "attention_resolutions": "8",
            "num_res_blocks": 1, "learn_sigma": False}  # fmt: skip
    for extra in ({}, {"seq_length": 2}):
        cfg = PriorConfig.from_dict({**base, **extra, **variant})
        torch.manual_seed(0)
        net = build_network(cfg).eval()
        x = torch.randn(2, 2, 1, 16, 16)
        with torch.no_grad():
            out = net(x, x, torch.tensor([1, 2])) if extra else net(x[:, 0], torch.tensor([1, 2]))
        assert out.shape == ((2, 2, 1, 16, 16) if extra else (2, 1, 16, 16))
    if "resblock_updown" in variant:  # resampling ResBlocks replace the conv Downsample/Upsample
        assert "input_blocks.2.0.in_layers.0.weight" in net.state_dict()
        assert not any(k.endswith(".op.weight") or k.endswith(".conv.weight") for k in net.state_dict())
