"""How images become network inputs: preprocessing (eval and run) and augmentation (train).

Everything works on float tensors of pixels in [0, 1], one image (C x H x W) at a time,
with a `torch.Generator` for every random choice, so that a batch's augmentation is a
function of (seed, epoch, step) alone: the same in any worker and after a resume.

    >>> import torch
    >>> p = Preprocess(mean=(0.5,), std=(0.25,), resize=None)
    >>> Preprocess.from_dict(p.to_dict()) == p
    True
    >>> view(torch.full((3, 40, 20), 0.75), (16, 16), IMAGENET).shape
    torch.Size([3, 16, 16])
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Preprocess:
    """Normalisation `(x - mean) / std` per channel, after fitting the image to the input:
    `resize=None` stretches it to the input size; a ratio r >= 1 scales it to cover r times
    the input size and cuts the centre out (ImageNet: 256 then 224, r = 256/224)."""
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)
    resize: float | None = None
    name: str = "plain"

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, saved: dict) -> "Preprocess":
        return cls(tuple(saved["mean"]), tuple(saved["std"]), saved.get("resize"),
                   saved.get("name", "plain"))

    def describe(self) -> str:
        fit = "stretch to the input" if self.resize is None else \
            f"resize to {self.resize:.3g}x the input, centre crop"
        numbers = lambda values: "/".join(f"{v:.3g}" for v in values)  # noqa: E731
        return f"{self.name}: {fit}, mean {numbers(self.mean)}, std {numbers(self.std)}"


PLAIN = Preprocess()  # what archdsl has always used for the shapes data
IMAGENET = Preprocess((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 256 / 224, "imagenet")
CIFAR10 = Preprocess((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), None, "cifar10")


def normalise(pixels: torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
    """Pixels in [0, 1], N x C x ... or C x ..., normalised per channel."""
    channels = pixels.shape[-3] if pixels.dim() >= 3 else 1
    if pixels.dim() == 5:  # N x C x T x H x W clips
        channels = pixels.shape[1]
    mean, std = _per_channel(preprocess.mean, channels), _per_channel(preprocess.std, channels)
    view = [1] * pixels.dim()
    view[1 if pixels.dim() in (4, 5) else 0] = channels
    return (pixels - torch.tensor(mean).view(view)) / torch.tensor(std).view(view)


def _per_channel(values, channels: int) -> list[float]:
    values = list(values)
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    return [sum(values) / len(values)] * channels  # RGB statistics for a grey network


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False,
                         antialias=True)[0].clamp(0, 1)


def _size(image) -> tuple[int, int]:
    """(height, width) of a C x H x W tensor or a PIL image."""
    if isinstance(image, torch.Tensor):
        return tuple(image.shape[-2:])
    return image.height, image.width


def _crop_resize(image, top: int, left: int, height: int, width: int, size) -> torch.Tensor:
    """The box's pixels resized to `size`, as a tensor. A decoded file (a PIL image) is cut
    and resized by Pillow in one pass, three times faster than on a float tensor."""
    if isinstance(image, torch.Tensor):
        return resize(image[:, top:top + height, left:left + width], size)
    from PIL import Image
    box = (left, top, left + width, top + height)
    resized = image.resize((size[1], size[0]), Image.BILINEAR, box=box,
                           reducing_gap=None if width * height < 4 * size[0] * size[1] else 2.0)
    return pil_to_tensor(resized)


def pil_to_tensor(image) -> torch.Tensor:
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(image.height, image.width, -1).permute(2, 0, 1).float() / 255


def view(image, size: tuple[int, int], preprocess: Preprocess) -> torch.Tensor:
    """The eval-time view of an image (a tensor or a PIL image) at the input size:
    stretched, or resized to cover `resize` times the size and centre-cropped."""
    height, width = _size(image)
    if preprocess.resize is None:
        return _crop_resize(image, 0, 0, height, width, size)
    # the centre box that scales to `size` when the image covers `resize` x size
    scale = max(size[0] * preprocess.resize / height, size[1] * preprocess.resize / width)
    box_h, box_w = min(height, round(size[0] / scale)), min(width, round(size[1] / scale))
    return _crop_resize(image, (height - box_h) // 2, (width - box_w) // 2, box_h, box_w, size)


# ---- augmentation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Train-time augmentation: a random-resized crop covering `crop_scale` of the image's
    area (None: the eval view), a horizontal flip with probability 1/2, and TrivialAugment
    (one random operation at a random strength per image)."""
    crop_scale: tuple[float, float] | None = None
    flip: bool = False
    trivial: bool = False

    @property
    def active(self) -> bool:
        return self.crop_scale is not None or self.flip or self.trivial


NONE = Augment()


def policy(name: str, source_crop_scale: tuple[float, float]) -> Augment:
    """`--augment` NAME for a data source whose random-resized crop covers
    `source_crop_scale` of the image (ImageNet's 8%-100% for photos, less for small ones)."""
    if name == "none":
        return NONE
    return Augment(source_crop_scale, True, name == "trivial")


def augment(image: torch.Tensor, size: tuple[int, int], preprocess: Preprocess,
            plan: Augment, generator: torch.Generator) -> torch.Tensor:
    """One training view of `image` (C x h x w in [0, 1], or a PIL image) at `size`."""
    if plan.crop_scale is not None:
        image = random_resized_crop(image, size, plan.crop_scale, generator)
    else:
        image = view(image, size, preprocess)
    if plan.flip and _uniform(generator) < 0.5:
        image = image.flip(-1)
    if plan.trivial:
        image = trivial_augment(image, generator)
    return image


