"""Hostile claims files: whatever the bytes, the loader returns claims or a ClaimFileError naming the file.

A user's mistake must end in exit 2 and a message that says where, never a traceback, so the
loader is tried here as a fuzzer would: targeted cases for each way a file has broken before, then
arbitrary bytes, random TOML documents shaped like claims, and random mutations of a valid file.
"""

from __future__ import annotations

import copy
import datetime
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from repro import registry
from repro.cli import app
from repro.errors import ClaimFileError
from repro.load import ClaimSet, load_claims

from .helpers import SOURCES, claim_text

runner = CliRunner()
GOOD = claim_text()
NOT_UTF8 = b'[[claim]]\nid = "\xff"\n'


def _replace(old: str, new: str) -> bytes:
    assert old in GOOD
    return GOOD.replace(old, new, 1).encode()


def _after_metric(line: str) -> bytes:
    return _replace('metric = "value"', f'metric = "value"\n{line}')


ASSERTION = 'assertion = { test = "greater", threshold = 0.0, alpha = 0.01 }'
PARAMS = "params = { mean = 1.0, sd = 0.5 }"
SCALES = "[claim.scales.ci]\nseeds = 10"
LABEL = "claim 'demo.mean-positive'"

# (case, file bytes, what the message must also say besides the file name)
BAD_FILES = [
    # bytes that are not TOML text
    ("not-utf8", NOT_UTF8, "not UTF-8: byte 0xff at offset 16 (line 2, column 7)"),
    ("not-utf8-truncated-sequence", GOOD.encode() + "é".encode()[:1], "unexpected end of data"),
    ("utf16", GOOD.encode("utf-16"), "UTF-16"),
    ("utf8-bom", b"\xef\xbb\xbf" + GOOD.encode(), "byte order mark"),
    ("nul-byte", b"[[claim]]\x00\n", "not valid TOML"),
    ("deep-arrays", b"x = " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    ("deep-inline-tables", b"x = " + b"{a=" * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
    ("deep-dotted-keys", b"x" + b".a" * 1000 + b" = 1", "nests more than"),
    ("huge-decimal-integer", b"x = " + b"9" * 5000, "too many digits"),
    ("huge-hex-integer", _replace("seeds = 12", "seeds = 0x" + "f" * 5000), f"{LABEL}: field 'seeds': integer outside"),
    ("int-beyond-64-bit", _after_metric("seed = 99999999999999999999"), f"{LABEL}: field 'seed': integer outside"),
    ("huge-param", _replace(PARAMS, "params = { sd = 0x" + "f" * 5000 + " }"), "field 'params.sd': integer outside"),
    ("deep-params", _replace(PARAMS, "params = { mean = " + "[" * 300 + "]" * 300 + " }"), "field 'params.mean'"),
    # shapes that are TOML but not claims
    ("claim-is-a-table", b"[claim]\nid = 'x'\n", "'claim' must be an array of tables"),
    ("claim-is-a-string", b"claim = 'x'\n", "'claim' must be an array of tables"),
    ("claim-entries-not-tables", b"claim = [1, 2]\n", "claim #1 must be a table"),
    ("claim-entry-is-a-list", b"claim = [[1]]\n", "claim #1 must be a table"),
    ("claim-entries-mixed", b"claim = [{ id = 'a' }, 'x']\n", "claim #2 must be a table"),
    ("source-is-a-string", b"source = 'x'\n", "'source' must be a table of sources"),
    ("source-is-a-list", b"source = [1]\n", "'source' must be a table of sources"),
    ("source-entry-not-a-table", b"source = { a = 1 }\n", "source 'a' must be a table"),
    ("source-year-is-a-date", b"[source.a]\ntitle='t'\nauthors='a'\nurl='u'\nyear=2024-01-01\n", "field 'year'"),
    ("id-is-an-integer", _replace('id = "demo.mean-positive"', "id = 5"), "claim #1: field 'id'"),
    ("id-is-a-date", _replace('id = "demo.mean-positive"', "id = 2024-01-01"), "claim #1: field 'id'"),
    ("id-is-a-list", _replace('id = "demo.mean-positive"', "id = ['a']"), "claim #1: field 'id'"),
    ("id-very-long", _replace('id = "demo.mean-positive"', f"id = '{'a' * 100_000}'"), "claim #1: field 'id'"),
    ("id-escape-codes", _replace('id = "demo.mean-positive"', 'id = "a\\u001b[31m"'), "claim #1: field 'id'"),
    ("statement-is-a-time", _replace('statement = "Draws', 'statement = 07:32:00\nx = "Draws'), "field 'statement'"),
    ("params-is-a-list", _replace(PARAMS, "params = [1]"), f"{LABEL}: field 'params'"),
    ("params-is-a-string", _replace(PARAMS, "params = 'x'"), f"{LABEL}: field 'params'"),
    ("scales-is-a-list", _replace(SCALES, "scales = [1]"), f"{LABEL}: field 'scales'"),
    ("scale-is-a-string", _replace(SCALES, "scales = { ci = 'x' }"), f"{LABEL}: field 'scales.ci'"),
    ("scale-odd-unicode", _replace(SCALES, "scales = { ci = { seeds = 10 }, 'é\u200b' = {} }"), "scales.é\\u200b"),
    ("arms-is-a-list", _after_metric("arms = [1]"), f"{LABEL}: field 'arms'"),
    ("arm-not-a-table", _after_metric("arms = { a = 1, b = 2 }"), f"{LABEL}: field 'arms.a'"),
    ("assertion-is-a-list", _replace(ASSERTION, "assertion = [1]"), f"{LABEL}: field 'assertion'"),
    ("assertion-is-a-string", _replace(ASSERTION, "assertion = 'x'"), f"{LABEL}: field 'assertion'"),
    ("assertion-test-integer", _replace('test = "greater"', "test = 1"), f"{LABEL}: field 'assertion'"),
    ("threshold-is-a-datetime", _replace("threshold = 0.0", "threshold = 1979-05-27T07:32:00Z"), "threshold"),
    ("alpha-subnormal", _replace("alpha = 0.01", "alpha = 1e-310"), LABEL),
    ("seeds-is-inf", _replace("seeds = 12", "seeds = inf"), f"{LABEL}: field 'seeds'"),
    ("tags-nested", _after_metric("tags = [[1]]"), f"{LABEL}: field 'tags.0'"),
    ("key-control-chars", _after_metric('"\\u202e\\u0000x" = 1'), "field '\\u202e\\x00x'"),
    ("top-level-escape-codes", b'"\\u001b[2J" = 1\n', "unknown top-level key '\\x1b[2J'"),
    ("top-level-long-key", b'"' + b"k" * 100_000 + b'" = 1\n', "unknown top-level key 'kkk"),
]


def _claims_dir(folder: Path, body: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.toml").write_text(textwrap.dedent(SOURCES))
    path = folder / "demo.toml"
    path.write_bytes(body)
    return path


def _problems(path: Path) -> str:
    with pytest.raises(ClaimFileError) as excinfo:
        load_claims(path)
    return str(excinfo.value)


@pytest.mark.parametrize(("body", "says"), [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES])
def test_bad_file_names_file_claim_and_field(tmp_path, body, says):
    path = _claims_dir(tmp_path / "claims", body)
    message = _problems(path)
    assert all(line.startswith(str(path)) for line in message.splitlines()), message
    assert says in message
    assert len(message) < 2000  # a long value is quoted cut short, not whole
    result = runner.invoke(app, ["list", "--claims", str(path)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error:" in result.output and "demo.toml" in result.output


def test_not_utf8_from_the_command_line_exits_2_without_traceback(tmp_path):
    path = _claims_dir(tmp_path / "claims", NOT_UTF8)
    command = [sys.executable, "-m", "repro", "list", "--claims", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert f"{path}: not UTF-8" in " ".join((done.stdout + done.stderr).split())


def test_a_bad_sources_file_beside_is_named(tmp_path):
    path = _claims_dir(tmp_path / "claims", GOOD.encode())
    (path.parent / "sources.toml").write_bytes(b"[source.test]\ntitle = '\xff'\n")
    assert "sources.toml: not UTF-8" in _problems(path)


def test_every_bad_file_of_a_folder_is_reported(tmp_path):
    folder = tmp_path / "claims"
    _claims_dir(folder, NOT_UTF8)
    (folder / "other.toml").write_text("claim = [1]\n")
    message = _problems(folder)
    assert "demo.toml: not UTF-8" in message and "other.toml: claim #1 must be a table" in message


def test_folder_without_claims_files(tmp_path):
    assert "no *.toml claims files" in _problems(tmp_path)


def test_fifo_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "demo.toml"
    os.mkfifo(fifo)
    assert "not a regular file" in _problems(fifo)


def test_symlink_loop(tmp_path):
    (tmp_path / "a.toml").symlink_to(tmp_path / "b.toml")
    (tmp_path / "b.toml").symlink_to(tmp_path / "a.toml")
    assert "a.toml: cannot be read" in _problems(tmp_path / "a.toml")


def test_path_through_a_file(tmp_path):
    path = _claims_dir(tmp_path / "claims", GOOD.encode())
    assert "cannot be read: Not a directory" in _problems(path / "more.toml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path):
    path = _claims_dir(tmp_path / "claims", GOOD.encode())
    path.chmod(0)
    try:
        assert "demo.toml: cannot be read: Permission denied" in _problems(path)
    finally:
        path.chmod(0o644)


def test_empty_file_is_no_claims(tmp_path):
    # Valid TOML with nothing in it: no claims, as a sources-only file (tests/test_runner.py relies on it).
    assert len(load_claims(_claims_dir(tmp_path / "claims", b""))) == 0


def test_pytest_collection_reports_a_file_that_is_not_utf8(pytester):
    folder = pytester.mkdir("claims")
    _claims_dir(folder, NOT_UTF8)
    result = pytester.runpytest_inprocess("claims", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*demo.toml: not UTF-8: byte 0xff at offset 16*"])
    assert "INTERNALERROR" not in result.stdout.str()


# -- fuzzing ---------------------------------------------------------------------------------------------
# Derandomized: the same examples every run, so CI is deterministic; no example database is written.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _load_or_refuse(folder: Path, body: bytes) -> None:
    """The property: claims, or a ClaimFileError whose every line names a file it read."""
    path = _claims_dir(folder, body)
    try:
        assert isinstance(load_claims(path), ClaimSet)
    except ClaimFileError as exc:
        assert exc.problems
        message = str(exc)
        message.encode("utf-8")  # printable by the CLI
        for line in exc.problems:
            assert line.startswith((str(path), str(folder / "sources.toml"))), line


@FUZZ
@given(body=st.binary(max_size=400))
def test_fuzz_arbitrary_bytes(tmp_path_factory, body):
    _load_or_refuse(tmp_path_factory.mktemp("bytes"), body)


TOKENS = [b"[", b"]", b"[[claim]]\n", b"{", b"}", b'"', b"'", b'"""', b"=", b"\n", b".", b",", b"#", b"\\u0000",
          b"\xff", b"\x00", b"\xc3", b"\xef\xbb\xbf", b"0x" + b"f" * 40, b"9" * 30, b"1979-05-27", b"07:32:00",
          b"inf", b"nan", b"-0", b"true", b"[" * 40, b"{a=" * 40, b"\r\n", b"\t"]  # fmt: skip


@st.composite
def mutated_claims(draw) -> bytes:
    """A valid claims file with bytes flipped, cut, duplicated or inserted."""
    data = bytearray(GOOD.encode())
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "delete", "insert", "token", "truncate", "duplicate"]))
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 60))]
    return bytes(data)


@FUZZ
@given(body=mutated_claims())
def test_fuzz_mutated_claims_file(tmp_path_factory, body):
    _load_or_refuse(tmp_path_factory.mktemp("mutated"), body)


# Structured documents: valid claims with fields replaced, dropped or retyped, written by tomli_w,
# so the fuzz reaches the schema, the registry's params models and the messages, not only the parser.
BASE_CLAIM = tomllib.loads(GOOD)["claim"][0]
EXPERIMENTS = registry.names()
CLAIM_FIELDS = [*BASE_CLAIM, "at", "seed", "arms", "tags", "family", "control", "smallest_effect", "finding", "expect"]
ASSERTION_FIELDS = ["threshold", "alpha", "method", "predicate", "min_fraction", "direction", "min_rho", "a", "b",
                    "margin", "paired"]  # fmt: skip
WORDS = ["greater", "less", "proportion", "trend", "difference", "equivalent", "t", "sign", "wilcoxon", "permutation",
         "increasing", "decreasing", "x", "y", "reproduced", "not_reproduced", "inconclusive", "error", "ci", "full",
         "test", "main", "", "é\u200b", "\x1b[2J", ">", "=="]  # fmt: skip

scalars = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=12),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 20),
    st.floats(),
    st.sampled_from([0.0, 0.01, 0.5, 1.0, 1e-310, 1e308, -1.0]),
    st.booleans(),
    st.dates(),
    st.times(),
    st.datetimes(),
    st.datetimes(timezones=st.just(datetime.UTC)),
)
keys = st.one_of(st.sampled_from(WORDS + CLAIM_FIELDS + ASSERTION_FIELDS), st.text(max_size=8))
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=8
)


