"""`archdsl import` of parameters that forward() reads itself beyond a layer scale: read
by `torch.einsum` (as they are, or expanded to the batch as `archdsl export` writes
them), and a global response norm written out, read as std.layers' `grn`; by either
capture, the spec checks and gives the model's keys and outputs. An einsum whose batch
is not the first axis of every value stops with one line."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from archdsl import compile_source  # noqa: E402
from archdsl.backends.export_pytorch import export_pytorch  # noqa: E402
from archdsl.backends.lower_fx import lower_fx  # noqa: E402
from archdsl.tools.import_torch import ImportFailure, import_model  # noqa: E402

from test_import_export import reproduces  # noqa: E402

CAPTURES = ("fx", "export")


def exported(spec: str, name: str) -> nn.Module:
    """The model of a spec's `archdsl export --to pytorch` file, class `name`, its
    weights drawn from a normal distribution."""
    names: dict = {}
    exec(compile(export_pytorch(compile_source(spec).graph).source, f"{name}.py", "exec"),
         names)
    model = names[name]()
    for parameter in model.parameters():
        nn.init.normal_(parameter)
    return model


class Projections(nn.Module):
    """x·W + b by einsum, W stored in x out (GPT-2's Conv1D); then a projection whose
    weight comes first in the equation and is expanded to the batch; then scores of one
    value against another, an einsum of two values."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 12))
        self.bias = nn.Parameter(torch.randn(12))
        self.out = nn.Module()
        self.out.weight = nn.Parameter(torch.randn(5, 12))

    def forward(self, x):
        h = torch.einsum("BLC,CD->BLD", x, self.weight) + self.bias
        w = self.out.weight.expand(x.size(0), -1, -1)
        y = torch.einsum("bdc,blc->bld", w, h)
        return torch.einsum("blc,bmc->blm", y, torch.tanh(y))


@pytest.mark.parametrize("capture", CAPTURES)
def test_a_parameter_read_by_einsum_is_a_param_read_by_name(capture):
    model = Projections()
    text = import_model(model, (6, 8), capture=capture).text
    words = " ".join(text.split())
    assert "param weight: 8 x 12 as signal param bias: 12 " \
           'einsum("lc,cd->ld", weight) add(bias)' in words  # the letters lower case
    assert 'out: { param weight: 5 x 12 as signal einsum("lc,dc->ld", weight) }' in words
    assert 'einsum("lc,mc->lm", out, tanh)' in words  # two values, by name
    reproduces(text, model, torch.randn(3, 6, 8))


class BatchMoved(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 4))

    def forward(self, x):
        return torch.einsum("blc,cd->lbd", x, self.weight)


@pytest.mark.parametrize("capture", CAPTURES)
def test_an_einsum_whose_batch_is_not_first_stops_with_one_line(capture):
    with pytest.raises(ImportFailure, match=r"^`einsum\w*` \(test_import_parameters.py:\d+\): "
                                            r"torch.einsum 'blc,cd->lbd': the batch \(the "
                                            r"result's first axis, `l`\) is not the first axis "
                                            r"of `blc`; archdsl's einsum names the axes of one "
                                            r"example, the batch first in every operand that "
                                            r"has it$"):
        import_model(BatchMoved(), (6, 8), capture=capture)


