"""archdsl: a compiler for neural-network architectures.

    >>> import archdsl
    >>> result = archdsl.compile_source('''
    ... network tiny(classes = 10) {
    ...     input image: 3 x 32 x 32
    ...     conv(16, 3, pad = 1); relu; global_avgpool; flatten
    ...     fc: linear(classes)
    ... }''')
    >>> result.ok, result.graph.nodes["fc"]["shape"]
    (True, (10,))

The steps are importable one by one: `compile_file` / `compile_source` (parse, elaborate,
infer shapes, count costs), `stats` (cost report), `diagram` (a figure, shown inline in
notebooks), `lower` (torch.fx module), and `load` does all of it; `load_checkpoint`
rebuilds a trained model from a checkpoint of `archdsl train`; `generate` continues token
ids with a language model, a KV cache in its attentions. `render_diagnostic` and
`render_all` format errors. Only `lower`, `load`, `load_checkpoint` and `generate` import
torch.
"""
from __future__ import annotations

from pathlib import Path

from .compile import Compilation, CompileError, compile_file, compile_source
from .errors import UsageError
from .diagnostics import Diagnostic, render_all, render_diagnostic
from .lang.elaborate import Limits
from .ir import dump
from .backends.report_stats import report_stats as stats

__all__ = ["Compilation", "CompileError", "Diagnostic", "Limits", "UsageError", "compile_file",
           "compile_source", "diagram", "dump", "generate", "load", "load_checkpoint", "lower",
           "render_all",
           "render_diagnostic", "stats"]
__version__ = "0.1.0"


def diagram(spec, **options):
    """The diagram of a spec path, .arch text or compiled graph (see archdsl.figures)."""
    from .figures import diagram as make
    return make(spec, **options)


def generate(model, prompt, max_new_tokens: int, **options):
    """Continue token ids with a language model, greedy or sampled, reading earlier
    tokens' keys and values from a KV cache (see archdsl.runtime.generate)."""
    from .runtime.generate import generate as run
    return run(model, prompt, max_new_tokens, **options)


def lower(graph, *, zero_init_residual: bool = False):
    """Lower a checked IR to a torch module (see archdsl.backends.lower_fx). Raises
    UsageError, before a weight is made, where its parameters cannot fit in this
    machine's memory."""
    from .backends.lower_fx import lower_fx
    from .runtime.device import require_memory
    require_memory(graph, "lowering")
    return lower_fx(graph, zero_init_residual=zero_init_residual)


def load(path: str | Path, *, network: str | None = None, inputs: dict | None = None,
         zero_init_residual: bool = False, **settings):
    """Compile a spec and return its torch module; keyword arguments set network parameters.

        model = archdsl.load("specs/resnet50.arch", classes=10)

    Raises CompileError (its message is the rendered diagnostics) if the spec has errors.
    """
    result = compile_file(path, network=network, settings=settings, inputs=inputs)
    if not result.ok:
        raise CompileError(result.diagnostics)
    return lower(result.graph, zero_init_residual=zero_init_residual)


def load_checkpoint(path: str | Path):
    """The trained model in a checkpoint of `archdsl train` (best.pt, last.pt,
    checkpoint.pt), rebuilt from the spec source, settings and input shape it carries, in
    eval mode; `model.classes` names its outputs and `model.preprocess` says how inputs
    were prepared in training.

        model = archdsl.load_checkpoint("runs/tiny_classifier/best.pt")
    """
    from .runtime.predict import load_checkpoint as rebuild
    return rebuild(path)
