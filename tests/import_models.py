"""Small hand-written models laid out as torchvision writes VGG, MobileNetV2 and DenseNet
(module names, Sequential containers, functional calls in forward()), for the tests of
`archdsl import` that must not need torchvision; tests/reference_resnet.py is the ResNet."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from reference_resnet import Bottleneck


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


class TinyViT(nn.Module):
    """torchvision's ViT in small: a class token expanded to the batch and concatenated
    before the patches, the encoder's position embedding added, the class token's
    features classified (`x[:, 0]`)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.class_token = nn.Parameter(torch.randn(1, 1, width))
        self.conv_proj = nn.Conv2d(3, width, 4, stride=4)
        self.encoder = nn.ModuleDict({"ln": nn.LayerNorm(width)})
        self.encoder.pos_embedding = nn.Parameter(torch.randn(1, 5, width))
        self.heads = nn.Linear(width, 10)

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.size(0), -1, -1), x], dim=1)
        x = self.encoder.ln(x + self.encoder.pos_embedding)
        return self.heads(x[:, 0])


class ResNeXt(nn.Module):
    """A small ResNeXt laid out as torchvision's (stages of 2, 2 and 1 blocks)."""

    def __init__(self, layers=(2, 2, 1), classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        inplanes = 16
        for index, (count, planes) in enumerate(zip(layers, (16, 32, 64))):
            blocks = []
            for i in range(count):
                blocks.append(Bottleneck(inplanes, planes, 2 if i == 0 and index else 1,
                                          groups=4, base_width=4))
                inplanes = planes * 4
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(inplanes, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class MaybeProjected(nn.Module):
    """A residual unit whose projection is a choice of the caller, not of its shape."""

    def __init__(self, channels: int, project: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.proj = nn.Conv2d(channels, channels, 1, bias=False) if project else None

    def forward(self, x):
        skip = x if self.proj is None else self.proj(x)
        return torch.relu(self.bn(self.conv(x)) + skip)


def chosen_projections():
    return nn.Sequential(nn.Conv2d(3, 8, 1), *(MaybeProjected(8, p) for p in
                                               (False, True, False, False)))


class EncoderLayer(nn.Module):
    """A post-norm encoder layer, its heads split by the sizes forward() reads."""

    def __init__(self, channels: int = 16, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        self.norm1 = nn.LayerNorm(channels)
        self.ff = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(approximate="tanh"),
                                nn.Linear(2 * channels, channels))
        self.norm2 = nn.LayerNorm(channels)

    def forward(self, x):
        batch, length, channels = x.size()
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2)
                   for t in self.qkv(x).split(channels, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        x = self.norm1(x + self.out(y.reshape(batch, length, channels)))
        return self.norm2(x + self.ff(x))


class SizeBranchingEncoder(nn.Module):
    """BERT-like, which torch.fx cannot trace: token ids embedded, a branch on the
    length (`if length > 8`), and the first token's features pooled (`x[:, 0]`)."""

    def __init__(self, vocab: int = 50, channels: int = 16, layers: int = 2):
        super().__init__()
        self.embeddings = nn.Embedding(vocab, channels)
        self.norm = nn.LayerNorm(channels)
        self.layers = nn.ModuleList(EncoderLayer(channels) for _ in range(layers))
        self.pooler = nn.Linear(channels, channels)

    def forward(self, ids):
        length = ids.shape[1]
        x = self.norm(self.embeddings(ids))
        if length > 512:  # only the shorter branch is captured, at the example's length
            raise ValueError("sequence too long")
        for layer in self.layers:
            x = layer(x)
        return torch.tanh(self.pooler(x[:, 0]))


class MaskedDecoder(nn.Module):
    """GPT-like, which torch.fx cannot trace: its causal mask made in forward() by
    assignment into a tensor and read as `mask[None, None, :, :]`."""

    def __init__(self, vocab: int = 50, channels: int = 16, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.wte = nn.Embedding(vocab, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.head = nn.Linear(channels, vocab, bias=False)

    def forward(self, ids):
        batch, length = ids.shape
        mask = torch.ones(length, length, dtype=torch.bool)
        mask[:, :] = torch.tril(mask)
        x = self.wte(ids)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[None, None, :, :])
        return self.head(y.transpose(1, 2).reshape(batch, length, -1))


def size_branching_encoder():
    return SizeBranchingEncoder()


def masked_decoder():
    return MaskedDecoder()


class GptLike(nn.Module):
    """GPT-2 as transformers writes it: position ids from `arange`, a causal mask made in
    forward() by comparing positions and handed to every block, pre-norm blocks."""

    def __init__(self, vocab: int = 50, positions: int = 32, channels: int = 16,
                 heads: int = 2, layers: int = 2):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, channels), nn.Embedding(positions, channels)
        self.h = nn.ModuleList(GptBlock(channels, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(channels)
        self.lm_head = nn.Linear(channels, vocab, bias=False)

    def forward(self, ids):
        past = 0
        position_ids = torch.arange(past, past + ids.shape[1], device=ids.device).unsqueeze(0)
        at = position_ids[0]
        mask = (at[None, :] <= at[:, None])[None, None].expand(ids.shape[0], 1, -1, -1)
        x = self.wte(ids) + self.wpe(position_ids)
        for block in self.h:
            x = block(x, mask)
        return self.lm_head(self.ln_f(x))


class GptBlock(nn.Module):
    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.c_attn, self.c_proj = nn.Linear(channels, 3 * channels), nn.Linear(channels, channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU("tanh"),
                                 nn.Linear(4 * channels, channels))

    def forward(self, x, mask):
        batch, length, channels = x.shape
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2)
                   for t in self.c_attn(self.ln_1(x)).split(channels, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.c_proj(y.transpose(1, 2).reshape(batch, length, channels))
        return x + self.mlp(self.ln_2(x))


class BertLike(nn.Module):
    """BERT as transformers writes it: position ids and token type ids read from buffers
    (the token types all 0), an attention mask of ones made in forward() and added to the
    scores as 0 or the lowest float, post-norm layers."""

    def __init__(self, vocab: int = 50, positions: int = 32, channels: int = 16,
                 heads: int = 2, layers: int = 2):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, channels)
        self.position_embeddings = nn.Embedding(positions, channels)
        self.token_type_embeddings = nn.Embedding(2, channels)
        self.LayerNorm = nn.LayerNorm(channels, eps=1e-12)
        self.register_buffer("position_ids", torch.arange(positions).expand((1, -1)),
                             persistent=False)
        self.register_buffer("token_type_ids", torch.zeros(1, positions, dtype=torch.long),
                             persistent=False)
        self.layer = nn.ModuleList(BertLayer(channels, heads) for _ in range(layers))

    def forward(self, ids):
        batch, length = ids.shape
        position_ids = self.position_ids[:, :length]
        token_type_ids = self.token_type_ids[:, :length].expand(batch, length)
        x = self.word_embeddings(ids) + self.token_type_embeddings(token_type_ids)
        x = self.LayerNorm(x + self.position_embeddings(position_ids))
        keep = torch.ones(batch, length)
        mask = (1.0 - keep[:, None, None, :]) * torch.finfo(torch.float32).min
        for layer in self.layer:
            x = layer(x, mask)
        return x


class BertLayer(nn.Module):
    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query, self.key = nn.Linear(channels, channels), nn.Linear(channels, channels)
        self.value, self.dense = nn.Linear(channels, channels), nn.Linear(channels, channels)
        self.norm1, self.norm2 = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(),
                                 nn.Linear(2 * channels, channels))

    def forward(self, x, mask):
        batch, length, _ = x.shape
        q, k, v = (layer(x).view(batch, length, self.heads, -1).transpose(1, 2)
                   for layer in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = self.norm1(x + self.dense(y.transpose(1, 2).reshape(batch, length, -1)))
        return self.norm2(x + self.mlp(x))


class LlamaLike(nn.Module):
    """Llama's rotary positions as transformers writes them: `inv_freq` a buffer (θ =
    `theta`), the positions from `arange`, their cosines and sines made in forward() and
    applied to queries and keys as `x * cos + rotate_half(x) * sin`; keys and values in
    fewer heads repeated for the queries' (`repeat_kv`), and a head tied to the
    embedding."""

    def __init__(self, vocab: int = 50, channels: int = 32, heads: int = 4, kv_heads: int = 2,
                 theta: float = 500000.0):
        super().__init__()
        self.heads, self.kv_heads, self.dim = heads, kv_heads, channels // heads
        self.embed_tokens = nn.Embedding(vocab, channels)
        self.register_buffer("inv_freq", self.frequencies(theta), persistent=False)
        self.q_proj = nn.Linear(channels, channels, bias=False)
        self.kv_proj = nn.Linear(channels, 2 * kv_heads * self.dim, bias=False)
        self.lm_head = nn.Linear(channels, vocab, bias=False)
        self.lm_head.weight = self.embed_tokens.weight

    def frequencies(self, theta: float) -> torch.Tensor:
        return 1.0 / theta ** (torch.arange(0, self.dim, 2) / self.dim)

    def forward(self, ids):
        batch, length = ids.shape
        position_ids = torch.arange(length, device=ids.device)[None]
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :]
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos()[:, None], angles.sin()[:, None]
        x = self.embed_tokens(ids)
        q = self.q_proj(x).view(batch, length, self.heads, -1).transpose(1, 2)
        k, v = (t.view(batch, length, self.kv_heads, -1).transpose(1, 2)
                for t in self.kv_proj(x).chunk(2, dim=-1))
        half = self.dim // 2
        q = q * cos + torch.cat((-q[..., half:], q[..., :half]), dim=-1) * sin
        k = k * cos + torch.cat((-k[..., half:], k[..., :half]), dim=-1) * sin
        k, v = (t[:, :, None].expand(batch, self.kv_heads, self.heads // self.kv_heads, length,
                                     self.dim).reshape(batch, self.heads, length, self.dim)
                for t in (k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.lm_head(y.transpose(1, 2).reshape(batch, length, -1))


class Llama3Rotary(LlamaLike):
    """Rotary frequencies scaled as transformers' "llama3" rope type scales them: by
    default (factor 8, low and high frequency factors 1 and 4, 256 original positions)
    one of the four blended, two divided by the factor."""

    def __init__(self, scaling=(8.0, 1.0, 4.0, 256), theta: float = 500000.0):
        self.scaling = scaling
        super().__init__(theta=theta)

    def frequencies(self, theta: float) -> torch.Tensor:
        inv = super().frequencies(theta)
        factor, low, high, original = self.scaling
        wavelen = 2 * math.pi / inv
        inv_llama = torch.where(wavelen > original / low, inv / factor, inv)
        smooth = (original / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * inv_llama / factor + smooth * inv_llama
        medium = ~(wavelen < original / high) * ~(wavelen > original / low)
        return torch.where(medium, smoothed, inv_llama)


class ScaledRotary(LlamaLike):
    """Rotary frequencies that are no θ^(-2i/d) and no scaling of Llama 3's: each divided
    by a number of its own, not in order."""

    def frequencies(self, theta: float) -> torch.Tensor:
        return super().frequencies(theta) / torch.tensor([1.0, 3.0, 8.0, 2.0])


class BandMasked(MaskedDecoder):
    """A mask made in forward() that is neither causal nor keeps everything: each token
    sees itself and the one before."""

    def forward(self, ids):
        batch, length = ids.shape
        mask = torch.ones(length, length, dtype=torch.bool).tril().triu(-1)
        x = self.wte(ids)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.head(y.transpose(1, 2).reshape(batch, length, -1))


class AuxHeaded(nn.Module):
    """A classifier with a head that forward() computes only in training (GoogLeNet's
    auxiliary classifiers): eval mode returns the main output alone."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.aux1 = nn.ModuleDict({"pool": nn.AdaptiveAvgPool2d(1), "fc": nn.Linear(8, 5)})
        self.body = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        main = self.fc(torch.flatten(self.body(x).mean((2, 3), keepdim=True), 1))
        if not self.training:
            return main
        return main, self.aux1["fc"](torch.flatten(self.aux1["pool"](x), 1))


class NormFirst(nn.Module):
    """A head that registers its norm before the conv it runs first."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.norm(self.conv(x))


class LateRegistered(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = NormFirst()

    def forward(self, x):
        return self.head(x)


class SplitNumbered(nn.Module):
    """Layers numbered as nn.Sequential numbers them, with a chunk between them that
    the spec writes as two slices: one number more than the model's own."""

    def __init__(self):
        super().__init__()
        self.add_module("0", nn.Conv2d(3, 4, 1))
        self.add_module("1", nn.Conv2d(2, 2, 3, padding=1))

    def forward(self, x):
        kept, changed = getattr(self, "0")(x).chunk(2, 1)
        return torch.cat((kept, getattr(self, "1")(changed)), 1)


class CentreCropped(nn.Module):
    """U-Net's skip: the encoder's features cut at their centre to the up-convolution's
    size, `x[..., a:b, a:b]`, and concatenated with them."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 4, 3)
        self.down = nn.MaxPool2d(2)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)

    def forward(self, x):
        enc = self.enc(x)
        up = self.up(self.down(enc))
        top = (enc.shape[-2] - up.shape[-2]) // 2 + 1
        return torch.cat((enc[..., top:top + up.shape[-2] - 2, 1:-1], up[..., 1:-1, 1:-1]), 1)


class Conv1D(nn.Module):
    """transformers' GPT-2 linear layer: the weight stored in x out, x·W + b on the
    tokens flattened."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.1)
        self.bias = nn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class NewGELUActivation(nn.Module):
    """transformers' GELU with the tanh approximation, written out."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (
            x + 0.044715 * torch.pow(x, 3.0))))


class RMSNorm(nn.Module):
    """transformers' LlamaRMSNorm: weight * x * rsqrt(mean(x²) + eps), in float32."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels) + 0.1 * torch.randn(channels))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class SelfOutput(nn.Module):
    """BERT's SelfOutput: a module of two inputs, LayerNorm(dense(hidden) + input)."""

    def __init__(self, channels: int):
        super().__init__()
        self.dense = nn.Linear(channels, channels)
        self.LayerNorm = nn.LayerNorm(channels, eps=1e-12)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dense(hidden_states) + input_tensor)


class WeightsPassed(nn.Module):
    """GPT-2's Conv1D and GELU, an RMSNorm, BERT's two-input SelfOutput: parameters
    passed to functions, activations written out, a module of two inputs."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.norm = RMSNorm(channels)
        self.c_fc, self.act = Conv1D(2 * channels, channels), NewGELUActivation()
        self.c_proj = Conv1D(channels, 2 * channels)
        self.output = SelfOutput(channels)

    def forward(self, x):
        h = self.c_proj(self.act(self.c_fc(self.norm(x))))
        return self.output(h, x)


class LayerNorm2d(nn.LayerNorm):
    """ConvNeXt's layer norm over the channels, a subclass with a forward of its own."""

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)


class ChannelLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def channels_last_layers():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), LayerNorm2d(8, eps=1e-6),
                         ChannelLinear(8, 16), nn.GELU(), ChannelLinear(16, 8))
