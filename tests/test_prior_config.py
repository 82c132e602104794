"""PriorConfig reads the official YAML style: defaults, per-size channel_mult, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrirecon.errors import MrireconError
from mrirecon.prior import PriorConfig

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "aid"

# scripts/configs/fastmri_320_cplx.yaml of the reference, verbatim keys and values
OFFICIAL_AID = {
    "image_size": 320, "data_dir": "/scratch/gluo/fastMRI/vols", "schedule_sampler": "uniform", "lr": 0.0001,
    "weight_decay": 0.0, "lr_anneal_steps": 0, "batch_size": 1, "microbatch": -1, "ema_rate": 0.9999,
    "log_interval": 10, "save_interval": 10000, "use_fp16": False, "fp16_scale_growth": 0.001, "in_channels": 2,
    "seq_length": 10, "logdir": "/home/gluo/temporal/logs/fastmri_320_cplx", "learn_sigma": True,
    "attention_resolutions": "20,10", "mag": False, "dataset": "fastmri", "noisy_x0": False, "latent": False,
}  # fmt: skip


def test_official_config_with_training_keys_is_accepted_and_round_trips(tmp_path):
    cfg = PriorConfig.from_dict(OFFICIAL_AID)
    assert cfg.kind == "aid" and cfg.seq_length == 10 and cfg.num_channels == 128 and cfg.num_res_blocks == 2
    assert cfg.channel_mult == (0.5, 1, 1, 2, 2, 4, 4)
    assert cfg.level_widths == (64, 128, 128, 256, 256, 512, 512)
    assert cfg.attention_ds == {16, 32} and cfg.out_channels == 4 and cfg.downsampling == 64
    assert cfg.extra["lr"] == 0.0001 and cfg.extra["data_dir"] == "/scratch/gluo/fastMRI/vols"
    # the per-size default is written back as "" (the reference would int()-parse "0.5")
    assert cfg.to_dict()["channel_mult"] == ""
    assert (
        PriorConfig.from_dict({**OFFICIAL_AID, "channel_mult": "1,1,2,2,4,4,4"}).to_dict()["channel_mult"]
        == "1,1,2,2,4,4,4"
    )
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    again = PriorConfig.from_yaml(path)
    assert again == cfg and again.to_dict() == cfg.to_dict() and again.extra == cfg.extra


def test_reference_defaults_depend_on_the_kind():
    aid = PriorConfig.from_dict({"seq_length": 5, "channel_mult": "1,2"})
    unet = PriorConfig.from_dict({"channel_mult": "1,2"})
    assert (aid.image_size, aid.in_channels, aid.mag) == (128, 1, True)  # causal_model_and_diffusion_defaults
    assert (unet.image_size, unet.in_channels, unet.seq_length) == (64, 2, None)  # model_and_diffusion_defaults
    for cfg in (aid, unet):
        assert cfg.learn_sigma is False and cfg.use_scale_shift_norm and cfg.num_heads == 4
        assert cfg.attention_resolutions == (16, 8) and cfg.noise_schedule == "linear" and cfg.diffusion_steps == 1000


@pytest.mark.parametrize(
    ("size", "mult"),
    [
        (320, (0.5, 1, 1, 2, 2, 4, 4)),
        (256, (1, 1, 2, 2, 4, 4)),
        (128, (1, 1, 2, 3, 4)),
        (64, (1, 2, 3, 4)),
        (32, (1, 2, 2, 4)),
    ],
)
def test_empty_channel_mult_takes_the_per_size_default(size, mult):
    assert PriorConfig.from_dict({"image_size": size, "channel_mult": ""}).channel_mult == mult


def test_fixture_yamls_parse():
    for name in ("fastmri_320_cplx", "normal_fastmri_320_cplx", "causal_tiny/config", "unet_tiny/config"):
        cfg = PriorConfig.from_yaml(FIXTURES / f"{name}.yaml")
        assert cfg.in_channels == 2 and cfg.learn_sigma and not cfg.mag


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"num_channel": 64}, r"unknown config key\(s\) 'num_channel'; supported: .*num_channels"),
        ({"complicated_x0": True}, "'complicated_x0': True is not supported"),
        ({"concat_cond": False}, "'concat_cond': False is not supported"),
        ({"use_fp16": True}, "'use_fp16'"),
        ({"channel_mult": "1,x"}, "channel_mult"),
        ({"num_channels": 48}, "GroupNorm"),
        ({"image_size": 100, "channel_mult": "1,2,2,4"}, "multiple of 2\\*\\*\\(levels-1\\) = 8"),
        ({"image_size": 96, "channel_mult": ""}, "no reference default"),
        ({"noise_schedule": "sqrt"}, "noise_schedule"),
        ({"seq_length": 0}, "seq_length"),
        ({"learn_sigma": "maybe"}, "learn_sigma"),
        ({"num_heads": 3}, "heads"),
    ],
)
def test_bad_configs_raise_one_clear_line(changes, needle):
    with pytest.raises(MrireconError, match=needle) as info:
        PriorConfig.from_dict({**OFFICIAL_AID, **changes})
    assert "\n" not in str(info.value)


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("image_size: 32\nbogus: 1\n")
    with pytest.raises(MrireconError, match="bad.yaml.*'bogus'"):
        PriorConfig.from_yaml(path)
    path.write_text("- a list\n")
    with pytest.raises(MrireconError, match="mapping"):
        PriorConfig.from_yaml(path)
    with pytest.raises(MrireconError, match="does not exist"):
        PriorConfig.from_yaml(tmp_path / "missing.yaml")
