"""Third-party C++ output routed to the log.

litert-torch, TensorFlow's converter, the quantizer and the TFLite interpreter print progress bars and C++
log lines ("I0000 ... flatbuffer_export.cc", "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") on
the process's stdout and stderr, below Python, where no logging level reaches them. A CLI's stdout carries
its results and its stderr the user's messages, so both file descriptors go to the log while they run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def to_log(tool: str) -> Iterator[None]:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(io.StringIO()) as out, \
            contextlib.redirect_stderr(io.StringIO()) as err:
        saved = [os.dup(fd) for fd in (1, 2)]
        for fd in (1, 2):
            os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            for fd, old in zip((1, 2), saved):
                os.dup2(old, fd)
                os.close(old)
            sink.seek(0)
            text = (sink.read().decode(errors="replace") + out.getvalue() + err.getvalue()).strip()
            if text:
                log.debug("%s: %s", tool, text)
