"""Using trained weights: rebuild a model from a checkpoint, measure it (`archdsl eval`),
classify images (`archdsl run`), draw a confusion matrix.

A checkpoint (checkpoint.pt, best.pt, last.pt) carries the spec's source, the --set and
--input values, the class names and the preprocessing, so it alone rebuilds the model
and feeds it as training did. A bare state_dict (model.pt, torchvision's weights) needs
the spec, its options and a preprocessing choice.
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import ir
from ..backends.lower_fx import lower_fx
from .device import require_memory
from ..compile import CompileError, compile_file, compile_source
from ..errors import UsageError
from .checkpoint import load_weights
from .data import DataError, load_images
from .recipes import per_token
from .transforms import IMAGENET, PLAIN, Preprocess

# torchvision's download names: resnet50-0676ba61.pth, vit_b_16-c867db91.pth, ...
TORCHVISION_WEIGHTS = re.compile(r"^[a-z0-9_]+-[0-9a-f]{8}\.pth$")


class InferenceError(UsageError):
    """Weights that do not fit, images that cannot be read: says how to fix it."""


def load_checkpoint(path) -> torch.nn.Module:
    """The trained model in a checkpoint, rebuilt with nothing else, in eval mode; its
    `classes` and `preprocess` attributes say what it predicts and how to feed it.

        model = archdsl.load_checkpoint("runs/resnet18/best.pt")
    """
    state, trained = load_weights(Path(path))
    if trained is None:
        raise InferenceError(f"{path} is a bare state_dict, not an archdsl checkpoint: load it "
                             "with archdsl.load(SPEC, ...).load_state_dict(torch.load(PATH))")
    spec = trained["spec"]
    result = compile_source(spec["source"], spec["path"], network=spec["network"],
                            settings=spec["settings"],
                            inputs={k: tuple(v) for k, v in spec["inputs"].items()})
    if not result.ok:
        raise CompileError(result.diagnostics)
    require_memory(result.graph, "loading")
    model = _fit(lower_fx(result.graph), state, path, result.graph)
    model.classes = tuple(trained["classes"])
    model.preprocess = _saved_preprocess(trained)
    return model


def load_trained(spec: str, weights: str, settings: dict, inputs: dict, network=None,
                 preprocess: str = "auto"):
    """(model in eval mode, class names or None, graph, Preprocess or None) from a spec and
    a checkpoint, model.pt or torchvision weights file. `preprocess`: auto (the
    checkpoint's; ImageNet's for torchvision weights; None for other bare weights: the
    caller knows best), imagenet, or plain."""
    state, trained = load_weights(Path(weights))
    classes = None
    if trained is not None:
        settings = {**trained["spec"]["settings"], **settings}
        saved_inputs = {k: tuple(v) for k, v in trained["spec"]["inputs"].items()}
        inputs = {**saved_inputs, **inputs}
        classes = tuple(trained["classes"])
    result = compile_file(spec, settings=settings, inputs=inputs, network=network)
    if not result.ok:
        raise CompileError(result.diagnostics)
    graph = result.graph
    require_memory(graph, "loading")
    model = _fit(lower_fx(graph), state, weights, graph)
    return model, classes, graph, choose_preprocess(preprocess, trained, weights)


def choose_preprocess(choice: str, trained: dict | None, weights) -> Preprocess | None:
    if choice == "imagenet":
        return IMAGENET
    if choice == "plain":
        return PLAIN
    if trained is not None:
        return _saved_preprocess(trained)
    return IMAGENET if TORCHVISION_WEIGHTS.match(Path(weights).name) else None


def _saved_preprocess(trained: dict) -> Preprocess:
    saved = trained.get("preprocess")
    return Preprocess.from_dict(saved) if saved else PLAIN  # checkpoints made before it


def _fit(model, state, weights, graph):
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as error:
        detail = " ".join(line.strip() for line in str(error).splitlines()[1:3])
        raise InferenceError(f"{weights} does not fit {ir.network(graph).name} as configured "
                             f"({detail}); pass the --set and --input options it was trained "
                             "with (a checkpoint remembers them, a model.pt does not)") from None
    return model.eval()


# ---- evaluation -----------------------------------------------------------------------------------


def evaluate(model, split, device, batch_size: int, channels_last: bool = False,
             preprocess: Preprocess | None = None, classes: int | None = None) -> dict:
    """Loss, top-1 and top-5 accuracy, per-class accuracy and the confusion matrix
    (rows: true class, columns: predicted) over a split."""
    model.eval()
    seen = correct = correct5 = 0
    loss_sum = 0.0
    count = classes or len(split.classes)
    confusion = torch.zeros(count, count, dtype=torch.long)
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            x, y = split.batch(list(range(start, min(len(split), start + batch_size))), preprocess)
            x, y = x.to(device), y.to(device)
            if channels_last and x.dim() == 4:
                x = x.to(memory_format=torch.channels_last)
            logits, y = per_token(model(x).float(), y)  # a language model: every position
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            predicted = logits.argmax(1)
            correct += (predicted == y).sum().item()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            correct5 += (top == y[:, None]).any(1).sum().item()
            if count:
                pairs = (y.cpu() * count + predicted.cpu().clamp(max=count - 1)).bincount(
                    minlength=count * count)
                confusion += pairs.view(count, count)
            seen += len(y)
    model.train()
    totals = confusion.sum(1)
    per_class = [(confusion[i, i] / totals[i]).item() if totals[i] else float("nan")
                 for i in range(count)]
    loss = loss_sum / max(seen, 1)
    return {"loss": loss, "accuracy": correct / max(seen, 1),
            "top5": correct5 / max(seen, 1), "images": seen, "per_class": per_class,
            "confusion": confusion.tolist(),
            **({"perplexity": math.exp(min(loss, 700))} if split.tokens else {})}


def confusion_png(confusion: list[list[int]], classes) -> bytes:
    """The confusion matrix as a PNG: rows are the true classes, columns the predictions,
    each row coloured by its share of the class's images."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    matrix = torch.tensor(confusion, dtype=torch.float)
    shares = matrix / matrix.sum(1, keepdim=True).clamp_min(1)
    count = len(confusion)
    side = min(12, 2 + 0.45 * count)
    figure, axis = pyplot.subplots(figsize=(side + 1, side))
    image = axis.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
    if count <= 30:
        axis.set_xticks(range(count), classes, rotation=90)
        axis.set_yticks(range(count), classes)
        for i in range(count):
            for j in range(count):
                if confusion[i][j]:
                    axis.text(j, i, str(confusion[i][j]), ha="center", va="center", fontsize=7,
                              color="white" if shares[i, j] > 0.5 else "black")
    axis.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of the class")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    pyplot.close(figure)
    return buffer.getvalue()


# ---- inference -----------------------------------------------------------------------------------


def predict(model, graph, paths: list[str], top_k: int, preprocess: Preprocess = PLAIN):
    shape = graph.nodes[ir.network(graph).inputs[0]]["shape"]
    try:
        x = load_images(paths, shape, preprocess)
    except DataError as error:
        raise InferenceError(str(error)) from None
    with torch.no_grad():
        probabilities = model(x).float().softmax(1)
    top = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [list(zip(v.tolist(), i.tolist())) for v, i in zip(top.values, top.indices)]
