"""nn-Meter's released predictors were pickled by scikit-learn 0.23/0.24: they must load and predict exactly."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from dass_edge.predict import legacy_pickle

FIXTURES = Path(__file__).parent / "fixtures"


def test_old_forest_fails_with_plain_pickle():
    """The fixture really is an old-layout pickle (otherwise the next test would prove nothing)."""
    with pytest.raises(ValueError, match="incompatible dtype"):
        pickle.loads((FIXTURES / "legacy_forest.pkl").read_bytes())


def test_old_forest_predicts_exactly_as_when_saved():
    expected = json.loads((FIXTURES / "legacy_forest_expected.json").read_text())
    assert expected["sklearn_version"].startswith("0.24")
    forest = legacy_pickle.load(FIXTURES / "legacy_forest.pkl")
    predictions = forest.predict(np.array(expected["inputs"]))
    np.testing.assert_array_equal(predictions, np.array(expected["predictions"]))
    assert forest.estimators_[0].criterion == "squared_error"
    assert forest.estimators_[0].monotonic_cst is None


def test_current_pickles_pass_through(tmp_path):
    from sklearn.tree import DecisionTreeRegressor

    x = np.arange(20.0).reshape(10, 2)
    tree = DecisionTreeRegressor(max_depth=3, random_state=0).fit(x, x[:, 0] ** 2)
    loaded = legacy_pickle.loads(pickle.dumps(tree))
    np.testing.assert_array_equal(loaded.predict(x), tree.predict(x))
