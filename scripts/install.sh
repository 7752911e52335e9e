#!/usr/bin/env bash
# The one install step, shared by the README, .ci/run and the Docker images:
# a virtual environment in .venv (or $REPRO_VENV) with torch and the package, editable.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${REPRO_VENV:-.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# torch first, pinned: these wheels are the tested ones (a CUDA build that also runs on the CPU).
"$venv/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
"$venv/bin/python" -m pip install --quiet -e ".[test]"
echo "installed into $venv: $("$venv/bin/python" -c 'import repro, torch; print("repro", repro.__version__, "torch", torch.__version__)')"
