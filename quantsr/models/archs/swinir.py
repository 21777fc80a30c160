"""Lightweight SwinIR (SwinIR-S, Liang et al. 2021), written for ``torch.export`` and XNNPACK delegation.

State-dict names match JingyunLiang/SwinIR ``network_swinir.py`` (``upsampler='pixelshuffledirect'``), so the
official ``002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{2,3,4}.pth`` weights load after ``convert_checkpoint``.
Differences from the original, all numerically equivalent (see docs/deploy.md,
"Dynamic shapes and channel splits", for why they matter on device):

* LayerNorm is mean/rsqrt arithmetic: XNNPACK does not take ``native_layer_norm``.
* q, k, v are channel slices of the qkv projection and attention uses ``torch.bmm`` on (B*heads, N, d):
  ``qkv[0]`` lowers to ``select_copy`` and 4-D matmul to ``expand_copy``, both left outside the delegate.
* The cyclic shift is two slices and a concat, not ``torch.roll``.
* Features stay channels-last (B, H, W, C) between blocks instead of tokens (B, H*W, C).
* The shifted-window mask is built per forward from the padded size with tensor ops only, so it is neither a
  persistent buffer tied to a training resolution nor a Python branch on the input shape.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from quantsr.models.blocks.classic import DIV2K_RGB_MEAN
from quantsr.models.hooks import HookSpec, OperandHooks
from quantsr.models.registry import register_model

__all__ = ["SwinIR", "swinir_s"]



class LayerNorm(nn.Module):
    """LayerNorm over the last dim with ``nn.LayerNorm``'s parameter names, as plain arithmetic."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        xc = x - mean
        var = (xc * xc).mean(dim=-1, keepdim=True)
        return xc * torch.rsqrt(var + self.eps) * self.weight + self.bias


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def relative_position_index(window_size: int) -> torch.Tensor:
    """(ws*ws, ws*ws) index into the (2ws-1)^2 bias table, laid out exactly as the original."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return rel[..., 0] * (2 * window_size - 1) + rel[..., 1]


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B*nW, ws*ws, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    c = windows.shape[-1]
    x = windows.reshape(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def roll_hw(x: torch.Tensor, shift: int) -> torch.Tensor:
    """``torch.roll(x, (shift, shift), dims=(1, 2))`` for 0 < |shift| < size, as slices + concat."""
    x = torch.cat([x[:, -shift:], x[:, :-shift]], dim=1)
    return torch.cat([x[:, :, -shift:], x[:, :, :-shift]], dim=2)


def shifted_window_mask(h: int, w: int, ws: int, shift: int, like: torch.Tensor) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask (0 / -100) for shifted windows on an (h, w) map.

    Same regions as the original's ``calculate_mask``: after the cyclic shift, rows >= h - ws and >= h - shift
    (likewise columns) wrapped around, and tokens may only attend within their own region. Region membership is
    built from ``arange`` comparisons, so h and w may be symbolic under ``torch.export``, and tokens are compared
    flag by flag instead of through integer region ids: PT2E quantizers observe arithmetic ops (and turn scalar
    operands into float constants), so ``id * 3 + col_id`` breaks prepare_pt2e while comparisons pass through.
    """
    rows = torch.arange(h, device=like.device)
    cols = torch.arange(w, device=like.device)
    flags = torch.stack(
        [
            (rows >= h - ws)[:, None].expand(h, w),
            (rows >= h - shift)[:, None].expand(h, w),
            (cols >= w - ws)[None, :].expand(h, w),
            (cols >= w - shift)[None, :].expand(h, w),
        ],
        dim=-1,
    )
    win = window_partition(flags[None], ws)  # nW, N, 4
    same = (win[:, :, None, :] == win[:, None, :, :]).all(dim=-1)
    return torch.where(same, torch.zeros((), dtype=like.dtype), torch.full((), -100.0, dtype=like.dtype))


class WindowAttention(nn.Module, OperandHooks):
    """Window multi-head self-attention with a relative position bias.

    ``q_act``, ``k_act``, ``v_act`` (each (B'*heads, N, d), q already scaled by 1/sqrt(d)) and ``attn_act`` (the
    softmax output, (B'*heads, N, N)) are applied to the operands of the two matmuls; they are ``nn.Identity``
    here and become activation quantizers under :func:`quantsr.quant.quantize_`.
    """

    ACT_HOOKS = ("q_act", "k_act", "v_act", "attn_act")
    gate_layer = "qkv"

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # Persistent because the official checkpoints carry it; strict loading then needs no special case.
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        # Hooks at the matmul inputs, identities in FP: quantsr.quant.quantize_ puts activation quantizers here
        # (q after the 1/sqrt(d) scale, k, v, and the softmax output). No parameters, so the state dict is unchanged.
        self.q_act = nn.Identity()
        self.k_act = nn.Identity()
        self.v_act = nn.Identity()
        self.attn_act = nn.Identity()

    def operand_hooks(self) -> dict[str, HookSpec]:
        """q, k, v (B'*heads, N, d): a per-head-dim shift on the last dim, shared by the heads; the softmax output:
        no shift (its rows are probabilities; a shift would only add a constant times sum(v))."""
        d = self.dim // self.num_heads
        return {"q_act": HookSpec(d), "k_act": HookSpec(d), "v_act": HookSpec(d),
                "attn_act": HookSpec(1, redistribute=False)}

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        # (B', N, C) -> (B'*heads, N, d): 3-D operands keep the matmuls on bmm, which XNNPACK delegates.
        bw, n, _ = t.shape
        d = self.dim // self.num_heads
        return t.reshape(bw, n, self.num_heads, d).permute(0, 2, 1, 3).reshape(bw * self.num_heads, n, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B*nW, N, C); mask: (nW, N, N) additive or None."""
        bw, n, c = x.shape
        qkv = self.qkv(x)
        q = self.q_act(self._heads(qkv[..., :c]) * self.scale)
        k = self.k_act(self._heads(qkv[..., c : 2 * c]))
        v = self.v_act(self._heads(qkv[..., 2 * c :]))
        attn = torch.bmm(q, k.transpose(1, 2)).reshape(bw, self.num_heads, n, n)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        bias = bias.reshape(n, n, self.num_heads).permute(2, 0, 1)  # heads, N, N
        if mask is None:
            attn = attn + bias
        else:
            nw = mask.shape[0]
            attn = attn.reshape(-1, nw, self.num_heads, n, n) + (bias[None] + mask[:, None])[None]
        attn = self.attn_act(torch.softmax(attn.reshape(bw * self.num_heads, n, n), dim=-1))
        out = torch.bmm(attn, v).reshape(bw, self.num_heads, n, c // self.num_heads)
        return self.proj(out.permute(0, 2, 1, 3).reshape(bw, n, c))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size {shift_size} must be in [0, window_size={window_size})")
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B, H, W, C) with H, W multiples of the window size; mask used only by shifted blocks."""
        b, h, w, _ = x.shape
        ws, s = self.window_size, self.shift_size
        y = self.norm1(x)
        if s:
            y = roll_hw(y, -s)
        y = self.attn(window_partition(y, ws), mask if s else None)
        y = window_reverse(y, ws, b, h, w)
        if s:
            y = roll_hw(y, s)
        x = x + y
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, mask)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer Block: blocks, a 3x3 conv, and a long skip ('1conv' residual connection)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        y = self.residual_group(x, mask).permute(0, 3, 1, 2)
        return self.conv(y).permute(0, 2, 3, 1) + x


