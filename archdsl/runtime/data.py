"""Datasets for `archdsl train`, `eval` and `run`: every source yields batches of
normalised float inputs at the spec's input shape, and integer labels.

Sources (`--data`):
  shapes[:N]      coloured geometric shapes on noisy backgrounds, made here, deterministic
                  from the seed; N training images (default 10000) and N/5 for validation.
                  For a C x T x H x W input, clips of T frames in which the shape moves
  waves[:N]       1-D signals of six waveforms (sine, square, sawtooth, triangle, chirp,
                  pulses) at random frequency and phase, with noise, made here; for a
                  C x L signal input, or L x C tokens (L samples of C channels)
  folder:PATH     one sub-folder per class (PATH/train and PATH/val if both exist,
                  otherwise a deterministic 10% of each class is held out); Pillow decodes
  cifar10:PATH    the CIFAR-10 python batches (data_batch_1..5, test_batch) in PATH
  text[:PATH]     byte-level language modelling on a text file (default: the shipped Tiny
                  Shakespeare excerpt): windows of L bytes as token ids (0-255), labelled
                  with the next byte at every position; the last tenth held out
"""
from __future__ import annotations

import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UsageError
from .transforms import CIFAR10 as CIFAR10_STATS
from .transforms import IMAGENET, PLAIN, Augment, Preprocess, augment, pil_to_tensor, view
from .transforms import normalise as _normalise

SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class DataError(UsageError):
    """The data cannot be used: a missing folder, an unreadable file. Says how to fix it."""


@dataclass
class Split:
    """One split of a dataset. `load(indices)` gives (raw, labels): raw pixels in [0, 1]
    (an N x C x ... tensor, or a list of C x h x w images of any size for decoded files),
    or signals as they are (`preprocess` None). `batch` makes eval-time inputs from them,
    `augmented` training inputs."""
    size: int
    classes: tuple[str, ...]
    load: object
    shape: tuple[int, ...]  # the network's input
    preprocess: Preprocess | None = PLAIN
    crop_scale: tuple[float, float] = (0.08, 1.0)  # the random-resized crop of --augment
    default_augment: str = "none"
    tokens: bool = False  # inputs are token ids and labels the next id at every position

    def batch(self, indices: list[int], preprocess: Preprocess | None = None):
        """(inputs, labels): the eval view (resize and centre crop, or stretch) at the
        input size, normalised by `preprocess` (default: the source's own)."""
        raw, labels = self.load(indices)
        preprocess = preprocess or self.preprocess
        if self.preprocess is None or preprocess is None:
            return raw, labels
        if isinstance(raw, list) or (raw.dim() == 4 and tuple(raw.shape[2:]) != tuple(self.shape[1:])):
            raw = torch.stack([view(image, self.shape[1:], preprocess) for image in raw])
        return _normalise(raw, preprocess), labels

    def augmented(self, indices: list[int], plan: Augment, generator: torch.Generator,
                  preprocess: Preprocess | None = None):
        """(inputs, labels): training views, every random choice drawn from `generator`."""
        preprocess = preprocess or self.preprocess
        if not plan.active or self.preprocess is None:
            return self.batch(indices, preprocess)
        raw, labels = self.load(indices)
        images = torch.stack([augment(image, self.shape[1:], preprocess, plan, generator)
                              for image in raw])
        return _normalise(images, preprocess), labels

    def __len__(self) -> int:
        return self.size


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """The shapes data's normalisation (PLAIN)."""
    return _normalise(pixels, PLAIN)


