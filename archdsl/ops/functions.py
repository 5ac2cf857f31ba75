"""The functions that ops without a torch.nn module lower to, and the small modules
torch.nn lacks. Imported by the torch backend only: the front end never imports torch."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def centre_crop(x: Tensor, like: Tensor) -> Tensor:
    """`x` cropped at its centre to the height and width of `like` (U-Net's skip crop)."""
    height, width = like.shape[-2], like.shape[-1]
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]


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
