"""One registry of trainable architectures: a ModelSpec (plain data, stored in checkpoints) -> nn.Module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from torch import nn

from dass_edge.errors import InputError
from dass_edge.search.baselines import MobileNetV2, ResNet18
from dass_edge.search.genotype import DARTS_V2, Genotype
from dass_edge.search.network import VARIANTS, Network
from dass_edge.search.supernet import SearchNetwork


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network's modules (not its weights).

    ``arch`` is a key of ARCHS. Cell networks (dass, darts-v2, supernet) use ``cells``/``channels``;
    baselines use ``width``. ``variant`` is a Table 2 name or "custom".
    """

    arch: str
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    variant: str = "custom"
    cells: int = 8
    channels: int = 16
    width: float = 1.0
    genotype: Genotype | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["genotype"] = self.genotype.to_dict() if self.genotype else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        data = dict(data)
        if data.get("genotype") is not None:
            data["genotype"] = Genotype.from_dict(data["genotype"])
        return cls(**data)

    def with_variant(self, variant: str) -> ModelSpec:
        """The same spec at a Table 2 size; only cell networks have variants."""
        if variant not in VARIANTS:
            raise InputError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        if self.arch not in CELL_ARCHS:
            raise InputError(f"--variant applies to DARTS-cell networks, not {self.arch}")
        cells, channels = VARIANTS[variant]
        return replace(self, variant=variant, cells=cells, channels=channels)


def _cell_network(spec: ModelSpec) -> nn.Module:
    genotype = DARTS_V2 if spec.arch == "darts-v2" else spec.genotype
    if genotype is None:
        raise InputError("a dass network needs a genotype")
    return Network(genotype, spec.channels, spec.cells, spec.num_classes, spec.in_channels)


ARCHS: dict[str, Callable[[ModelSpec], nn.Module]] = {
    "dass": _cell_network,
    "darts-v2": _cell_network,
    "mobilenet-v2": lambda s: MobileNetV2(s.num_classes, s.in_channels, s.width),
    "resnet-18": lambda s: ResNet18(s.num_classes, s.in_channels, s.width),
    "supernet": lambda s: SearchNetwork(s.channels, s.cells, s.num_classes, s.in_channels),
}
CELL_ARCHS = ("dass", "darts-v2")


def build_model(spec: ModelSpec) -> nn.Module:
    try:
        builder = ARCHS[spec.arch]
    except KeyError:
        raise InputError(f"unknown architecture {spec.arch!r}; known: {', '.join(ARCHS)}") from None
    return builder(spec)
