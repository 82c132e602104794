"""Loading and saving prior weights: safe formats, wrappers, strict checks, registry."""

from __future__ import annotations

import os
import shutil
import stat
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import yaml

from mrirecon.errors import MrireconError
from mrirecon.prior import PriorConfig, build_network, list_priors, load_prior, save_checkpoint
from mrirecon.prior.checkpoint import KEY_MAP, from_reference_keys, read_state_dict, to_reference_keys
from mrirecon.prior.registry import assets_dir

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "aid"
CAUSAL = FIXTURES / "causal_tiny"
SMALL = {
    "image_size": 16, "in_channels": 2, "seq_length": 2, "num_channels": 32, "channel_mult": "1,2",
    "attention_resolutions": "8", "num_res_blocks": 1, "num_heads": 2, "learn_sigma": True,
}  # fmt: skip


def _official_state() -> OrderedDict:
    return torch.load(CAUSAL / "model.pt", map_location="cpu", weights_only=True)


def _same_weights(prior, state: OrderedDict) -> None:
    native = from_reference_keys(state)
    got = prior.network.state_dict()
    assert set(got) == set(native)
    for k, v in native.items():
        assert torch.equal(got[k].cpu(), v.float()), k


def _small_network(seed: int = 0):
    torch.manual_seed(seed)
    net = build_network(PriorConfig.from_dict(SMALL))
    with torch.no_grad():  # non-zero everywhere so a wrong mapping cannot go unnoticed
        for p in net.parameters():
            p.normal_(0.0, 0.05)
    return net


def test_key_table_maps_conditioning_path_both_ways():
    ref = [
        "x0_blocks.0.0.weight",
        "x0_blocks.1.1.attn.keys.bias",
        "x0_blocks.7.3.out_layers.3.weight",
        "input_blocks.1.0.in_layers.0.weight",
    ]
    native = list(from_reference_keys(dict.fromkeys(ref)))
    assert native == [
        "tsc.stem.weight",
        "tsc.levels.0.dit.attn.keys.bias",
        "tsc.levels.6.res.out_layers.3.weight",
        "input_blocks.1.0.in_layers.0.weight",
    ]
    assert list(to_reference_keys(dict.fromkeys(native))) == ref
    assert len(KEY_MAP) == 3
    # placeholders of the reference (x0_blocks.k.0 / .2 for k >= 1) hold no parameters: not mapped
    assert list(from_reference_keys({"x0_blocks.1.0.weight": None})) == ["x0_blocks.1.0.weight"]


@pytest.mark.parametrize("variant", ["ema", "ddp", "wrapped"])
def test_ema_ddp_and_wrapped_checkpoints_load(tmp_path, variant):
    state = _official_state()
    if variant == "ema":
        path = tmp_path / "ema_0.9999_440000.pt"
        shutil.copy(CAUSAL / "model.pt", path)
    elif variant == "ddp":
        path = tmp_path / "model440000.pt"
        torch.save(OrderedDict((f"module.{k}", v) for k, v in state.items()), path)
    else:  # a training state: EMA weights preferred over the raw ones
        path = tmp_path / "train_state.pt"
        raw = OrderedDict((k, torch.zeros_like(v)) for k, v in state.items())
        torch.save({"model": raw, "ema": state, "step": 3}, path)
    prior = load_prior(config=CAUSAL / "config.yaml", weights=path)
    _same_weights(prior, state)


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weights": _Payload()}, path)
    with pytest.raises(MrireconError, match="not a plain state dict of tensors") as info:
        read_state_dict(path)
    assert "weights_only=False will likely succeed" not in str(info.value)  # torch's advice is not passed on
    assert "If you trust it" in str(info.value) and "\n" not in str(info.value)


class _Payload:
    """An arbitrary object: unpickling it would need code execution."""


