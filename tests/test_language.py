"""The constructs of the .arch language, one behaviour per test."""
from __future__ import annotations

from archdsl import ir
from archdsl import Limits, compile_source
from archdsl.passes.count_costs import total


def ok(text: str, **options):
    result = compile_source(text, **options)
    assert result.ok, [d.message for d in result.diagnostics]
    return result.graph


def codes(text: str, **options) -> list[str]:
    return [d.code for d in compile_source(text, **options).diagnostics]


def shape(graph, name):
    return graph.nodes[name]["shape"]


NET = "network t {{ input x: 3 x 32 x 32\n{} }}"


def test_unlabelled_layers_number_like_sequential():
    graph = ok(NET.format("features: { conv(8, 3); relu; repeat 2 { conv(8, 3, pad = 1); relu } }"))
    assert [n for n in graph if n != "x"] == [f"features.{i}" for i in range(6)]


def test_labelled_repeat_indexes_each_iteration():
    graph = ok("block b(c) { c1: conv(c, 1); relu }\n" + NET.format("stage: repeat 3 { b(4) }"))
    assert "stage.2.c1" in graph and "stage.0.0" in graph


def test_repeat_index_and_conditional_expression():
    graph = ok(NET.format("s: repeat 3 as i { conv(4 * (i + 1), 3, stride = i == 0 ? 2 : 1, pad = 1) }"))
    assert shape(graph, "s.0.0") == (4, 16, 16)
    assert shape(graph, "s.2.0") == (12, 16, 16)


def test_keyword_and_positional_arguments_and_defaults():
    graph = ok("block b(width, stride = 1, expansion = 2) { conv(width * expansion, 3, "
               "stride = stride, pad = 1) }\n" + NET.format("b(8, expansion = 3); b(stride = 2, width = 4)"))
    assert [shape(graph, n) for n in ("0", "1")] == [(24, 32, 32), (8, 16, 16)]


def test_block_defaults_may_read_in_channels():
    graph = ok("block keep(width = in.channels) { conv(width, 1) }\n" + NET.format("keep"))
    assert shape(graph, "0") == (3, 32, 32)


def test_let_and_arithmetic():
    graph = ok(NET.format("let w = 10 // 3 + 2 * 4 - 1\nlet f = 3 / 2\n"
                          "conv(w, 3); dropout(f - 1.0)"))
    assert shape(graph, "0")[0] == 10


def test_boolean_logic_and_if_else():
    graph = ok("block b(bn) { conv(4, 3); if bn and not false { batchnorm } else { relu } }\n"
               + NET.format("one: b(true); two: b(false)"))
    assert graph.nodes["one.1"]["node"].op == "batchnorm"
    assert graph.nodes["two.1"]["node"].op == "relu"


def test_residual_identity_and_conditional_projection():
    block = ("block r(w, stride = 1) { residual { conv(w, 3, stride = stride, pad = 1) } "
             "skip proj when stride != 1 or in.channels != w { conv(w, 1, stride = stride) } }\n")
    graph = ok(block + NET.format("a: r(3); b: r(8, stride = 2)"))
    assert "a.proj.0" not in graph and "b.proj.0" in graph
    assert graph.nodes["a.add"]["node"].inputs == ("a.0", "x")
    assert graph.nodes["a.add"]["node"].role == "residual"


def test_concat_branches_in_order_and_identity_branch():
    graph = ok(NET.format("m: concat { left: conv(5, 1); {}; right: { conv(7, 3, pad = 1); relu } }"))
    assert shape(graph, "m.concat") == (15, 32, 32)
    assert graph.nodes["m.concat"]["node"].inputs == ("m.left", "x", "m.right.1")


def test_named_values_make_a_dag_unet_style():
    graph = ok(NET.format("""
        enc1: conv(8, 3, pad = 1)
        down: maxpool(2)
        mid:  conv(16, 3, pad = 1)
        up:   upsample(2)
        concat(enc1, up)
        out1: conv(2, 1)"""))
    assert graph.nodes["0"]["node"].inputs == ("enc1", "up")
    assert shape(graph, "out1") == (2, 32, 32)


