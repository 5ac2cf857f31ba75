"""Block families of an imported model: module instances of one class whose statements
agree up to numbers, to whole-number arguments given in some instances and left at their
default in others (a stride of 2 and of 1), to a skip projection that some have and some
lack, and to a residual around the whole body that some have and some lack, become one
`block`:

* each number that differs between instances is a parameter, named after the argument it
  fills (`channels`, `channels2`, `stride`), with a default where one value is taken by
  most instances (`stride = 1`);
* a part some instances lack is written `skip NAME when CONDITION { ... }` or `residual
  when CONDITION { ... }`, the condition read from the parameters and the input's
  channels so that it is true exactly on the instances that have the part (`stride != 1
  or in.channels != channels2`), or, where none is, a parameter of its own
  (`project = false`);
* a stage of instances numbered 0 to N-1 whose arguments differ only in the first is
  `repeat N as i { bottleneck(128, 512, stride = i == 0 ? 2 : 1) }`.
"""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

from torch import nn

from ..lang.parse import keywords
from ..ops import OPS
from .import_layers import HIDDEN, NUMBER, SHOWN, alike, hidden, joined, number, numbers_of
from .import_text import LABEL_NAME as LABEL, braced, closing, snake, unbraced

SKIP_OPEN, SKIP_CLOSE = "\x04", "\x05"  # around a skip projection's text, ` skip NAME {...}`
SLOT = "\x06"  # where a number goes in a template
STATEMENTS = "\x01"  # between the statements of an instance's text


def skip_text(text: str) -> str:
    """A skip projection's text, marked so that a family may write it under a condition."""
    return SKIP_OPEN + text + SKIP_CLOSE


def unmarked(text: str) -> str:
    """The text without the marks of skip projections."""
    return text.replace(SKIP_OPEN, "").replace(SKIP_CLOSE, "")


@dataclass(frozen=True)
class Instance:
    """One module instance as its family sees it."""
    scope: str
    key: str  # its text, numbers as SLOT, its skips and whole-body residual left out
    # (`alike` makes the keys of a family equal: the template is the first one's)
    values: tuple[tuple[str, str], ...]  # the key's numbers: (value, hint)
    skips: tuple[tuple[int, str, tuple[tuple[str, str], ...]], ...]  # (place, text, numbers)
    wrapped: bool  # its body is one residual with the identity skip
    channels: int | None  # its input's channels (C x H x W), else None


def instance(scope: str, text: str, shape: tuple[int, ...]) -> Instance:
    """The instance at `scope`, whose statements are `text` (STATEMENTS between them) and
    whose input has `shape`."""
    statements = text.split(STATEMENTS)
    wrapped = len(statements) == 1 and _whole_residual(statements[0])
    if wrapped:
        statements = unbraced(statements[0][len("residual "):])
    kept, skips = _without_skips(STATEMENTS.join(statements))
    channels = shape[0] if len(shape) == 3 else None
    return Instance(scope, _slotted(kept), tuple(numbers_of(kept)), tuple(
        (place, _slotted(skip), tuple(numbers_of(skip))) for place, skip in skips),
        wrapped, channels)


def _without_skips(text: str) -> tuple[str, list[tuple[int, str]]]:
    """The text without its outermost skip projections, and each of them with its place
    in the rest (counted in the text with its numbers as SLOT)."""
    kept, skips, depth, start, last = [], [], 0, 0, 0
    for index, char in enumerate(text):
        if char == SKIP_OPEN:
            if depth == 0:
                kept.append(text[last:index])
                start = index
            depth += 1
        elif char == SKIP_CLOSE:
            depth -= 1
            if depth == 0:
                skips.append((len(_slotted("".join(kept))), text[start:index + 1]))
                last = index + 1
    kept.append(text[last:])
    return "".join(kept), skips


def _slotted(text: str) -> str:
    return NUMBER.sub(SLOT, text)


def _whole_residual(statement: str) -> bool:
    """`residual { ... }` with the identity skip, and nothing after it."""
    opening = len("residual ")
    return statement.startswith("residual {\n") and \
        closing(statement, opening) == len(statement) - 1


def families(members: list[Instance]) -> list[list[Instance]]:
    """Instances of one key as families: one, unless two of them have different skips at
    one place; then one per exact text."""
    seen: dict[int, str] = {}
    if all(seen.setdefault(place, alike(text)) == alike(text)
           for m in members for place, text, _ in m.skips):
        return [members]
    exact: dict[tuple, list[Instance]] = {}
    for member in members:
        exact.setdefault((tuple((p, alike(t)) for p, t, _ in member.skips), member.wrapped),
                         []).append(member)
    return list(exact.values())


@dataclass
class Param:
    name: str
    hint: str
    values: list[str]  # per instance
    default: str | None = None
    flag: bool = False  # a true/false parameter


