"""ONNX Runtime adapter: the CPU execution provider, or CUDA / TensorRT when asked for and present.

Provider choice and the check that the provider asked for is the one that ran are the board agent's
(dass_edge.agent), so the host and a board refuse a missing GPU provider the same way, never falling back
to the CPU in silence.
"""

from __future__ import annotations

from pathlib import Path

from dass_edge import agent
from dass_edge.errors import InputError
from dass_edge.runtimes import Runtime, Session, require


def open_session(path: Path, spec: Runtime, *, threads: int | None, device: str | None,
                 fp32_hint: bool) -> Session:
    ort = require("onnxruntime", spec.extra)
    try:
        wanted = agent.ort_provider(ort, device)
    except agent.AgentError as exc:
        raise InputError(str(exc)) from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=[wanted])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise InputError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
    try:
        ran = agent.check_ran(ort, session, wanted)
    except agent.AgentError as exc:
        raise InputError(str(exc)) from None
    first = session.get_inputs()[0]
    name = first.name
    on_device = None if wanted == "CPUExecutionProvider" else agent.ort_on_device(ort, session, name)
    return Session("onnxruntime", spec.version, (device or "CPU").upper(), tuple(first.shape), "NCHW",
                   lambda x: session.run(None, {name: x})[0], providers=tuple(ran), on_device=on_device)
