"""Hypothesis strategies for small random architectures, produced twice: as .arch text,
and as a torch.nn module written independently of archdsl (the oracle)."""
from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st


@dataclass
class Arch:
    shape: tuple[int, int, int]
    lines: list[str] = field(default_factory=list)
    builders: list = field(default_factory=list)  # functions returning torch modules

    @property
    def text(self) -> str:
        c, h, w = self.shape
        body = "\n".join(f"    {line}" for line in self.lines)
        return f"network gen {{\n    input x: {c} x {h} x {w}\n{body}\n}}\n"

    def module(self):
        from torch import nn
        return nn.Sequential(*(build() for build in self.builders))


def _residual(body):
    from torch import nn

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, x):
            return x + self.body(x)
    return Residual()


def _concat(*branches):
    from torch import nn
    import torch

    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x):
            return torch.cat([b(x) for b in self.branches], 1)
    return Concat()


@st.composite
def conv(draw, c, h, w):
    groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0]))
    out = groups * draw(st.integers(1, 4))
    k = draw(st.integers(1, min(5, h, w)))
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, k // 2))
    dilation = draw(st.sampled_from([1, 1, 2])) if h >= 2 * k and w >= 2 * k else 1
    bias = draw(st.booleans())
    text = (f"conv({out}, {k}, stride = {stride}, pad = {pad}, dilation = {dilation}, "
            f"groups = {groups}, bias = {'true' if bias else 'false'})")

    def build():
        from torch import nn
        return nn.Conv2d(c, out, k, stride, pad, dilation, groups, bias)
    span = dilation * (k - 1) + 1
    return text, build, (out, (h + 2 * pad - span) // stride + 1, (w + 2 * pad - span) // stride + 1)


@st.composite
def pool(draw, c, h, w):
    kind = draw(st.sampled_from(["maxpool", "avgpool"]))
    k = draw(st.integers(1, min(3, h, w)))
    stride = draw(st.integers(1, 2))
    pad = draw(st.integers(0, k // 2))

    def build():
        from torch import nn
        return (nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d)(k, stride, pad)
    return (f"{kind}({k}, stride = {stride}, pad = {pad})", build,
            (c, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1))


def simple(name, torch_name, c, h, w, *args):
    def build():
        from torch import nn
        return getattr(nn, torch_name)(*args)
    return name, build, (c, h, w)


@st.composite
def stage(draw, c, h, w):
    choice = draw(st.sampled_from(["conv", "conv", "pool", "relu", "bn", "residual", "concat"]))
    if choice == "conv":
        return draw(conv(c, h, w))
    if choice == "pool":
        return draw(pool(c, h, w))
    if choice == "relu":
        return simple("relu", "ReLU", c, h, w)
    if choice == "bn":
        return simple("batchnorm", "BatchNorm2d", c, h, w, c)
    if choice == "residual":
        def build():
            from torch import nn
            return _residual(nn.Conv2d(c, c, 3, 1, 1))
        return f"residual {{ conv({c}, 3, pad = 1) }}", build, (c, h, w)
    a, b = draw(st.integers(1, 4)), draw(st.integers(1, 4))

    def build_concat():
        from torch import nn
        return _concat(nn.Conv2d(c, a, 1), nn.Sequential(nn.Conv2d(c, b, 3, 1, 1), nn.ReLU()))
    return (f"concat {{ conv({a}, 1); {{ conv({b}, 3, pad = 1); relu }} }}", build_concat,
            (a + b, h, w))


@st.composite
def architectures(draw, max_stages: int = 5) -> Arch:
    c, h, w = draw(st.integers(1, 6)), draw(st.integers(6, 20)), draw(st.integers(6, 20))
    arch = Arch((c, h, w))
    for _ in range(draw(st.integers(1, max_stages))):
        if h < 1 or w < 1:
            break
        text, build, (nc, nh, nw) = draw(stage(c, h, w))
        if nh < 1 or nw < 1:
            continue
        arch.lines.append(text)
        arch.builders.append(build)
        c, h, w = nc, nh, nw
    if draw(st.booleans()):
        features = draw(st.integers(1, 10))
        arch.lines += ["global_avgpool", "flatten", f"linear({features})"]

        def head(c=c, features=features):
            from torch import nn
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, features))
        arch.builders.append(head)
    return arch