@dataclass
class Family:
    """The block a family becomes, and the call that replaces each instance."""
    name: str
    params: list[Param]
    text: str
    conditioned: bool  # a condition read from the parameters (to verify on the model)

    def call(self, position: int) -> str:
        """`bottleneck(128, 512, stride = 2)`, its numbers marked, and the keyword arguments
        at their default hidden, so that calls in a family of their own read alike."""
        parts = []
        for param in self.ordered():
            value = param.values[position]
            written = value if param.flag else number(value, param.name)
            if param.default is None:
                parts.append(written)
            elif value != param.default:
                parts.append(f"{param.name} = {written}")
            elif not param.flag:
                parts.append(hidden(f"{param.name} = {written}"))
        return joined(self.name, parts)

    def ordered(self) -> list[Param]:
        """Parameters without a default first, as the language wants them."""
        return [p for p in self.params if p.default is None] + \
            [p for p in self.params if p.default is not None]

    def header(self) -> str:
        params = [p.name if p.default is None else f"{p.name} = {p.default}"
                  for p in self.ordered()]
        return f"block {self.name}({', '.join(params)}) " if params else f"block {self.name} "


def family_block(name: str, members: list[Instance], conditions: bool) -> Family:
    """The block of a family of instances (`families`); `conditions`: the parts some
    instances lack under a condition read from the parameters where one holds."""
    places = sorted({place for m in members for place, _, _ in m.skips})
    texts = {place: text for m in members for place, text, _ in m.skips}
    columns = _columns(members, places)
    params, written = _parameters(columns)
    pieces, start, conditioned = [], 0, False
    for place in places:
        pieces.append(members[0].key[start:place])
        has = [any(p == place for p, _, _ in m.skips) for m in members]
        text = texts[place]
        if not all(has):
            condition, found = _condition(params, members, has, "project", conditions)
            conditioned |= found
            brace = text.index("{")
            text = text[:brace] + f"when {condition} " + text[brace:]
        pieces.append(text)
        start = place
    pieces.append(members[0].key[start:])
    parts = "".join(pieces).split(SLOT)
    body = _revealed(parts[0] + "".join(w + rest for w, rest in zip(written, parts[1:])))
    statements = body.split(STATEMENTS)
    wrapped = [m.wrapped for m in members]
    if all(wrapped):
        statements = ["residual " + braced(statements)]
    elif any(wrapped):
        condition, found = _condition(params, members, wrapped, "shortcut", conditions)
        conditioned |= found
        statements = [f"residual when {condition} " + braced(statements)]
    family = Family(name, params, "", conditioned)
    family.text = family.header() + braced(statements)
    return family


def _columns(members: list[Instance], places: list[int]) -> list[tuple[list, str]]:
    """The numbers of the template in order: (each instance's value or None where it
    lacks the part, the argument the number fills)."""
    rows = []
    for member in members:
        skips = {place: values for place, _, values in member.skips}
        row, taken = [], 0
        for place in places + [None]:
            count = member.key[:place].count(SLOT) - taken if place is not None else \
                len(member.values) - taken
            row += list(member.values[taken:taken + count])
            taken += count
            if place is not None:
                row += list(skips[place]) if place in skips else \
                    [None] * _slots_at(members, place)
        rows.append(row)
    columns = []
    for index in range(len(rows[0])):
        cells = [row[index] for row in rows]
        hint = next(cell[1] for cell in cells if cell is not None) or "n"
        columns.append(([None if cell is None else cell[0] for cell in cells], hint))
    return columns


def _slots_at(members: list[Instance], place: int) -> int:
    return next(len(values) for m in members for p, _, values in m.skips if p == place)


def _parameters(columns) -> tuple[list[Param], list[str]]:
    """The parameters of a family, and what each number of the template becomes: a
    parameter's name, or the number itself (marked) where every instance has the same."""
    params: list[Param] = []
    written = []
    for values, hint in columns:
        present = [v for v in values if v is not None]
        same = len(set(present)) == 1
        match = next((p for p in params if all(v is None or v == w for v, w in
                                               zip(values, p.values))
                      and (not same or p.hint == hint)), None)
        if match is not None and (not same or None in values):
            written.append(match.name)
        elif same:
            written.append(number(present[0], hint))
        else:
            names = {p.name for p in params}
            label, k = hint, 2
            while label in names:
                label, k = f"{hint}{k}", k + 1
            common = Counter(present).most_common(1)[0][0]
            params.append(Param(label, hint, [common if v is None else v for v in values]))
            written.append(label)
    for param in params:
        value, count = Counter(param.values).most_common(1)[0]
        if 2 * count > len(param.values):
            param.default = value
    return params, written


def _revealed(text: str) -> str:
    """Arguments hidden at their default that the family gives as a parameter, shown."""
    def shown(match):
        return match.group(0) if NUMBER.search(match.group(1)) else match.group(1)
    return SHOWN.sub(shown, HIDDEN.sub(shown, text))


@dataclass(frozen=True)
class _Atom:
    differs: str  # `stride != 1`
    equals: str  # `stride == 1`
    truth: tuple[bool, ...]  # `differs` on each instance
    usual: bool = True  # against a default or the input's channels