def test_mismatched_config_names_keys_and_shapes():
    cfg = yaml.safe_load((CAUSAL / "config.yaml").read_text())
    with pytest.raises(MrireconError) as info:
        load_prior(config={**cfg, "num_channels": 64}, weights=CAUSAL / "model.pt")
    msg = str(info.value)
    assert (
        "\n" not in msg and "shape mismatch" in msg and "time_embed.0.weight: file (128,32) vs config (256,64)" in msg
    )
    unet_cfg = {k: v for k, v in cfg.items() if k != "seq_length"}
    with pytest.raises(MrireconError) as info:
        load_prior(config=unet_cfg, weights=CAUSAL / "model.pt")
    msg = str(info.value)
    assert (
        "\n" not in msg
        and "52 unexpected key(s)" in msg
        and "x0_blocks.0.0.weight (32,2,3,3)" in msg
        and "shape mismatch" in msg
    )


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_save_load_round_trip(tmp_path, suffix):
    net = _small_network()
    cfg = net.config
    path = save_checkpoint(tmp_path / f"prior{suffix}", net, cfg)
    assert path.with_suffix(".yaml").is_file()
    assert PriorConfig.from_yaml(path.with_suffix(".yaml")) == cfg
    prior = load_prior(path)  # config found beside the weights
    assert prior.config == cfg and prior.kind == "aid"
    for k, v in net.state_dict().items():
        assert torch.equal(prior.network.state_dict()[k], v), k
    if suffix == ".pt":  # written in the official layout
        keys = torch.load(path, weights_only=True).keys()
        assert "x0_blocks.1.1.attn.queries.weight" in keys and not any(k.startswith("tsc.") for k in keys)


def test_fp16_safetensors_bundle_carries_its_config(tmp_path):
    net = _small_network()
    path = save_checkpoint(tmp_path / "bundle.safetensors", net, net.config, dtype=torch.float16)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not safetensors' 0600: package data
    path.with_suffix(".yaml").unlink()  # the config is embedded in the metadata as well
    prior = load_prior(path)
    assert prior.config == net.config
    for k, v in net.state_dict().items():
        torch.testing.assert_close(prior.network.state_dict()[k], v.half().float(), rtol=0, atol=0)


def test_load_prior_argument_errors(tmp_path):
    net = _small_network()
    path = save_checkpoint(tmp_path / "w.pt", net, net.config)
    cases = [
        (lambda: load_prior("no-such-prior"), "neither a registered name"),
        (lambda: load_prior(config=path.with_suffix(".yaml")), "needs weights"),
        (lambda: load_prior(path, precision="fp16"), "precision"),
        (lambda: load_prior(path, device="tpu"), "device"),
        (lambda: load_prior("default", config=path.with_suffix(".yaml")), "registry name"),
    ]
    path.with_suffix(".yaml").rename(tmp_path / "elsewhere.yaml")
    cases.append((lambda: load_prior(path), "no config for weights"))
    for call, needle in cases:
        with pytest.raises(MrireconError, match=needle):
            call()
    assert load_prior(config=tmp_path / "elsewhere.yaml", weights=path).kind == "aid"


def test_registry_lists_and_resolves_bundled_priors():
    infos = {p.name: p for p in list_priors()}
    assert set(infos) == {"default", "default-unet", "anatomy", "anatomy-unet"}
    assert infos["default"].kind == "aid" and infos["default-unet"].kind == "unet"
    assert infos["anatomy"].kind == "aid" and infos["anatomy-unet"].kind == "unet"
    for name, info in infos.items():
        assert info.config_path.parent == assets_dir()
        if info.available:
            prior = load_prior(name)
            assert prior.kind == info.kind and prior.config.name == name
            assert info.params == sum(p.numel() for p in prior.network.parameters())
            assert info.size == info.weights_path.stat().st_size
        else:
            assert info.size is None or not info.config_path.is_file()
            with pytest.raises(MrireconError, match="not bundled in this installation"):
                load_prior(name)
