"""The one axis rule: every axis argument, negative ones included, on every layout,
means in the built module what it means to `check` (axes counted without the batch,
-1 the last), checked against torch's own indexing."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from archdsl import ir  # noqa: E402
from archdsl import compile_source  # noqa: E402
from archdsl.backends.lower_fx import lower_fx  # noqa: E402
from archdsl.ops import AXIS_KINDS, OPS  # noqa: E402
from archdsl.ops.shapes import LAYOUT_DTYPES, LAYOUTS  # noqa: E402


def _torch(axis: int) -> int:
    """The spec's axis as torch numbers it: the batch first, a negative axis as it is."""
    return axis + 1 if axis >= 0 else axis


def _slice(x, a):
    index = [slice(None)] * x.dim()
    index[_torch(a["axis"])] = slice(a["start"], a["end"], a["step"])
    return x[tuple(index)]


# op -> (argument strategy given the rank and sizes, spec call text, torch reference)
CASES = {
    "flatten": (lambda rank, dims: st.tuples(st.integers(-rank, rank - 1),
                                             st.integers(-rank, rank - 1)).map(sorted_axes(rank)),
                lambda a: f"flatten({a['start']}, {a['end']})",
                lambda x, a: torch.flatten(x, _torch(a["start"]), _torch(a["end"]))),
    "transpose": (lambda rank, dims: st.fixed_dictionaries(
                      {"a": st.integers(-rank, rank - 1), "b": st.integers(-rank, rank - 1)}),
                  lambda a: f"transpose({a['a']}, {a['b']})",
                  lambda x, a: x.transpose(_torch(a["a"]), _torch(a["b"]))),
    "permute": (lambda rank, dims: st.permutations(range(rank)).flatmap(
                    lambda order: st.tuples(*(st.sampled_from((i, i - rank)) for i in order))
                ).map(lambda order: {"order": order}),
                lambda a: f"permute({', '.join(map(str, a['order']))})",
                lambda x, a: x.permute(0, *(_torch(i) for i in a["order"]))),
    "take": (lambda rank, dims: st.integers(-rank, rank - 1).flatmap(
                 lambda axis: st.fixed_dictionaries({"axis": st.just(axis), "index": st.integers(
                     -dims[axis], dims[axis] - 1)})),
             lambda a: f"take({a['index']}, axis = {a['axis']})",
             lambda x, a: x.select(_torch(a["axis"]), a["index"])),
    "slice": (lambda rank, dims: st.integers(-rank, rank - 1).flatmap(
                  lambda axis: st.fixed_dictionaries({
                      "axis": st.just(axis), "start": st.integers(-dims[axis], dims[axis] - 1),
                      "end": st.just(dims[axis]), "step": st.integers(1, 2)})),
              lambda a: f"slice({a['start']}, {a['end']}, axis = {a['axis']}, step = {a['step']})",
              _slice),
    "concat": (lambda rank, dims: st.fixed_dictionaries({"axis": st.integers(-rank, rank - 1)}),
               lambda a: f"a: identity; b: identity; concat(a, b, axis = {a['axis']})",
               lambda x, a: torch.cat((x, x), _torch(a["axis"]))),
    "softmax": (lambda rank, dims: st.fixed_dictionaries({"axis": st.integers(-rank, rank - 1)}),
                lambda a: f"softmax(axis = {a['axis']})",
                lambda x, a: torch.softmax(x, _torch(a["axis"]))),
    "log_softmax": (lambda rank, dims: st.fixed_dictionaries(
                        {"axis": st.integers(-rank, rank - 1)}),
                    lambda a: f"log_softmax({a['axis']})",
                    lambda x, a: torch.log_softmax(x, _torch(a["axis"]))),
    "cumsum": (lambda rank, dims: st.fixed_dictionaries({"axis": st.integers(-rank, rank - 1)}),
               lambda a: f"cumsum({a['axis']})",
               lambda x, a: torch.cumsum(x, _torch(a["axis"]))),
}


def reduced_axes(rank, dims):
    """Distinct axes, each written positive or negative; all of them only with `keep`."""
    def arguments(order):
        return st.fixed_dictionaries({"axis": st.tuples(*(
            st.sampled_from((i, i - rank)) for i in order)), "keep": st.booleans()}).filter(
            lambda a: a["keep"] or len(a["axis"]) < rank)
    return st.permutations(range(rank)).flatmap(
        lambda order: st.integers(1, rank).flatmap(lambda n: arguments(order[:n])))