class PatchEmbed(nn.Module):
    """Patch size 1: (B, C, H, W) -> channels-last (B, H, W, C), then LayerNorm (``patch_embed.norm``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1))


class SwinIR(nn.Module):
    """SwinIR with the lightweight 'pixelshuffledirect' reconstruction. RGB [0, 1] in, RGB [0, 1] out.

    Any H, W above ``window_size / 2`` (reflect padding must be shorter than the side it mirrors). For
    ``torch.export``: static shapes, or dynamic H, W declared as multiples of the window (``8 * Dim(...)``);
    free symbolic sizes leave unprovable guards in the padding and crop arithmetic.
    """

    def __init__(
        self,
        scale: int = 4,
        embed_dim: int = 60,
        depths: tuple[int, ...] | list[int] = (6, 6, 6, 6),
        num_heads: tuple[int, ...] | list[int] = (6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        img_range: float = 1.0,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        self.scale = scale
        self.window_size = window_size
        self.img_range = img_range
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        # Not persistent: the original keeps the mean as a plain attribute, so official checkpoints lack it.
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim)
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, h, window_size, mlp_ratio) for d, h in zip(depths, num_heads)
        )
        self.norm = LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.upsample = nn.Sequential(nn.Conv2d(embed_dim, scale * scale * in_chans, 3, 1, 1), nn.PixelShuffle(scale))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # Same scheme as the original (timm trunc_normal_ std 0.02 truncates at +-2, as torch's default does).
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, WindowAttention):
            nn.init.trunc_normal_(m.relative_position_bias_table, std=0.02)

    def example_inputs(self) -> tuple[torch.Tensor]:
        return (torch.rand(1, 3, 32, 32),)

    @classmethod
    def convert_checkpoint(cls, state_dict: dict, scale: int) -> dict:
        """Official SwinIR checkpoint -> this module: unwrap ``params_ema``/``params``, drop ``attn_mask``.

        The original stores one shifted-window mask per block for its training size; ours is derived per input.
        """
        for key in ("params_ema", "params"):
            if isinstance(state_dict.get(key), dict):
                state_dict = state_dict[key]
                break
        out = {}
        for k, v in state_dict.items():
            k = k.removeprefix("module.")
            if k.endswith("attn_mask"):
                continue
            out[k] = v
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        ws = self.window_size
        # The original's check_image_size: reflect-pad bottom/right to whole windows, crop the output back.
        # Padded sizes written as ws * ceil(n / ws) so that, with symbolic H and W, the exporter can prove they
        # divide into whole windows (the original's (ws - n % ws) % ws form leaves unprovable guards).
        hp, wp = (h + ws - 1) // ws * ws, (w + ws - 1) // ws * ws
        x = F.pad(x, (0, wp - w, 0, hp - h), mode="reflect")
        x = (x - self.mean) * self.img_range

        x = self.conv_first(x)
        # One mask per forward, shared by every shifted block (they all use the same window and shift size).
        mask = shifted_window_mask(hp, wp, ws, ws // 2, x)
        feat = self.patch_embed(x)
        for layer in self.layers:
            feat = layer(feat, mask)
        feat = self.norm(feat).permute(0, 3, 1, 2)
        x = self.conv_after_body(feat) + x
        x = self.upsample(x)

        x = x / self.img_range + self.mean
        return x[:, :, : h * self.scale, : w * self.scale]


# Not tile-exact: windows are laid out from the input's origin, so a tile that starts off the 8-px window grid
# partitions its pixels differently from the whole image.
@register_model("swinir_s", scales=(2, 3, 4), module=SwinIR, tile_exact=False, body="layers", depth_kwarg="depths",
                depth=4, distill_shallow=True, convert_checkpoint=SwinIR.convert_checkpoint)
def swinir_s(scale: int = 4, **kw) -> nn.Module:
    """SwinIR-S (lightweight, ~0.9M params at x4): 4 RSTBs x 6 blocks, 60 channels, 8x8 windows."""
    return SwinIR(scale=scale, **kw)
