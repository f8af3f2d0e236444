"""Every op of the search space and of the baselines exports to ops the boards' runtime versions know.

One network holds every primitive of the op registry at stride 1 and 2 (taken from OPS, so a new primitive
is covered without touching this file), the cells' concat and classifier head, and the building blocks of
the MobileNet-v2 and ResNet-18 baselines (ReLU6, depthwise and strided convs, residual adds). For each board format it is exported
for a target that names an old runtime (tflite-runtime 2.13.0, onnxruntime 1.10.0, OpenVINO 2021.4.2), the
file is read back op by op against known_ops.json, and it loads and matches PyTorch in that very runtime
(the side environments). Files with ops those runtimes lack are refused with one line naming the op, and
known_ops.json is what the runtimes say today.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import side_python
from dass_edge.export import get_exporter
from dass_edge.export.known_ops import UnknownOpError, check_loadable, known, tflite_operators
from dass_edge.export.probe_runtimes import probe
from dass_edge.export.side_envs import find_python, side_session
from dass_edge.export.validate import check_inputs
from dass_edge.search import sparse
from dass_edge.search.baselines import BasicBlock, InvertedResidual, conv_bn
from dass_edge.search.cells import Classifier
from dass_edge.search.ops import OPS, PRIMITIVES
from dass_edge.targets import get_target

SHAPE = (1, 1, 16, 16)
C = 4
BOARDS = {"tflite": "cortex-a7", "onnx": "jetson-tx2", "openvino": "ncs2"}


def board_python(runtime: str, version: str):
    """The side environment's interpreter with ``runtime`` at ``version`` (skipped, or failed on CI, if none)."""
    return find_python(runtime, version) or side_python(f"with {runtime} {version}")