def _reduction(name, reference):
    return (reduced_axes,
            lambda a: f"{name}({', '.join(map(str, a['axis']))}, keep = "
                      f"{'true' if a['keep'] else 'false'})",
            lambda x, a: reference(x, tuple(_torch(i) for i in a["axis"]), a["keep"]))


CASES |= {
    "pad": (lambda rank, dims: st.fixed_dictionaries({"axis": st.integers(-rank, rank - 1),
                                                      "before": st.integers(0, 2),
                                                      "after": st.integers(0, 2)}),
            lambda a: f"pad({a['before']}, {a['after']}, axis = {a['axis']})",
            lambda x, a: torch.cat([torch.zeros_like(x.narrow(_torch(a["axis"]), 0, 1)).expand(
                *[-1] * (_torch(a["axis"]) % x.dim()), a["before"], *[-1] * (
                    x.dim() - 1 - _torch(a["axis"]) % x.dim())), x,
                torch.zeros_like(x.narrow(_torch(a["axis"]), 0, 1)).expand(
                *[-1] * (_torch(a["axis"]) % x.dim()), a["after"], *[-1] * (
                    x.dim() - 1 - _torch(a["axis"]) % x.dim()))], _torch(a["axis"]))),
    "roll": (lambda rank, dims: st.fixed_dictionaries({"axis": st.integers(-rank, rank - 1),
                                                       "shift": st.integers(-3, 3)}),
             lambda a: f"roll({a['shift']}, axis = {a['axis']})",
             lambda x, a: torch.roll(x, a["shift"], _torch(a["axis"]))),
    "index_select": (lambda rank, dims: st.integers(-rank, rank - 1).flatmap(
                         lambda axis: st.fixed_dictionaries({"axis": st.just(axis), "k": st.integers(
                             1, dims[axis])})),
                     lambda a: f"i: topk({a['k']}, axis = {a['axis']}, indices = true)\n"
                               f"    index_select(x, i, axis = {a['axis']})",
                     lambda x, a: _index_select(x, torch.topk(x, a["k"], _torch(a["axis"]))[1],
                                                _torch(a["axis"]) % x.dim())),
    "positions": (lambda rank, dims: st.fixed_dictionaries({"axis": st.integers(-rank, rank - 1)}),
                  lambda a: f"positions({a['axis']})",
                  lambda x, a: torch.arange(x.shape[_torch(a["axis"])], dtype=torch.float64
                                            ).expand(x.shape[0], -1)),
    "topk": (lambda rank, dims: st.integers(-rank, rank - 1).flatmap(
                 lambda axis: st.fixed_dictionaries({"axis": st.just(axis), "k": st.integers(
                     1, dims[axis]), "indices": st.booleans()})),
             lambda a: f"topk({a['k']}, axis = {a['axis']}, indices = "
                       f"{'true' if a['indices'] else 'false'})",
             lambda x, a: torch.topk(x, a["k"], _torch(a["axis"]))[1 if a["indices"] else 0]),
    "argmax": (lambda rank, dims: st.fixed_dictionaries({"axis": st.integers(-rank, rank - 1),
                                                         "keep": st.just(True)}),
               lambda a: f"argmax({a['axis']}, keep = true)",
               lambda x, a: torch.argmax(x, _torch(a["axis"]), keepdim=True)),
    "gather": (lambda rank, dims: st.integers(-rank, rank - 1).flatmap(
                   lambda axis: st.fixed_dictionaries({"axis": st.just(axis), "k": st.integers(
                       1, dims[axis])})),
               lambda a: f"i: topk({a['k']}, axis = {a['axis']}, indices = true)\n"
                         f"    gather(x, i, axis = {a['axis']})",
               lambda x, a: torch.gather(x, _torch(a["axis"]), torch.topk(
                   x, a["k"], _torch(a["axis"]))[1])),
    "scatter_add": (lambda rank, dims: st.integers(-rank, rank - 1).flatmap(
                        lambda axis: st.fixed_dictionaries({"axis": st.just(axis),
                                                            "k": st.integers(1, dims[axis])})),
                    lambda a: f"i: topk({a['k']}, axis = {a['axis']}, indices = true)\n"
                              f"    from x\n    s: slice(0, {a['k']}, axis = {a['axis']})\n"
                              f"    scatter_add(x, i, s, axis = {a['axis']})",
                    lambda x, a: x.scatter_add(_torch(a["axis"]), torch.topk(
                        x, a["k"], _torch(a["axis"]))[1], x.narrow(_torch(a["axis"]), 0, a["k"]))),
    "mean": _reduction("mean", lambda x, dim, keep: x.mean(dim, keepdim=keep)),
    "sum": _reduction("sum", lambda x, dim, keep: x.sum(dim, keepdim=keep)),
    "amax": _reduction("amax", lambda x, dim, keep: x.amax(dim, keepdim=keep)),
    "amin": _reduction("amin", lambda x, dim, keep: x.amin(dim, keepdim=keep)),
    "var": _reduction("var", lambda x, dim, keep: x.var(dim, keepdim=keep)),
    "std": _reduction("std", lambda x, dim, keep: x.std(dim, keepdim=keep)),
    "norm": _reduction("norm", lambda x, dim, keep: torch.linalg.vector_norm(
        x, dim=dim, keepdim=keep)),
}


