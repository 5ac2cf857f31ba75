"""The statements of a traced model, scope by scope of its module tree: each layer and
function a statement (archdsl.tools.import_layers), each fork whose paths meet again in an
add a `residual { } skip { }` and in a concatenation a `concat { }`; module instances of one
class whose statements differ only in numbers one `block` with those numbers as
parameters, and runs of identical calls `repeat`s.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from .import_blocks import (STATEMENTS, Family, Instance, block_name, families, family_block,
                            instance, family_of, skip_text, stage_repeat, unmarked)
from .import_layers import (ImportFailure, alike, argument_free_ops, call_text, language_name,
                            module_labels, plain, read_function, read_layer, shape_of)
from .import_rope import std_imports
from .import_graph import (AuxHead, aux_heads, cyclic, meeting_point, one_axis_indexing,
                           overlapping, reached, uncalled)
from .import_inputs import (ModelInput, input_names, input_statements, placeholders, returned,
                            scope_entry)
from .import_lookups import is_lookup
from .import_ops import read_merge
from .import_reads import StateReads, within
from .import_state import Naming, declarations, read_as_value, read_parameters, unexpanded
from .import_text import braced, merge_text, renames, repeats, spaced, value_name

def write_spec(model: nn.Module, graph: fx.Graph, inputs: list[ModelInput], name: str,
               moved: dict[fx.Node, str]) -> str:
    """The `.arch` text of `model`, traced as `graph` with its shapes propagated on
    `inputs`; `moved` holds the concatenations that belong to another scope than the one
    torch.fx gives them ({cat node: its scope})."""
    heads = aux_heads(model, graph, [i.shape for i in inputs])  # before the rewrites
    one_axis_indexing(graph)
    return _Importer(model, graph, inputs, name, moved, heads).spec()


_MERGES = {operator.add: "add", operator.iadd: "add", torch.add: "add", torch.cat: "concat",
           operator.mul: "mul", torch.mul: "mul", operator.sub: "sub", torch.sub: "sub",
           operator.truediv: "div", torch.div: "div"}


@dataclass
class _Item:
    """One thing in a scope: a layer, a function of the forward(), or a child scope."""
    key: str
    inputs: list[str] = field(default_factory=list)
    node: fx.Node | None = None  # a layer or a function
    scope: str | None = None  # a child scope


class _Importer(StateReads):
    def __init__(self, model: nn.Module, graph: fx.Graph, inputs: list[ModelInput],
                 name: str, moved: dict[fx.Node, str], heads: list[AuxHead]):
        self.model, self.graph, self.inputs, self.name = model, graph, inputs, name
        self.heads = {head.scope: head for head in heads}  # train-only heads, by module
        self.modules = dict(model.named_modules())
        self.labels = module_labels(self.modules)
        self.nodes = [n for n in graph.nodes if n.op not in ("placeholder", "output")]
        self.placeholders = placeholders(graph, inputs)
        self.input = self.placeholders[0]
        self.named_inputs = set(self.placeholders) if len(self.placeholders) > 1 else set()
        self.input_names = dict(zip(self.placeholders, input_names(inputs, self._top_labels())))
        self.nodes = unexpanded(self.nodes)
        self.params = read_parameters(self.modules, self.nodes)  # node -> (module, label)
        self.nodes = [n for n in self.nodes if n not in self.params]
        self.results = returned(graph)  # [(output name, value)], [] for one value
        self.result = self.results[-1][1] if self.results else graph.output_node().args[0]
        self.output_keys: dict[str, list[str]] = {}  # a top-level item -> its outputs
        self.order = {path: index for index, path in enumerate(self.modules)}
        self.split: set[str] = set()  # layer lists whose members run apart: a scope each
        self.owner = self._owners(moved)
        self.split = {path for path, module in self.modules.items()
                      if uncalled(module) and not self._contiguous(path)} | \
            self._several_inputs()
        if self.split:
            self.owner = self._owners(moved)
        self.seen_targets: set[str] = set()
        self.by_type = argument_free_ops(shape_of(self.input))
        self.calls: dict[str, str] = {}  # scope -> the block call that replaces its body
        self.members: dict[str, tuple[Family, int]] = {}  # scope -> its family, its place
        self.blocks: list[str] = []
        self.block_names: set[str] = set()
        self.conditions, self.conditioned = True, False
        self.naming: list[Naming] = []  # the naming scopes being written, innermost last
        self.written_params: set[fx.Node] = set()  # parameters declared so far

    # -- where a node lives

    def _owners(self, moved: dict[fx.Node, str]) -> dict[fx.Node, str]:
        """The scope of each node; a train-only head's functions (its `flatten`, which
        forward() computes itself) in the head's module."""
        owner = {n: moved.get(n) or self._owner(n) for n in self.nodes}
        for scope, head in self.heads.items():
            for node in head.nodes:
                if not self._within(owner[node], scope):
                    owner[node] = scope
        return owner

    def _owner(self, node: fx.Node) -> str:
        """The module that calls a layer, or in whose forward() a function runs, or, for a
        function of a parameter of a module without a forward() of its own (a layer
        scale of a ModuleDict), that module, which declares it; not a split module."""
        stack = node.meta.get("nn_module_stack") or {}
        path = list(stack.values())[-1] if stack else ""
        owner = node.target.rpartition(".")[0] if node.op == "call_module" else \
            (path[0] if isinstance(path, tuple) else str(path)).split("@")[0]
        held = [self.params[v][0] for v in node.all_input_nodes if v in self.params]
        if held and uncalled(self.modules[held[0]]) and self._within(held[0], owner):
            owner = held[0]
        while owner in self.split:
            owner = owner.rpartition(".")[0]
        return owner

    # -- scopes

    def _items(self, scope: str) -> tuple[dict[str, _Item], str, str]:
        """The items of a scope in order, its entry (a value from outside it) and the
        item that gives its result."""
        inside = [n for n in self.nodes if self._within(self.owner[n], scope)]
        items: dict[str, _Item] = {}
        key_of: dict[fx.Node, str] = {}
        for node in inside:  # a node of this scope, or of the child scope it lies in
            owner = self.owner[node]
            child = None if owner == scope else self._child(scope, owner)
            key = f"scope:{child}" if child else node.name
            key_of[node] = key
            if key not in items:
                items[key] = _Item(key, node=None if child else node, scope=child)
        entries, entry = set(), self._entry_of(scope)
        for node in inside:
            key = key_of[node]
            for value in (v for v in node.all_input_nodes if v not in self.params):
                source = key_of.get(value)
                if value in self.named_inputs:  # a network input: read where it is needed
                    if key.startswith("scope:") and value is not self._entry_of(key[6:]):
                        continue  # read by name inside that scope
                    source = "entry" if value is entry else _named_input(items, value)
                if source is None:
                    entries.add(value)
                    source = "entry"
                if source != key and source not in items[key].inputs:
                    items[key].inputs.append(source)
        for before, key in zip(["entry", *items], items):  # one that reads no value (a
            items[key].inputs = items[key].inputs or [before]  # lookup): where it runs
        if len(entries) > 1:
            raise ImportFailure(f"`{scope or 'the model'}` reads {len(entries)} values from "
                                "outside it; archdsl imports modules of one input")
        results = {key_of[n] for n in inside
                   if any(u not in key_of for u in n.users) or n is self.result}
        if not scope and self.results:  # several outputs: each named after its statement
            self.output_keys = {}
            for output, value in self.results:
                self.output_keys.setdefault(key_of[value], []).append(output)
            results = {max(self.output_keys, key=list(items).index)}
        if scope in self.heads:  # a train-only head: its result is an output of its own
            results = {key_of[self.heads[scope].nodes[-1]]}
        if len(results) != 1:
            raise ImportFailure(f"`{scope or 'the model'}` gives {len(results)} values to "
                                "the rest of the model; archdsl imports modules of one output")
        flow = {key: set(item.inputs) for key, item in items.items()}
        if cyclic(flow):
            raise ImportFailure(f"`{scope or 'the model'}`: a module's layers run between "
                                "layers of another, in a way archdsl cannot write as scopes")
        return items, "entry", results.pop()

    def _several_inputs(self) -> set[str]:
        """The modules whose forward() reads several values from outside (BERT's
        SelfOutput: LayerNorm(dense(hidden) + input_tensor)), whose contents the spec
        writes in the enclosing scope, labelled by their paths (`"output.dense"`), so
        that their values are read there by name and their keys stay."""
        found = set()
        for path in (p for p in self.modules if p):
            inside = {n for n in self.nodes if self._within(self.owner[n], path)}
            if len({v for n in inside for v in n.all_input_nodes if v not in inside
                    and v not in self.params and v not in self.named_inputs}) > 1:
                found.add(path)
        return found

    _within = staticmethod(within)

    def _contiguous(self, path: str) -> bool:
        """The layers of the list at `path` run one after the other, nothing outside it
        between them (a loop over a ModuleList of stages), from one value to one, so that
        the list is one group; not where the model computes between them (`x = x +
        block(x)`) or joins them (branches concatenated outside)."""
        inside = {n for n in self.nodes if self._within(self.owner[n], path)}
        after, todo = set(), list(inside)
        while todo:
            for user in todo.pop().users:
                if user not in after and user not in inside:
                    after.add(user)
                    todo.append(user)
        if any(value in after for n in inside for value in n.all_input_nodes):
            return False
        leaving = {n for n in inside if any(u not in inside for u in n.users)}
        entering = {v for n in inside for v in n.all_input_nodes if v not in inside
                    and v not in self.params and v not in self.named_inputs}
        return len(leaving) <= 1 and len(entering) <= 1  # else: branches joined outside

    def _child(self, scope: str, path: str) -> str | None:
        """The scope directly inside `scope` that holds `path`: a member of a ModuleList or
        ModuleDict (`blocks.0`) rather than the list where forward() runs its members
        apart, so that they may come between the scope's own statements."""
        rest = path[len(scope) + 1:] if scope else path
        if not rest:
            return None
        parts = rest.split(".")
        child = (f"{scope}." if scope else "") + parts[0]
        for part in parts[1:]:  # through lists of lists (a ModuleList of ModuleDicts)
            if child not in self.split:
                break
            child += "." + part
        return child

    def scope_label(self, path: str) -> str:
        """A child scope's or layer's label: a split list member's is a path, `"blocks.0"`."""
        parent, _, _ = path.rpartition(".")
        if parent in self.split:
            return '"' + self.scope_label(parent).strip('"') + "." + \
                self.labels[path].strip('"') + '"'
        return self.labels[path]

    def render(self, scope: str) -> list[str]:
        items, entry, result = self._items(scope)
        users: dict[str, list[str]] = {key: [] for key in items}
        users[entry] = []
        taps: dict[str, list[str]] = {}  # value -> the train-only heads that tap it
        for key, item in items.items():
            for source in item.inputs:
                if item.scope in self.heads:
                    taps.setdefault(source, []).append(key)
                else:
                    users[source].append(key)
        order = sorted(items, key=lambda k: not k.startswith("input:"))  # inputs first
        series = _Series(self, items, users, order, taps, self._input_keys(scope, items))
        labels = {series._label_of(key) for key in items} - {None}
        self.naming.append(Naming({int(k) for k in labels if k.isdigit()}, labels))
        try:
            lines = series.lines(entry, result)
            if taps:
                head = items[next(iter(taps.values()))[0]].scope
                raise ImportFailure(f"the auxiliary head `{head}` taps a value inside a "
                                    "structure that archdsl writes whole")
            return declarations(scope, self.naming[-1].defined, self.modules, self.labels,
                                self.scope_label) + \
                self.declared_parameters(scope) + lines
        finally:
            self.naming.pop()

    def defined(self, label: str, path: str) -> str:
        """The label of the module or scope at `path`, noted as defined here: a number
        label sets the scope's next index."""
        naming = self.naming[-1]
        naming.defined.append(path)
        if label.isdigit():
            naming.index = max(naming.index, int(label) + 1)
        return label

    def unlabelled(self, text: str) -> str:
        """Statements without a label (a function, a merge of named values), each taking
        the scope's next index; one whose index a module of the scope is labelled with
        (a function in a scope of numbered layers that the model computes in more steps
        than the spec did, a chunk's two slices) is labelled with a name instead."""
        naming, lines = self.naming[-1], []
        for line in text.split("\n"):
            if naming.index in naming.numbers:
                line = f"{_Series._name(line.split('(')[0], naming.taken)}: {line}"
            else:
                naming.index += 1
            lines.append(line)
        return "\n".join(lines)

    # -- one item as a statement

    def statement(self, item: _Item, scope_of_parent: str) -> str:
        if item.key.startswith("input:"):  # a path that starts from a network input
            return f"from {self.input_names[item.node]}"
        if item.scope is not None:
            label = self.defined(self.scope_label(item.scope), item.scope)
            if item.scope in self.calls:  # a head that only training computes: `aux { }`
                call = self.calls[item.scope]
                return f"{label}: " + (f"aux {{ {call} }}" if item.scope in self.heads else call)
            if item.scope in self.heads:
                return f"{label}: aux " + braced(repeats(self.render(item.scope),
                                                         self.block_names))
            body = self.render(item.scope)
            calls = [line.partition(": ")[2] for line in body]
            stage = [self.members.get(f"{item.scope}.{k}") for k in range(len(body))]
            if all(stage) and body == [f"{k}: {self.calls[f'{item.scope}.{k}']}"
                                       for k in range(len(body))]:
                written = stage_repeat(label, stage)  # label.0, label.1: a block each
                if written is not None:
                    return written
            if len(body) > 1 and body == [f"{k}: {calls[0]}" for k in range(len(body))] \
                    and "\n" not in calls[0]:
                if calls[0].split("(")[0] in self.block_names:
                    return f"{label}: repeat {len(body)} {{ {calls[0]} }}"
                # layers: numbered in the group itself, label.0, label.1, not label.0.0
                return f"{label}: {{ repeat {len(body)} {{ {calls[0]} }} }}"
            return f"{label}: " + braced(repeats(body, self.block_names))
        node = item.node
        if node.op == "call_module":
            op, args = read_layer(node, self.modules[node.target], self.by_type)
            label = self.scope_label(node.target)
            text = call_text(op, args)
            if node.target in self.seen_targets:
                if any(True for _ in self.modules[node.target].parameters()):
                    raise ImportFailure(f"`{node.target}` ({type(self.modules[node.target]).__name__}) "
                                        "is called twice, sharing its weights; archdsl gives "
                                        "each layer its own")
                return self.unlabelled(text)  # a stateless layer used again (`relu`)
            self.seen_targets.add(node.target)
            return f"{self.defined(label, node.target)}: {text}"
        if is_lookup(node):
            return self.looked_up(node)
        if node.op == "call_method" and node.args[0] in self.params and \
                read_as_value(node, node.args[0]):
            return self.from_state(node)
        if any(v in self.params for v in node.all_input_nodes):
            return self.scaled(node)
        return self.unlabelled(call_text(*read_function(node, self.owner[node])))

    # -- blocks

    def find_blocks(self) -> None:
        """Module instances of one family (`family_of`: a class, or containers named
        alike) whose statements agree up to numbers and the parts some lack become one
        block (archdsl.tools.import_blocks), deepest first so that blocks may call blocks;
        not a container of block calls alone, a stage."""
        kinds = {path: family_of(path, module) for path, module in self.modules.items()}
        scopes = [path for path in self.modules if path and kinds[path]
                  and any(self._within(self.owner[n], path) for n in self.nodes)]
        for depth in sorted({s.count(".") for s in scopes}, reverse=True):
            groups: dict[tuple, list[Instance]] = {}
            for scope in (s for s in scopes if s.count(".") == depth):
                saved = set(self.seen_targets)
                try:
                    body = self.render(scope)
                except ImportFailure:  # a container that is no scope of one input
                    continue
                finally:
                    self.seen_targets = saved
                if type(self.modules[scope]).__name__ != kinds[scope] and all(
                        line.partition(": ")[2].partition("(")[0] in self.block_names
                        for line in body):
                    continue  # a stage of blocks: a `repeat` where its calls agree
                text = STATEMENTS.join(body)
                found = instance(scope, text, self.entry_shape(scope))
                groups.setdefault((kinds[scope], alike(found.key)), []).append(found)
            for (cls, _), members in groups.items():
                for family in families(members):
                    if len(family) >= 2:
                        self._block(cls, family)

    def _block(self, cls: str, members: list[Instance]) -> None:
        name = block_name(cls, self.block_names)
        family = family_block(name, members, self.conditions)
        self.conditioned |= family.conditioned
        self.block_names.add(name)
        self.blocks.append(family.text)
        for position, member in enumerate(members):
            self.calls[member.scope] = family.call(position)
            self.members[member.scope] = (family, position)

    def entry_shape(self, scope: str) -> tuple[int, ...]:
        """The shape of the one value a scope reads from outside it; () where not one."""
        inside = {n for n in self.nodes if self._within(self.owner[n], scope)}
        entries = {v for n in inside for v in n.all_input_nodes if v not in inside}
        return shape_of(entries.pop()) if len(entries) == 1 else ()

    # -- the spec

    def spec(self) -> str:
        """The spec; where a block writes a part under a condition read from its
        parameters, checked to make the model's layers, else written again with a
        true/false parameter for each such part."""
        text = self._text(conditions=True)
        if self.conditioned and not self._reproduces(text):
            text = self._text(conditions=False)
        return text

    def _text(self, conditions: bool) -> str:
        self.calls, self.blocks, self.block_names, self.members = {}, [], set(), {}
        self.conditions, self.conditioned, self.seen_targets = conditions, False, set()
        self.find_blocks()
        self.seen_targets = set()
        body = repeats(self.render(""), self.block_names)
        unwritten = next((n for n in self.params if n not in self.written_params), None)
        if unwritten is not None:
            raise ImportFailure(f"forward() reads the parameter `{unwritten.target}` of a "
                                "module that the spec writes as no scope of its own")
        lines = input_statements(self.inputs, self.placeholders, self.modules,
                                 self._top_labels()) + body
        network = f"network {language_name(self.name, 'imported')} " + braced(lines)
        text = "\n\n".join(self.blocks + [network]) + "\n"
        used = {n.target for n in self.nodes if n.op == "call_module"} | set(self.owner.values())
        return renames(used, self.modules, self.labels, self._spec_path) + \
            std_imports(self.nodes) + spaced(unmarked(plain(text)))

    def _reproduces(self, text: str) -> bool:
        """The spec checks, with the model's parameter count, and each layer of the model
        that holds parameters is a layer of the spec at the same path."""
        from ..compile import compile_source
        from ..passes.count_costs import total
        result = compile_source(text)
        if not result.ok:
            return False
        called = {n.target for n in self.nodes if n.op == "call_module"}
        holding = {self._spec_path(path) for path in called
                   if any(True for _ in self.modules[path].parameters())}
        return total(result.graph).params == sum(p.numel() for p in self.model.parameters()) \
            and holding <= set(result.graph.nodes)

    def _entry_of(self, scope: str) -> fx.Node | None:
        """The network input a scope starts from, where it reads several (scope_entry)."""
        return scope_entry([n for n in self.nodes if self._within(self.owner[n], scope)],
                           self.params, self.named_inputs) if scope and self.named_inputs \
            else None

    def _input_keys(self, scope: str, items: dict[str, _Item]) -> dict[str, str]:
        """{item key: the spec's name} of the network inputs a scope reads by name, and of
        its entry where that is one."""
        entry = self._entry_of(scope)
        return {key: self.input_names[item.node] for key, item in items.items()
                if key.startswith("input:")} | \
            ({"entry": self.input_names[entry]} if entry is not None else {})

    def _top_labels(self) -> set[str]:
        return {label.strip('"') for path, label in self.labels.items() if "." not in path}

    def _spec_path(self, path: str) -> str:
        parts = path.split(".")
        return ".".join(self.labels[".".join(parts[:i + 1])].strip('"')
                        for i in range(len(parts)))


