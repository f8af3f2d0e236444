#!/usr/bin/env bash
# Old Python environments holding the boards' runtimes at their board versions (targets/*.toml `loads_in`),
# for the export's parity check and the tests (built with pyenv):
#   .sideenvs/tx2     Python 3.6 + numpy 1.19.5 + onnxruntime 1.10.0   (JetPack 4.6 on a Jetson TX2)
#   .sideenvs/ov2021  Python 3.9 + openvino 2021.4.2                   (last runtime with the NCS2 plugin)
#   .sideenvs/a7      Python 3.9 + numpy<2 + tflite-runtime 2.13.0     (newest wheel for Python 3.9 on armv7l)
# An environment is rebuilt when its packages change (.done records them); a new one is built beside the
# old one as NAME-new and renamed into place only once every package installed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${PYENV_ROOT:-$HOME/.pyenv}
mkdir -p .sideenvs

make_env() {  # name, python version, pip packages...
  local name=$1 version=$2; shift 2
  local py="$root/versions/$version/bin/python" spec="$version $*"
  [ -x "$py" ] || { pyenv install -s "$version" && py="$root/versions/$version/bin/python"; }
  if [ "$(cat ".sideenvs/$name/.done" 2>/dev/null)" != "$spec" ]; then
    local new=".sideenvs/$name-new"
    rm -rf "$new"
    "$py" -m venv "$new"
    "$new/bin/python" -m pip install -q -U "pip<22"   # old pips do not see manylinux2014 wheels
    "$new/bin/python" -m pip install -q "$@"
    echo "$spec" > "$new/.done"
    rm -rf ".sideenvs/$name"
    mv "$new" ".sideenvs/$name"   # only bin/python is used after the move (the venv's scripts name the old path)
  fi
}

make_env tx2 3.6.15 "numpy==1.19.5" "onnxruntime==1.10.0"
make_env ov2021 3.9.18 "openvino==2021.4.2"
make_env a7 3.9.18 "numpy<2" "tflite-runtime==2.13.0"