class GlobalResponseNorm(nn.Module):
    """timm's GlobalResponseNorm on C x H x W maps (`use_conv=True`)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.randn(channels))
        self.bias = nn.Parameter(torch.randn(channels))

    def forward(self, x):
        x_g = x.norm(p=2, dim=(2, 3), keepdim=True)
        x_n = x_g / (x_g.mean(dim=1, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias.view(1, -1, 1, 1), self.weight.view(1, -1, 1, 1),
                                 x * x_n)


@pytest.mark.parametrize("capture", CAPTURES)
def test_a_global_response_norm_is_the_library_grn(capture):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), GlobalResponseNorm(8, eps=1e-5), nn.ReLU())
    text = import_model(model, (3, 10, 10), capture=capture).text
    assert text.startswith("import std.layers\n") or "\nimport std.layers\n" in text
    assert "1: grn(eps = 1e-05)" in text and "vector_norm" not in text
    reproduces(text, model, torch.randn(2, 3, 10, 10))


def test_an_exported_grn_and_einsum_import_back():
    """`archdsl export` writes std.layers' grn and a parameter read by einsum in plain
    torch, their parameters expanded to the batch and unsqueezed: both come back."""
    spec = ("import std.layers\n\nnetwork tiny {\n    input x: 3 x 8 x 8\n"
            "    conv: conv(8, 3, pad = 1)\n    grn: grn\n    pool: global_avgpool\n    flatten\n"
            "    head: {\n        param weight: 8 x 4 as signal\n"
            "        einsum(\"c,cd->d\", weight)\n    }\n}\n")
    model = exported(spec, "Tiny")
    text = import_model(model, (3, 8, 8)).text
    assert "grn:  grn\n" in text and 'einsum("c,cd->d", weight)' in text
    reproduces(text, model, torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize("capture", CAPTURES)
def test_a_parameter_expanded_to_the_batch_for_an_element_wise_op_is_read_as_it_is(capture):
    """`gamma.expand(B, -1).unsqueeze(2).unsqueeze(3) * x` on a C x H x W map and
    `shift.expand(B, -1) + x` on C features, as `archdsl export` writes a `param` read by
    `mul` and `add`: by either capture, `mul(gamma)` and `add(shift)`."""
    spec = ("network tiny {\n    input x: 3 x 8 x 8\n    conv: conv(8, 3, pad = 1)\n"
            "    scale: {\n        param gamma: 8\n        mul(gamma)\n    }\n"
            "    pool: global_avgpool\n    flatten\n"
            "    norm: {\n        param shift: 8\n        add(shift)\n    }\n}\n")
    model = exported(spec, "Tiny")
    text = import_model(model, (3, 8, 8), capture=capture).text
    words = " ".join(text.split())
    assert "scale: { param gamma: 8 mul(gamma) }" in words
    assert "norm: { param shift: 8 add(shift) }" in words
    reproduces(text, model, torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize("capture", CAPTURES)
def test_an_exported_mixture_of_experts_imports_back(capture):
    """std.layers' sparse_moe exported: its router's `torch.topk` read as `topk` and
    `topk(indices = true)`, archdsl's own `routed_linear` (the file's copy, whose loop over
    the experts neither capture can follow) kept whole and read with the experts' weights
    by name, declared in a group of their module's path; the outputs come back."""
    spec = ("import std.layers\n\nnetwork moe {\n    input x: 6 x 16 as tokens\n"
            "    mlp: sparse_moe(4, 2, 24)\n}\n")
    model = exported(spec, "Moe")
    imported = import_model(model, (6, 16), "moe", capture)
    assert imported.capture == capture
    text = imported.text
    assert "topk(2, axis = 1)\n" in text and "topk(2, axis = 1, indices = true)\n" in text
    assert '"mlp.experts": {\n' in text and "param gate_up_proj: 4 x 48 x 16\n" in text
    assert text.count(": routed_linear(") == 2
    reproduces(text, model, torch.randn(3, 6, 16))


@pytest.mark.parametrize("capture", CAPTURES)
def test_a_parameter_read_as_a_value_is_from_its_name(capture):
    """A parameter that forward() expands to the batch and computes with as a value of
    its own (Mamba's `A_log`: `exp`, `neg`) is `from a` in the scope that declares it,
    a group of its module's path where that module's layers run apart."""
    spec = ("network tiny {\n    input x: 6 x 8 as tokens\n    proj: linear(8)\n"
            "    mixer: {\n        param a: 6 x 8\n        from a\n        exp\n"
            "        e: neg\n        from proj\n        add(proj, e)\n    }\n}\n")
    model = exported(spec, "Tiny")
    text = import_model(model, (6, 8), "tiny", capture).text
    assert "param a: 6 x 8\n" in text and "from a\n" in text and "exp\n" in text
    reproduces(text, model, torch.randn(3, 6, 8))


