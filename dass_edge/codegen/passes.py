"""Rewrites of the IR, each a free function that changes a Graph in place and keeps it executable.

Why these: in a 99%-sparse network a convolution does little work, so what costs is every extra pass over
a tensor. Fusing a ReLU into the conv that produces it (or into the loads of the convs that read it), an
Add into the conv that produces one operand, and a constant into a bias removes whole passes; views remove
the copies of concatenations and slices. ``optimise`` runs them in the order they depend on.
"""

from __future__ import annotations

import numpy as np

from dass_edge.codegen.ir import (Add, AddConst, Bounds, Clamp, Concat, Conv, Copy, Flatten, Graph, Node, Slice,
                                  Tensor, is_identity)


def optimise(graph: Graph) -> Graph:
    dedupe(graph)
    fold_constant_adds(graph)
    fuse_output_clamps(graph)
    fuse_residual_adds(graph)
    fuse_input_clamps(graph)
    drop_unread_channels(graph)
    materialise_views(graph)
    return graph


def _only_reader(graph: Graph, tensor: Tensor, node: Node) -> bool:
    """``node`` is the one reader of ``tensor`` (which is not the graph's output either)."""
    return graph.output is not tensor and graph.consumers(tensor) == [node]


def _remove(graph: Graph, node: Node) -> None:
    graph.nodes = [n for n in graph.nodes if n is not node]


def dedupe(graph: Graph) -> None:
    """Identical clamps or slices of one tensor become one (each DARTS op starts with its own ReLU of a
    shared cell state)."""
    seen: dict[tuple, Tensor] = {}
    for node in list(graph.nodes):
        if isinstance(node, Clamp):
            key = ("clamp", id(node.inputs[0]), node.bounds)
        elif isinstance(node, Slice):
            key = ("slice", id(node.inputs[0]), node.start, node.step, node.output.shape)
        else:
            continue
        if key in seen:
            graph.replace_uses(node.output, seen[key])
            _remove(graph, node)
        else:
            seen[key] = node.output


def fold_constant_adds(graph: Graph) -> None:
    """A per-channel constant added to a conv's output joins the conv's bias."""
    for node in list(graph.nodes):
        if not (isinstance(node, AddConst) and node.const.shape[1:] == (1, 1) and is_identity(node.out_clamp)):
            continue
        producer = graph.producer(node.inputs[0])
        if isinstance(producer, Conv) and is_identity(producer.out_clamp) and _only_reader(graph, node.inputs[0], node):
            producer.bias = (producer.bias + node.const[:, 0, 0]).astype("float32")
            producer.output = node.output
            _remove(graph, node)


def fuse_output_clamps(graph: Graph) -> None:
    """A clamp whose input has no other reader is applied by that input's producer when it stores."""
    for node in list(graph.nodes):
        if not isinstance(node, Clamp):
            continue
        producer = graph.producer(node.inputs[0])
        if (isinstance(producer, (Conv, Add, AddConst)) and is_identity(producer.out_clamp)
                and _only_reader(graph, node.inputs[0], node)):
            producer.out_clamp = node.bounds
            producer.output = node.output
            _remove(graph, node)


def fuse_residual_adds(graph: Graph) -> None:
    """``conv(x) + y`` becomes one conv that starts its sums from ``y``; the conv moves to the Add's place
    in the schedule (its inputs are ready earlier, its output had no other reader)."""
    for add in [n for n in graph.nodes if isinstance(n, Add)]:
        order = {id(n): i for i, n in enumerate(graph.nodes)}
        candidates = []
        for mine, other in ((0, 1), (1, 0)):
            conv = graph.producer(add.inputs[mine])
            residual = add.inputs[other]
            if (isinstance(conv, Conv) and conv.residual is None and is_identity(conv.out_clamp)
                    and _only_reader(graph, add.inputs[mine], add) and residual is not add.inputs[mine]
                    and not isinstance(graph.producer(residual), Slice)):
                candidates.append((order[id(conv)], conv, residual))
        if not candidates:
            continue
        _, conv, residual = max(candidates, key=lambda c: c[0])  # the later conv moves least
        conv.inputs = [conv.inputs[0], residual]
        conv.out_clamp = add.out_clamp
        conv.output = add.output
        graph.nodes = [conv if n is add else n for n in graph.nodes if n is not conv]


def fuse_input_clamps(graph: Graph) -> None:
    """A clamp read only by convs (as their input x) is applied by each of them as it loads x. Legal only
    where the clamp keeps zero (ReLU, ReLU6): zero padding must stay zero."""
    for node in list(graph.nodes):
        if not isinstance(node, Clamp) or not node.bounds[0] <= 0.0 <= node.bounds[1]:
            continue
        readers = graph.consumers(node.output)
        if (graph.output is node.output or not readers
                or not all(isinstance(r, Conv) and r.in_clamp is None and r.inputs[0] is node.output
                           and r.residual is not node.output for r in readers)):
            continue
        for reader in readers:
            reader.in_clamp = node.bounds
            reader.inputs[0] = node.inputs[0]
        _remove(graph, node)


