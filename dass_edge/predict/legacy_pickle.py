"""Load scikit-learn tree ensembles pickled by scikit-learn 0.23/0.24 (nn-Meter's released predictors).

Current scikit-learn refuses those pickles (``node array from the pickle has an incompatible dtype``):
since 1.3 a tree node carries a ``missing_go_to_left`` byte, and several attributes were renamed. This
unpickler upgrades the state on the way in, so the trees predict exactly as they did when saved:

- tree node records gain ``missing_go_to_left = 0`` (old trees never saw missing values);
- ``criterion`` 'mse'/'mae' becomes 'squared_error'/'absolute_error';
- ``monotonic_cst`` (new in 1.4) is set to None, i.e. no constraint, as before;
- ensembles get ``estimator``/``estimator_`` from the old ``base_estimator``/``base_estimator_``;
- a regressor's ``max_features='auto'`` (removed in 1.3) becomes 1.0, which is what it meant.

Pickles made by current scikit-learn pass through unchanged.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import warnings
from typing import Any

log = logging.getLogger(__name__)

_CRITERIA = {"mse": "squared_error", "mae": "absolute_error"}


def _upgrade_nodes(state: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from sklearn.tree._tree import NODE_DTYPE

    nodes = state.get("nodes")
    if nodes is None or nodes.dtype == NODE_DTYPE:
        return state
    upgraded = np.zeros(nodes.shape, dtype=NODE_DTYPE)
    for name in nodes.dtype.names:
        upgraded[name] = nodes[name]
    # missing_go_to_left stays 0: trees grown before 1.3 never routed missing values.
    log.debug("upgraded %d tree nodes to the current node layout", len(nodes))
    return {**state, "nodes": upgraded}


def _upgrade_estimator(obj: Any) -> None:
    attrs = obj.__dict__
    if attrs.get("criterion") in _CRITERIA:
        attrs["criterion"] = _CRITERIA[attrs["criterion"]]
    if "criterion" in attrs and "monotonic_cst" not in attrs:
        attrs["monotonic_cst"] = None
    for old, new in (("base_estimator", "estimator"), ("base_estimator_", "estimator_")):
        if old in attrs and new not in attrs:
            attrs[new] = attrs.pop(old)
    from sklearn.base import RegressorMixin

    if attrs.get("max_features") == "auto" and isinstance(obj, RegressorMixin):
        attrs["max_features"] = 1.0


class LegacyUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """The pure-Python unpickler with BUILD intercepted (the C one cannot be hooked there)."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def load_build(self) -> None:
        from sklearn.base import BaseEstimator
        from sklearn.tree._tree import Tree

        state = self.stack[-1]
        obj = self.stack[-2]
        if isinstance(obj, Tree) and isinstance(state, dict):
            self.stack[-1] = _upgrade_nodes(state)
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
        if isinstance(obj, BaseEstimator):
            _upgrade_estimator(obj)

    dispatch[pickle.BUILD[0]] = load_build


def loads(data: bytes) -> Any:
    """Unpickle ``data``, upgrading old scikit-learn trees; version-mismatch warnings are expected and muted."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Trying to unpickle estimator.*")
        return LegacyUnpickler(io.BytesIO(data)).load()


def load(path: str | os.PathLike) -> Any:
    """Unpickle the file at ``path`` (see :func:`loads`). Only load pickles you trust: pickle runs code."""
    with open(path, "rb") as f:
        return loads(f.read())
