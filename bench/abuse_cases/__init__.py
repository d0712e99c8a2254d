"""Issue 12's abuse cases, one module per class of the reliability issue; ``bench/abuse.py`` runs
them. :mod:`.harness` runs a child process and judges it, :mod:`.inputs` builds the shared and the
hostile files; each case module lists its cases in ``CASES``, in the order of the report."""

from . import garbage, handled, hangs, paths, resources, rough
from .harness import Case, Context, Verdict
from .inputs import Inputs, build_inputs

ALL_CASES: tuple[Case, ...] = (
    *resources.CASES,
    *garbage.CASES,
    *paths.CASES,
    *hangs.CASES,
    *rough.CASES,
    *handled.CASES,
)

__all__ = ["ALL_CASES", "Case", "Context", "Inputs", "Verdict", "build_inputs"]
