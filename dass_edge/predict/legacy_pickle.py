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

A pickle names the callables that rebuild it, and unpickling calls them: a ``.pkl`` whose ``__reduce__``
names ``os.system`` runs a command. So every global a file asks for is checked against what a latency
predictor holds (scikit-learn estimators, the trees inside them, numpy arrays and random states, our
``KernelRegressor``); anything else is refused with one line naming it, before it is called.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import pickle
import struct
import warnings
from typing import Any

from dass_edge.errors import InputError

log = logging.getLogger(__name__)

_CRITERIA = {"mse": "squared_error", "mae": "absolute_error"}
_NUMPY_CORE = ("numpy.core", "numpy._core")  # numpy 1's module name (old pickles) and numpy 2's
# (module, name) of every global besides the estimator classes (see _is_estimator) that the pickles of
# nn-Meter's builder (plain RandomForestRegressor), old and current scikit-learn and calibrate contain.
# nn-Meter itself pickles none of its own classes, so none is allowed.
ALLOWED = frozenset({
    *((f"{core}.multiarray", f) for core in _NUMPY_CORE for f in ("_reconstruct", "scalar")),
    *((f"{core}.numeric", "_frombuffer") for core in _NUMPY_CORE),  # arrays in protocol-5 pickles
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._mt19937", "MT19937"),  # an estimator given random_state=np.random.RandomState(...)
    ("_codecs", "encode"),  # how protocol 2 writes bytes
    ("sklearn.tree._tree", "Tree"),
    ("dass_edge.predict.features", "KernelRegressor"),
})


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global that no predictor needs; ``name`` is ``module.name``."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _is_estimator(module: str, name: str) -> bool:
    """A scikit-learn estimator class: constructing one only stores its parameters (scikit-learn's rule
    for every estimator), and any callable parameter would itself have to pass this check."""
    if module.split(".")[0] != "sklearn" or not name.isidentifier():
        return False  # a dotted name would walk attributes (``ndarray.__class__...``)
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    from sklearn.base import BaseEstimator

    return isinstance(obj, type) and issubclass(obj, BaseEstimator)


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
    """The pure-Python unpickler with BUILD intercepted (the C one cannot be hooked there) and globals
    restricted to ALLOWED and scikit-learn estimators: every opcode that names a global (GLOBAL,
    STACK_GLOBAL, INST, the extension registry) resolves it through find_class."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED or _is_estimator(module, name):
            return super().find_class(module, name)
        raise RefusedGlobal(f"{module}.{name}")

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


# What a damaged or truncated pickle raises from the pure-Python unpickler.
_BROKEN = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
           struct.error, OverflowError, RecursionError, MemoryError)


def loads(data: bytes, source: str = "pickle") -> Any:
    """Unpickle ``data``, upgrading old scikit-learn trees; version-mismatch warnings are expected and muted.

    Raises InputError (one line, naming ``source``) for a refused global or a damaged pickle."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Trying to unpickle estimator.*")
            return LegacyUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as exc:
        raise InputError(f"refusing {source}: it asks for {exc.name}, which no latency predictor holds "
                         "(only scikit-learn estimators and numpy arrays are allowed); it was not called") from None
    except _BROKEN as exc:
        raise InputError(f"{source} is not a readable predictor pickle "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())})") from None


def load(path: str | os.PathLike) -> Any:
    """Unpickle the file at ``path`` (see :func:`loads`)."""
    with open(path, "rb") as f:
        return loads(f.read(), str(path))
