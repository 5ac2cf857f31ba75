"""Shapes: the dimensions of a value without the batch, and the name of each axis.

Axis letters: `C` channels (or features), `L` length (tokens of a sequence, samples of a
signal), `T` time (frames), `H` height, `W` width. The letters say how a layer reads a
value: a conv wants channels first (`CL`, `CHW`, `CTHW`), attention wants a token
sequence (`LC`), a linear layer wants features last (`C`, `LC`, `HWC`). They are
carried through every layer, so a shape error can say what a layer got and what it wants.
"""
from __future__ import annotations

import math

# the layouts a spec may name (`input x: 197 x 768 as tokens`), and the axes of each
LAYOUTS = {"features": "C", "tokens": "LC", "signal": "CL", "image": "CHW", "volume": "CTHW",
           "channels_last": "HWC", "token_ids": "L"}
# the element type of a layout's values where it is not a float (`token_ids`: int64)
LAYOUT_DTYPES = {"token_ids": "int"}
# element types: floats (in the module's precision), int64 (token ids, indices), bool
# (masks), and floats `cast` to a precision of their own (PRECISIONS), which only the
# tensor algebra reads until `cast_like` brings them back
PRECISIONS = ("float32", "float64", "float16", "bfloat16")
DTYPES = ("float", "int", "bool") + PRECISIONS
FLOATS = ("float",) + PRECISIONS
# the bytes of an element of each type but the model's own floats ("float": its dtype's)
ELEMENT_BYTES = {"int": 8, "bool": 1, "float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
DTYPE_WORDS = {"float": "floats", "int": "integers (int64)", "bool": "masks (booleans)",
               **{p: f"{p} values" for p in PRECISIONS}}
# what a value of each rank is when nothing says otherwise
DEFAULT_AXES = {1: "C", 2: "LC", 3: "CHW", 4: "CTHW"}
_WORDS = {"C": "features", "LC": "an L x C token sequence", "CL": "a C x L signal",
          "CHW": "a C x H x W input", "CTHW": "a C x T x H x W volume",
          "HWC": "an H x W x C (channels-last) map"}
_AXIS_NAMES = {"C": "channels", "L": "length", "T": "frames", "H": "height", "W": "width"}


class ShapeError(Exception):
    """A layer cannot take the shapes it is given. Turned into a diagnostic by infer_shapes."""

    def __init__(self, code: str, message: str, label: str = "", help: str | None = None):
        super().__init__(message)
        self.code, self.message, self.label, self.help = code, message, label, help


class Shape(tuple):
    """Dimensions without the batch, with one axis letter each, and the element type.

    >>> Shape((197, 768), "LC").axes, Shape((3, 32, 32)).axes, Shape((16,), "L", "int").dtype
    ('LC', 'CHW', 'int')
    >>> Shape((768, 196), "CL") == Shape((768, 196), "LC"), Shape((4,)) == (4,)
    (False, True)
    """

    follows: frozenset = frozenset()  # the axes whose size follows the input size symbols
    # (a sequence's length), as passes/check_sizes finds them; not part of equality

    def __new__(cls, dims, axes: str | None = None, dtype: str = "float"):
        self = super().__new__(cls, dims)
        self.axes = axes or default_axes(len(self))
        self.dtype = dtype
        if len(self.axes) != len(self):
            raise ValueError(f"{len(self)} dimensions but axes {self.axes!r}")
        return self

    def __getnewargs__(self):
        return tuple(self), self.axes, self.dtype

    def __eq__(self, other):
        if isinstance(other, Shape) and (other.axes != self.axes or other.dtype != self.dtype):
            return False
        return tuple.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        plain = tuple.__repr__(self)
        if self.dtype != "float":
            return f"Shape({plain}, {self.axes!r}, {self.dtype!r})"
        return plain if self.axes == default_axes(len(self)) else f"Shape({plain}, {self.axes!r})"

    def following(self, axes) -> "Shape":
        """This shape, recording which of its axes follow the size symbols."""
        shape = Shape(self, self.axes, self.dtype)
        shape.follows = frozenset(axes)
        return shape

    def with_dtype(self, dtype: str) -> "Shape":
        return self if dtype == self.dtype else Shape(self, self.axes, dtype)

    def size(self, axis: str) -> int:
        """The size of the axis with this letter: `shape.size("C")`."""
        return self[self.axes.index(axis)]


def default_axes(rank: int) -> str:
    return DEFAULT_AXES.get(rank, "C" + "L" * (rank - 1))


def as_shape(dims, like=None) -> Shape:
    """`dims` as a Shape: a rule's plain tuple keeps the axes of its input when the rank is
    unchanged (a ReLU on tokens gives tokens), or takes the default axes of its rank."""
    if isinstance(dims, Shape):
        return dims
    if like is not None and len(like) == len(dims):
        return Shape(dims, getattr(like, "axes", None))
    return Shape(dims)


def numel(shape) -> int:
    return math.prod(shape)


def show(shape) -> str:
    """`256x56x56` for feature maps, `4096` for flat features."""
    return "x".join(str(d) for d in shape)


def axes_of(shape) -> str:
    return getattr(shape, "axes", None) or default_axes(len(shape))


def spatial(shape) -> list[tuple[str, int]]:
    """(axis letter, size) of every axis but the channels: [("H", 56), ("W", 56)]."""
    return [(a, n) for a, n in zip(axes_of(shape), shape) if a != "C"]


def dtype_of(shape) -> str:
    return getattr(shape, "dtype", "float")


def describe(shape) -> str:
    """What a value is, in words: `4096 flat features`, `tokens 197x768 (L x C)`, `token
    ids 16 (L)`."""
    axes = axes_of(shape)
    if dtype_of(shape) != "float":
        dtype = dtype_of(shape)
        kind = "a mask" if dtype == "bool" else dtype if dtype in PRECISIONS else \
            "token ids" if axes == "L" else "int64 indices"
        return f"{kind} {show(shape)} ({' x '.join(axes)})"
    if axes == "C":
        return f"{show(shape)} flat features"
    name = next((n for n, a in LAYOUTS.items() if a == axes), None)
    letters = " x ".join(axes)
    if name in ("tokens", "signal", "volume"):
        return f"{name} {show(shape)} ({letters})"
    return f"{show(shape)} ({letters})"


def wanted(axes: str) -> str:
    return _WORDS.get(axes, " x ".join(axes))


def axis_name(letter: str) -> str:
    return _AXIS_NAMES.get(letter, letter)


def permutation_help(have: str, want: str) -> str | None:
    """`permute(2, 0, 1)` when `have` holds the axes of `want` in another order."""
    if sorted(have) != sorted(want) or have == want:
        return None
    order = [have.index(a) for a in want]
    if len(order) == 2:
        return "`transpose(0, 1)` swaps the two axes"
    return f"`permute({', '.join(map(str, order))})` gives {' x '.join(want)}"


def require(op: str, shape, accepted: tuple[str, ...], fix: str | None = None):
    """The shape, if its axes are one of `accepted`; else E0306 saying what the layer got
    and what it wants, with the permute that fixes it when one does."""
    axes = axes_of(shape)
    if axes in accepted:
        return shape
    words = [wanted(a) for a in accepted]
    wants = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    if axes == "C":
        message = f"{op} needs {wants}, but gets {show(shape)} flat features"
        label = f"{op} needs {'a feature map' if 'CHW' in accepted else wanted(accepted[0])}"
        help_text = fix or (f"feed it {wanted(accepted[0])}: place it before the `flatten` "
                            "or `linear` that made the value flat, or declare such an input")
    else:
        message = f"{op} needs {wants}, but gets {describe(shape)}"
        label = f"{op} needs {wanted(accepted[0])}"
        help_text = next((h for h in (permutation_help(axes, a) for a in accepted) if h), fix)
        if help_text is None:
            help_text = f"give it {wanted(accepted[0])}"
    raise ShapeError("E0306", message, label, help=help_text)


def axis_index(op: str, axis: int | str, rank: int, what: str = "axis", axes: str = "") -> int:
    """A non-negative axis number (batch excluded; -1 is the last), or E0310. An axis may
    be named, by letter or word, among `axes`: `"H"`, `"height"`."""
    if isinstance(axis, str):
        letter = next((a for a, word in _AXIS_NAMES.items() if axis in (a, word)), None)
        if letter is None or letter not in axes:
            named = ", ".join(f'"{a}"' for a in axes)
            raise ShapeError("E0310", f"{op} {what} \"{axis}\" is not an axis of a "
                             f"{' x '.join(axes)} value", "no such axis",
                             help=f"its axes are {named} (or numbers 0 to {rank - 1})")
        return axes.index(letter)
    if not -rank <= axis < rank:
        raise ShapeError("E0310", f"{op} {what} {axis} is outside a {rank}-dimensional value",
                         "no such axis", help=f"axes are numbered 0 to {rank - 1} without the "
                                              "batch (or -1 for the last)")
    return axis % rank