def _atoms(params: list[Param], members: list[Instance]) -> list[_Atom]:
    """Comparisons a condition may be made of: a parameter and its default, a parameter
    and the input's channels, a parameter and each of its other values."""
    atoms = []
    numeric = [p for p in params if not p.flag]
    for param in numeric:
        if param.default is not None:
            atoms.append(_compare(param.name, param.default, param.values, param.default))
    if all(m.channels is not None for m in members):
        channels = [str(m.channels) for m in members]
        for param in numeric:
            atoms.append(_Atom(f"in.channels != {param.name}", f"in.channels == {param.name}",
                               tuple(c != v for c, v in zip(channels, param.values))))
    for param in numeric:
        for value in sorted(set(param.values) - {param.default}, key=param.values.index):
            atoms.append(_compare(param.name, value, param.values, value, usual=False))
    return atoms


def _compare(name: str, value: str, values: list[str], other: str, usual=True) -> _Atom:
    return _Atom(f"{name} != {value}", f"{name} == {value}",
                 tuple(v != other for v in values), usual)


def _condition(params: list[Param], members: list[Instance], has: list[bool], flag: str,
               conditions: bool) -> tuple[str, bool]:
    """A condition true exactly on the instances that have a part: read from the
    parameters (True), else a true/false parameter of its own (False)."""
    target = tuple(has)
    if conditions:
        found = _search(_atoms(params, members), target, either_first=flag == "project")
        if found is not None:
            return found, True
    names = {p.name for p in params}
    label, k = flag, 2
    while label in names:
        label, k = f"{flag}{k}", k + 1
    values = ["true" if h else "false" for h in has]
    params.append(Param(label, flag, values, Counter(values).most_common(1)[0][0], flag=True))
    if 2 * values.count(params[-1].default) <= len(values):
        params[-1].default = "false"
    return label, False


def _search(atoms: list[_Atom], target: tuple[bool, ...], either_first: bool) -> str | None:
    """`a or b` of differences true exactly on `target`, or `a and b` of equalities: first
    every usual difference that implies the target (a projection when the stride is not 1,
    and when the channels change), then the fewest atoms."""
    negated = tuple(not t for t in target)
    forms = [(target, " or ", "differs"), (negated, " and ", "equals")]
    if not either_first:
        forms.reverse()
    for goal, joiner, form in forms:
        within, truths = [], set()
        for atom in atoms:
            if atom.usual and any(atom.truth) and atom.truth not in truths and \
                    all(g or not t for g, t in zip(goal, atom.truth)):
                within.append(atom)
                truths.add(atom.truth)
        if 0 < len(within) <= 3 and tuple(map(any, zip(*(a.truth for a in within)))) == goal:
            return joiner.join(getattr(a, form) for a in within)
    for size in (1, 2):
        for combination in itertools.combinations(atoms, size):
            either = tuple(map(any, zip(*(a.truth for a in combination))))
            for goal, joiner, form in forms:
                if either == goal:
                    return joiner.join(getattr(a, form) for a in combination)
    return None


def block_name(cls: str, taken: set[str]) -> str:
    """The block's name: the class's in snake case, numbered past the names taken, the
    ops' and the language's words.

    >>> block_name("Bottleneck", {"bottleneck"}), block_name("aux", set())
    ('bottleneck_2', 'aux_2')
    """
    name = base = snake(cls)
    count = 2
    while name in taken or name in OPS or name in keywords():
        name, count = f"{base}_{count}", count + 1
    return name


def family_of(path: str, module: nn.Module) -> str | None:
    """What instances of one family share besides their statements: a module of the
    model's own, its class (`Bottleneck`); a container named by a word and a number, the
    word (`denselayer` of `denselayer1`, `denselayer2`: the layers a file exported from a
    spec holds in containers); a torch.nn layer or another container, None.

    >>> family_of("features.denselayer12", nn.ModuleDict()), family_of("downsample", nn.Sequential())
    ('denselayer', None)
    """
    if isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        name = path.rpartition(".")[2]
        stem = name.rstrip("0123456789")
        return snake(stem.rstrip("_")) if stem != name and LABEL.fullmatch(stem) else None
    return None if module.__module__.startswith("torch.nn") else type(module).__name__


def stage_repeat(label: str, calls: list[tuple[Family, int]]) -> str | None:
    """Calls of one block numbered 0 to N-1 whose arguments differ only in the first:
    `layer2: repeat 4 as i { bottleneck(128, 512, stride = i == 0 ? 2 : 1) }`."""
    family = calls[0][0]
    if len(calls) < 2 or any(f is not family for f, _ in calls):
        return None
    parts, indexed = [], False
    for param in family.ordered():
        values = [param.values[position] for _, position in calls]
        if len(set(values[1:])) != 1:
            return None
        expression = values[0] if values[0] == values[1] else \
            f"i == 0 ? {values[0]} : {values[1]}"
        indexed |= values[0] != values[1]
        if param.default is None:
            parts.append(expression)
        elif expression != param.default:
            parts.append(f"{param.name} = {expression}")
    call = f"{family.name}({', '.join(parts)})" if parts else family.name
    return f"{label}: repeat {len(calls)}{' as i' if indexed else ''} {{ {call} }}"
