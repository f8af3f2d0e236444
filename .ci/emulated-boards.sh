#!/usr/bin/env bash
# Emulated ARM boards for the tests (dass-edge boards emulate; built once into ~/.cache/dass-edge/boards):
#   jetson-tx2  Debian bullseye arm64, Python 3.9, numpy 1.26.4, onnxruntime 1.10.0, tflite-runtime 2.13.0
# Needs mmdebstrap, qemu-user-static and openssh-server (setup.sh installs them as root) and the package
# registry plus the machine's Debian mirror. An existing build is kept (a few seconds); --rebuild is by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in mmdebstrap qemu-aarch64-static; do
  command -v "$tool" >/dev/null || { echo "skipping emulated boards: $tool missing (apt-get install mmdebstrap qemu-user-static)" >&2; exit 0; }
done
.venv/bin/dass-edge boards emulate jetson-tx2 ||
  echo "warning: the emulated jetson-tx2 board was not built (error above); its tests will skip, saying so" >&2
