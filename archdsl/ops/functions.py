"""The functions that ops without a torch.nn module lower to, and the small modules
torch.nn lacks. Imported by the torch backend only: the front end never imports torch."""
from __future__ import annotations

from operator import (add, eq, ge, gt, le, lt, mul, ne, pow, sub,  # noqa: F401 (the element-
                      truediv)  # wise ops and comparisons lower to them)

import torch
from torch import Tensor, nn


def centre_crop(x: Tensor, like: Tensor) -> Tensor:
    """`x` cropped at its centre to the height and width of `like` (U-Net's skip crop)."""
    height, width = like.shape[-2], like.shape[-1]
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]


def maximum(a, b):
    """The larger of two values element by element; of a value and a number, the value
    clamped from below."""
    return _of_values_or_number(a, b, torch.maximum, torch.clamp_min)


def minimum(a, b):
    """The smaller of two values element by element; of a value and a number, the value
    clamped from above."""
    return _of_values_or_number(a, b, torch.minimum, torch.clamp_max)


def _of_values_or_number(a, b, of_values, of_value_and_number):
    if isinstance(b, float):
        return of_value_and_number(a, b)
    if isinstance(a, float):
        return of_value_and_number(b, a)
    return of_values(a, b)


def rms_norm(x: Tensor, eps: float) -> Tensor:
    """torch's fused RMSNorm over the last axis, without a weight; while ONNX export traces
    it (its opsets have no operator for it), the operations it stands for, which give the
    same values on the CPU."""
    if torch.onnx.is_in_onnx_export():
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return torch.rms_norm(x, (x.shape[-1],), None, eps)


def relative_position_index(height: int, width: int) -> Tensor:
    """For each pair of positions (i, j) of a height x width window, the row of a
    (2h - 1)(2w - 1) relative position bias table their offset reads: torchvision's Swin
    and MaxViT `relative_position_index`, (h·w) x (h·w), int64."""
    coords = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(width),
                                        indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    relative[:, :, 0] += height - 1
    relative[:, :, 1] += width - 1
    relative[:, :, 0] *= 2 * width - 1
    return relative.sum(-1)


def relative_coords_table(height: int, width: int) -> Tensor:
    """Swin-V2's log-spaced relative coordinates of a height x width window,
    1 x (2h - 1) x (2w - 1) x 2, float32, as torchvision's `relative_coords_table`."""
    h = torch.arange(-(height - 1), height, dtype=torch.float32)
    w = torch.arange(-(width - 1), width, dtype=torch.float32)
    table = torch.stack(torch.meshgrid([h, w], indexing="ij")).permute(1, 2, 0).contiguous()
    table = table.unsqueeze(0)
    table[:, :, :, 0] /= height - 1
    table[:, :, :, 1] /= width - 1
    table *= 8
    return torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0


def index_select(table: Tensor, index: Tensor, dim: int) -> Tensor:
    """The entries of `table` along `dim` that `index` names, sample by sample (both carry
    the batch first): `table[index]` for dim 1, a relative position bias looked up. The
    result has table's axes before `dim`, then index's, then table's after `dim`."""
    batch, axes = table.shape[0], index.dim() - 1
    moved = table.movedim(dim, 1)  # batch, entries, the other axes
    rest = moved.shape[2:]
    flat = index.reshape(batch, -1)
    picked = moved.gather(1, flat.view(batch, -1, *[1] * len(rest)).expand(
        batch, flat.shape[1], *rest))
    picked = picked.view(batch, *index.shape[1:], *rest)
    return picked.movedim(tuple(range(1, 1 + axes)), tuple(range(dim, dim + axes)))


def routed_linear(x: Tensor, weight: Tensor, index: Tensor) -> Tensor:
    """Each token of `x` (..., in) through the matrix `weight[index]` of `weight` (experts,
    out, in); `index` (int64) has x's leading axes and may add axes (k choices per token,
    the token repeated). Expert by expert, the tokens routed to it are multiplied, as
    transformers' mixtures of experts do; an expert no token chose costs nothing. All three
    carry the batch first (the weight as an expanded view of one tensor)."""
    weight = weight[0]
    lead = index.shape
    extra = index.dim() - (x.dim() - 1)
    tokens = x.reshape(*x.shape[:-1], *[1] * extra, x.shape[-1]).expand(*lead, x.shape[-1])
    tokens = tokens.reshape(-1, x.shape[-1])
    choices = index.reshape(-1)
    out = tokens.new_zeros(choices.numel(), weight.shape[1])
    for expert in range(weight.shape[0]):
        rows = (choices == expert).nonzero().squeeze(1)
        product = nn.functional.linear(tokens[rows], weight[expert])
        out = out.index_add(0, rows, product.to(out.dtype))
    return out.view(*lead, weight.shape[1])


