"""The AID Causal-UNet: a U-Net denoiser conditioned on earlier frames through the TSC path.

Autoregressive image diffusion (Luo, Huang, Uecker, NeurIPS 2024) models a sequence of
images (here: neighbouring MRI slices) as ``p(x_1 … x_T) = ∏_n p(x_{n+1} | x_0 … x_n)``.
Each conditional is an ε-prediction diffusion model. Its network has two parts:

* the **temporal-spatial conditioning (TSC) path** runs over the clean frames ``x_0 … x_{S−1}``
  (frame axis folded into the batch): a 3×3 stem conv, then per U-Net level ``l`` a
  :class:`~mrirecon.prior.layers.DiTBlock` whose causal attention mixes the frames at each
  pixel, followed by a ResBlock (2×2 average-pool downsampling for ``l > 0``). Level ``l``'s
  feature has the width and resolution of the main path entering level ``l``;
* the **main path** is the guided-diffusion U-Net on the noisy target frame; the TSC feature
  of the conditioning frame is concatenated after the main-path tensor at the input of the
  first ResBlock of every level (``concat_cond=True``, the released model).

Because the attention is causal, feature ``n`` depends on frames ``0 … n`` only, so one
teacher-forced pass (:meth:`CausalUNet.forward`) evaluates all T conditionals at once.
All timestep conditioning — of the clean TSC frames too — uses the target's t.
"""

from __future__ import annotations

from torch import Tensor, nn

from mrirecon.errors import require
from mrirecon.prior.config import PriorConfig
from mrirecon.prior.layers import DiTBlock, ResBlock
from mrirecon.prior.unet import UNetBackbone, check_images


class TSCLevel(nn.Module):
    """One level of the conditioning path: causal DiT over frames, then a ResBlock.

    Parameters
    ----------
    channels, out_channels : int
        Input width (the DiT width) and output width.
    emb_channels, num_heads : int
    down : bool
        Halve the resolution (2×2 average pooling inside the ResBlock).
    """

    def __init__(self, channels: int, out_channels: int, emb_channels: int, num_heads: int, *, down: bool, **res_kw):
        super().__init__()
        self.dit = DiTBlock(channels, emb_channels, num_heads)
        self.res = ResBlock(channels, emb_channels, out_channels, down=down, **res_kw)

    def forward(self, x: Tensor, emb: Tensor, frames: int) -> Tensor:
        """x (B·S, C, H, W) batch-major frames, emb (B, E) -> (B·S, C_out, H', W')."""
        bs, c, h, w = x.shape
        b = bs // frames
        tokens = x.reshape(b, frames, c, h * w).permute(0, 3, 1, 2)  # (B, H·W, S, C)
        tokens = self.dit(tokens, emb)
        x = tokens.permute(0, 2, 3, 1).reshape(bs, c, h, w)
        return self.res(x, emb.repeat_interleave(frames, dim=0))


class TemporalSpatialConditioning(nn.Module):
    """The TSC path: clean frames (B, S, C, H, W) -> one feature per U-Net level.

    Level ``l`` maps width ``in_l`` to ``out_l = w_{l−1}`` (``w_{−1} = w_0``) with
    ``in_0 = w_0`` and ``in_l = out_{l−1}``; resolutions ``H, H, H/2, …, H/2^{L−1}``.
    """

    def __init__(self, config: PriorConfig):
        super().__init__()
        widths = config.level_widths
        emb = config.time_embed_dim
        self.stem = nn.Conv2d(config.in_channels, widths[0], 3, padding=1)
        self.levels = nn.ModuleList()
        ch = widths[0]
        for level in range(len(widths)):
            out = widths[max(level - 1, 0)]
            self.levels.append(
                TSCLevel(
                    ch,
                    out,
                    emb,
                    config.num_heads,
                    down=level > 0,
                    dropout=config.dropout,
                    scale_shift_norm=config.use_scale_shift_norm,
                )  # fmt: skip
            )
            ch = out

    def forward(self, cond: Tensor, emb: Tensor) -> list[Tensor]:
        """Features of every frame at every level.

        Parameters
        ----------
        cond : Tensor (B, S, C, H, W)
            Clean conditioning frames.
        emb : Tensor (B, E)
            Timestep embedding of each sequence's target.

        Returns
        -------
        list of Tensor, level ``l``: (B·S, out_l, H/2^l, W/2^l), batch-major; frame ``n``'s
        feature depends on frames ``0 … n`` only.
        """
        b, s = cond.shape[:2]
        x = self.stem(cond.reshape(b * s, *cond.shape[2:]))
        features = []
        for level in self.levels:
            x = level(x, emb, s)
            features.append(x)
        return features


