"""How a scope's statements read the parameters and buffers forward() reads itself
(archdsl.tools.import_state finds them): declared at the top of the scope of the module
that holds them, or, where that module's layers run apart, in a group of its label
beside the one statement that reads them.
"""
from __future__ import annotations

from torch import fx

from .import_layers import ImportFailure
from .import_lookups import lookup_text
from .import_state import grouped, joined, param_statement, scaling
from .import_text import braced, value_name


def within(path: str, scope: str) -> bool:
    """`path` is `scope` or lies inside it (every path lies inside the model, "")."""
    return not scope or path == scope or path.startswith(scope + ".")


class StateReads:
    """The statements of an importer (archdsl.tools.import_structure) that read its
    `params` ({node: (holder, label)}): those of the scope it renders, or of a group."""

    def in_group(self, read: list[fx.Node]) -> None:
        """Parameters declared in a group of their holder's label, in the order the spec
        writes them: a `declare` puts them in the model's order (`declarations`)."""
        self.written_params |= set(read)
        self.naming[-1].defined.extend(node.target for node in read)

    def declared_parameters(self, scope: str) -> list[str]:
        """`param NAME: SIZES` for the parameters of the module at `scope`."""
        declared = {node: label for node, (holder, label) in self.params.items() if holder == scope}
        self.written_params |= set(declared)
        return [param_statement(label, node) for node, label in declared.items()]

    def scaled(self, node: fx.Node) -> str:
        """An element-wise op of the current value and a parameter: `mul(gamma)`; in a
        group of its holder's label where that runs apart and only this op reads it."""
        (read,) = [v for v in node.all_input_nodes if v in self.params]
        (holder, label) = self.params[read]
        op = scaling(node, read, label)
        if holder in self.split and list(read.users) == [node] and op != "concat":
            self.in_group([read])
            return grouped(self.scope_label(holder), label, read, op)
        if not within(self.owner[node], holder):
            raise ImportFailure(f"`{node.name}` reads the parameter `{read.target}` outside "
                                f"`{holder or 'the model'}`, where the spec declares it")
        if op == "concat":  # the value joined by name
            named, text = joined(node, read, label, self.naming[-1].taken)
            return f"{named}\n{self.unlabelled(text)}"
        return self.unlabelled(op)

    def read_by_name(self, node: fx.Node, text: str, name: str) -> str:
        """A call of several values that reads parameters by name among them
        (`routed_linear(x, gate_up_proj, index)`): as it is, in the scope that declares
        them; where their holder's layers run apart, in a group of its label that declares
        them, the call labelled `name` there (two such groups of one label, as a mixture
        of experts' two projections make, name their calls apart)."""
        read = list(dict.fromkeys(v for v in node.all_input_nodes if v in self.params))
        holder = self.params[read[0]][0]
        if holder in self.split and all(self.params[v][0] == holder for v in read):
            self.in_group(read)
            return f"{self.scope_label(holder)}: " + braced(
                [param_statement(self.params[v][1], v) for v in read] + [f"{name}: {text}"])
        if not within(self.owner[node], holder):
            raise ImportFailure(f"`{node.name}` reads `{read[0].target}` outside `{holder}`, "
                                "where the spec declares it")
        return f"{name}: {text}"

    def from_state(self, node: fx.Node) -> str:
        """A parameter or buffer read as a value (`from A_log`), in the scope that
        declares it, or in a group of its holder's label that declares it where that runs
        apart: the group's value is the parameter's."""
        read = node.args[0]
        holder, label = self.params[read]
        if holder in self.split and list(read.users) == [node]:
            self.in_group([read])
            return f"{self.scope_label(holder)}: " + braced(
                [param_statement(label, read), f"from {label}"])
        if not within(self.owner[node], holder):
            raise ImportFailure(f"`{node.name}` reads `{node.args[0].target}` outside "
                                f"`{holder}`, where the spec declares it")
        return f"from {label}"

    def looked_up(self, node: fx.Node) -> str:
        """A table looked up by an index, both the model's own: `index_select(table,
        index)`; in a group of their holder's label, which declares them, where that
        runs apart. A table forward() computes (Swin V2's continuous position bias, from
        the coordinate table through an MLP) is the current value, named first
        (`table: identity`)."""
        read = [v for v in node.args[:2] if v in self.params]
        names = {v: self.params[v][1] for v in read}
        named = []
        if node.args[0] not in self.params and node.args[1] in self.params:
            names[node.args[0]] = value_name("table", self.naming[-1].taken)
            named = [f"{names[node.args[0]]}: identity"]
        text = lookup_text(node, names)
        holder = self.params[read[0]][0]
        if holder in self.split and all(self.params[v][0] == holder for v in read):
            self.in_group(read)
            return "\n".join(named + [f"{self.scope_label(holder)}: " + braced(
                [param_statement(self.params[v][1], v) for v in read] + [text])])
        if not within(self.owner[node], holder):
            raise ImportFailure(f"`{node.name}` reads `{read[0].target}` outside `{holder}`, "
                                "where the spec declares it")
        return "\n".join(named + [self.unlabelled(text)])