def selective_scan(x: Tensor, dt: Tensor, a: Tensor, b: Tensor, c: Tensor,
                   state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mamba's recurrence h_t = exp(A dt_t) h_{t-1} + dt_t B_t x_t, y_t = h_t C_t from
    h_0 = `state` (zeros by default), as the reference PyTorch implementation runs it
    (transformers' `mamba_selective_scan`): x, dt batch x L x I; A batch x I x N (a
    parameter's expanded view); B, C batch x L x N. Returns y, batch x L x I, and the last
    state, batch x I x N."""
    a = a[0]
    discrete_a = torch.exp(a[None, None] * dt[..., None])  # batch x L x I x N
    update = dt[..., None] * b[:, :, None, :] * x[..., None]
    if state is None:
        state = x.new_zeros(x.shape[0], x.shape[2], a.shape[1])
    outputs = []
    for t in range(x.shape[1]):
        state = discrete_a[:, t] * state + update[:, t]
        outputs.append(torch.matmul(state, c[:, t, :, None])[..., 0])
    return torch.stack(outputs, 1), state


class SelectiveScan(nn.Module):
    """`selective_scan` as a module. While a language model generates (archdsl.generate
    sets `caching`), it carries its state h from one call to the next: a new token costs
    one step of the recurrence, not a scan of the whole sequence."""

    def __init__(self):
        super().__init__()
        self.caching, self.state = False, None

    def forget(self) -> None:
        self.state = None

    def forward(self, x: Tensor, dt: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
        y, state = selective_scan(x, dt, a, b, c, self.state if self.caching else None)
        if self.caching:
            self.state = state
        return y


def pad_axis(x: Tensor, dim: int, before: int, after: int) -> Tensor:
    """`x` with `before` zeros ahead of and `after` zeros behind its entries along `dim`."""
    return nn.functional.pad(x, (0, 0) * (x.dim() - 1 - dim) + (before, after))


class SequencePad(nn.Module):
    """`before` zeros ahead of a sequence (a causal convolution's left padding, as Mamba's).
    While a language model generates (`caching`), the last `before` entries it has seen
    instead of zeros, so that the convolution over a new token reads the tokens before it."""

    def __init__(self, dim: int, before: int):
        super().__init__()
        self.dim, self.before = dim, before
        self.caching, self.tail = False, None

    def forget(self) -> None:
        self.tail = None

    def forward(self, x: Tensor) -> Tensor:
        if self.caching and self.tail is not None:
            padded = torch.cat([self.tail, x], self.dim)
        else:
            padded = pad_axis(x, self.dim, self.before, 0)
        if self.caching:
            self.tail = padded.narrow(self.dim, padded.shape[self.dim] - self.before, self.before)
        return padded

    def extra_repr(self) -> str:
        return f"dim={self.dim}, before={self.before}"


def cast_like(x: Tensor, like: Tensor) -> Tensor:
    """`x` in `like`'s element type and precision."""
    return x.to(like.dtype)


class Positions(nn.Module):
    """0, 1, ..., n - 1 for the n entries of axis `dim`, in `x`'s float type (float32
    where `x` holds integers), repeated over the batch (a view). Along a sequence
    (`sequence`: the axis follows the length), they start at `offset`: the tokens a KV
    cache already holds while a language model generates (archdsl.generate), 0 else.
    With `count`, 0 to count - 1 whatever `x`'s sizes (a timestep embedding's frequencies)."""

    def __init__(self, dim: int, sequence: bool, count: int | None = None):
        super().__init__()
        self.dim, self.sequence, self.offset, self.count = dim, sequence, 0, count

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype if x.is_floating_point() else torch.float32
        count = self.count or x.shape[self.dim]
        start = self.offset if self.sequence else 0
        return torch.arange(start, start + count, dtype=dtype, device=x.device).expand(
            x.shape[0], count)

    def extra_repr(self) -> str:
        count = f", count={self.count}" if self.count else ""
        return f"dim={self.dim}, sequence={self.sequence}{count}"


def resize(x: Tensor, size: tuple[int, int], mode: str, align_corners: bool) -> Tensor:
    """`x` interpolated to height and width `size` (a segmentation head's last step)."""
    return nn.functional.interpolate(x, size=size, mode=mode,
                                     align_corners=None if mode == "nearest" else align_corners)


def resize_like(x: Tensor, like: Tensor, mode: str, align_corners: bool) -> Tensor:
    """`x` interpolated to the height and width of `like`, whatever they are at run time
    (torchvision's FCN and DeepLab resize to the input image)."""
    return nn.functional.interpolate(x, size=like.shape[-2:], mode=mode,
                                     align_corners=None if mode == "nearest" else align_corners)


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of each position of a C x H x W map, as torchvision's
    ConvNeXt: weight and bias of C values."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ChannelLinear(nn.Linear):
    """A linear layer over the channels of each position of a C x H x W map: ConvNeXt's
    `Permute`, `Linear`, `Permute`, with nn.Linear's weight (out x C) and bias."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: in training, drop the whole input of a residual
    branch with probability p, per sample ("row") or for the batch ("batch"), and scale
    what is kept by 1 / (1 - p); the identity in eval mode."""

    def __init__(self, p: float, mode: str):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        shape = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        keep = 1.0 - self.p
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep).div_(keep)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class PadChannels(nn.Module):
    """Zero channels added on both sides, as the CIFAR ResNets' option-A shortcut does:
    `channels - C` new channels, half before and half after."""

    def __init__(self, before: int, after: int):
        super().__init__()
        self.before, self.after = before, after

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.pad(x, (0, 0, 0, 0, self.before, self.after))

    def extra_repr(self) -> str:
        return f"before={self.before}, after={self.after}"


class SelfAttention(nn.MultiheadAttention):
    """Multi-head self-attention over L x C tokens: nn.MultiheadAttention (its parameter
    names, `in_proj_weight` ..., as torchvision's ViT) called on (x, x, x) without the
    attention weights, so torch takes its fused scaled-dot-product path."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, x, x, need_weights=False)[0]


class ScaledDotProductAttention(nn.Module):
    """`F.scaled_dot_product_attention` of queries, keys and values, with dropout on the
    attention weights in training only: torch's fused kernels, no parameters."""

    def __init__(self, causal: bool, scale: float | None, dropout: float,
                 softmax_dtype: str | None = None):
        super().__init__()
        self.causal, self.scale, self.dropout = causal, scale, dropout
        self.softmax_dtype = softmax_dtype
        self.caching = False  # while a language model generates (archdsl.generate): keep
        self.cache: tuple[Tensor, Tensor] | None = None  # the keys and values seen so far

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        while mask is not None and mask.dim() < q.dim():  # its own axes from the right,
            mask = mask.unsqueeze(1)  # its batch first
        if self.caching:
            if self.cache is not None:
                k, v = torch.cat([self.cache[0], k], -2), torch.cat([self.cache[1], v], -2)
            self.cache = (k, v)
        causal = self.causal
        if causal and q.shape[-2] != k.shape[-2]:  # new queries after cached keys: each
            # sees the keys up to its own position (torch's is_causal aligns top-left)
            mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril(
                k.shape[-2] - q.shape[-2])
            causal = False
        grouped = bool(q.dim() >= 4 and q.shape[-3] != k.shape[-3])  # a bool while traced too
        if grouped and torch.onnx.is_in_onnx_export():  # ONNX has no grouped attention:
            k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)  # each group's keys
            v = v.repeat_interleave(q.shape[-3] // v.shape[-3], dim=-3)  # and values repeated
            grouped = False
        dropout = self.dropout if self.training else 0.0
        if self.softmax_dtype is not None and q.dtype == torch.float64:
            return self._written_out(q, k, v, mask, causal, grouped, dropout)
        return nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal, scale=self.scale,
            **({"enable_gqa": True} if grouped else {}))

    def _written_out(self, q, k, v, mask, causal: bool, grouped: bool, dropout: float) -> Tensor:
        """As transformers' eager attention: scores in the values' precision, the softmax
        in float32 (the precision the fused kernels compute it in), then back. Only on
        float64 values, where the fused kernels would compute the softmax in float64."""
        if grouped:
            k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
            v = v.repeat_interleave(q.shape[-3] // v.shape[-3], dim=-3)
        scale = self.scale if self.scale is not None else q.shape[-1] ** -0.5
        scores = torch.matmul(q, k.transpose(-2, -1)) * scale
        if causal:
            keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~keep, float("-inf"))
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool \
                else scores + mask
        weights = torch.softmax(scores, -1, dtype=torch.float32).to(q.dtype)
        weights = nn.functional.dropout(weights, dropout, training=dropout > 0)
        return torch.matmul(weights, v)

    def extra_repr(self) -> str:
        return (f"causal={self.causal}, scale={self.scale}, dropout={self.dropout}"
                + (f", softmax_dtype={self.softmax_dtype}" if self.softmax_dtype else ""))


