#!/usr/bin/env bash
# Old Python environments that stand in for boards and legacy runtimes in the tests (built with pyenv):
#   .sideenvs/tx2     Python 3.6 + numpy 1.19.5 + onnxruntime 1.10.0   (JetPack 4.6 on a Jetson TX2)
#   .sideenvs/ov2021  Python 3.9 + openvino 2021.4.2                   (last runtime with the NCS2 plugin)
#   .sideenvs/a7      Python 3.9 + numpy<2 + tflite-runtime            (a 32-bit ARM board's TFLite)
set -euo pipefail
cd "$(dirname "$0")/.."
root=${PYENV_ROOT:-$HOME/.pyenv}
mkdir -p .sideenvs

make_env() {  # name, python version, pip packages...
  local name=$1 version=$2; shift 2
  local py="$root/versions/$version/bin/python"
  [ -x "$py" ] || { pyenv install -s "$version" && py="$root/versions/$version/bin/python"; }
  if [ ! -f ".sideenvs/$name/.done" ]; then
    rm -rf ".sideenvs/$name"
    "$py" -m venv ".sideenvs/$name"
    ".sideenvs/$name/bin/pip" install -q -U "pip<22"   # old pips do not see manylinux2014 wheels
    ".sideenvs/$name/bin/pip" install -q "$@"
    touch ".sideenvs/$name/.done"
  fi
}

make_env tx2 3.6.15 "numpy==1.19.5" "onnxruntime==1.10.0"
make_env ov2021 3.9.18 "openvino==2021.4.2"
make_env a7 3.9.18 "numpy<2" "tflite-runtime==2.14.0"
