"""Hypothesis strategies for random .arch specs: every layer of the op table, residuals
with and without projections, branch merges, named values, auxiliary heads.

Unlike archgen (which writes a torch oracle beside each spec and so stays small), these
specs only need to be valid .arch: the properties compare what check and stats say with
what the lowered module is and does. Sizes are drawn freely, so some specs are rejected
with shape errors (E03xx), which is part of what is tested.
"""
from __future__ import annotations

from hypothesis import strategies as st

ACTIVATIONS = ["relu", "relu6", "leaky_relu(0.2)", "sigmoid", "tanh", "gelu", "silu",
               "hardswish", "hardsigmoid", "softmax", "identity", "dropout(0.25)"]


@st.composite
def spatial_layer(draw, channels: int) -> tuple[str, int]:
    """A layer for a C x H x W value: (text, channels after it)."""
    kind = draw(st.sampled_from(["conv", "conv", "conv", "pool", "norm", "act", "act",
                                 "adaptive", "upsample", "lrn", "modern", "modern",
                                 "conv_transpose", "reshape"]))
    if kind == "conv":
        groups = draw(st.sampled_from([g for g in (1, 2, 4) if channels % g == 0]))
        out = groups * draw(st.integers(1, 4))
        k = draw(st.integers(1, 5))
        stride = draw(st.integers(1, 3))
        pad = draw(st.sampled_from([0, k // 2, "same"])) if stride == 1 else draw(st.integers(0, k // 2))
        dilation = draw(st.sampled_from([1, 1, 2]))
        bias = "true" if draw(st.booleans()) else "false"
        return (f"conv({out}, {k}, stride = {stride}, pad = {pad}, dilation = {dilation}, "
                f"groups = {groups}, bias = {bias})"), out
    if kind == "pool":
        op = draw(st.sampled_from(["maxpool", "avgpool"]))
        k = draw(st.integers(1, 3))
        ceil = "true" if draw(st.booleans()) else "false"
        return (f"{op}({k}, stride = {draw(st.integers(1, 2))}, pad = {draw(st.integers(0, k // 2))}, "
                f"ceil_mode = {ceil})"), channels
    if kind == "conv_transpose":
        groups = draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
        out = groups * draw(st.integers(1, 3))
        k, stride = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        return (f"conv_transpose({out}, {k}, stride = {stride}, pad = {draw(st.integers(0, 1))}, "
                f"output_pad = {draw(st.integers(0, stride - 1))}, groups = {groups})"), out
    if kind == "reshape":
        divisors = [g for g in (1, 2, 3) if channels % g == 0]
        choice = draw(st.sampled_from(["shuffle", "chunk", "pad", "linear"]))
        if choice == "shuffle":
            return f"channel_shuffle({draw(st.sampled_from(divisors))})", channels
        if choice == "chunk":
            n = draw(st.sampled_from(divisors))
            return f"chunk({n}, {draw(st.integers(0, n - 1))})", channels // n
        if choice == "pad":
            out = channels + draw(st.integers(0, 3))
            return f"pad_channels({out})", out
        out = draw(st.integers(1, 6))
        return f"channel_linear({out}, bias = {'true' if draw(st.booleans()) else 'false'})", out
    if kind == "modern":
        divisors = [g for g in (1, 2, 3) if channels % g == 0]
        return draw(st.sampled_from([
            "layernorm", f"groupnorm({draw(st.sampled_from(divisors))})", "scale(0.5)",
            f"stochastic_depth({draw(st.sampled_from([0.0, 0.2, 0.5]))})"])), channels
    text = {"norm": "batchnorm", "adaptive": f"adaptive_avgpool({draw(st.integers(1, 3))})",
            "upsample": "upsample(2)", "lrn": "lrn(3)"}.get(kind) or draw(st.sampled_from(ACTIVATIONS))
    return text, channels


@st.composite
def chain(draw, channels: int, length: int) -> tuple[str, int]:
    parts = []
    for _ in range(length):
        text, channels = draw(spatial_layer(channels))
        parts.append(text)
    return "; ".join(parts), channels


@st.composite
def statement(draw, channels: int, index: int) -> tuple[str, int]:
    kind = draw(st.sampled_from(["layer", "layer", "residual", "projection", "concat", "add",
                                 "mul", "named", "gate", "crop"]))
    if kind == "layer":
        return draw(spatial_layer(channels))
    if kind == "residual":
        return f"residual {{ conv({channels}, 3, pad = 1); batchnorm; relu }}", channels
    if kind == "projection":
        width = draw(st.integers(1, 6))
        stride = draw(st.integers(1, 2))
        return f"s{index}: projected({width}, {stride})", width
    if kind == "concat":
        branches = [draw(chain(channels, draw(st.integers(1, 2)))) for _ in range(draw(st.integers(2, 3)))]
        return (f"m{index}: concat {{ " + "; ".join(f"{{ {text} }}" for text, _ in branches) + " }",
                sum(c for _, c in branches))
    if kind in ("add", "mul"):
        branches = [f"conv({channels}, 1); {draw(st.sampled_from(ACTIVATIONS))}"
                    for _ in range(draw(st.integers(2, 3)))]
        return f"m{index}: {kind} {{ " + "; ".join(f"{{ {b} }}" for b in branches) + " }", channels
    if kind == "gate":  # squeeze-and-excitation: a C x 1 x 1 gate, or a 1 x H x W one
        if draw(st.booleans()):
            return (f"g{index}: mul {{ {{}}; {{ global_avgpool; conv({channels}, 1); "
                    f"hardsigmoid }} }}"), channels
        return f"g{index}: mul {{ {{}}; {{ conv(1, 1); sigmoid }} }}", channels
    if kind == "crop":  # a value cut to the size of a smaller one made from it
        return (f"a{index}: identity\n    b{index}: maxpool({draw(st.integers(1, 3))}, stride = 1)"
                f"\n    c{index}: crop(a{index}, b{index})"), channels
    side, _ = draw(spatial_layer(channels))  # named values: a side branch merged back by name
    return (f"a{index}: conv({channels}, 1)\n    b{index}: {side}\n"
            f"    c{index}: add(a{index}, b{index})"), channels


@st.composite
def specs(draw) -> str:
    channels = draw(st.integers(1, 6))
    lines = [f"input x: {channels} x {draw(st.integers(4, 20))} x {draw(st.integers(4, 20))}"]
    for index in range(draw(st.integers(1, 6))):
        text, channels = draw(statement(channels, index))
        lines.append(text)
    if draw(st.booleans()):
        classes = draw(st.integers(1, 5))
        lines.append(f"head: aux(weight = 0.5) {{ global_avgpool; flatten; linear({classes}) }}")
    if draw(st.booleans()):
        lines += ["global_avgpool", "flatten", f"fc: linear({draw(st.integers(1, 10))})"]
    body = "\n    ".join(lines)
    return PROJECTED + f"network generated {{\n    {body}\n}}\n"


PROJECTED = """block projected(width, stride) {
    residual { conv(width, 3, stride = stride, pad = 1, bias = false); batchnorm
    } skip proj when stride != 1 or in.channels != width {
        conv(width, 1, stride = stride, bias = false); batchnorm
    }
}
"""


# ---- token sequences, signals and volumes ---------------------------------------------


@st.composite
def token_layer(draw, width: int, length: int, index: int) -> tuple[str, int, int]:
    """A statement for L x C tokens: (text, features after it, tokens after it)."""
    kind = draw(st.sampled_from(["norm", "linear", "attention", "attention", "act", "encoder",
                                 "mlp", "position", "class_token", "conv1d", "slice"]))
    heads = draw(st.sampled_from([h for h in (1, 2, 3, 4) if width % h == 0] + [3]))
    if kind == "norm":
        return "layernorm", width, length
    if kind == "linear":
        out = draw(st.integers(1, 12))
        return f"linear({out}, bias = {'true' if draw(st.booleans()) else 'false'})", out, length
    if kind == "attention":
        return f"attention({heads}, bias = {'true' if draw(st.booleans()) else 'false'})", \
            width, length
    if kind == "act":
        return draw(st.sampled_from(ACTIVATIONS)), width, length
    if kind == "encoder":
        return f"residual {{ layernorm; attention({heads}); dropout(0.1) }}", width, length
    if kind == "mlp":
        return (f"residual {{ layernorm; linear({2 * width}); gelu; linear({width}) }}",
                width, length)
    if kind == "position":  # a learned position embedding, added by name
        rows = draw(st.sampled_from([length, length, length + 1]))
        return (f"t{index}: identity\n    param p{index}: {rows} x {width} = normal(std = 0.02)"
                f"\n    add(t{index}, p{index})"), width, length
    if kind == "class_token":
        return (f"t{index}: identity\n    param c{index}: 1 x {width}\n"
                f"    concat(c{index}, t{index}, axis = 0)"), width, length + 1
    if kind == "slice":
        start = draw(st.integers(-length, length - 1))  # never empty
        step = draw(st.integers(1, 2))
        return (f"slice({start}, {length}, step = {step})", width,
                len(range(*slice(start, length, step).indices(length))))
    k = draw(st.integers(1, 3))  # a 1-D conv over the sequence, channels first and back
    out = draw(st.integers(1, 8))
    return (f"transpose(0, 1); conv({out}, {k}, pad = {k // 2}); transpose(0, 1)", out,
            length + 2 * (k // 2) - k + 1)


@st.composite
def sequence_specs(draw) -> str:
    """Networks on token sequences: declared tokens, or an image cut into patches."""
    width = draw(st.integers(1, 8))
    if draw(st.booleans()):
        length = draw(st.integers(1, 12))
        lines = [f"input x: {length} x {width} as tokens"]
    else:
        patch, side = draw(st.integers(1, 3)), draw(st.integers(3, 9))
        length = (side // patch) ** 2
        lines = [f"input x: {draw(st.integers(1, 3))} x {side} x {side}",
                 f"conv({width}, {patch}, stride = {patch})", "flatten(1, 2)", "transpose(0, 1)"]
    for index in range(draw(st.integers(1, 5))):
        text, width, length = draw(token_layer(width, length, index))
        lines.append(text)
    end = draw(st.sampled_from(["take", "mean", "flatten", "none"]))
    if end == "take":
        lines.append(f"take({draw(st.integers(-length, max(length - 1, 0)))})")
    elif end == "mean":
        lines.append(f"mean({draw(st.sampled_from([0, 1, -1]))})")
    elif end == "flatten":
        lines.append("flatten")
    if end != "none" and draw(st.booleans()):
        lines.append(f"fc: linear({draw(st.integers(1, 5))})")
    return "network generated {\n    " + "\n    ".join(lines) + "\n}\n"


@st.composite
def channels_first_specs(draw) -> str:
    """Networks on 1-D signals and 3-D volumes: convs, pools and batch norms of their rank."""
    spatial = draw(st.sampled_from([1, 3]))
    channels = draw(st.integers(1, 4))
    sizes = [draw(st.integers(3, 12 if spatial == 3 else 40)) for _ in range(spatial)]
    layout = " as signal" if spatial == 1 else ""
    lines = [f"input x: {channels} x {' x '.join(map(str, sizes))}{layout}"]

    def size(low, high):  # one integer for every axis, or one per axis
        if spatial == 1 or draw(st.booleans()):
            return str(draw(st.integers(low, high)))
        return f"({', '.join(str(draw(st.integers(low, high))) for _ in range(spatial))})"
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "norm", "act"]))
        if kind == "conv":
            groups = draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
            out = groups * draw(st.integers(1, 3))
            lines.append(f"conv({out}, {size(1, 3)}, stride = {size(1, 2)}, pad = {size(0, 1)}, "
                         f"groups = {groups})")
            channels = out
        elif kind == "pool":
            op = draw(st.sampled_from(["maxpool", "avgpool"]))
            lines.append(f"{op}({size(1, 2)}, ceil_mode = {draw(st.sampled_from(['true', 'false']))})")
        elif kind == "norm":
            lines.append("batchnorm")
        else:
            lines.append(draw(st.sampled_from(ACTIVATIONS)))
    if draw(st.booleans()):
        lines += ["global_avgpool", "flatten", f"linear({draw(st.integers(1, 5))})"]
    return "network generated {\n    " + "\n    ".join(lines) + "\n}\n"
