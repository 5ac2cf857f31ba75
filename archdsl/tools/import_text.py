"""The text of an imported spec's statements: runs of statements that differ only in an
index as repeats, labels in a column, bodies in braces.

Labels are padded with `PAD`, not spaces, so that a body's statements can be read back
out of its braces (`unbraced`) as the statements they were; `spaced` turns the padding
into spaces once the spec is written.
"""
from __future__ import annotations

import re

from ..lang.names import is_reserved
from ..lang.parse import keywords
from .import_layers import language_name

PAD = "\x07"  # the padding that aligns labels in a column

_MEMBER = re.compile(r'"([A-Za-z_][A-Za-z0-9_-]*)\.([0-9]+)(?=[."])')


def _indexed(line: str, offset: int) -> str | None:
    """`line` with each member of a split list, `"blocks.3"`, moved on by `offset`
    (None where it has none)."""
    if not _MEMBER.search(line):
        return None
    return _MEMBER.sub(lambda m: f'"{m.group(1)}.{int(m.group(2)) + offset}', line)


def member_repeats(lines: list[str]) -> list[str]:
    """Runs of statements that differ only in the index of the list members they name
    (`residual { "blocks.0": ... }`, `residual { "blocks.1": ... }`, ...; or runs of a few
    statements each, a decoder layer's two residuals) as one repeat over the index:
    `repeat 10 as i { residual { "blocks.{i}": ... } }`.

    >>> member_repeats(['a: relu', '"b.0": conv(4, 1)', '"b.1": conv(4, 1)', 'c: relu'])
    ['a: relu', 'repeat 2 as i { "b.{i}": conv(4, 1) }', 'c: relu']
    >>> print(member_repeats(['"b.0.x": relu', '"b.0.y": tanh', '"b.1.x": relu',
    ...                        '"b.1.y": tanh'])[0])
    repeat 2 as i {
        "b.{i}.x": relu
        "b.{i}.y": tanh
    }
    """
    out, i = [], 0
    while i < len(lines):
        best = (1, 1)  # (repeats, statements per repeat)
        for period in range(1, 5):
            indices = {int(m[1]) for line in lines[i:i + period] for m in _MEMBER.findall(line)}
            if len(indices) != 1:  # a round is one member's statements (blocks.3's), all
                continue  # of them
            count = 1
            while i + period * (count + 1) <= len(lines) and all(
                    _indexed(lines[i + k], count) == lines[i + period * count + k]
                    for k in range(period)):
                count += 1
            if count > 1 and count * period > best[0] * best[1]:
                best = (count, period)
        count, period = best
        if count > 1:  # each member's index as i plus its own in the first round
            body = [_MEMBER.sub(lambda m: f'"{m.group(1)}.{{i' + (
                f" + {int(m.group(2))}" if int(m.group(2)) else "") + "}", line)
                for line in lines[i:i + period]]
            out.append(f"repeat {count} as i " + (braced(body) if period > 1 or "\n" in body[0]
                                                   else f"{{ {body[0]} }}"))
            i += count * period
        else:
            out.append(lines[i])
            i += 1
    return out


def repeats(lines: list[str], blocks: set[str]) -> list[str]:
    """Runs of `k: call`, `k + 1: call`, ... of one block call as one repeat; runs over
    the members of a split list as one repeat over the index."""
    lines = member_repeats(lines)
    out, i = [], 0
    while i < len(lines):
        label, _, call = lines[i].partition(": ")
        j = i + 1
        if label.isdigit() and call.split("(")[0] in blocks:
            while j < len(lines) and lines[j] == f"{int(label) + j - i}: {call}":
                j += 1
        if j - i > 1:
            offset = f" + {label}" if int(label) else ""
            out.append(f'repeat {j - i} as i {{ "{{i{offset}}}": {call} }}')
        else:
            out.append(lines[i])
            j = i + 1
        i = j
    return out


_LABELLED = re.compile(r'^("[^"]*"|[A-Za-z0-9_]+): (.*)$', re.DOTALL)


def aligned(lines: list[str]) -> list[str]:
    """Labels in a column, as the shipped specs write them; statements of several lines
    and bodies with long labels are left as they are."""
    labels = [m.group(1) for m in map(_LABELLED.match, lines) if m and "\n" not in m.group(2)]
    width = max(map(len, labels), default=0) + 2
    if not labels or width > 18:
        return lines
    out = []
    for line in lines:
        match = _LABELLED.match(line)
        if match and "\n" not in match.group(2):
            out.append(f"{match.group(1)}: " + PAD * (width - len(match.group(1)) - 2) +
                       match.group(2))
        elif not match and "\n" not in line and not line.startswith(
                ("repeat", "input", "param ", "buffer ", "declare ", "from ")):
            out.append(PAD * width + line)
        else:
            out.append(line)
    return out