def open_source(spec: str, shape: tuple[int, ...], seed: int) -> tuple[Split, Split]:
    """(train, validation) splits for a --data value, at input `shape` (C, H, W; C, T, H, W
    for clips; C, L or L, C for signals)."""
    kind, _, argument = spec.partition(":")
    axes = getattr(shape, "axes", "")
    if kind == "text":
        return text_splits(Path(argument) if argument else None, shape)
    if getattr(shape, "dtype", "float") != "float":
        raise DataError(f"the network reads {_shape_text(shape)} token ids, and the image and "
                        "signal datasets (--data shapes, waves, folder, cifar10) hold none: "
                        "train a language model on --data text or text:FILE")
    if kind == "waves":
        if axes not in ("CL", "LC"):
            raise DataError(f"waves are 1-D signals: the network's input must be `C x L as "
                            f"signal` or `L x C as tokens`, not {_shape_text(shape)}")
        count = _count(argument, 10000, kind)
        return (waves_split(count, shape, seed, "train"),
                waves_split(max(1, count // 5), shape, seed, "val"))
    if len(shape) == 4 and kind == "shapes":
        count = _count(argument, 10000, kind)
        return (shapes_split(count, shape, seed, "train"),
                shapes_split(max(1, count // 5), shape, seed, "val"))
    if len(shape) != 3:
        hint = "; for a 1-D signal use --data waves" if axes in ("CL", "LC") else ""
        raise DataError(f"images need a C x H x W input, but the network takes "
                        f"{_shape_text(shape)}{hint}")
    if kind == "shapes":
        count = _count(argument, 10000, kind)
        return (shapes_split(count, shape, seed, "train"),
                shapes_split(max(1, count // 5), shape, seed, "val"))
    if kind == "folder" and argument:
        return folder_splits(Path(argument), shape)
    if kind == "cifar10" and argument:
        return cifar10_splits(Path(argument), shape)
    raise DataError(f"unknown data source `{spec}`: use shapes, shapes:N, waves, waves:N, "
                    "folder:PATH, cifar10:PATH, text or text:FILE")


def _shape_text(shape) -> str:
    return " x ".join(map(str, shape))


def _count(text: str, default: int, kind: str = "shapes") -> int:
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise DataError(f"{kind}:{text}: give a positive example count, e.g. {kind}:10000")
    return int(text)


# ---- text ----------------------------------------------------------------------------------

BYTES = 256  # the vocabulary of byte-level text: every token id is one byte, 0 to 255
HELD_OUT = 10  # the last 1/HELD_OUT of a text is the validation split


def shipped_text() -> Path:
    """The text `--data text` trains on: an excerpt of Tiny Shakespeare."""
    from importlib import resources
    return Path(str(resources.files("archdsl.texts").joinpath("tinyshakespeare.txt")))


def text_splits(path: Path | None, shape) -> tuple[Split, Split]:
    """Byte-level language modelling: the file's bytes, cut into windows of the input's
    length L (one after the other, so every byte is read once an epoch); each window's
    labels are the bytes one position on, so the network learns the next byte at every
    position. The last tenth of the file is the validation split."""
    if getattr(shape, "dtype", "float") != "int" or len(shape) != 1:
        raise DataError(f"--data text feeds token ids: the network's input must be `L as "
                        f"token_ids`, not {_shape_text(shape)}")
    path = path or shipped_text()
    if not path.is_file():
        raise DataError(f"text file {path} does not exist: give --data text:FILE an existing "
                        "file, or --data text for the shipped Tiny Shakespeare excerpt")
    data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8).long()
    length = shape[0]
    cut = len(data) - len(data) // HELD_OUT
    if min(cut, len(data) - cut) < length + 1:
        raise DataError(f"{path} holds {len(data):,} bytes: too few for windows of "
                        f"{length} + 1 in both splits (the last tenth is held out); use a "
                        f"longer text, or a shorter length with --set (at most "
                        f"{max(1, len(data) // HELD_OUT - 1)})")
    return _text_split(data[:cut], length), _text_split(data[cut:], length)


def _text_split(data: torch.Tensor, length: int) -> Split:
    count = (len(data) - 1) // length

    def load(indices):
        starts = torch.as_tensor(indices) * length
        window = starts[:, None] + torch.arange(length + 1)
        chunk = data[window]
        return chunk[:, :-1], chunk[:, 1:]
    return Split(count, (), load, (length,), preprocess=None, tokens=True)


# ---- shapes -------------------------------------------------------------------------------


def shapes_split(count: int, shape: tuple[int, ...], seed: int, split: str) -> Split:
    """`count` images of the six SHAPES, every parameter drawn once from the seed, so that
    image i is the same in every run, process and worker. For a C x T x H x W shape, clips
    of T frames in which the shape moves at a constant speed."""
    generator = torch.Generator().manual_seed(seed * 2 + (split == "val") + 12345)
    channels = shape[0]
    params = {
        "label": torch.randint(0, len(SHAPES), (count,), generator=generator),
        "cx": torch.rand(count, generator=generator) * 0.4 + 0.3,
        "cy": torch.rand(count, generator=generator) * 0.4 + 0.3,
        "radius": torch.rand(count, generator=generator) * 0.14 + 0.2,
        "angle": torch.rand(count, generator=generator) * 2 * math.pi,
        "background": torch.rand(count, channels, generator=generator),
        "contrast": (torch.rand(count, channels, generator=generator) * 0.5 + 0.3)
        * torch.where(torch.rand(count, channels, generator=generator) < 0.5, -1.0, 1.0),
        "noise": torch.rand(count, generator=generator) * 0.12 + 0.04,
        "noise_seed": torch.randint(0, 2 ** 62, (count,), generator=generator),
        "vx": (torch.rand(count, generator=generator) - 0.5) * 0.3,  # per clip, in image
        "vy": (torch.rand(count, generator=generator) - 0.5) * 0.3,  # sizes
    }

    def batch(indices):
        index = torch.as_tensor(indices)
        chosen = {k: v[index] for k, v in params.items()}
        if len(shape) == 3:
            return _draw(chosen, shape), chosen["label"]
        frames, image = shape[1], (shape[0],) + tuple(shape[2:])
        clip = []
        for t in range(frames):
            step = t / max(frames - 1, 1) - 0.5
            moved = dict(chosen, cx=chosen["cx"] + chosen["vx"] * step,
                         cy=chosen["cy"] + chosen["vy"] * step,
                         noise_seed=chosen["noise_seed"] + t)
            clip.append(_draw(moved, image))
        return torch.stack(clip, 2), chosen["label"]

    # shapes are drawn whole, up to the image's edges: a crop keeps 70% of the image or more,
    # so that it seldom cuts a shape away (a third, as before, fell below --augment none)
    return Split(count, SHAPES, batch, tuple(shape), PLAIN, (0.7, 1.0), "none")


WAVES = ("sine", "square", "sawtooth", "triangle", "chirp", "pulses")


def waves_split(count: int, shape, seed: int, split: str) -> Split:
    """`count` signals of the six WAVES, drawn once from the seed as shapes are: a few
    periods at a random frequency and phase, random amplitude, and noise; every channel
    the same wave with its own noise."""
    generator = torch.Generator().manual_seed(seed * 2 + (split == "val") + 54321)
    params = {
        "label": torch.randint(0, len(WAVES), (count,), generator=generator),
        "periods": torch.rand(count, generator=generator) * 6 + 2,
        "phase": torch.rand(count, generator=generator),
        "amplitude": torch.rand(count, generator=generator) * 0.6 + 0.4,
        "noise": torch.rand(count, generator=generator) * 0.25 + 0.05,
        "noise_seed": torch.randint(0, 2 ** 62, (count,), generator=generator),
    }
    channels, length = (shape[0], shape[1]) if shape.axes == "CL" else (shape[1], shape[0])

    def batch(indices):
        index = torch.as_tensor(indices)
        p = {k: v[index] for k, v in params.items()}
        t = torch.linspace(0, 1, length).view(1, length)
        cycles = p["periods"].view(-1, 1) * t + p["phase"].view(-1, 1)
        chirp = p["periods"].view(-1, 1) * t * t * 2 + p["phase"].view(-1, 1)
        fraction = cycles % 1
        waves = torch.stack([
            torch.sin(2 * math.pi * cycles),
            torch.where(fraction < 0.5, 1.0, -1.0),
            2 * fraction - 1,
            1 - 4 * (fraction - 0.5).abs(),
            torch.sin(2 * math.pi * chirp),
            torch.where(fraction < 0.15, 1.0, -0.2),
        ], 1)[torch.arange(len(index)), p["label"]]
        signal = (waves * p["amplitude"].view(-1, 1)).unsqueeze(1).expand(-1, channels, -1)
        noise = torch.stack([torch.randn((channels, length),
                                         generator=torch.Generator().manual_seed(int(s)))
                             for s in p["noise_seed"]])
        x = signal + noise * p["noise"].view(-1, 1, 1)
        return (x if shape.axes == "CL" else x.transpose(1, 2)).contiguous(), p["label"]

    return Split(count, WAVES, batch, tuple(shape), None)


def _draw(p: dict, shape: tuple[int, int, int]) -> torch.Tensor:
    _, height, width = shape
    y = torch.linspace(0, 1, height).view(1, height, 1)
    x = torch.linspace(0, 1, width).view(1, 1, width)
    dx, dy = x - p["cx"].view(-1, 1, 1), y - p["cy"].view(-1, 1, 1)
    cos, sin = torch.cos(p["angle"]).view(-1, 1, 1), torch.sin(p["angle"]).view(-1, 1, 1)
    r = p["radius"].view(-1, 1, 1)
    u, v = (dx * cos + dy * sin) / r, (-dx * sin + dy * cos) / r
    distance = torch.sqrt(u * u + v * v)
    masks = torch.stack([
        distance <= 1,                                                        # circle
        torch.maximum(u.abs(), v.abs()) <= 0.8,                               # square
        (v >= -0.5) & (math.sqrt(3) * u + v <= 1) & (-math.sqrt(3) * u + v <= 1),  # triangle
        ((u.abs() <= 0.28) & (v.abs() <= 1)) | ((v.abs() <= 0.28) & (u.abs() <= 1)),  # cross
        (distance <= 1) & (distance >= 0.55),                                 # ring
        (u.abs() <= 1.05) & (v.abs() <= 0.3),                                 # bar
    ], 1)
    mask = masks[torch.arange(len(u)), p["label"]].unsqueeze(1).float()
    background = p["background"].view(-1, shape[0], 1, 1)
    foreground = (background + p["contrast"].view(-1, shape[0], 1, 1)).clamp(0, 1)
    noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s)))
                         for s in p["noise_seed"]])
    image = background * (1 - mask) + foreground * mask + noise * p["noise"].view(-1, 1, 1, 1)
    return image.clamp(0, 1)


# ---- image folders --------------------------------------------------------------------------


def folder_splits(root: Path, shape) -> tuple[Split, Split]:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist: folder:PATH needs one "
                        "sub-folder of images per class")
    if (root / "train").is_dir() and (root / "val").is_dir():
        classes = _class_names(root / "train")
        return (_folder_split(_files(root / "train", classes), classes, shape),
                _folder_split(_files(root / "val", classes), classes, shape))
    classes = _class_names(root)
    train, val = [], []
    for path, label in _files(root, classes):
        (val if _held_out(path) else train).append((path, label))
    return _folder_split(train, classes, shape), _folder_split(val or train[:1], classes, shape)


def _class_names(root: Path) -> tuple[str, ...]:
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    if not classes:
        raise DataError(f"{root} has no class sub-folders: put each class's images in "
                        f"{root}/CLASS_NAME/")
    return classes


def _files(root: Path, classes) -> list[tuple[Path, int]]:
    files = [(path, label) for label, name in enumerate(classes)
             for path in sorted((root / name).rglob("*")) if path.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"no images under {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _held_out(path: Path) -> bool:
    return sum(path.name.encode()) % 10 == 0


def _folder_split(files, classes, shape) -> Split:
    def batch(indices):
        images = [_load_image(files[i][0], shape, fit=False) for i in indices]
        labels = torch.tensor([files[i][1] for i in indices])
        return images, labels
    return Split(len(files), classes, batch, tuple(shape), folder_preprocess(shape[0]),
                 (0.08, 1.0), "basic")


def folder_preprocess(channels: int) -> Preprocess:
    """Photos: ImageNet's statistics and its resize-then-centre-crop."""
    if channels == 3:
        return IMAGENET
    return Preprocess((0.449,), (0.226,), IMAGENET.resize, "imagenet")


def _load_image(path: Path, shape, fit: bool = True):
    """A file's pixels as a C x H x W tensor in [0, 1] stretched to the input (`fit`), or
    the decoded PIL image at its own size for the transforms to cut and resize."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading images needs Pillow: pip install pillow") from None
    try:
        with Image.open(path) as image:
            mode = "L" if shape[0] == 1 else "RGB"
            image.draft(mode, (shape[2] * 2, shape[1] * 2))  # JPEG: decode at a smaller size
            image = image.convert(mode)
            image.load()
    except Image.DecompressionBombError as error:  # refused from its header, before decoding
        raise DataError(f"cannot read image {path}: it is too large to decode "
                        f"({_pixel_count(error)})") from None
    except Image.UnidentifiedImageError:
        raise DataError(f"cannot read image {path}: not an image file Pillow knows") from None
    except (OSError, ValueError, EOFError) as error:  # a damaged header or body
        raise DataError(f"cannot read image {path}: {_reason(error)}") from None
    if len(image.getbands()) != shape[0]:
        raise DataError(f"the network takes {shape[0]} channels; images are grey or RGB")
    return pil_to_tensor(image.resize((shape[2], shape[1]))) if fit else image


def _pixel_count(error) -> str:
    """'400,000,000 pixels, over the limit of 178,956,970' from Pillow's message."""
    counts = [int(n) for n in re.findall(r"(\d+) pixels", str(error))]
    if len(counts) != 2:
        return str(error)
    return f"{counts[0]:,} pixels, over the limit of {counts[1]:,}"


def _reason(error: Exception) -> str:
    """Why a file could not be read, without repeating its path."""
    return getattr(error, "strerror", None) or str(error)


def load_images(paths: list[str], shape, preprocess: Preprocess = PLAIN) -> torch.Tensor:
    """Images from files, for `archdsl run`, preprocessed as for evaluation."""
    if len(shape) != 3:
        raise DataError(f"`run` classifies image files, so the network must take a C x H x W "
                        f"input, not {_shape_text(shape)}; measure a signal or clip network "
                        "with `archdsl eval --data waves` or `--data shapes`")
    images = [view(_load_image(Path(p), shape, fit=False), shape[1:], preprocess) for p in paths]
    return _normalise(torch.stack(images), preprocess)


def read_labels(path: Path, classes: tuple[str, ...] | None, count: int) -> tuple[str, ...]:
    """Class names from a --labels file: one name per line in class order (the ImageNet
    class list), or `FOLDER NAME` lines that name a data folder's class sub-folders
    (LOC_synset_mapping.txt: `n01440764 tench, Tinca tinca`)."""
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read --labels {path}: {getattr(error, 'strerror', None) or error}") from None
    lines = [line for line in lines if line]
    if classes:
        pairs = dict(line.split(None, 1) for line in lines if len(line.split(None, 1)) == 2)
        if all(name in pairs for name in classes):
            return tuple(pairs[name] for name in classes)
    if len(lines) != count:
        raise DataError(f"--labels {path} has {len(lines)} names, but there are {count} "
                        "classes: give one name per line, in class order")
    return tuple(lines)


# ---- CIFAR-10 ---------------------------------------------------------------------------------

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")


# What a CIFAR-10 python batch may name when unpickled: numpy's array reconstruction,
# nothing else. Any other global (os.system, builtins.eval, ...) is refused.
_CIFAR_GLOBALS = {
    (module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("__builtin__", "object"),
    ("builtins", "object"),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"it names `{module}.{name}`, which a CIFAR-10 batch "
                                         "never does (refused: unpickling it could run code)")
        if module == "copy_reg":
            module = "copyreg"
        elif module == "__builtin__":
            module = "builtins"
        return super().find_class(module, name)


def _read_cifar_batch(path: Path):
    """(uint8 array N x 3072, N labels) from one batch, read without running any code the
    file might carry; anything else is a DataError naming the file."""
    try:
        with open(path, "rb") as stream:
            batch = _CifarUnpickler(stream, encoding="bytes").load()
    except OSError as error:
        raise DataError(f"cannot read CIFAR-10 batch {path}: {error.strerror or error}") from None
    except Exception as error:  # a damaged or crafted file: pickle raises many kinds
        raise DataError(f"{path} is not a CIFAR-10 batch: {error}") from None
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    shape = getattr(data, "shape", None)
    if (shape is None or len(shape) != 2 or shape[1] != 3072 or str(getattr(data, "dtype", "")) != "uint8"
            or not isinstance(labels, list) or len(labels) != shape[0]
            or not all(type(label) is int and 0 <= label < len(CIFAR10) for label in labels)):
        raise DataError(f"{path} is not a CIFAR-10 batch: it needs b'data' (N x 3072 uint8) and "
                        f"b'labels' (N integers 0-9)")
    return data, labels


def cifar10_splits(root: Path, shape) -> tuple[Split, Split]:
    train = [root / f"data_batch_{i}" for i in range(1, 6)]
    test = root / "test_batch"
    missing = [p.name for p in train + [test] if not p.is_file()]
    if missing:
        raise DataError(f"{root} lacks the CIFAR-10 python batches {', '.join(missing)} "
                        "(cifar-10-batches-py, as published)")
    return _cifar_split(train, shape), _cifar_split([test], shape)


def _cifar_split(paths, shape) -> Split:
    images, labels = [], []
    for path in paths:
        data, batch_labels = _read_cifar_batch(path)
        images.append(torch.as_tensor(data).view(-1, 3, 32, 32))
        labels.append(torch.as_tensor(batch_labels))
    pixels, targets = torch.cat(images), torch.cat(labels)

    def batch(indices):
        x = pixels[torch.as_tensor(indices)].float() / 255
        if shape[0] == 1:
            x = x.mean(1, keepdim=True)
        return x, targets[torch.as_tensor(indices)]
    stats = CIFAR10_STATS if shape[0] == 3 else Preprocess((0.4734,), (0.2516,), None, "cifar10")
    return Split(len(targets), CIFAR10, batch, tuple(shape), stats, (0.25, 1.0), "basic")