class CausalUNet(UNetBackbone):
    """The AID Causal-UNet (``concat_cond=True``, the released architecture).

    Parameters
    ----------
    config : PriorConfig
        With ``seq_length`` set.
    """

    def __init__(self, config: PriorConfig):
        require(config.seq_length is not None, "CausalUNet needs a config with seq_length (without it, build a UNet)")
        super().__init__(config, concat_levels=True)
        self.tsc = TemporalSpatialConditioning(config)

    def forward(self, cond: Tensor, noisy: Tensor, t: Tensor) -> Tensor:
        """Teacher-forced outputs for all frames (training / retrospective sampling).

        Parameters
        ----------
        cond : Tensor (B, T, C, H, W)
            Clean frames ``x_0 … x_{T−1}``. Any T ≥ 1 works (no positional embedding); the
            model was trained with ``T = seq_length``.
        noisy : Tensor (B, T, C, H, W)
            Noisy targets: position n holds ``x_{n+1}`` noised to t.
        t : Tensor (B,)
            One timestep per sequence (integer or float).

        Returns
        -------
        Tensor (B, T, out_channels, H, W)
            Position n is the output for target n+1 given clean frames 0..n.
        """
        check_images(cond, self.config, "cond")
        require(cond.ndim == 5, f"cond must be (B, T, C, H, W), got shape {tuple(cond.shape)}")
        require(
            noisy.shape == cond.shape, f"noisy must have cond's shape {tuple(cond.shape)}, got {tuple(noisy.shape)}"
        )
        b, frames = cond.shape[:2]
        require(t.ndim == 1 and t.shape[0] == b, f"t must have shape ({b},), got {tuple(t.shape)}")
        emb = self.time_embed.embed(t)
        features = self.tsc(cond, emb)
        out = self.denoise(noisy.reshape(b * frames, *noisy.shape[2:]), emb.repeat_interleave(frames, dim=0), features)
        return out.reshape(b, frames, *out.shape[1:])

    def forward_next(self, cond: Tensor, noisy: Tensor, t: Tensor) -> Tensor:
        """Output for one noisy frame that follows the conditioning sequence ``cond``.

        Equals ``forward(cond, noisy repeated over S, t)[:, -1]`` but runs the main path once.
        Passing the whole prefix ``x_0 … x_n`` gives the causal model; passing the single
        frame ``x_n`` gives the reference's sampling call (``scripts/sample.py`` of github.com/mrirecon/aid).

        Parameters
        ----------
        cond : Tensor (B, S, C, H, W)
        noisy : Tensor (B, C, H, W)
        t : Tensor (B,)

        Returns
        -------
        Tensor (B, out_channels, H, W)
        """
        check_images(cond, self.config, "cond")
        require(cond.ndim == 5, f"cond must be (B, S, C, H, W), got shape {tuple(cond.shape)}")
        b, frames = cond.shape[:2]
        require(
            noisy.shape == (b, *cond.shape[2:]),
            f"noisy must have shape {(b, *cond.shape[2:])}, got {tuple(noisy.shape)}",
        )
        require(t.ndim == 1 and t.shape[0] == b, f"t must have shape ({b},), got {tuple(t.shape)}")
        emb = self.time_embed.embed(t)
        features = [f.reshape(b, frames, *f.shape[1:])[:, -1] for f in self.tsc(cond, emb)]
        return self.denoise(noisy, emb, features)
