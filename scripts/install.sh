#!/usr/bin/env bash
# The one install step, shared by the README, .ci/run and the Docker images:
# a virtual environment in .venv (or $REPRO_VENV) with torch and the package, editable.
#
# REPRO_TORCH=pip (default, what CI runs): torch and torchvision from PyPI at the pins below (and in
#   requirements.lock, from which everything is installed).
# REPRO_TORCH=system (docker/Dockerfile): the venv sees the interpreter's own torch, which must be
#   exactly the pinned version (a CUDA PyTorch base image), so it is not downloaded a second time.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${REPRO_VENV:-.venv}"
torch_source="${REPRO_TORCH:-pip}"
torch_pin="2.14.1"
torchvision_pin="0.29.1"
case "$torch_source" in
    pip) venv_args=() ;;
    system) venv_args=(--system-site-packages) ;;
    *) echo "REPRO_TORCH must be 'pip' or 'system', not '$torch_source'" >&2; exit 2 ;;
esac
# The ci scale's offline image stand-in (Fashion-MNIST) is a Debian package; install it where we can.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
        || echo "dataset-fashion-mnist could not be installed: ci claims on Fashion-MNIST will say how to get it" >&2
fi
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv ${venv_args[@]+"${venv_args[@]}"} "$venv"
fi
if [ "$torch_source" = system ]; then
    "$venv/bin/python" - "$torch_pin" "$torchvision_pin" <<'PY'
import sys

want = sys.argv[1:3]
try:
    import torch
    import torchvision
except ImportError as exc:
    sys.exit(f"REPRO_TORCH=system, but the interpreter has no torch/torchvision ({exc}); use REPRO_TORCH=pip")
have = [torch.__version__.split("+")[0], torchvision.__version__.split("+")[0]]
if have != want:
    sys.exit(
        f"REPRO_TORCH=system: the interpreter has torch {have[0]} / torchvision {have[1]}, but the tested pins are "
        f"{want[0]} / {want[1]}; use a base image with the pinned versions, or REPRO_TORCH=pip"
    )
PY
fi
# Exactly the versions CI tests, hash-checked (requirements.lock, also what the Docker images install;
# torch and torchvision at the pins above, a CUDA build that also runs on the CPU). With
# REPRO_TORCH=system the interpreter's torch already satisfies its pin and is kept. Then the package
# itself, editable, adding nothing the lock did not pin.
"$venv/bin/python" -m pip install --quiet --require-hashes -r requirements.lock 2> >(grep -v "is ignored: it is neither" >&2)
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
# The example of a paper's own experiment in its own distribution (examples/README.md): installed the
# way a user installs theirs, so that its entry point is what registers it (tests/test_example.py).
if [ -f examples/ridge-paper/pyproject.toml ]; then
    "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e examples/ridge-paper
fi
echo "installed into $venv: $("$venv/bin/python" -c 'import repro, torch; print("repro", repro.__version__, "torch", torch.__version__)')"
