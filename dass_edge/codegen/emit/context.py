"""What an emitter is given (where the layer's tensors and workspace are) and what it returns (its C)."""

from __future__ import annotations

from dataclasses import dataclass

from dass_edge.codegen.ir import Tensor
from dass_edge.codegen.storage import Place


@dataclass(frozen=True)
class Operand:
    pointer: str  # the C expression the call passes, e.g. "dass_edge_arena + 1024"
    place: Place
    tensor: Tensor


@dataclass(frozen=True)
class Context:
    name: str  # the static function to define (tables are prefixed with it too)
    inputs: tuple[Operand, ...]
    output: Operand
    workspace: str | None = None  # pointer to the layer's scratch floats in the arena, if it has any

    def require_workspace(self) -> str:
        if self.workspace is None:
            raise ValueError(f"{self.name}: the layout gave this layer no workspace")
        return self.workspace

    def aliases_output(self, k: int) -> bool:
        """Does input ``k`` lie exactly where the output goes (an op computed in place)?"""
        return self.inputs[k].place == self.output.place


@dataclass(frozen=True)
class LayerCode:
    source: str  # tables and the function definition
    args: tuple[str, ...]  # pointer expressions, in the function's parameter order