class EveryOp(nn.Module):
    """Every primitive at stride 1 (outputs summed) then at stride 2 (outputs concatenated, as cells do),
    then the baselines' blocks (MobileNet-v2's inverted residuals with and without the residual, ResNet-18's
    basic blocks with an identity and a strided 1x1 shortcut) and the shared classifier head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(SHAPE[1], C, 3)
        self.normal = nn.ModuleDict({name: OPS[name](C, 1, True) for name in PRIMITIVES})
        self.reduce = nn.ModuleDict({name: OPS[name](C, 2, True) for name in PRIMITIVES})
        wide = C * len(PRIMITIVES)
        self.blocks = nn.Sequential(InvertedResidual(wide, wide, 1, 6), InvertedResidual(wide, C, 2, 6),
                                    BasicBlock(C, C, 1), BasicBlock(C, 2 * C, 2))
        self.head = Classifier(2 * C, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = sum(op(y) for op in self.normal.values())
        y = torch.cat([op(y) for op in self.reduce.values()], dim=1)
        return self.head(self.blocks(y))


@pytest.fixture(scope="module")
def every_op() -> nn.Module:
    torch.manual_seed(0)
    return sparse.bake(EveryOp()).eval()


def test_the_network_holds_every_registered_primitive_at_both_strides(every_op):
    for stride, branch in ((1, every_op.normal), (2, every_op.reduce)):
        assert tuple(branch) == PRIMITIVES
        assert all(type(op) is type(OPS[name](C, stride, True)) for name, op in branch.items())


@pytest.mark.parametrize("fmt", sorted(BOARDS))
def test_every_op_exports_loads_and_matches_in_the_board_runtime(every_op, tmp_path, fmt):
    target = get_target(BOARDS[fmt])
    [(runtime, version)] = target.runtimes_for(fmt)
    python = board_python(runtime, version)
    (tmp_path / "work").mkdir()
    artifact = get_exporter(fmt)(every_op, SHAPE, target, tmp_path, tmp_path / "work")  # checks its ops
    if fmt == "tflite":
        names = {name for name, _ in tflite_operators(artifact.model_file)}
        assert {"AVERAGE_POOL_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D"} <= names
        assert not [name for name in names if name.startswith(("STABLEHLO", "CUSTOM"))], names
    inputs = check_inputs(SHAPE, None)
    with torch.no_grad():
        expected = np.concatenate([every_op(torch.from_numpy(x)).numpy() for x in inputs])
    got = np.concatenate(side_session(runtime, version, python, artifact.model_file, "NCHW").run_all(inputs))
    scale = max(1.0, float(np.abs(expected).max()))  # fp16 (ncs2) rounds relative to the logits' size
    np.testing.assert_allclose(got, expected, atol=target.atol * scale)
    assert np.ptp(expected, axis=0).max() > 1e-3


def test_a_stablehlo_pool_is_refused_naming_the_op_and_the_runtime_really_refuses_it(tmp_path):
    """litert-torch without the builtin-pool rewrite: what the cortex-a7 export held before issue 11."""
    import litert_torch

    python = board_python("tflite-runtime", "2.13.0")
    pool = nn.Sequential(nn.Conv2d(1, 2, 1), OPS["avg_pool_3x3"](2, 2, True)).eval()  # stride 1 stays builtin
    path = tmp_path / "stablehlo.tflite"
    litert_torch.convert(pool, (torch.zeros(1, 1, 8, 8),)).export(str(path))
    with pytest.raises(UnknownOpError, match=r"^stablehlo.tflite holds STABLEHLO_REDUCE_WINDOW version \d+, "
                                             r"which tflite-runtime 2.13.0 cannot load$"):
        check_loadable("tflite", path, get_target("cortex-a7"))
    check_loadable("tflite", path, get_target("intel-cpu"))  # the host's LiteRT knows it
    with pytest.raises(Exception, match="does not run in tflite-runtime 2.13.0 .*builtin_code out of range"):
        side_session("tflite-runtime", "2.13.0", python, path, "NCHW").run_all([np.zeros((1, 1, 8, 8), np.float32)])


def test_newer_onnx_opsets_and_openvino_opsets_are_refused_naming_them(tmp_path):
    from openvino import convert_model, passes

    from dass_edge.export.onnx import write_onnx

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)).eval()
    write_onnx(model, (1, 1, 8, 8), tmp_path / "m.onnx")  # the host's default: opset 18, IR 10
    with pytest.raises(UnknownOpError, match=r"^m.onnx holds ONNX IR version 10, which onnxruntime 1.10.0 cannot "
                                             r"load$"):
        check_loadable("onnx", tmp_path / "m.onnx", get_target("jetson-tx2"))
    write_onnx(model, (1, 1, 8, 8), tmp_path / "m17.onnx", opset=17, ir_version=8)
    with pytest.raises(UnknownOpError, match=r"^m17.onnx holds ONNX opset 17, which onnxruntime 1.10.0 cannot load$"):
        check_loadable("onnx", tmp_path / "m17.onnx", get_target("jetson-tx2"))
    manager = passes.Manager()  # IR v10 as written, without the opset1 rewrite: MaxPool-8 stays
    manager.register_pass(passes.Serialize(str(tmp_path / "m.xml"), str(tmp_path / "m.bin"), passes.Version.IR_V10))
    manager.run_passes(convert_model(str(tmp_path / "m.onnx")))
    with pytest.raises(UnknownOpError, match=r"^m.xml holds MaxPool-opset8 \(layer .*\), which openvino 2021.4.2"):
        check_loadable("openvino", tmp_path / "m.xml", get_target("ncs2"))


@pytest.mark.parametrize("record", sorted(known()))
def test_known_ops_is_what_the_runtime_loads_today(record):
    """known_ops.json was made by probe_runtimes.py; asking the runtime again gives the same answer."""
    fresh = probe(record.split(" ")[0], board_python(*record.split(" ")))
    assert {k: v for k, v in known()[record].items() if k != "made"} == fresh
