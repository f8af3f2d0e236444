"""Exact structural compaction of masked networks: drop dead channels, fold constants into biases.

Stages, one module each: ``trace`` (bake, fx-trace, fold BatchNorm, classify nodes), ``liveness`` (which
channels vary with the input, which are read, which each tensor keeps), ``rebuild`` (smaller dense layers plus
constant propagation), ``stats`` (parameters and MACs). ``masks`` makes connectivity-preserving test masks.
The public entry point is :func:`dass_edge.export.compact.compact_model`.
"""

from dass_edge.errors import DassEdgeError


class UnsupportedGraphError(DassEdgeError):
    """The traced network contains an op whose channel semantics compaction does not know."""
