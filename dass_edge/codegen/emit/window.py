"""Geometry of a sliding window (conv or pool) on the unstaged input: for each kernel row or column, the
output rows or columns whose input position exists (zero padding handled by clipping loop ranges)."""

from __future__ import annotations

from dataclasses import dataclass

from dass_edge.codegen.ir import Conv, Pair, Pool


def _floor_div(a: int, b: int) -> int:
    return a // b


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Window:
    """Geometry of a window op: input (H, W), output (OH, OW), kernel, stride, padding, dilation."""

    in_hw: Pair
    out_hw: Pair
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair

    @classmethod
    def of(cls, node: Conv | Pool) -> Window:
        return cls(node.inputs[0].shape[1:], node.output.shape[1:], node.kernel, node.stride, node.padding,
                   node.dilation)

    def _valid(self, axis: int, k: int) -> Pair:
        """Outputs o along ``axis`` whose input o * stride - pad + k * dilation lies inside the input."""
        size, out, stride = self.in_hw[axis], self.out_hw[axis], self.stride[axis]
        shift = k * self.dilation[axis] - self.padding[axis]
        low = max(0, _ceil_div(-shift, stride))
        high = min(out, _floor_div(size - 1 - shift, stride) + 1)
        return low, max(low, high)

    def rows(self, ky: int) -> Pair:
        return self._valid(0, ky)

    def columns(self, kx: int) -> Pair:
        return self._valid(1, kx)

    def row_shift(self, ky: int) -> int:
        return ky * self.dilation[0] - self.padding[0]

    def column_shift(self, kx: int) -> int:
        return kx * self.dilation[1] - self.padding[1]

    @property
    def plane(self) -> int:
        return self.out_hw[0] * self.out_hw[1]