def test_dense_concatenation_of_earlier_features():
    graph = ok(NET.format("""
        stem: conv(8, 3, pad = 1)
        a: conv(4, 3, pad = 1)
        j1: concat(stem, a)
        b: conv(4, 3, pad = 1)
        j2: concat(stem, a, b)"""))
    assert shape(graph, "j2") == (16, 32, 32)


def test_add_and_mul_need_identical_shapes():
    assert codes(NET.format("a: conv(4, 1); b: conv(4, 1, stride = 2); add(a, b)")) == ["E0300"]
    assert codes(NET.format("a: conv(4, 1); b: conv(4, 1); mul(a, b)")) == []


def test_from_switches_the_current_value_and_multiple_inputs():
    graph = ok("""network two {
        input rgb: 3 x 16 x 16
        input depth: 1 x 16 x 16
        d: conv(4, 3, pad = 1)
        from rgb
        r: conv(4, 3, pad = 1)
        concat(r, d)
    }""")
    assert ir.network(graph).inputs == ("rgb", "depth")
    assert shape(graph, "0") == (8, 16, 16)


def test_aux_outputs_are_train_only_and_do_not_change_the_flow():
    graph = ok(NET.format("""
        c: conv(4, 3)
        side: aux(weight = 0.3) { global_avgpool; flatten; linear(10) }
        head: { global_avgpool; flatten; linear(5) }
        output logits"""))
    outputs = {o.name: o for o in ir.network(graph).outputs}
    assert outputs["logits"].node == "head.2" and not outputs["logits"].train_only
    assert outputs["side"].train_only and outputs["side"].weight == 0.3
    assert graph.nodes["side.2"]["node"].train_only
    assert total(graph, train=False).params == total(graph).params - (4 * 10 + 10)


def test_attributes_of_named_values():
    graph = ok(NET.format("a: conv(6, 3); conv(a.channels * 2, a.height - 29)"))
    assert shape(graph, "0") == (12, 30, 30)


def test_conv_arguments():
    graph = ok(NET.format("""
        a: conv(8, (3, 5), pad = (1, 2))
        b: conv(8, 3, pad = same, dilation = 2)
        c: conv(8, 3, groups = 4, bias = false)
        d: conv(8, 3, stride = (2, 1), pad = valid)"""))
    assert shape(graph, "a") == (8, 32, 32)
    assert shape(graph, "b") == (8, 32, 32)
    assert shape(graph, "c") == (8, 30, 30)
    assert shape(graph, "d") == (8, 14, 28)
    assert graph.nodes["c"]["cost"].params == 8 * 2 * 9


def test_pool_shapes_follow_torch_including_ceil_mode():
    graph = ok(NET.format("""
        a: maxpool(3, stride = 2)
        b: avgpool(3, stride = 2, ceil_mode = true)
        c: adaptive_avgpool(2, 3)"""))
    assert shape(graph, "a") == (3, 15, 15)
    assert shape(graph, "b") == (3, 7, 7)
    assert shape(graph, "c") == (3, 2, 3)


def test_every_activation_and_misc_layer_keeps_the_shape():
    layers = ("relu; relu6; leaky_relu(0.2); sigmoid; tanh; gelu; silu; hardswish; hardsigmoid; "
              "softmax; identity; dropout; lrn")
    graph = ok(NET.format(layers))
    assert {shape(graph, n) for n in graph} == {(3, 32, 32)}


def test_settings_and_input_overrides():
    text = "network t(classes = 10) { input x: 3 x 32 x 32; flatten; linear(classes) }"
    graph = ok(text, settings={"classes": 7}, inputs={"*": (1, 8, 8)})
    assert shape(graph, "1") == (7,) and ir.network(graph).params == {"classes": 7}
    assert graph.nodes["1"]["cost"].params == 64 * 7 + 7


