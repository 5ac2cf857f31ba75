"""`archdsl import` of tables looked up by a constant index: a relative position bias table
(a parameter) read at the rows a relative position index (a buffer) names, as archdsl's
`index_select` and the files `archdsl export` writes do. The buffer comes back as the
language's `buffer ... = relative_position_index(h, w)` where its values are that
initialiser's, and stops the import where they are no initialiser's."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from archdsl import compile_source  # noqa: E402
from archdsl.backends.export_pytorch import export_pytorch  # noqa: E402
from archdsl.backends.lower_fx import lower_fx  # noqa: E402
from archdsl.ops.functions import (index_select, relative_coords_table,  # noqa: E402
                                   relative_position_index)
from archdsl.tools.import_lookups import buffer_init  # noqa: E402
from archdsl.tools.import_torch import ImportFailure, import_torch  # noqa: E402


class RelativeBias(nn.Module):
    """Attention scores (groups x heads x n x n, n = window², as MaxViT's windows) plus a
    learned bias per head and relative offset, looked up as archdsl lowers
    `index_select`: both tensors given the batch, the table read along its rows; then
    a softmax over the keys, a layer that follows."""

    def __init__(self, heads: int = 3, window: int = 4):
        super().__init__()
        self.relative_position_bias_table = nn.Parameter(
            torch.randn((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window, window))
        self.weights = nn.Softmax(dim=4)

    def forward(self, scores):
        batch = scores.size(0)
        bias = index_select(self.relative_position_bias_table.expand(batch, -1, -1),
                            self.relative_position_index.expand(batch, -1, -1), 1)
        return self.weights(scores + bias.permute(0, 3, 1, 2).unsqueeze(1))


def test_a_bias_table_looked_up_by_an_index_buffer_imports_and_gives_equal_outputs():
    model = RelativeBias().eval()
    text = import_torch(model, (2, 3, 16, 16), "relative_bias")
    assert "param relative_position_bias_table: 49 x 3 as signal" in text
    assert "buffer relative_position_index: 16 x 16 = relative_position_index(4, 4)" in text
    assert "index_select(relative_position_bias_table, relative_position_index)" in text
    result = compile_source(text)
    assert result.ok, text
    lowered = lower_fx(result.graph).eval()
    assert list(lowered.state_dict()) == list(model.state_dict())
    lowered.load_state_dict(model.state_dict())
    x = torch.randn(2, 2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(lowered(x), model(x))


def test_a_buffer_of_values_no_initialiser_gives_stops_the_import_naming_it():
    model = RelativeBias()
    model.relative_position_index.copy_(model.relative_position_index.flip(0))
    with pytest.raises(ImportFailure, match=r"^forward\(\) reads the buffer "
                                            r"`relative_position_index`, whose values no "
                                            r"initialiser of the language gives"):
        import_torch(model, (2, 3, 16, 16))


def test_a_buffer_read_by_an_element_wise_op_is_refused_by_name():
    class Shifted(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("shift", relative_coords_table(2, 2))

        def forward(self, x):
            return x + self.shift

    with pytest.raises(ImportFailure, match=r"forward\(\) reads the tensor `shift` itself"):
        import_torch(Shifted(), (3, 3, 2))


@pytest.mark.parametrize("init, height, width", [
    ("relative_position_index", 7, 7), ("relative_position_index", 2, 5),
    ("relative_coords_table", 8, 8), ("relative_coords_table", 3, 6)])
def test_buffer_values_are_recognised_with_their_sizes_whatever_their_layout(init, height,
                                                                            width):
    values = {"relative_position_index": relative_position_index,
              "relative_coords_table": relative_coords_table}[init](height, width)
    assert buffer_init("b", values.reshape(-1)) == f"{init}({height}, {width})"
    wrong = values.reshape(-1).clone()
    wrong[-1] += 1
    with pytest.raises(ImportFailure, match="`b`"):
        buffer_init("b", wrong)


SPEC = """
network relative_bias(heads = 3) {
    input scores: 3 x 49 x 49
    attn: {
        param relative_position_bias_table: 169 x heads as signal = trunc_normal(std = 0.02)
        buffer relative_position_index: 49 x 49 = relative_position_index(7, 7)
              index_select(relative_position_bias_table, relative_position_index)
        bias: permute(2, 0, 1)
              add(scores, bias)
    }
}
"""


def test_an_exported_file_computes_its_constant_buffers_without_the_weights():
    """The buffers a spec declares are its initialisers' values, so the exported model
    holds them from its constructor, as the lowered module does; the importer reads
    them back from such a model before any weights are loaded."""
    graph = compile_source(SPEC).graph
    namespace: dict = {}
    exec(compile(export_pytorch(graph).source, "relative_bias.py", "exec"), namespace)
    model = namespace["RelativeBias"]()
    assert torch.equal(model.attn.relative_position_index,
                       lower_fx(graph).get_buffer("attn.relative_position_index"))
    text = import_torch(model, (3, 49, 49), "relative_bias")
    assert "buffer relative_position_index: 49 x 49 = relative_position_index(7, 7)" in text