class ShiftedWindowAttention(nn.Module):
    """Swin's window attention with relative position bias, on B x H x W x C maps; the
    names and arithmetic of torchvision's `ShiftedWindowAttention`, so its weights load
    and its outputs agree."""

    def __init__(self, dim: int, window_size: list[int], shift_size: list[int], num_heads: int,
                 attention_dropout: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.dim = dim
        self.window_size, self.shift_size, self.num_heads = window_size, shift_size, num_heads
        self.attention_dropout, self.dropout = attention_dropout, dropout
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(
            (2 * window_size[0] - 1) * (2 * window_size[1] - 1), num_heads))
        self.define_relative_position_index()

    def define_relative_position_index(self) -> None:
        """For each pair of positions in a window, the row of the bias table that holds
        their offset."""
        index = relative_position_index(*self.window_size).flatten()
        device = self.relative_position_bias_table.device
        self.register_buffer("relative_position_index", index.to(device))

    def forward(self, x: Tensor) -> Tensor:
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index]
        bias = bias.view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        return shifted_window_attention(
            x, self.qkv.weight, self.proj.weight, bias, self.window_size, self.num_heads,
            self.shift_size, self.attention_dropout, self.dropout, self.qkv.bias,
            self.proj.bias, self.training)

    def extra_repr(self) -> str:
        return (f"window_size={self.window_size}, shift_size={self.shift_size}, "
                f"num_heads={self.num_heads}")


