"""Average pooling that excludes padding exports to TFLite builtins (boards' tflite-runtime 2.13/2.14 know
no STABLEHLO ops) and keeps its values, for every pooling primitive of the search space."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dass_edge.export.tflite import _convert, op_types, with_builtin_pools
from dass_edge.search.ops import OPS, PRIMITIVES

POOLS = [name for name in PRIMITIVES if "pool" in name]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", POOLS)
def test_pool_primitives_become_builtin_ops_with_the_same_values(tmp_path: Path, name: str, stride: int):
    from ai_edge_litert.interpreter import Interpreter

    model = nn.Sequential(nn.Conv2d(2, 4, 1), OPS[name](4, stride, False)).eval()
    shape = (1, 2, 9, 9)  # odd size: border cells of a stride-2 pool count 4 or 6 inputs, not 9
    x = torch.randn(shape)
    with torch.no_grad():
        expected = model(x).numpy()
        assert np.allclose(with_builtin_pools(model, shape)(x).numpy(), expected, atol=1e-6)
    path = tmp_path / "pool.tflite"
    _convert(model, shape, path)
    ops = op_types(path)
    assert not [op for op in ops if op.startswith("STABLEHLO")], ops
    assert ops[{"avg_pool_3x3": "AVERAGE_POOL_2D", "max_pool_3x3": "MAX_POOL_2D"}[name]] == 1
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.numpy())
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert np.abs(got - expected).max() < 1e-5
