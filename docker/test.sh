#!/usr/bin/env bash
# Builds both images with podman (no Docker engine, no image registry) and runs the ci image.
# Run it, as root, before every change to docker/ or requirements.lock; CI does not (it takes minutes).
#
# 1. podman, debootstrap and runc from apt when missing; podman runs with runc and ulimits within the
#    host's, through a containers.conf of this test's own (CONTAINERS_CONF), the system's left alone.
# 2. A Debian bookworm base image from the host's apt mirror (debootstrap), made once and kept; it has
#    ca-certificates already, so the host's CA bundle mounted read-only over its own (HTTPS to the
#    registries goes through a proxy only the host trusts) never meets the package's configure step.
# 3. docker/Dockerfile.cpu built on it; in the image, `repro run --scale ci` on a few claims and
#    `repro report --scale ci`, store and reports on a mounted volume; the verdicts written there must
#    match each claim's expectation.
# 4. docker/Dockerfile built as far as a machine without NVIDIA's base image can: its base swapped for
#    the bookworm image plus python3, then the install step (requirements.lock and the torch check).
#
# REPRO_TEST_CLAIMS: the claim ids or prefixes to run (default below). REPRO_TEST_KEEP=1 keeps the
# images built and the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
say() { printf '[docker/test.sh %4ds] %s\n' "$((SECONDS - start))" "$*"; }
fail() { say "FAIL: $*" >&2; exit 1; }

base="localhost/repro-bookworm-min:12-ca"
cpu_image="localhost/repro-claims:ci-test"
gpu_image="localhost/repro-claims:full-install-test"
claims="${REPRO_TEST_CLAIMS:-calibration.greater.positive tms.linear.superposition.control}"  # controls are judged alone: no family to run
ca=/etc/ssl/certs/ca-certificates.crt   # the host's CA bundle: HTTPS to the registries needs it
work="$(mktemp -d /tmp/repro-docker-test.XXXXXX)"
cleanup() {
    if [ "${REPRO_TEST_KEEP:-0}" != 1 ]; then
        podman rmi -f "$cpu_image" "$gpu_image" >/dev/null 2>&1 || true
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# 1. The engine.
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null || ! command -v runc >/dev/null; then
    [ "$(id -u)" = 0 ] || fail "podman, debootstrap and runc are needed (as root: apt-get install podman debootstrap runc)"
    say "installing podman, debootstrap, runc"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman debootstrap runc >/dev/null
fi
nofile="$(ulimit -Hn)"
[ "$nofile" = unlimited ] && nofile=1048576
cat > "$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$work/containers.conf"
[ -r "$ca" ] || fail "no CA bundle at $ca"

# 2. The base image.
if ! podman image exists "$base"; then
    # The mirror apt uses for Debian itself (not the security archive, not third-party repositories).
    mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | grep -oE '^(URIs:|deb)[[:space:]]+https?://[^[:space:]]+/debian/?([[:space:]]|$)' | head -1 | awk '{print $2}' || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    say "making $base with debootstrap from $mirror"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
    rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
    tar -C "$work/rootfs" -c . | podman import - "$base" >/dev/null
    rm -rf "$work/rootfs"
fi
say "base image $base: $(podman run --rm "$base" sh -c '. /etc/os-release; echo "$PRETTY_NAME"')"

build() {  # build FILE TAG [ARGS...]: the build's log in $work/build-TAG.log
    local file="$1" tag="$2" log="$work/build-${2##*:}.log"
    shift 2
    podman build --network=host -v "$ca:$ca:ro" -f "$file" -t "$tag" "$@" . >"$log" 2>&1 \
        || { tail -30 "$log"; fail "building $file"; }
}

# 3. The ci image: build, run a few claims and the report on a volume, check the verdicts.
say "building docker/Dockerfile.cpu on $base"
build docker/Dockerfile.cpu "$cpu_image" --build-arg BASE_IMAGE="$base" --build-arg REPRO_IMAGE_ID=repro-claims:ci@test
grep -E '^installed: ' "$work/build-ci-test.log" | tail -1 | sed 's/^/    /'
podman run --rm "$cpu_image" python -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || fail "the ci image's python is not 3.11"
mkdir -p "$work/data"
say "running: repro run --scale ci $claims"
# shellcheck disable=SC2086  # the claim ids are words
podman run --rm --network=none -v "$work/data:/data" "$cpu_image" \
    bash -c "repro run --scale ci --device cpu --json /data/run.json $claims; s=\$?; repro report --scale ci -o /data/reports/ci || exit 2; exit \$s" \
    >"$work/run.log" 2>&1 || { tail -30 "$work/run.log"; fail "repro run or report in the container (exit $?)"; }
tail -5 "$work/run.log" | sed 's/^/    /'
for f in reports/ci/index.html reports/ci/verdicts.json reports/ci/results.json; do
    [ -s "$work/data/$f" ] || fail "the report wrote no $f into the volume"
done
# Read in the image just built (its python), so that a fresh clone needs nothing installed on the host.
podman run --rm -i --network=none -v "$work/data:/data:ro" "$cpu_image" \
    python - /data/reports/ci/verdicts.json "$claims" <<'PY' || fail "verdicts"
import json, sys

verdicts = json.load(open(sys.argv[1]))["claims"]
wanted = sys.argv[2].split()
ran = [v for v in verdicts if any(v["id"] == w or v["id"].startswith(w + ".") for w in wanted)]
assert ran, f"no verdict for {wanted} in {sys.argv[1]}"
wrong = [f"{v['id']}: {v['verdict']} (expected {v['expect']})" for v in ran if v["verdict"] != v["expect"]]
assert not wrong, "verdicts that miss their expectation:\n  " + "\n  ".join(wrong)
print(f"    {len(ran)} verdicts in the volume's report, each as expected")
PY

# 4. The full image, as far as its install step: NVIDIA's base swapped for bookworm plus python3.
say "building docker/Dockerfile's install step on $base plus python3"
printf 'FROM %s\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*\n' \
    "$base" >"$work/Containerfile.python"
podman build --network=host -v "$ca:$ca:ro" -f "$work/Containerfile.python" -t "$base-python" "$work" \
    >"$work/build-python.log" 2>&1 || { tail -30 "$work/build-python.log"; fail "the python3 base"; }
build docker/Dockerfile "$gpu_image" --build-arg BASE_IMAGE="$base-python"
podman run --rm "$gpu_image" python -c 'import repro, torch, torchvision; print("    full image: repro", repro.__version__, "torch", torch.__version__, "torchvision", torchvision.__version__)'
podman run --rm "$gpu_image" repro list >/dev/null || fail "repro list in the full image"
say "PASS"