def shifted_window_attention(x: Tensor, qkv_weight: Tensor, proj_weight: Tensor, bias: Tensor,
                             window: list[int], heads: int, shift: list[int],
                             attention_dropout: float, dropout: float, qkv_bias: Tensor,
                             proj_bias: Tensor, training: bool) -> Tensor:
    """torchvision's `shifted_window_attention` (Swin v1): pad to whole windows, roll by
    the shift (none where a window covers the map), attend within each window with the
    position bias and the mask that keeps rolled-in regions apart, and undo it all."""
    import torch.nn.functional as F
    B, H, W, C = x.shape
    pad_r = (window[1] - W % window[1]) % window[1]
    pad_b = (window[0] - H % window[0]) % window[0]
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    _, pad_H, pad_W, _ = x.shape
    shift = [0 if window[0] >= pad_H else shift[0], 0 if window[1] >= pad_W else shift[1]]
    if sum(shift) > 0:
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    num_windows = (pad_H // window[0]) * (pad_W // window[1])
    x = x.view(B, pad_H // window[0], window[0], pad_W // window[1], window[1], C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B * num_windows, window[0] * window[1], C)
    qkv = F.linear(x, qkv_weight, qkv_bias)
    qkv = qkv.reshape(x.size(0), x.size(1), 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    q = q * (C // heads) ** -0.5
    attn = q.matmul(k.transpose(-2, -1))
    attn = attn + bias
    if sum(shift) > 0:
        mask = x.new_zeros((pad_H, pad_W))
        h_slices = ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None))
        w_slices = ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None))
        count = 0
        for h in h_slices:
            for w in w_slices:
                mask[h[0]:h[1], w[0]:w[1]] = count
                count += 1
        mask = mask.view(pad_H // window[0], window[0], pad_W // window[1], window[1])
        mask = mask.permute(0, 2, 1, 3).reshape(num_windows, window[0] * window[1])
        mask = mask.unsqueeze(1) - mask.unsqueeze(2)
        mask = mask.masked_fill(mask != 0, float(-100.0)).masked_fill(mask == 0, float(0.0))
        attn = attn.view(x.size(0) // num_windows, num_windows, heads, x.size(1), x.size(1))
        attn = attn + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, x.size(1), x.size(1))
    attn = F.softmax(attn, dim=-1)
    attn = F.dropout(attn, p=attention_dropout, training=training)
    x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), C)
    x = F.linear(x, proj_weight, proj_bias)
    x = F.dropout(x, p=dropout, training=training)
    x = x.view(B, pad_H // window[0], pad_W // window[1], window[0], window[1], C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, pad_H, pad_W, C)
    if sum(shift) > 0:
        x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
    return x[:, :H, :W, :].contiguous()



class PatchMerging(nn.Module):
    """Swin's patch merging on B x H x W x C maps, with torchvision's names (`reduction`
    before `norm`, as its state_dict lists them): each 2x2 patch's features joined,
    normalised and projected to 2C."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-3], x.shape[-2]
        x = nn.functional.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :],
                       x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]], -1)
        return self.reduction(self.norm(x))
