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
"""
from .compile import Compilation, UsageError, compile_file, compile_source
from .diagnostics import Diagnostic, render, render_all
from .elaborate import Limits
from .ir import dump

__all__ = ["Compilation", "Diagnostic", "Limits", "UsageError", "compile_file", "compile_source",
           "dump", "render", "render_all"]
__version__ = "0.1.0"