def _sometimes(draw) -> bool:
    return draw(st.integers(0, 2)) == 0


@st.composite
def claim_tables(draw) -> dict:
    """The valid claim with a few of its fields retyped, dropped or added: most examples get past the schema."""
    claim = copy.deepcopy(BASE_CLAIM)
    if draw(st.booleans()):
        experiment = registry.get(draw(st.sampled_from(EXPERIMENTS)))
        claim["experiment"] = experiment.name
        claim["metric"] = draw(st.sampled_from(experiment.metrics))
        param = st.sampled_from(sorted(experiment.params.model_fields)) | keys
        claim["params"] = draw(st.dictionaries(param, scalars | values, max_size=4))
    if _sometimes(draw):
        fields = st.fixed_dictionaries({"test": st.sampled_from(WORDS)} if draw(st.booleans()) else {})
        claim["assertion"] = draw(fields) | draw(st.dictionaries(st.sampled_from(ASSERTION_FIELDS), values, max_size=4))
    if _sometimes(draw):
        claim["arms"] = draw(st.dictionaries(st.sampled_from(["x", "y", "main"]) | keys, values, max_size=3))
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(CLAIM_FIELDS) | keys)
        if draw(st.booleans()):
            claim.pop(key, None)
        else:
            claim[key] = draw(values)
    return claim


@st.composite
def claim_documents(draw) -> bytes:
    entries = st.lists(st.one_of(claim_tables(), claim_tables(), claim_tables(), values), max_size=3)
    document = {"claim": draw(values) if draw(st.integers(0, 5)) == 0 else draw(entries)}
    if _sometimes(draw):
        document["source"] = draw(st.dictionaries(keys, values, max_size=2) | values)
    if _sometimes(draw):
        document.update(draw(st.dictionaries(keys, values, max_size=2)))
    return tomli_w.dumps(document).encode()


@FUZZ
@given(body=claim_documents())
def test_fuzz_structured_documents(tmp_path_factory, body):
    _load_or_refuse(tmp_path_factory.mktemp("structured"), body)


def test_fuzz_structured_documents_reach_valid_claims(tmp_path):
    # The structured fuzz starts from a valid claim: unchanged, it loads, so the fuzz explores near-valid files.
    assert len(load_claims(_claims_dir(tmp_path / "claims", tomli_w.dumps({"claim": [BASE_CLAIM]}).encode()))) == 1
