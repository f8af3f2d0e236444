#!/usr/bin/env bash
# One command sets up dass-edge on a fresh Debian/Ubuntu machine (Python 3.11 and pyenv expected):
#   - .venv with the package and every runtime (PyTorch CPU, ONNX Runtime, OpenVINO, LiteRT, nn-Meter)
#   - Debian packages: Fashion-MNIST, OpenSSH server (SSH tests), libusb (NCS2 runtime), Chromium (report test),
#     mmdebstrap and qemu-user-static (emulated ARM boards), gcc and the ARM cross compilers (the C export)
#   - .sideenvs/: old runtimes that stand in for boards in the tests (skip with DASS_EDGE_NO_SIDEENVS=1)
#   - an emulated aarch64 board in ~/.cache/dass-edge/boards (skip with DASS_EDGE_NO_EMULATED=1)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq || true
  apt-get install -y -qq dataset-fashion-mnist openssh-server libusb-1.0-0 chromium mmdebstrap \
    qemu-user-static gcc gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu >/dev/null
elif command -v apt-get >/dev/null; then
  echo "note: not root; install with sudo: apt-get install dataset-fashion-mnist openssh-server libusb-1.0-0" \
    "chromium mmdebstrap qemu-user-static gcc gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu" >&2
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch==2.13.0 is pinned in pyproject.toml (the CPU build); the rest come with the extras.
.venv/bin/pip install -q -c constraints.txt -e ".[all,test]"

if [ "${DASS_EDGE_NO_SIDEENVS:-0}" != 1 ]; then
  bash .ci/sideenvs.sh
fi
if [ "${DASS_EDGE_NO_EMULATED:-0}" != 1 ]; then
  bash .ci/emulated-boards.sh
fi
echo "dass-edge is ready: .venv/bin/dass-edge --help"