def drop_unread_channels(graph: Graph) -> None:
    """A conv read only by dense convs computes only the channels they read through a non-zero weight;
    a channel whose weights are all zero is a constant, added to the readers' biases where they have no
    padding (at a zero-padded border it would not be uniform). Compaction keeps a depthwise conv's channels
    in step with its input's (it has no gather); here a channel map costs nothing: the depthwise conv
    becomes a conv whose output channel k reads input channel map[k]."""
    for node in [n for n in graph.nodes if isinstance(n, Conv)]:
        readers = graph.consumers(node.output)
        if (graph.output is node.output or node.residual is not None or not readers
                or not all(isinstance(r, Conv) and r.groups == 1 and r.inputs[0] is node.output
                           and r.residual is not node.output for r in readers)):
            continue
        read = np.zeros(node.output.shape[0], dtype=bool)
        for reader in readers:
            read |= (reader.weight != 0).any(axis=(0, 2, 3))
        constant = ~(node.weight != 0).reshape(len(read), -1).any(axis=1)
        if all(r.padding == (0, 0) for r in readers):
            for reader in readers:
                _absorb_constants(reader, node, read & constant)
            read &= ~constant
        if not read.any():
            read[0] = True  # a conv keeps one channel (its readers' weights on it are zero)
        if read.all():
            continue
        _keep_channels(graph, node, readers, read)


def _clamped(values: np.ndarray, bounds: Bounds | None) -> np.ndarray:
    return values if bounds is None else np.clip(values, bounds[0], bounds[1])


def _absorb_constants(reader: Conv, node: Conv, channels: np.ndarray) -> None:
    """Add to ``reader``'s bias what ``node``'s constant ``channels`` contribute to it."""
    value = _clamped(_clamped(node.bias, node.out_clamp), reader.in_clamp)
    taps = reader.weight.sum(axis=(2, 3))  # (out, in): no padding, so every tap reads the constant
    reader.bias = (reader.bias + taps[:, channels] @ value[channels]).astype(np.float32)
    reader.weight = reader.weight.copy()
    reader.weight[:, channels] = 0


def _keep_channels(graph: Graph, node: Conv, readers: list[Conv], keep: np.ndarray) -> None:
    out, group_in, kh, kw = node.weight.shape
    if node.groups == 1:
        weight = node.weight[keep]
    else:  # grouped -> dense with explicit input channels
        weight = np.zeros((int(keep.sum()), node.inputs[0].shape[0], kh, kw), dtype=np.float32)
        for row, channel in enumerate(np.flatnonzero(keep)):
            group = channel // (out // node.groups)
            weight[row, group * group_in:(group + 1) * group_in] = node.weight[channel]
        node.groups = 1
    node.weight, node.bias = weight, node.bias[keep]
    smaller = Tensor(node.output.name, (int(keep.sum()), *node.output.shape[1:]))
    for reader in readers:
        reader.weight = reader.weight[:, keep]
        reader.inputs[0] = smaller
    node.output = smaller


def _copy_of(tensor: Tensor, suffix: str) -> Copy:
    return Copy(name=f"{tensor.name}_{suffix}", origin=f"copy of {tensor.name}", inputs=[tensor],
                output=Tensor(f"{tensor.name}_{suffix}", tensor.shape))


def materialise_views(graph: Graph) -> None:
    """Copies where a view cannot be: a concatenation's part must be computed straight into the concat's
    storage, so it cannot be the input, a slice, a flattened map's source or a part of another
    concatenation; a flattened map must be computed by a node of its own (not a view); the graph's output
    must be computed by a node of its own into a storage of its own (it is the caller's buffer)."""
    claimed = {id(n.inputs[0]) for n in graph.nodes if isinstance(n, Flatten)}  # placed in their vectors
    for flatten in [n for n in graph.nodes if isinstance(n, Flatten)]:
        if isinstance(graph.producer(flatten.inputs[0]), (Slice, Concat, Flatten)) or id(flatten.inputs[0]) in {
                id(t) for n in graph.nodes if isinstance(n, Concat) for t in n.inputs}:
            copy = _copy_of(flatten.inputs[0], flatten.name)
            graph.nodes.insert(graph.nodes.index(flatten), copy)
            flatten.inputs = [copy.output]
            claimed.add(id(copy.output))
    for concat in [n for n in graph.nodes if isinstance(n, Concat)]:
        parts = []
        for index, part in enumerate(concat.inputs):
            if part is graph.input or id(part) in claimed or isinstance(graph.producer(part), Slice):
                copy = _copy_of(part, f"{concat.name}_{index}")
                graph.nodes.insert(graph.nodes.index(concat), copy)
                part = copy.output
            claimed.add(id(part))
            parts.append(part)
        concat.inputs = parts
    producer = graph.producer(graph.output)
    if producer is None or isinstance(producer, (Concat, Slice, Flatten)) or id(graph.output) in claimed:
        copy = _copy_of(graph.output, "out")
        graph.nodes.append(copy)
        graph.output = copy.output