def _index_select(x, index, dim):
    """x's entries along `dim` that `index` names, sample by sample, by a loop."""
    rows = []
    for b in range(x.shape[0]):
        picked = x[b].index_select(dim - 1, index[b].flatten())
        shape = x[b].shape[:dim - 1] + index[b].shape + x[b].shape[dim:]
        rows.append(picked.reshape(shape))  # the flat picks stand where the axis stood
    return torch.stack(rows)


def sorted_axes(rank: int):
    def arrange(pair):
        start, end = sorted(pair, key=lambda a: a % rank)
        return {"start": start, "end": end}
    return arrange


def test_every_op_with_an_axis_argument_is_covered():
    with_axes = {op.name for op in OPS.values() if any(a.kind in AXIS_KINDS for a in op.args)}
    assert with_axes == set(CASES)


@st.composite
def case(draw):
    op = draw(st.sampled_from(sorted(CASES)))
    readable = [name for name in sorted(LAYOUTS)  # token ids only where the op reads ints
                if LAYOUT_DTYPES.get(name, "float") in OPS[op].accepts]
    layout = draw(st.sampled_from(readable))
    rank = len(LAYOUTS[layout])
    dims = tuple(draw(st.lists(st.integers(2, 5), min_size=rank, max_size=rank)))
    strategy = CASES[op][0]
    if op == "take" and rank == 1:
        op, strategy = "slice", CASES["slice"][0]
    args = draw(strategy(rank, dims))
    return layout, dims, op, args


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case())
def test_an_axis_means_in_the_module_what_it_means_to_check(example):
    layout, dims, op, args = example
    _, call, reference = CASES[op]
    text = (f"network t {{ input x: {' x '.join(map(str, dims))} as {layout}\n"
            f"    {call(args)} }}")
    result = compile_source(text)
    assert result.ok, text
    graph = result.graph
    inferred = graph.nodes[ir.network(graph).outputs[0].node]["shape"]
    x = torch.randn(3, *dims, dtype=torch.float64)
    if layout == "token_ids":
        x = torch.randint(0, 5, (3, *dims))
    expected = reference(x, args)
    got = lower_fx(graph).double()(x)
    assert tuple(got.shape) == tuple(expected.shape) == (3, *inferred), text
    assert torch.equal(got, expected), text


@pytest.mark.parametrize("call", ["slice(0, 2, axis = -4)", "flatten(-4, -1)", "mean(3)",
                                  "transpose(0, -4)", "permute(0, 1, -4)", "take(0, axis = 3)"])
def test_an_axis_outside_the_value_is_E0310_at_its_line(call):
    result = compile_source(f"network t {{ input x: 3 x 5 x 7\n    {call} }}")
    assert [d.code for d in result.diagnostics] == ["E0310"]
    assert result.diagnostics[0].primary.span.line == 2


def test_a_mean_over_the_only_axis_is_named_as_mean():
    result = compile_source("network t { input x: 64\n    mean(-1) }")
    assert [d.message for d in result.diagnostics] == ["mean over every axis leaves no axis"]
