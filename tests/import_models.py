"""Small hand-written models laid out as torchvision writes VGG, MobileNetV2 and DenseNet
(module names, Sequential containers, functional calls in forward()), for the tests of
`archdsl import` that must not need torchvision; tests/reference_resnet.py is the ResNet."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class VGG(nn.Module):
    def __init__(self, stages=((1, 16), (2, 32)), classes: int = 10):
        super().__init__()
        layers, channels = [], 3
        for count, width in stages:
            for _ in range(count):
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(channels * 4, 64), nn.ReLU(True),
                                        nn.Dropout(), nn.Linear(64, classes))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class ConvBNReLU(nn.Sequential):
    def __init__(self, inp, out, kernel=3, stride=1, groups=1):
        super().__init__(nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups,
                                   bias=False), nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp, out, stride, expand):
        super().__init__()
        hidden = inp * expand
        self.use_res_connect = stride == 1 and inp == out
        layers = [ConvBNReLU(inp, hidden, 1)] if expand != 1 else []
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        blocks, channels = [ConvBNReLU(3, 16, stride=2)], 16
        for t, c, n, s in ((1, 8, 1, 1), (6, 16, 2, 2), (6, 24, 3, 1)):
            for i in range(n):
                blocks.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
                channels = c
        blocks.append(ConvBNReLU(channels, 64, 1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class DenseLayer(nn.Module):
    def __init__(self, inp, growth):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(inp)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(inp, 2 * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(2 * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)

    def forward(self, inputs):  # torchvision's: the list of all earlier features
        x = torch.cat(inputs, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers, inp, growth):
        super().__init__()
        for i in range(layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(inp + i * growth, growth))

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseNet(nn.Module):
    def __init__(self, blocks=(2, 3), growth: int = 8, classes: int = 10):
        super().__init__()
        channels = 16
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, channels, 3, padding=1, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(channels))
        for i, layers in enumerate(blocks):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(layers, channels, growth))
            channels += layers * growth
            if i < len(blocks) - 1:
                self.features.add_module(f"transition{i + 1}", nn.Sequential(
                    nn.BatchNorm2d(channels), nn.ReLU(True),
                    nn.Conv2d(channels, channels // 2, 1, bias=False), nn.AvgPool2d(2, 2)))
                channels //= 2
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x):
        x = F.relu(self.features(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


class Unknown(nn.Module):
    """A layer archdsl has no equivalent for."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.stem(x))


def vgg():
    return VGG()


def mobilenet_v2():
    return MobileNetV2()


def unknown():
    return Unknown()


class OddlyNamedUnit(nn.Module):
    """Children named like keywords of archdsl (`in`, also Python's; `repeat`) and like
    torch's own attributes (`_norm`)."""

    def __init__(self, channels):
        super().__init__()
        setattr(self, "in", nn.Conv2d(channels, channels, 3, padding=1, bias=False))
        self._norm = nn.BatchNorm2d(channels)
        self.repeat = nn.ReLU()

    def forward(self, x):
        return self.repeat(self._norm(getattr(self, "in")(x)))


class OddlyNamedProjection(nn.Module):
    """A residual whose projection is called `when`, which `skip NAME` cannot take."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.ReLU())
        self.when = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, bias=False),
                                  nn.BatchNorm2d(2 * channels))

    def forward(self, x):
        return self.body(x) + self.when(x)


class OddlyNamed(nn.Module):
    """Module names that archdsl labels write quoted (`conv-1`, `input`), or cannot hold
    and the importer renames (`_head`, `type`, `block 2`, `007`, `ñ`); `x` is the name the
    importer gives the input."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.x = nn.Conv2d(3, 8, 3, padding=1)
        self.layers = nn.ModuleDict({"conv-1": nn.Conv2d(8, 8, 1), "input": OddlyNamedUnit(8),
                                     "block 2": OddlyNamedUnit(8), "007": nn.ReLU()})
        self.type = OddlyNamedProjection(8)  # torch.nn.Module.type is a method
        self.ñ = nn.Flatten()
        self._head = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x):
        x = self.x(x)
        for layer in self.layers.values():
            x = layer(x)
        x = self._modules["type"](x)
        return self._head(self.ñ(x))