class Shifted(nn.Module):
    """Swin-V2-like steps between layers: a map padded at the end of one axis and rolled
    along another, a cosine of tokens (`linalg.vector_norm`, clamped from below), a
    value masked by comparisons with numbers (`where` with a number), and an
    nn.Upsample."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        y = torch.roll(nn.functional.pad(self.conv(x), (0, 2)), -1, 2)  # 4 x 6 x 8
        tokens = self.up(y).flatten(2).transpose(1, 2)  # 96 x 4
        unit = tokens / torch.clamp_min(torch.linalg.vector_norm(tokens, dim=-1, keepdim=True),
                                        1e-12)
        scores = self.proj(unit)
        kept = torch.where(scores >= 0.0, scores, 0.0)
        return torch.where(kept < 0.5, kept, unit)


@pytest.mark.parametrize("capture", CAPTURES)
def test_pads_rolls_norms_comparisons_and_casts_between_layers(capture):
    model = Shifted()
    text = import_model(model, (3, 4, 6), "shifted", capture).text
    for statement in ("pad(0, 2, axis = 2)", "roll(-1, axis = 1)", "upsample", "norm(-1, keep = true)",
                      "ge(0)", "where(", "lt(0.5)"):
        assert statement in text, statement
    reproduces(text, model, torch.randn(2, 3, 4, 6))


@pytest.mark.parametrize("pads, message", [
    ((1, 1, 1, 1), "of several axes"), ((0, 1), None)])
def test_a_pad_of_several_axes_stops_with_one_line(pads, message):
    class Padded(nn.Module):
        def forward(self, x):
            return nn.functional.pad(x, pads)
    if message is None:
        assert "pad(0, 1, axis = 2)" in import_model(Padded(), (3, 4, 6), "p", "fx").text
        return
    with pytest.raises(ImportFailure, match=r"^`pad` in `forward` \(test_import_parameters.py:"
                                            r"\d+\): `pad` \(1, 1, 1, 1\) of the batch, of "
                                            "several axes"):
        import_model(Padded(), (3, 4, 6), "p", "fx")


class TimeConditioned(nn.Module):
    """A map plus an embedding of a second input broadcast over its height and width,
    then residual blocks of a ModuleList and a pad and roll before the head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
                                     for _ in range(2)])
        self.time = nn.Embedding(100, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x, t):
        x = self.stem(x) + self.time(t)[:, 0, :, None, None]
        for block in self.blocks:
            x = x + block(x)
        return self.head(torch.roll(nn.functional.pad(x, (0, 1)), 1, 2).mean((2, 3)))


def test_a_value_broadcast_to_another_is_added_by_name_not_as_a_residual():
    """`x + t[:, :, None, None]` adds values of two shapes: `add(a, b)` of named values,
    which broadcasts, where a residual's two sides must agree; from the sum on, where
    every path meets again, the blocks are residuals once more."""
    model = TimeConditioned()
    text = import_model(model, [("x", (3, 8, 8)), ("t", (1,))], "net", "auto",
                        [False, True]).text
    assert "add(stem, unsqueeze)" in text and "repeat 2 as i {\n        residual {" in text
    result = compile_source(text)
    assert result.ok, text
    lowered = lower_fx(result.graph).eval()
    lowered.load_state_dict(model.state_dict())
    x, t = torch.randn(2, 3, 8, 8), torch.randint(0, 100, (2, 1))
    with torch.no_grad():
        torch.testing.assert_close(lowered(x, t), model.eval()(x, t), rtol=1e-5, atol=1e-5)