def braced(lines: list[str]) -> str:
    inner = "\n".join("    " + line.replace("\n", "\n    ") for line in aligned(lines))
    return "{\n" + inner + "\n}"


def snake(name: str) -> str:
    return language_name(re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower(), "unit")



def spaced(text: str) -> str:
    """The text with its label padding as spaces."""
    return text.replace(PAD, " ")


_PADDED_LABEL = re.compile(r'^("[^"]*"|[A-Za-z0-9_]+): ' + PAD + "*")


def unbraced(text: str) -> list[str]:
    """The statements of a body in braces, as `braced` had them.

    >>> unbraced(braced(["a: conv(4, 1)", "relu", "long_name: {\\n    0: tanh\\n}"]))
    ['a: conv(4, 1)', 'relu', 'long_name: {\\n    0: tanh\\n}']
    """
    lines = [line[4:] for line in text[2:-2].split("\n")]
    statements: list[list[str]] = []
    for line in lines:
        if statements and line.startswith((" ", "}")):
            statements[-1].append(line)  # the next line of a statement of several
        else:
            statements.append([_PADDED_LABEL.sub(r"\1: ", line.lstrip(PAD))])
    return ["\n".join(statement) for statement in statements]


def closing(text: str, start: int) -> int:
    """Where the brace opened at `start` closes, quoted labels (`"{i + 1}"`) skipped."""
    depth, quoted = 0, False
    for index in range(start, len(text)):
        char = text[index]
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "{}":
            depth += 1 if char == "{" else -1
            if depth == 0:
                return index
    return len(text)


LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def declared_first(order: list[str], defined: list[str]) -> list[str]:
    """The shortest start of `order` that, declared first, puts `defined` in `order`.

    >>> declared_first(["cbr", "scale", "low", "high"], ["low", "cbr", "scale", "high"])
    ['cbr', 'scale']
    """
    for count in range(len(order) + 1):
        if order[count:] == [path for path in defined if path not in order[:count]]:
            return order[:count]
    return order


def merge_text(op: str, branches: list[list[str]]) -> list[str]:
    """`op { {...} {...} }`: a merge of branches, an empty one the value they start from,
    one of a single call as that call; on one line where each is one short line
    (`concat { {}; "denselayer1": dense_layer }`)."""
    items = ["{}" if not b else braced(b) if len(b) > 1 or "\n" in b[0] else
             b[0] if not b[0].startswith(("from ", '"')) else f"{{ {b[0]} }}"
             for b in branches]  # a branch's label is a name: a path's, in a group
    line = f"{op} {{ {'; '.join(items)} }}"
    if "\n" not in line and len(line) <= 80:
        return [line]
    return ["\n".join([f"{op} {{"] + ["    " + i.replace("\n", "\n    ") for i in items] +
                      ["}"])]


_MERGE_NAMES = {"add": "sum", "mul": "product", "concat": "joined"}


def value_name(base: str, taken: set[str]) -> str:
    """A label for a value: `base`, or `base_2`, ... where that is taken; never the name
    the language gives a structural merge (`add`, `add_1`: a residual's), a sum named
    `sum` instead, nor one a label cannot take.

    >>> value_name("add", set()), value_name("q", {"q"}), value_name("to", set())
    ('sum', 'q_2', 'to_value')
    """
    stem = re.sub(r"_[0-9]+$", "", language_name(base, "value"))
    base = _MERGE_NAMES.get(stem, language_name(base, "value"))
    if is_reserved(base) or base in keywords():  # `to`, `type`, `from`: the torch
        base = f"{base}_value"  # module's own names, the language's words
    name, count = (base, 2) if base not in taken else (f"{base}_2", 3)
    while name in taken:
        name, count = f"{base}_{count}", count + 1
    taken.add(name)
    return name


def renames(used: set[str], modules, labels: dict[str, str], spec_path) -> str:
    """A comment listing the modules of the spec (those of `used` and the modules above
    them) whose names no label can hold (`_head`, `forward`), and what the spec calls
    them (`spec_path`): their state_dict keys change too."""
    within = {".".join(p.split(".")[:i + 1]) for p in used if p
              for i in range(p.count(".") + 1)}
    renamed = [f"#   {path} -> {spec_path(path)}" for path in modules
               if path in within and labels[path].strip('"') != path.rpartition(".")[2]]
    if not renamed:
        return ""
    header = ["# Modules whose names no label can hold, and their names here (the state_dict",
              "# keys under them change with them):"]
    return "\n".join(header + renamed) + "\n\n"
