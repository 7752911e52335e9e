"""The same per-seed results on every machine (repro/numerics.py).

A user's machine differs from CI's in the instruction set its CPU offers (which kernels torch, MKL,
oneDNN, numpy and OpenBLAS pick), in its core count (how many threads a reduction is split over) and in
whether pytest-xdist workers share the cores. Each subprocess below emulates one such machine through
the environment, before the package's pinning takes over, and computes the first seeds of one claim
per family at ci scale into a store of its own: every stored metric must be the same to the last bit.
The negative control computes the same with the pinning switched off (REPRO_NUMERICS=native), where
they differ. One seed a claim: a seed's result does not depend on the seeds beside it in a call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repro import numerics

PROBE = Path(__file__).with_name("portability_probe.py")

#: One claim per family, the cheapest of each at ci scale (a few seconds a seed); tms.linear.trend.control
#: is one whose estimate moved with the CPU's instruction set before the pinning.
CLAIMS = (
    "calibration.greater.positive",
    "tms.linear.trend.control",
    "phase.linear.antipodal.control",
    "sae.probe.at-chance.control",
    "stall.cifar10.as-published-from-pretrained.silhouette-not-raised",
    "subnetworks.detect.features8-unit25",
)
SEEDS = 1

#: What an AVX2-only CPU's libraries pick (the variables the pinning sets, to the same level by hand).
AVX2_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}  # fmt: skip
_CLEARED = (*numerics.PINS, numerics.VARIABLE, "OMP_NUM_THREADS", "MKL_NUM_THREADS", "REPRO_PEERS", "REPRO_HOME")


def _machines(tmp_path: Path) -> dict[str, dict[str, str]]:
    """Two machines as different as one box can emulate: this CPU's own kernels on two threads with no
    peers, against an AVX2 CPU's on one thread beside a live xdist peer (this test's process)."""
    peers = tmp_path / "peers"
    peers.mkdir()
    (peers / "test.pid").write_text(str(os.getpid()))
    return {
        "native-isa-2-threads": {"OMP_NUM_THREADS": "2"},
        "avx2-isa-1-thread-with-a-peer": {**AVX2_CPU, "OMP_NUM_THREADS": "1", "REPRO_PEERS": str(peers)},
    }


def _probe(tmp_path: Path, name: str, env: dict[str, str], claims: tuple[str, ...]) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    store = tmp_path / f"store-{name}"
    done = subprocess.run(
        [sys.executable, str(PROBE), str(store), str(SEEDS), *claims],
        env={**clean, **env}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, f"{name}: the probe failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _differences(a: dict, b: dict, claims: tuple[str, ...]) -> list[str]:
    out = []
    for claim in claims:
        for arm, seeds in a[claim].items():
            for seed, metrics in seeds.items():
                other = b[claim][arm][seed]
                moved = sorted(k for k in metrics if metrics[k] != other.get(k))
                if moved:
                    out.append(f"{claim} arm {arm} seed {seed}: {', '.join(moved)}")
    return out


needs_pinning = pytest.mark.skipif(
    numerics.mode() == "native", reason=f"this machine computes natively: {numerics.describe().get('not_pinned')}"
)


@needs_pinning
def test_per_seed_metrics_are_bitwise_the_same_on_every_emulated_machine(tmp_path):
    machines = _machines(tmp_path)
    got = {name: _probe(tmp_path, name, env, CLAIMS) for name, env in machines.items()}
    first, second = got.values()
    assert first["cores"] != second["cores"] or (os.cpu_count() or 1) < 2, "the two machines must differ in width"
    for name, out in got.items():  # each library dispatched to the pinned level whatever the machine offers
        assert out["numerics"]["level"] == numerics.LEVEL, name
        assert out["numerics"]["dispatch"]["torch"] == "AVX2", name
        assert not out["numerics"]["dispatch"]["numpy_avx512"], name
    assert _differences(first, second, CLAIMS) == []


#: The negative control needs a machine on which the emulated ones really differ: a CPU above AVX2
#: (the ISA part), or two cores (the threads part).
_CAN_DIFFER = "avx512f" in (numerics._cpu_flags() or set()) or (os.cpu_count() or 1) >= 2


@needs_pinning
@pytest.mark.skipif(not _CAN_DIFFER, reason="one core and no ISA above AVX2: nothing to emulate a difference with")
def test_without_the_pinning_the_same_seeds_differ(tmp_path):
    """The negative control: the same two machines with REPRO_NUMERICS=native compute other bits.

    Which family shows it depends on the CPU: on an Intel Xeon the toy models (thousands of optimizer
    steps carry a last-bit difference along), on an AMD EPYC (Zen 4, AVX-512) the SAE's (the toy models'
    kernels there give the same bits at both levels). One claim of each, so the control holds on both."""
    claims = ("tms.linear.trend.control", "phase.linear.antipodal.control", "sae.probe.at-chance.control")
    machines = _machines(tmp_path)
    got = [_probe(tmp_path, name, {**env, numerics.VARIABLE: "native"}, claims) for name, env in machines.items()]
    assert all(out["numerics"]["level"] == "native" for out in got)
    assert _differences(got[0], got[1], claims) != []


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


@needs_pinning
def test_a_process_that_loaded_torch_before_repro_refuses_to_compute_pinned():
    done = _python("import torch\nimport repro\nfrom repro import numerics\nnumerics.check()")
    assert done.returncode != 0
    assert "NumericsError" in done.stderr and "torch" in done.stderr and "REPRO_NUMERICS=native" in done.stderr
    # The same process opted out computes (natively), and says so.
    done = _python("import torch\nimport repro\nfrom repro import numerics\nnumerics.check()\n"
                   "print(numerics.describe()['level'])", REPRO_NUMERICS="native")  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "native"


_MKL_BRANCH = "import repro, torch\nfrom repro import numerics\nprint(numerics.mkl_branch())"


def _vendor() -> str:
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
        return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("vendor_id")), "")


@needs_pinning
def test_mkl_runs_the_compatible_branch_which_every_vendor_honours():
    """The pin is MKL's COMPATIBLE branch, read back from MKL; a named ISA branch would be honoured on Intel
    CPUs only (on others MKL runs AUTO, which is why an Intel and an AMD machine computed other bits)."""
    pinned = _python(_MKL_BRANCH, MKL_CBWR="AVX2")
    assert pinned.returncode == 0, pinned.stderr
    assert pinned.stdout.strip() == "COMPATIBLE+STRICT"
    named = _python(_MKL_BRANCH, REPRO_NUMERICS="native", MKL_CBWR="AVX2,STRICT")
    assert named.returncode == 0, named.stderr
    expected = "AVX2+STRICT" if _vendor() == "GenuineIntel" else "AUTO+STRICT"
    assert named.stdout.strip() == expected, f"on a {_vendor()} CPU"


@needs_pinning
def test_a_process_whose_mkl_runs_another_branch_refuses_to_compute():
    code = (
        "import ctypes, pathlib, repro, torch\nfrom repro import numerics\n"
        "lib = ctypes.CDLL(str(pathlib.Path(torch.__file__).parent / 'lib' / 'libtorch_cpu.so'))\n"
        "lib.mkl_serv_cbwr_set(2)\n"  # MKL_CBWR_AUTO, set before MKL's first call
        "numerics.check()"
    )
    done = _python(code)
    assert done.returncode != 0
    assert "NumericsError" in done.stderr and "MKL runs its AUTO branch" in done.stderr


@needs_pinning
def test_pinned_and_native_results_never_share_a_store_key():
    code = "from repro import registry\nprint(registry.get('tms.train').code_version)"
    pinned, native = _python(code), _python(code, REPRO_NUMERICS="native")
    assert pinned.returncode == 0 and native.returncode == 0
    assert pinned.stdout.strip() != native.stdout.strip()


def test_the_pins_override_the_environment_and_native_leaves_it():
    code = "import os, repro\nprint(os.environ.get('ATEN_CPU_CAPABILITY'))"
    if numerics.mode() != "native":
        assert _python(code, ATEN_CPU_CAPABILITY="avx512").stdout.strip() == "avx2"
    assert _python(code, ATEN_CPU_CAPABILITY="avx512", REPRO_NUMERICS="native").stdout.strip() == "avx512"
    bad = _python("import repro\nfrom repro import numerics\nnumerics.mode()", REPRO_NUMERICS="fast")
    assert bad.returncode != 0 and "REPRO_NUMERICS must be 'portable' or 'native'" in bad.stderr


def test_computing_runs_one_intra_op_thread_and_restores_the_count():
    import torch

    before = torch.get_num_threads()
    with numerics.computing(3):
        assert numerics.parallel_width() == 3
        if numerics.mode() != "native":
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before and numerics.parallel_width() == 1