def test_imports_relative_and_std(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.arch").write_text("block pair(c) { conv(c, 1); relu }")
    (tmp_path / "net.arch").write_text('import "lib/blocks.arch"\nimport std.resnet\n'
                                       "network n { input x: 3 x 8 x 8; pair(64); basic(64) }")
    from archdsl import compile_file
    result = compile_file(tmp_path / "net.arch")
    assert result.ok and shape(result.graph, "add") == (64, 8, 8)


def test_import_cycle_is_reported(tmp_path):
    (tmp_path / "a.arch").write_text('import "b.arch"\nnetwork a { input x: 3 }')
    (tmp_path / "b.arch").write_text('import "a.arch"\nblock b() { relu }')
    from archdsl import compile_file
    assert [d.code for d in compile_file(tmp_path / "a.arch").diagnostics] == ["E0401"]


def test_endless_recursion_stops_at_the_block_depth_limit():
    result = compile_source("block a() { repeat 2 { a() } }\n" + NET.format("a()"))
    assert [d.code for d in result.diagnostics] == ["E0402"]
    assert ir.network(result.graph).work < 1000


def test_block_calls_that_add_no_layers_are_bounded_by_work():
    """2**60 calls, no layers: stopped after the work limit, with the call chain folded."""
    spec = "block f(n) { if n > 0 { f(n - 1); f(n - 1) } }\n" + NET.format("f(60)")
    result = compile_source(spec, limits=Limits(max_nodes=1000))
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "E0404" and "3,000 steps" in diagnostic.message
    assert ir.network(result.graph).work == Limits(max_nodes=1000).max_work + 1
    (note,) = diagnostic.notes
    assert note.startswith("in `f` called at <string>:1:") and "inside 60 more calls of `f`" in note


def test_node_limit_is_foreseen_for_a_repeat_without_index():
    result = compile_source(NET.format("repeat 1000000000 { relu }"))
    assert [d.code for d in result.diagnostics] == ["E0403"]
    assert ir.network(result.graph).work < 10  # one iteration, then the projection
    assert codes(NET.format("repeat 20 { relu }"), limits=Limits(max_nodes=10)) == ["E0403"]


def test_repeat_counts_each_layer_once_against_the_limit():
    assert ok(NET.format("repeat 60 { relu }"), limits=Limits(max_nodes=100))
    assert ok(NET.format("repeat 99 { relu }"), limits=Limits(max_nodes=100))
    assert codes(NET.format("repeat 100 { relu }"), limits=Limits(max_nodes=100)) == ["E0403"]


def test_independent_errors_are_reported_together():
    found = codes(NET.format("concat { a: convv(3); b: conv(3, 3, strid = 1); c: linear(4) }"))
    assert found == ["E0200", "E0202", "E0305"]


def test_errors_do_not_cascade_downstream():
    assert codes(NET.format("conv(8, 99); relu; conv(4, 3); flatten; linear(10)")) == ["E0303"]


def test_trace_names_the_block_expansion_chain():
    result = compile_source("block inner() { conv(4, 40) }\nblock outer() { inner() }\n"
                            + NET.format("outer()"))
    (diagnostic,) = result.diagnostics
    assert diagnostic.notes[0].startswith("in `inner` called at <string>:2:")
    assert diagnostic.notes[1].startswith("in `outer` called at <string>:")


def test_repeat_with_index_runs_every_iteration_even_if_some_add_nothing():
    graph = ok(NET.format("repeat 3 as i { if i == 1 { relu } }"))
    assert [graph.nodes[n]["node"].op for n in graph] == ["input", "relu"]


def test_empty_repeat_with_index_is_bounded_by_work():
    result = compile_source(NET.format("repeat 1000000000 as i { }"), limits=Limits(max_nodes=1000))
    assert [d.code for d in result.diagnostics] == ["E0404"]
    assert ir.network(result.graph).work == Limits(max_nodes=1000).max_work + 1


def test_a_block_may_shadow_a_layer_but_a_function_not_a_builtin():
    assert codes("block relu() { identity }\n" + NET.format("relu")) == ["W0200"]
    assert codes("def max(a, b) = a\n" + NET.format("relu")) == ["E0208"]


def test_merge_needs_two_operands_and_else_on_the_same_line():
    assert codes(NET.format("a: conv(3, 1); concat(a)")) == ["E0203"]
    result = compile_source("block b(x) { if x { relu }\n else { identity } }\n" + NET.format("b(true)"))
    assert "must follow `}` on the same line" in result.diagnostics[0].message


def test_long_flat_expressions_are_fine():
    graph = ok(NET.format("let w = " + " + ".join(["1"] * 400) + "\nconv(w, 1)"))
    assert shape(graph, "0") == (400, 32, 32)


def test_a_head_may_not_take_the_main_outputs_name():
    result = compile_source(NET.format("out: aux { flatten; linear(2) }; flatten; linear(3)"))
    assert [d.code for d in result.diagnostics] == ["E0216"]
    assert "name the main output" in result.diagnostics[0].help


def test_layers_no_output_needs_are_errors_but_aux_heads_are_not():
    assert codes(NET.format("a: conv(4, 3, pad = 1); conv(4, 3, pad = 1); add(a, a)")) == ["E0220"]
    assert codes("network t { input x: 3; input y: 3; from x; linear(2) }") == ["E0220"]
    graph = ok(NET.format("h: aux { flatten; linear(2) }; flatten; linear(3)"))
    assert [o.name for o in ir.network(graph).outputs] == ["out", "h"]
    assert codes(NET.format("a: conv(4, 1); output a; b: conv(2, 1)")) == ["E0220"]
    two = ok(NET.format("a: conv(4, 1); output a; b: conv(2, 1); output b"))
    assert [o.name for o in ir.network(two).outputs] == ["a", "b"]


def test_a_byte_order_mark_is_accepted(tmp_path):
    from archdsl import compile_file
    path = tmp_path / "bom.arch"
    path.write_bytes(b"\xef\xbb\xbf" + NET.format("conv(4, 3)").encode())
    result = compile_file(path)
    span = result.graph.nodes["0"]["node"].span
    assert result.ok and span.text == "conv(4, 3)" and (span.line, span.column) == (2, 1)


def test_imports_open_only_regular_files_of_bounded_size(tmp_path):
    import os
    from archdsl import compile_file
    from archdsl.lang.read import MAX_SOURCE_BYTES
    os.mkfifo(tmp_path / "pipe.arch")
    (tmp_path / "huge.arch").write_bytes(b" " * (MAX_SOURCE_BYTES + 1))
    for target, reason in (("pipe.arch", "not a regular file"), ("/dev/zero", "not a regular file"),
                           ("huge.arch", "larger than 4 MiB"), (".", "is a directory")):
        spec = tmp_path / "main.arch"
        spec.write_text(f'import "{target}"\n' + NET.format("conv(4, 3)"))
        (diagnostic,) = compile_file(spec).diagnostics
        assert diagnostic.code == "E0400" and reason in diagnostic.message, diagnostic.message


def test_a_failed_labelled_statement_does_not_make_its_readers_fail_too():
    assert codes(NET.format("a: conv(4, 99); b: conv(4, 1); c: add(a, b)")) == ["E0303"]


def test_floor_division_gives_an_integer_on_numbers_too():
    graph = ok("network t(w = 0.75) { input x: 3 x 8 x 8; conv(64 * w // 8, 1); "
               "conv(-7.5 // 2 + 10, 1) }")
    assert shape(graph, "0") == (6, 8, 8) and shape(graph, "1") == (6, 8, 8)


# ---- expression functions ----------------------------------------------------------------


def channels_of(expression: str, prelude: str = "") -> int:
    graph = ok(prelude + "\n" + NET.format(f"c: conv({expression}, 1)"))
    return shape(graph, "c")[0]


def test_builtin_functions_compute_as_python():
    assert channels_of("int(7.9)") == 7 and channels_of("int(-7.9) + 10") == 3
    assert channels_of("round(2.5)") == 2 and channels_of("round(3.5)") == 4
    assert channels_of("floor(7.5)") == 7 and channels_of("ceil(7.1)") == 8
    assert channels_of("min(9, 4, 6)") == 4 and channels_of("max(3, 5.0 // 1)") == 5
    assert channels_of("abs(-6)") == 6


def test_len_log_exp_and_sqrt_compute_as_python():
    assert channels_of("len((4, 8, 16)) * 2") == 6
    assert channels_of("int(log(10000) * 100)") == 921  # math.log: natural
    assert channels_of("round(exp(2))") == 7 and channels_of("int(sqrt(50))") == 7
    graph = ok(NET.format("c: conv(8, 1)\n mul(-log(10000))"))
    assert graph.nodes["0"]["node"].args["constant"] == -9.210340371976184


def test_len_log_and_sqrt_refuse_what_they_cannot_take():
    assert codes(NET.format("conv(len(3), 1)")) == ["E0212"]
    assert codes(NET.format("conv(int(log(0)), 1)")) == ["E0212"]
    assert codes(NET.format("conv(int(sqrt(-1)), 1)")) == ["E0212"]
    assert codes(NET.format("conv(int(exp(1000)), 1)")) == ["E0212"]
    assert codes("def len(t) = 3\n" + NET.format("conv(4, 1)")) == ["E0208"]


def test_def_functions_with_defaults_and_keywords():
    prelude = "def make_divisible(v, d = 8) = max(d, int(v + d / 2) // d * d)"
    assert channels_of("make_divisible(32 * 0.75)", prelude) == 24
    assert channels_of("make_divisible(10, d = 4)", prelude) == 12
    assert channels_of("make_divisible(1)", prelude) == 8
    twice = "def twice(x) = 2 * x\ndef quad(x) = twice(twice(x))"
    assert channels_of("quad(3)", twice) == 12


def test_function_errors_are_located():
    assert codes(NET.format("conv(maxx(3, 4), 1)")) == ["E0207"]
    assert codes(NET.format("conv(max(3), 1)")) == ["E0203"]
    assert codes(NET.format('conv(int("a"), 1)')) == ["E0212"]
    assert codes("def max(a, b) = a\n" + NET.format("conv(4, 1)")) == ["E0208"]
    assert codes("def f(x) = f(x)\n" + NET.format("conv(f(1), 1)")) == ["E0402"]
    assert codes("def f(x) = x\n" + NET.format("conv(f(1, 2), 1)")) == ["E0201"]
    assert codes("def f(x) = in.channels\n" + NET.format("conv(f(1), 1)")) == ["E0211"]


# ---- labels: numbered scopes, numbers, computed ------------------------------------------


def test_underscore_label_is_a_numbered_scope_as_in_sequential():
    graph = ok("block cba(c) { conv(c, 3, pad = 1); batchnorm; relu }\n" + NET.format(
        "features: { _: cba(8); _: cba(8); conv(4, 1) }"))
    names = [n for n in graph if n != "x"]
    assert names == ["features.0.0", "features.0.1", "features.0.2", "features.1.0",
                     "features.1.1", "features.1.2", "features.2"]


def test_number_labels_set_the_index():
    graph = ok(NET.format("seq: { 0: conv(4, 1); 3: relu; conv(4, 1) }"))
    assert [n for n in graph if n != "x"] == ["seq.0", "seq.3", "seq.4"]


def test_computed_labels_fill_in_expressions():
    graph = ok(NET.format('block1: repeat 1 { repeat 3 as i { "denselayer{i + 1}": conv(4, 1) } }\n'
                          '"{2 * 3}": relu'))
    assert [n for n in graph if n != "x"] == [
        "block1.0.denselayer1", "block1.0.denselayer2", "block1.0.denselayer3", "6"]


def test_computed_label_errors():
    assert codes(NET.format('"a b{1}": conv(4, 1)')) == ["E0221"]
    assert codes(NET.format('"x{1.5}": conv(4, 1)')) == ["E0221"]
    assert codes(NET.format('"x{}": conv(4, 1)')) == ["E0100"]
    assert codes(NET.format('"x{1 +}": conv(4, 1)')) == ["E0100"]
    assert codes(NET.format('"_{1}x": conv(4, 1)')) == ["E0219"]


# ---- residual when -----------------------------------------------------------------------


def test_residual_when_adds_the_shortcut_only_where_the_condition_holds():
    block = ("block ir(c, stride) { residual when stride == 1 and in.channels == c "
             "{ conv(c, 3, stride = stride, pad = 1) } }\n")
    graph = ok(block + NET.format("a: ir(3, 1); b: ir(8, 1); c: ir(8, 2)"))
    assert "a.add" in graph and "b.add" not in graph and "c.add" not in graph
    assert shape(graph, "c.0") == (8, 16, 16)
    assert codes(block + NET.format("ir(3, 1 == 1)")) == ["E0205"]


def test_a_second_network_with_the_same_error_reports_no_unused_values():
    text = ("block b(n) { conv(4, 1); relu; repeat n { relu } }\n"
            "network one { input x: 3 x 8 x 8; b(1.5) }\nnetwork two { input x: 3 x 8 x 8; b(1.5) }")
    assert codes(text) == ["E0205"]  # reported once; no E0220 from the second network


def test_tuple_items_by_index():
    graph = ok("network t(widths = (8, 16, 24)) { input x: 3 x 8 x 8\n"
               "repeat 3 as i { conv(widths[i], 1) }; c: conv(widths[-1] // 2, 1) }")
    assert [shape(graph, n)[0] for n in ("0", "1", "2", "c")] == [8, 16, 24, 12]
    assert codes("network t(w = (8, 16)) { input x: 3 x 8 x 8; conv(w[2], 1) }") == ["E0212"]
    assert codes("network t(w = 8) { input x: 3 x 8 x 8; conv(w[0], 1) }") == ["E0212"]
    assert codes("network t(w = (8, 16)) { input x: 3 x 8 x 8; conv(w[0.5], 1) }") == ["E0212"]


def test_a_block_named_like_a_layer_wins_with_a_warning():
    """A spec written before a layer of the same name existed keeps its meaning."""
    result = compile_source("""
block gelu(c) { linear(c); tanh }
network t { input x: 4 x 8 as tokens; g: gelu(6) }""")
    assert result.ok, [d.message for d in result.diagnostics]
    assert [(d.severity, d.code) for d in result.diagnostics] == [("warning", "W0200")]
    assert [ir.node(result.graph, n).op for n in result.graph] == ["input", "linear", "tanh"]


def test_numbers_label_branches_and_a_label_may_open_an_if():
    graph = compile_source("""network t {
    input x: 8 x 8 x 8
    mix: concat {
        0: { conv(4, 1); relu }
        1: conv(4, 3, pad = 1)
    }
    act: if true { relu } else { identity }
}""").graph
    assert list(graph) == ["x", "mix.0.0", "mix.0.1", "mix.1", "mix.concat", "act.0"]
    assert ir.scope(graph, "act").kind == "group"


# ---- stacks: push and pop -------------------------------------------------------------


STACKED = """
network stacked(levels = 3) {
    input image: 3 x 64 x 64
    down: repeat levels as i {
        conv(8 * (i + 1), 3, pad = 1)
        push skips
        maxpool(2)
    }
    up: repeat levels {
        let skip = pop(skips)
        u: upsample(2)
        concat(u, skip)
    }
}"""


def test_pop_takes_back_the_last_value_pushed_across_repeat_iterations():
    graph = ok(STACKED)
    joins = [ir.node(graph, f"up.{i}.0").inputs for i in range(3)]
    assert joins == [("up.0.u", "down.2.0"), ("up.1.u", "down.1.0"), ("up.2.u", "down.0.0")]
    assert shape(graph, "up.0.0")[0] == 24 + 24  # the deepest level's own features
    assert shape(graph, "up.2.0") == (24 + 24 + 16 + 8, 64, 64)


def test_push_leaves_the_current_value_and_makes_no_layer():
    graph = ok(NET.format("a: conv(8, 1)\n push s\n relu\n let b = pop(s)\n add(b)"))
    assert [n for n in graph if n != "x"] == ["a", "0", "1"]
    assert ir.node(graph, "0").inputs == ("a",) and ir.node(graph, "1").inputs == ("0", "a")


def test_a_repeat_that_only_pushes_runs_every_iteration():
    assert codes(NET.format("a: conv(8, 1)\n repeat 3 { push s }\n"
                            "repeat 3 { let b = pop(s) }\n let c = pop(s)")) == ["E0223"]
    assert codes(NET.format("a: conv(8, 1)\n repeat 3 { push s }\n"
                            "repeat 3 { let b = pop(s) }")) == []


def test_a_blocks_stacks_are_its_own():
    block = "block keep() { push kept; relu }\n"
    assert codes(block + NET.format("conv(8, 1)\n keep\n let k = pop(kept)")) == ["E0207"]
    inner = "block both() { push kept; relu; let k = pop(kept); add(k) }\n"
    graph = ok(inner + NET.format("a: conv(8, 1)\n both"))
    assert ir.node(graph, "1").inputs == ("0", "a")


def test_stack_mistakes_are_located():
    empty = compile_source(NET.format("a: conv(8, 1)\n push s\n let b = pop(s)\n"
                                      "let c = pop(s)")).diagnostics
    assert [d.code for d in empty] == ["E0223"]
    assert empty[0].primary.span.text == "pop(s)"
    assert [label.message for label in empty[0].secondary] == ["pushed here"]
    assert codes(NET.format("let w = 3\n conv(8, 1)\n push w")) == ["E0208"]
    assert codes(NET.format("a: conv(8, 1)\n let b = pop(a)")) == ["E0218"]
    assert codes(NET.format("a: conv(8, 1)\n push s\n conv(pop(s), 1)")) == ["E0214"]
    assert codes(NET.format("a: conv(8, 1)\n let b = pop(s, s)")) == ["E0203"]
    assert codes(NET.format("a: conv(8, 1)\n let b = pop(nothing)")) == ["E0207"]


def test_a_path_label_puts_interleaved_layers_in_shared_groups():
    graph = ok(NET.format("""stage: {
        declare attentions, resnets
        repeat 2 as j {
            "resnets.{j}": conv(3, 3, pad = 1)
            "attentions.{j}": conv(3, 1)
        }
    }"""))
    assert [n for n in graph if n != "x"] == [
        "stage.resnets.0", "stage.attentions.0", "stage.resnets.1", "stage.attentions.1"]
    assert ir.node(graph, "stage.resnets.1").inputs == ("stage.attentions.0",)
    assert ir.network(graph).scopes["stage.resnets"].kind == "group"
    import pytest
    pytest.importorskip("torch")
    from archdsl.backends.lower_fx import lower_fx
    keys = list(lower_fx(graph).state_dict())
    assert keys[0].startswith("stage.attentions.0") and keys[-1].startswith("stage.resnets.1")
    assert codes(NET.format('"a.{1}x": conv(3, 1)')) == ["E0221"]
    assert codes(NET.format('"a..b": conv(3, 1)')) == ["E0221"]