def _uniform(generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def random_resized_crop(image, size, scale, generator, ratio=(3 / 4, 4 / 3)):
    """A crop of random area (a `scale` fraction) and aspect ratio, resized to `size`
    (Szegedy et al. 2015, as torchvision's RandomResizedCrop)."""
    height, width = _size(image)
    area = height * width
    for _ in range(10):
        target = area * _uniform(generator, *scale)
        aspect = math.exp(_uniform(generator, math.log(ratio[0]), math.log(ratio[1])))
        crop_w, crop_h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(torch.randint(0, height - crop_h + 1, (), generator=generator))
            left = int(torch.randint(0, width - crop_w + 1, (), generator=generator))
            return _crop_resize(image, top, left, crop_h, crop_w, size)
    side = min(height, width)  # no crop fits: the centre square
    return _crop_resize(image, (height - side) // 2, (width - side) // 2, side, side, size)


# TrivialAugment (Müller and Hutter 2021): one operation, strength uniform over 31 steps.
def _brightness(x, m):
    return (x * (1 + m)).clamp(0, 1)


def _contrast(x, m):
    mean = _grey(x).mean()
    return ((x - mean) * (1 + m) + mean).clamp(0, 1)


def _saturation(x, m):
    return ((x - _grey(x)) * (1 + m) + _grey(x)).clamp(0, 1)


def _solarize(x, m):
    threshold = 1 - abs(m)
    return torch.where(x >= threshold, 1 - x, x)


def _posterize(x, m):
    levels = 2 ** max(1, round(8 - 6 * abs(m)))
    return torch.floor(x * (levels - 1) + 0.5) / (levels - 1)


def _autocontrast(x, m):
    low = x.amin(dim=(-2, -1), keepdim=True)
    high = x.amax(dim=(-2, -1), keepdim=True)
    return ((x - low) / (high - low).clamp_min(1e-3)).clamp(0, 1)


def _affine(x, matrix):
    theta = torch.tensor(matrix, dtype=x.dtype).view(1, 2, 3)
    grid = F.affine_grid(theta, (1, *x.shape), align_corners=False)
    return F.grid_sample(x[None], grid, align_corners=False, padding_mode="zeros")[0]


def _rotate(x, m):
    angle = math.radians(30 * m)
    return _affine(x, [math.cos(angle), -math.sin(angle), 0, math.sin(angle), math.cos(angle), 0])


def _shear_x(x, m):
    return _affine(x, [1, 0.3 * m, 0, 0, 1, 0])


def _shear_y(x, m):
    return _affine(x, [1, 0, 0, 0.3 * m, 1, 0])


def _translate_x(x, m):
    return _affine(x, [1, 0, 0.6 * m, 0, 1, 0])  # up to 30% of the width


def _translate_y(x, m):
    return _affine(x, [1, 0, 0, 0, 1, 0.6 * m])


def _identity(x, m):
    return x


def _grey(x):
    if x.shape[0] != 3:
        return x.mean(0, keepdim=True)
    return (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)


TRIVIAL_OPS = (_identity, _brightness, _contrast, _saturation, _solarize, _posterize,
               _autocontrast, _rotate, _shear_x, _shear_y, _translate_x, _translate_y)


def trivial_augment(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    op = TRIVIAL_OPS[int(torch.randint(0, len(TRIVIAL_OPS), (), generator=generator))]
    strength = int(torch.randint(0, 31, (), generator=generator)) / 30
    sign = 1 if _uniform(generator) < 0.5 else -1
    return op(image, sign * strength)


# ---- mixup and cutmix -------------------------------------------------------------------------


def mix(x: torch.Tensor, y: torch.Tensor, classes: int, mixup: float, cutmix: float,
        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(mixed images, soft targets N x classes): mixup (Zhang et al. 2018) blends each image
    with another of the batch; cutmix (Yun et al. 2019) pastes a box of it. With both on,
    each batch takes one of the two at random. Ratios come from Beta(alpha, alpha)."""
    targets = F.one_hot(y, classes).float()
    use_cutmix = cutmix > 0 and (mixup <= 0 or _uniform(generator) < 0.5)
    alpha = cutmix if use_cutmix else mixup
    if alpha <= 0 or len(x) < 2:
        return x, targets
    ratio = _beta(alpha, generator)
    partner = torch.randperm(len(x), generator=generator)
    if use_cutmix:
        x, ratio = _paste_box(x, x[partner], ratio, generator)
    else:
        x = ratio * x + (1 - ratio) * x[partner]
    return x, ratio * targets + (1 - ratio) * targets[partner]


def _beta(alpha: float, generator: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw from the generator, via two gamma draws."""
    a = torch._standard_gamma(torch.full((2,), float(alpha)), generator=generator)
    return float(a[0] / a.sum())


def _paste_box(x, other, ratio, generator):
    height, width = x.shape[-2:]
    cut = math.sqrt(1 - ratio)
    box_h, box_w = round(height * cut), round(width * cut)
    cy = int(torch.randint(0, height, (), generator=generator))
    cx = int(torch.randint(0, width, (), generator=generator))
    top, bottom = max(cy - box_h // 2, 0), min(cy + box_h // 2, height)
    left, right = max(cx - box_w // 2, 0), min(cx + box_w // 2, width)
    x = x.clone()
    x[..., top:bottom, left:right] = other[..., top:bottom, left:right]
    return x, 1 - (bottom - top) * (right - left) / (height * width)
