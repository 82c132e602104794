"""Building blocks of the priors: guided-diffusion U-Net layers and the AID DiT block.

Numerics follow the reference (the reference's ``guided_diffusion/unet2.py`` in github.com/mrirecon/aid) so the official weights reproduce
the official outputs:

* timestep embedding ``[cos, sin]`` (cos first);
* GroupNorm(32) computed in float32 whatever the autocast dtype;
* the timestep-conditioning linears (time MLP, ResBlock ``emb_layers``, DiT adaLN) run in
  float32 with autocast disabled — they are tiny and set every scale/shift;
* spatial attention uses the "legacy" head split (heads split *before* q/k/v);
* the DiT attention over the frame axis is causal, scaled by ``1/√C`` (full width, a quirk
  of the reference kept for weight compatibility), LayerNorm without affine, eps 1e-6,
  GELU with the tanh approximation.

Module attribute names equal the reference's wherever a parameter lives below them (so
state-dict leaves match); only the conditioning path's container differs (see
:mod:`mrirecon.prior.checkpoint`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrirecon.prior.config import NORM_GROUPS


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps.

    ``[cos(t·ω_i), sin(t·ω_i)]`` with ``ω_i = max_period^(−i/half)``, ``i < half = dim // 2``.

    Parameters
    ----------
    t : Tensor (B,)
    dim : int

    Returns
    -------
    Tensor (B, dim) float32
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a module's parameters (guided-diffusion initialises residual outputs to zero)."""
    for p in module.parameters():
        p.detach().zero_()
    return module


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32, C) evaluated in float32; returns the input dtype."""

    def __init__(self, channels: int):
        super().__init__(NORM_GROUPS, channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)


class Linear32(nn.Linear):
    """A Linear layer that always computes in float32 (autocast disabled); returns float32."""

    def forward(self, x: Tensor) -> Tensor:
        device = x.device.type
        if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
            with torch.autocast(device_type=device, enabled=False):
                return self.forward(x)
        return F.linear(x.float(), self.weight.float(), None if self.bias is None else self.bias.float())


class TimestepMLP(nn.Sequential):
    """``Linear(C → 4C) → SiLU → Linear(4C → 4C)`` on the sinusoidal embedding (float32).

    Maps timesteps (B,) to the conditioning vector ``emb`` (B, 4C) used by every block.
    """

    def __init__(self, model_channels: int):
        super().__init__(
            Linear32(model_channels, 4 * model_channels), nn.SiLU(), Linear32(4 * model_channels, 4 * model_channels)
        )
        self.model_channels = model_channels

    def embed(self, t: Tensor) -> Tensor:
        """Tensor (B,) -> Tensor (B, 4C) float32."""
        return self(timestep_embedding(t, self.model_channels))


class Downsample(nn.Module):
    """Stride-2 3×3 convolution: (N, C, H, W) -> (N, C, H/2, W/2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest ×2 then 3×3 convolution: (N, C, H, W) -> (N, C, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResBlock(nn.Module):
    """guided-diffusion residual block conditioned on the timestep embedding.

    ``h = conv(SiLU(GN(x)))``; with scale-shift norm ``h = GN(h)·(1 + s) + b`` where
    ``(s, b) = Linear(SiLU(emb))``; then ``conv(Dropout(SiLU(h)))`` (zero-initialised) is added
    to the (1×1-projected when widths differ) input. ``up``/``down`` resample both branches
    without parameters (nearest ×2 / 2×2 average pooling), after the first norm.

    Parameters
    ----------
    channels, out_channels : int
        Input / output widths (``out_channels=None`` keeps the width).
    emb_channels : int
        Width of ``emb``.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int | None = None,
        *,
        dropout: float = 0.0,
        scale_shift_norm: bool = True,
        up: bool = False,
        down: bool = False,
    ):
        super().__init__()
        out = out_channels or channels
        self.scale_shift_norm = scale_shift_norm
        self.resample = "up" if up else "down" if down else None
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), Linear32(emb_channels, 2 * out if scale_shift_norm else out))
        self.out_layers = nn.Sequential(
            GroupNorm32(out), nn.SiLU(), nn.Dropout(dropout), zero_init(nn.Conv2d(out, out, 3, padding=1))
        )
        self.skip_connection = nn.Identity() if out == channels else nn.Conv2d(channels, out, 1)

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.avg_pool2d(x, kernel_size=2, stride=2)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x (N, C_in, H, W), emb (N, E) -> (N, C_out, H', W')."""
        norm_act, conv = self.in_layers[:2], self.in_layers[2]
        if self.resample is not None:
            h = conv(self._resample(norm_act(x)))
            x = self._resample(x)
        else:
            h = conv(norm_act(x))
        e = self.emb_layers(emb)[..., None, None]  # float32 (N, 2C_out or C_out, 1, 1)
        norm, rest = self.out_layers[0], self.out_layers[1:]
        if self.scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = (norm(h.float()) * (1 + scale) + shift).to(h.dtype)
            h = rest(h)
        else:
            h = self.out_layers((h.float() + e).to(h.dtype))
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Spatial multi-head self-attention with guided-diffusion's legacy QKV layout.

    ``qkv = Conv1d(GN(x))`` of width 3C is split into heads *first*, each head holding its
    own ``[q | k | v]`` block of ``3·C/heads`` channels; softmax(qᵀk/√d)·v, zero-initialised
    output projection, residual.

    Parameters
    ----------
    channels, num_heads : int
    """

    def __init__(self, channels: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        n, c, *spatial = x.shape
        flat = x.reshape(n, c, -1)
        qkv = self.qkv(self.norm(flat)).reshape(n, self.num_heads, 3 * c // self.num_heads, -1)
        q, k, v = qkv.transpose(-1, -2).chunk(3, dim=-1)  # each (N, heads, L, d)
        a = F.scaled_dot_product_attention(q, k, v)
        h = self.proj_out(a.transpose(-1, -2).reshape(n, c, -1))
        return (flat + h).reshape(n, c, *spatial)


class TimestepSequential(nn.Sequential):
    """A sequence of layers; those that are :class:`ResBlock` also receive ``emb``."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention over the frame axis (the AID DiT attention).

    Parameter names follow the reference (``queries``, ``keys``, ``values``, ``fc_out``).
    The softmax scale is ``1/√C`` (the full width, not the head width), as in the reference.

    Parameters
    ----------
    dim, num_heads : int
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = dim**-0.5
        self.values = nn.Linear(dim, dim)
        self.keys = nn.Linear(dim, dim)
        self.queries = nn.Linear(dim, dim)
        self.fc_out = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(N, S, C) tokens -> (N, S, C); token s attends to tokens 0..s."""
        n, s, c = x.shape
        if s == 1:  # softmax over one key is 1: the output is its value (skips q and k)
            return self.fc_out(self.values(x))

        def heads(t: Tensor) -> Tensor:
            return t.view(n, s, self.num_heads, c // self.num_heads).transpose(1, 2)

        q, k, v = heads(self.queries(x)), heads(self.keys(x)), heads(self.values(x))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.fc_out(a.transpose(1, 2).reshape(n, s, c))


class Mlp(nn.Module):
    """``Linear(C → 4C) → GELU(tanh) → Linear(4C → C)`` on tokens (…, C)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _modulated_norm(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """``LN(x)·(1 + scale) + shift`` (LayerNorm without affine, eps 1e-6) in float32."""
    normed = F.layer_norm(x.float(), (x.shape[-1],), eps=1e-6)
    return (normed * (1 + scale) + shift).to(x.dtype)


class DiTBlock(nn.Module):
    """adaLN DiT block over frame tokens with causal attention (the AID TSC block).

    ``x += g₁ ⊙ Attn(LN(x)(1 + s₁) + b₁)``, ``x += g₂ ⊙ MLP(LN(x)(1 + s₂) + b₂)`` where
    ``(b₁, s₁, g₁, b₂, s₂, g₂) = Linear(SiLU(emb))`` comes from the timestep embedding of
    each sequence and is shared by all pixels and frames. Not zero-initialised (reference).

    Parameters
    ----------
    dim : int
        Token width C.
    emb_channels, num_heads : int
    """

    def __init__(self, dim: int, emb_channels: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.attn = CausalSelfAttention(dim, num_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear32(emb_channels, 6 * dim))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """Tokens x (B, P, S, C) — P pixels, S frames — and emb (B, E) -> (B, P, S, C)."""
        b, p, s, c = x.shape
        mod = self.adaLN_modulation(emb)[:, None, None, :]  # (B, 1, 1, 6C) float32
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        a = self.attn(_modulated_norm(x, shift1, scale1).reshape(b * p, s, c)).reshape(b, p, s, c)
        x = (x + gate1 * a).to(x.dtype)
        return (x + gate2 * self.mlp(_modulated_norm(x, shift2, scale2))).to(x.dtype)