def oddly_named():
    return OddlyNamed()


class ChainedResiduals(nn.Module):
    """What a user writes in ten minutes: identity residuals over the members of a
    ModuleList, chained in a loop of forward(), and a mean over the map."""

    def __init__(self, blocks: int = 2):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
                                     for _ in range(blocks)])
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = x + b(x)
        return self.head(x.mean((2, 3)))


class TensorMethods(nn.Module):
    """Tensor methods and functions between layers: reductions over axes (kept or not),
    permute, transpose, contiguous, flatten from an axis, softmax and activations."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 8)
        self.out = nn.Linear(8 * 4, 5)

    def forward(self, x):
        x = torch.sigmoid(self.conv(x))                  # 8 x 6 x 4
        x = x.amax(dim=3, keepdim=True).sum(-1)          # 8 x 6
        x = x.permute(0, 2, 1).contiguous()              # 6 x 8
        x = nn.functional.gelu(self.fc(x)).transpose(1, 2)   # 8 x 6
        x = x.softmax(dim=-1).tanh()
        x = torch.mean(x[:, :, None], dim=2)             # 8 x 6
        return self.out(x[:, :, :4].flatten(1))


class CausalSelfAttention(nn.Module):
    """Attention written out in forward(): one projection chunked into queries, keys and
    values, heads split by view and transpose, torch's fused attention, heads merged."""

    def __init__(self, channels: int = 16, heads: int = 2):
        super().__init__()
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.heads = heads

    def forward(self, x):
        batch, length, channels = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q.view(batch, length, self.heads, -1).transpose(1, 2)
        k = k.view(batch, length, self.heads, -1).transpose(1, 2)
        v = v.view(batch, length, self.heads, -1).transpose(1, 2)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, length, channels))


class TinyDecoder(nn.Module):
    """Pre-norm residuals around attention and an MLP, over a ModuleList of layers."""

    def __init__(self, channels: int = 16, layers: int = 2):
        super().__init__()
        self.embed = nn.Linear(8, channels)
        self.layers = nn.ModuleList(nn.ModuleDict({
            "norm1": nn.LayerNorm(channels), "attn": CausalSelfAttention(channels),
            "norm2": nn.LayerNorm(channels),
            "mlp": nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(),
                                 nn.Linear(2 * channels, channels))}) for _ in range(layers))
        self.head = nn.Linear(channels, 5)

    def forward(self, x):
        x = self.embed(x)
        for layer in self.layers:
            x = x + layer["attn"](layer["norm1"](x))
            x = x + layer["mlp"](layer["norm2"](x))
        return self.head(x)


class Products(nn.Module):
    """Values multiplied and joined by name: a matrix product of two computed values, a
    concatenation along the height."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        tall = torch.cat([a, b], dim=2)                     # 4 x 12 x 6
        return torch.matmul(tall, b.transpose(2, 3)) * 0.1   # 4 x 12 x 6


class Functional(nn.Module):
    """Pooling, dropout and resizing as functions of forward()."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = nn.functional.max_pool2d(self.a(x), 2)
        y = nn.functional.avg_pool2d(y, 3, stride=1, padding=1)
        y = nn.functional.interpolate(self.b(nn.functional.dropout(y, 0.1, self.training)),
                                      scale_factor=2)
        return nn.functional.interpolate(y, size=(5, 7), mode="bilinear")


class Unmappable(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return torch.erfinv(self.a(x))


class LayerScaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.gamma = nn.Parameter(torch.ones(3, 1, 1))

    def forward(self, x):
        return x + self.gamma * self.conv(x)
