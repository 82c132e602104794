"""The guided-diffusion U-Net: shared backbone and the plain single-image prior ("Guide").

Layout for ``L`` levels of widths ``w_0 … w_{L−1}`` (``int(channel_mult · num_channels)``),
``R = num_res_blocks``, spatial attention at the levels whose downsampling factor is listed
in ``config.attention_ds`` (the reference's ``guided_diffusion/unet2.py``)::

    input_blocks[0]            3×3 conv C → w_0
    level l: R × ResBlock(→ w_l) [+ AttentionBlock], then a stride-2 Downsample (l < L−1)
    middle_block               ResBlock – AttentionBlock – ResBlock at w_{L−1}
    output_blocks              per level, deepest first: (R+1) × ResBlock(cat skip) [+ Attention],
                               Upsample after the last one (l > 0)
    out                        GN → SiLU → zero-init 3×3 conv w_0 → out_channels

The Causal-UNet (:mod:`mrirecon.prior.causal_unet`) reuses this backbone with the first
ResBlock of every level widened to take the conditioning feature by channel concat.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mrirecon.errors import require
from mrirecon.prior.config import PriorConfig
from mrirecon.prior.layers import (
    AttentionBlock,
    Downsample,
    GroupNorm32,
    ResBlock,
    TimestepMLP,
    TimestepSequential,
    Upsample,
    zero_init,
)


class UNetBackbone(nn.Module):
    """Time embedding + encoder/middle/decoder of the guided-diffusion U-Net.

    Parameters
    ----------
    config : PriorConfig
    concat_levels : bool
        Widen the first ResBlock of every level to ``2·w`` input channels, for a feature of
        the level's input width concatenated after the main-path tensor (the Causal-UNet).
    """

    def __init__(self, config: PriorConfig, *, concat_levels: bool = False):
        super().__init__()
        self.config = cfg = config
        emb = cfg.time_embed_dim
        widths = cfg.level_widths
        rb = dict(dropout=cfg.dropout, scale_shift_norm=cfg.use_scale_shift_norm)

        self.time_embed = TimestepMLP(cfg.num_channels)

        ch = widths[0]
        self.input_blocks = nn.ModuleList([TimestepSequential(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))])
        skip_widths = [ch]
        self.level_entries: list[int] = []  # input_blocks index of each level's first ResBlock
        ds = 1
        for level, width in enumerate(widths):
            for i in range(cfg.num_res_blocks):
                if i == 0:
                    self.level_entries.append(len(self.input_blocks))
                cin = 2 * ch if (concat_levels and i == 0) else ch
                layers: list[nn.Module] = [ResBlock(cin, emb, width, **rb)]
                ch = width
                if ds in cfg.attention_ds:
                    layers.append(AttentionBlock(ch, cfg.heads_for(ch)))
                self.input_blocks.append(TimestepSequential(*layers))
                skip_widths.append(ch)
            if level < len(widths) - 1:
                down = ResBlock(ch, emb, ch, down=True, **rb) if cfg.resblock_updown else Downsample(ch)
                self.input_blocks.append(TimestepSequential(down))
                skip_widths.append(ch)
                ds *= 2

        self.middle_block = TimestepSequential(
            ResBlock(ch, emb, **rb), AttentionBlock(ch, cfg.heads_for(ch)), ResBlock(ch, emb, **rb)
        )

        self.output_blocks = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_widths.pop(), emb, width, **rb)]
                ch = width
                if ds in cfg.attention_ds:
                    layers.append(AttentionBlock(ch, cfg.heads_for(ch, upsample=True)))
                if level and i == cfg.num_res_blocks:
                    layers.append(ResBlock(ch, emb, ch, up=True, **rb) if cfg.resblock_updown else Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepSequential(*layers))

        self._entry_level = {block: level for level, block in enumerate(self.level_entries)}
        self.out = nn.Sequential(
            GroupNorm32(ch), nn.SiLU(), zero_init(nn.Conv2d(widths[0], cfg.out_channels, 3, padding=1))
        )

    def denoise(self, x: Tensor, emb: Tensor, features: list[Tensor] | None = None) -> Tensor:
        """Run the U-Net on images ``x`` given the timestep embedding.

        Parameters
        ----------
        x : Tensor (N, C, H, W)
            Noisy images; H and W multiples of ``config.downsampling``.
        emb : Tensor (N, E)
            :meth:`TimestepMLP.embed` of each image's timestep.
        features : list of Tensor, optional
            One per level (concat models only): feature ``l`` of shape (N, w_{l−1}, H/2^l, W/2^l)
            (``w_{−1} = w_0``) is concatenated after the main-path tensor entering level ``l``.

        Returns
        -------
        Tensor (N, out_channels, H, W), float32 unless run under autocast.
        """
        entries = self._entry_level
        h = x
        skips = []
        for index, block in enumerate(self.input_blocks):
            if features is not None and index in entries:
                h = torch.cat([h, features[entries[index]]], dim=1)  # main path first (reference)
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)


class UNet(UNetBackbone):
    """The plain guided-diffusion U-Net ε-prediction prior (the paper's "Guide").

    ``forward(x (B, C, H, W), t (B,)) -> (B, out_channels, H, W)`` where the output is
    ``[ε̂ (C), v (C)]`` with ``learn_sigma`` (v: learned-range variance), else ``ε̂``.
    State-dict keys equal the reference's ``UNetModel``.
    """

    def __init__(self, config: PriorConfig):
        require(config.seq_length is None, "UNet needs a config without seq_length (that one builds a CausalUNet)")
        super().__init__(config)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """x (B, C, H, W), t (B,) integer or float timesteps -> (B, out_channels, H, W)."""
        check_images(x, self.config, "x")
        require(t.ndim == 1 and t.shape[0] == x.shape[0], f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        return self.denoise(x, self.time_embed.embed(t))


def check_images(x: Tensor, config: PriorConfig, name: str) -> None:
    """(…, C, H, W) with the configured C and H, W multiples of the downsampling."""
    m = config.downsampling
    require(
        x.ndim >= 4
        and x.shape[-3] == config.in_channels
        and x.shape[-2] % m == 0
        and x.shape[-1] % m == 0
        and x.shape[-1] > 0,
        f"{name} must have {config.in_channels} channel(s) and H, W multiples of {m}, got shape {tuple(x.shape)}",
    )
