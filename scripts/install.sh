#!/usr/bin/env bash
# The one install step, shared by the README, .ci/run and the Docker images:
# a virtual environment in .venv (or $REPRO_VENV) with torch and the package, editable.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${REPRO_VENV:-.venv}"
# The ci scale's offline image stand-in (Fashion-MNIST) is a Debian package; install it where we can.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
        || echo "dataset-fashion-mnist could not be installed: ci claims on Fashion-MNIST will say how to get it" >&2
fi
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# torch first, pinned: these wheels are the tested ones (a CUDA build that also runs on the CPU).
"$venv/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
"$venv/bin/python" -m pip install --quiet -e ".[test]"
echo "installed into $venv: $("$venv/bin/python" -c 'import repro, torch; print("repro", repro.__version__, "torch", torch.__version__)')"
