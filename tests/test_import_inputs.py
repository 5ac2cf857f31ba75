"""`archdsl import` of models whose forward() takes several arguments: an `--input` for
each, in forward()'s order or named as its parameters, a spec with an `input` statement
for each that gives the model's outputs on the same inputs, and wrong `--input`s as
one-line usage errors."""
from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

from archdsl import compile_file, compile_source  # noqa: E402
from archdsl.backends.lower_fx import lower_fx  # noqa: E402
from archdsl.cli import EXIT_USAGE, main  # noqa: E402
from archdsl.tools.import_torch import ImportFailure, import_model, import_torch  # noqa: E402

MODEL = textwrap.dedent('''
    import torch
    from torch import nn


    class Tagged(nn.Module):
        """Token ids embedded, plus a projection of each token's float features."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.project = nn.Linear(4, 8)
            self.norm = nn.LayerNorm(8)
            self.head = nn.Linear(8, 5)

        def forward(self, ids, features):
            return self.head(self.norm(self.embed(ids) + self.project(features)))


    def tagged():
        torch.manual_seed(0)
        return Tagged()
''')


class TwoHeads(torch.nn.Module):
    """Two inputs, and two outputs returned as a dict: a trunk's features and a head's."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.gate = torch.nn.Conv2d(1, 4, 1)
        self.head = torch.nn.Conv2d(4, 2, 1)

    def forward(self, image, mask):
        features = torch.relu(self.stem(image) + self.gate(mask))
        return {"features": features, "logits": self.head(features)}


class Masked(torch.nn.Module):
    """An optional argument, read where it is given."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 8)

    def forward(self, x, mask=None):
        return self.proj(x) if mask is None else self.proj(x) * mask


def outputs_agree(model, text, examples) -> None:
    """The spec, lowered with the model's weights, gives the model's outputs."""
    result = compile_source(text)
    assert result.ok, [d.message for d in result.diagnostics]
    lowered = lower_fx(result.graph).eval()
    lowered.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(lowered(*examples), model.eval()(*examples))


def test_each_argument_of_forward_is_an_input_named_as_its_parameter(tmp_path, capsys):
    path = tmp_path / "two_inputs.py"
    path.write_text(MODEL)
    out = tmp_path / "tagged.arch"
    # the named one goes to its parameter, the unnamed one to the other, in order
    assert main(["import", f"{path}:tagged", "--input", "features=6x4",
                 "--input", "6 as token_ids", "-o", str(out)]) == 0
    text = out.read_text()
    assert "input ids: 6 as token_ids\n" in text
    assert "input features: 6 x 4 as tokens\n" in text
    assert text.index("input ids") < text.index("input features")
    assert "from features" in text or "from ids" in text
    assert compile_file(out).ok
    namespace: dict = {}
    exec(compile(MODEL, str(path), "exec"), namespace)
    model = namespace["tagged"]()
    ids = torch.randint(0, 20, (2, 6), generator=torch.Generator().manual_seed(1))
    outputs_agree(model, text, (ids, torch.randn(2, 6, 4)))


def test_a_model_of_several_outputs_names_them_as_its_dict_does():
    torch.manual_seed(0)
    model = TwoHeads()
    text = import_torch(model, [(3, 8, 8), ("mask", (1, 8, 8))], "two_heads")
    assert "input image: 3 x 8 x 8\n" in text and "input mask: 1 x 8 x 8\n" in text
    assert "output features" in text and "output logits" in text
    outputs_agree(model, text, (torch.randn(2, 3, 8, 8), torch.randn(2, 1, 8, 8)))


def test_torch_export_takes_an_example_for_each_input_their_length_shared(tmp_path):
    namespace: dict = {}
    exec(compile(MODEL, "two_inputs.py", "exec"), namespace)
    model = namespace["tagged"]()
    imported = import_model(model, [(6,), (6, 4)], "tagged", "export", [True, False])
    assert imported.capture == "export"
    assert "sequence length dynamic" in imported.why  # ids and features grow together
    ids = torch.randint(0, 20, (2, 6), generator=torch.Generator().manual_seed(1))
    outputs_agree(model, imported.text, (ids, torch.randn(2, 6, 4)))


def test_an_optional_argument_is_an_input_where_given_and_named_where_read_without():
    model = Masked()
    text = import_torch(model, [(4,), (8,)], "masked")
    assert "input x: 4\n" in text and "input mask: 8\n" in text
    outputs_agree(model, text, (torch.randn(2, 4), torch.randn(2, 8)))
    with pytest.raises(ImportFailure, match=r"the traced forward\(\) reads `mask`, which no "
                                            r"input is given for"):
        import_torch(model, (4,), "masked")


@pytest.mark.parametrize("inputs, message", [
    (["nope=6"], "forward() has no parameter `nope` (it takes ids, features)"),
    (["6", "6x4", "6"], "3 inputs given; forward() takes 2 (ids, features)"),
    (["6 as token_ids"], "forward() needs features too"),
    (["6 as token_ids", "6x0"], "bad shape `6x0`"),
    (["6x4 as token_ids", "6x4"], "token ids have one axis"),
    (["ids=6", "ids=7"], "--input ids=... given twice"),
])
def test_a_wrong_input_is_a_usage_error_of_one_line(tmp_path, capsys, inputs, message):
    path = tmp_path / "two_inputs.py"
    path.write_text(MODEL)
    arguments = [part for each in inputs for part in ("--input", each)]
    assert main(["import", f"{path}:tagged", *arguments]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