class _Series:
    """A scope's items as statements: chains in sequence, forks that meet again as
    `residual` or merges with branches."""

    def __init__(self, importer: _Importer, items, users, order, taps, inputs):
        self.importer, self.items, self.users, self.order = importer, items, users, order
        self.taps = taps  # value -> the train-only heads that read it, written after it
        self.inputs: dict[str, str] = inputs  # key -> name: network inputs read by name

    def _outputs(self, key: str) -> list[str]:
        """`output NAME` after the statement whose value forward() returns, where it
        returns several."""
        return [f"output {name}" for name in self.importer.output_keys.get(key, [])]

    def _tapped(self, value: str) -> list[str]:
        """`aux { ... }` for each train-only head that reads `value`, and its `output`."""
        return self._outputs(value) + [self.importer.statement(self.items[key], "")
                                       for key in self.taps.pop(value, [])]

    def lines(self, start: str, stop: str, allowed: set[str] | None = None) -> list[str]:
        """From the value `start` to the item `stop`, through the items `allowed` (all)."""
        out, current = self._tapped(start), start
        while current != stop:
            readers = [u for u in self.users[current] if allowed is None or u in allowed]
            if len(readers) == 1 and self.items[readers[0]].inputs == [current] and \
                    not self._merge(readers[0]):
                out.append(self.importer.statement(self.items[readers[0]], ""))
                current = readers[0]
                out += self._tapped(current)
                continue
            try:
                join = self._join(current, allowed)
            except ImportFailure:  # no residual or merge to write: values by name, up to
                cut = self._cut(current, stop, allowed)  # where all paths meet again
                out += self._named(current, cut, allowed)
                if cut == stop:
                    return out
                current = cut  # its outputs written with it
                continue
            out += self._merged(current, join)
            current = join
            out += self._tapped(current)
        return out

    def _named(self, start: str, stop: str, allowed: set[str] | None) -> list[str]:
        """From `start` to `stop` one item at a time in the order forward() runs them,
        naming the values read elsewhere than by the next statement (`q: ...`, `from q`),
        and calls of several values by those names (`sdpa(q, k, v, causal = true)`):
        any graph, where the structures of `lines` (chains, residuals, merges of
        branches) do not fit."""
        span = self._between(start, stop)
        keys = [k for k in self.order if k in span and (allowed is None or k in allowed)
                and k not in self.inputs]
        readers: dict[str, list[str]] = {}
        for key in keys:
            for source in self.items[key].inputs:
                readers.setdefault(source, []).append(key)
        sequence = [start] + keys
        named = {k for k in sequence
                 if len(readers.get(k, [])) > 1 or any(
                     r != sequence[sequence.index(k) + 1] or len(self.items[r].inputs) > 1
                     for r in readers.get(k, []))}
        names: dict[str, str] = dict(self.inputs)  # network inputs: by their names
        taken = self.importer.naming[-1].taken  # this scope's labels
        out = []
        if start in named and start not in names:  # the span's start: by its label, else
            label = self._label_of(start)  # a name given by an identity
            names[start] = label or self._name("entry", taken)
            if label is None:
                out.append(f"{names[start]}: identity")
        current = start
        for key in keys:
            item = self.items[key]
            merged = len(item.inputs) > 1 or self._merge(key)
            if merged:
                operands = self._operands(key, names)
                text = read_merge(item.node, operands, self.importer.modules)
                if any(v in self.importer.params for v in item.node.all_input_nodes):
                    text = self.importer.read_by_name(item.node, text, self._name(
                        re.sub(r"_[0-9]+$", "", item.node.name), taken))
                elif key not in named:
                    text = self.importer.unlabelled(text)
            else:
                (source,), text = item.inputs, self.importer.statement(item, "")
                if source != current:
                    out.append(f"from {names[source]}")
            label, sep, rest = text.partition(": ")
            if key in named:
                if sep and not label.startswith('"') and label.split(".")[0] == label:
                    names[key] = label  # a layer's label names its value
                elif sep:  # a path names no value: an identity after it names it
                    names[key] = self._name(label.strip('"').rpartition(".")[2], taken)
                    text += f"\n{names[key]}: identity"
                else:  # named after what made it, counted in this scope (so that two
                    # instances of a module read alike, and become one block)
                    names[key] = self._name(re.sub(r"_[0-9]+$", "", item.node.name), taken)
                    text = f"{names[key]}: {text}"
                    if not merged:  # labelled after all: the index it took is free again
                        self.importer.naming[-1].index -= 1
            out.append(text)
            out += self._outputs(key)
            current = key
        return out

    def _label_of(self, key: str) -> str | None:
        """The label that names an item's value where it has one (a layer's, a scope's)."""
        item = self.items.get(key)
        if item is None:
            return None
        if item.scope is not None:
            label = self.importer.scope_label(item.scope)
        elif item.node.op == "call_module":
            label = self.importer.scope_label(item.node.target)
        else:
            return None
        return None if label.startswith('"') else label

    _name = staticmethod(value_name)

    def _operands(self, key: str, names: dict[str, str]) -> list[str]:
        """The names of the values a call of several values reads, in its arguments'
        order: the items' (`names`), a parameter's label (`routed_linear(x, weight,
        index)`, the scope that holds it declares it)."""
        node = self.items[key].node
        flat: list[fx.Node] = []
        fx.node.map_arg((node.args, node.kwargs), lambda a: flat.append(a) or a)
        params = self.importer.params
        return [params[a][1] if a in params else names[self._key(a)] for a in flat]

    def _merge(self, key: str) -> str | None:
        """The merge op an item is (add, concat, mul of two values or more), else None: a
        number times a value is a plain statement, `mul(0.5)`."""
        node = self.items[key].node
        if node is not None and node.op == "call_function" and node.target in _MERGES:
            operands = node.args[0] if node.target is torch.cat else node.args
            if sum(isinstance(a, fx.Node) and a not in self.importer.params
                   for a in operands) >= 2:
                return _MERGES[node.target]
        return None

    def _join(self, start: str, allowed: set[str] | None) -> str:
        """Where the paths out of `start` meet again: the first item after which nothing
        between reads anything else or is read from beyond it."""
        if any(self.items[u].node is not None and is_lookup(self.items[u].node)
               for u in self.users[start]):  # reads nothing of `start`: no branch of it
            raise ImportFailure(f"a lookup after `{start}`")
        descendants = self._descendants(start)
        if allowed is not None:
            descendants &= allowed
        between: set[str] = set()
        for key in (k for k in self.order if k in descendants):
            if self._merge(key) and all(i in between or i == start for i in self.items[key].inputs):
                escaping = [u for b in between | {start} for u in self.users[b]
                            if u not in between and u != key
                            and (allowed is None or u in allowed)]
                if not escaping and not overlapping(  # branches that share an item
                        self._between(start, i) - {start}
                        for i in self.items[key].inputs if i != start) and \
                        self._branchable(key):
                    return key
            between.add(key)
        raise ImportFailure("the model's graph forks in a way archdsl cannot write "
                            f"(after `{start}`)")

    def _cut(self, start: str, stop: str, allowed: set[str] | None) -> str:
        span = self._between(start, stop)
        keys = [k for k in self.order if k in span and (allowed is None or k in allowed)
                and not (k != stop and self.taps.get(k))]
        return meeting_point(start, keys, lambda key: self.items[key].inputs) or stop

    def _branchable(self, key: str) -> bool:
        """A merge that branches can write: a `concat` joins along the channels, a sum
        (a residual) adds values of one shape; one value divided by another, or added
        to one it is broadcast to (`x + t[:, :, None, None]`), is a call of named values."""
        node, op = self.items[key].node, self._merge(key)
        shapes = {shape_of(a) for a in node.all_input_nodes} if op == "add" else ()
        return op != "div" and len(shapes) <= 1 and (
            op != "concat" or (node.args[1:2] or [node.kwargs.get("dim", 0)])[0] == 1)

    def _between(self, start: str, stop: str) -> set[str]:
        """The items on paths from `start` to `stop`, `stop` included."""
        ancestors = self._ancestors(stop)
        return (self._descendants(start) & ancestors) | {stop}

    def _ancestors(self, stop: str) -> set[str]:
        return reached(stop, lambda key: self.items[key].inputs if key in self.items else ())

    def _descendants(self, start: str) -> set[str]:
        return reached(start, lambda key: self.users[key])

    def _merged(self, start: str, join: str) -> list[str]:
        item = self.items[join]
        node = item.node
        operands = [a for a in node.args if isinstance(a, fx.Node)] if self._merge(join) \
            != "concat" else list(node.args[0])
        keys = [self._key(a) for a in operands]
        op = self._merge(join)
        if op == "concat" and (node.args[1:2] or [node.kwargs.get("dim", 0)])[0] != 1:
            raise ImportFailure(f"`{node.name}`: torch.cat along a dimension other than "
                                "the channels")
        def branch(key):
            return [] if key == start else self.lines(start, key, self._between(start, key))
        if op == "sub" and len(keys) == 2:  # a - b as a + (-b), the same exactly, and
            first, second = (branch(key) for key in keys)  # broadcast as `add` branches are
            return merge_text("add", [first, second + ["neg"]])
        if op == "add" and len(keys) == 2 and start in keys:
            body = branch(keys[1] if keys[0] == start else keys[0])
            return ["residual " + braced(body)]
        if op == "add" and len(keys) == 2:
            first, second = (self._registered(key) for key in keys)
            if first is not None and second is not None and first != second:
                skip_first = first > second  # the projection is registered after the body
            else:  # as torchvision's `downsample`: a module beside the body's layers
                skip_first = self._is_scope(keys[0]) and not self._is_scope(keys[1])
            body_key, skip_key = (keys[1], keys[0]) if skip_first else keys
            body = branch(body_key)
            if self._is_scope(skip_key) and skip_key not in self.importer.calls and \
                    self.items[skip_key].inputs == [start]:
                label = self.importer.defined(self.importer.scope_label(
                    self.items[skip_key].scope), self.items[skip_key].scope)
                inner = self.importer.render(self.items[skip_key].scope)
                if label.startswith('"'):  # `skip NAME` takes a bare name: a labelled group
                    return ["residual " + braced(body) + skip_text(
                        " skip " + braced([f"{label}: " + braced(inner)]))]
                return ["residual " + braced(body) + skip_text(f" skip {label} " +
                                                               braced(inner))]
            return ["residual " + braced(body) + skip_text(" skip " + braced(branch(skip_key)))]
        return merge_text(op, [branch(key) for key in keys])

    def _registered(self, key: str) -> int | None:
        """Where the module of an item comes in the model's registration order (that of
        its state_dict), if it is one module or scope."""
        item = self.items.get(key)
        if item is None:
            return None
        path = item.scope if item.scope is not None else (
            item.node.target if item.node is not None and item.node.op == "call_module" else None)
        return self.importer.order.get(path)

    def _key(self, node: fx.Node) -> str:
        for key, item in self.items.items():
            if item.node is node:
                return key
        for key, item in self.items.items():
            if item.scope and node in self.importer.owner and \
                    self.importer._within(self.importer.owner[node], item.scope):
                return key
        return "entry"

    def _is_scope(self, key: str) -> bool:
        return key in self.items and self.items[key].scope is not None


def _named_input(items: dict[str, _Item], value: fx.Node) -> str:
    """The item of a network input that a scope reads by name (`from token_type_ids`):
    a value beside the scope's entry, which nothing computes."""
    key = f"input:{value.name}"
    items.setdefault(key, _Item(key, inputs=["entry"], node=value))
    return key
