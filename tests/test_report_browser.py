"""The report in a real browser: Debian's chromium, headless, driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol commands (JSON, each ended
by a NUL byte) on fd 3 and writes replies and events on fd 4, so no port, no websocket library and
no selenium/playwright download are needed. The test opens the report from a file:// URL and
collects every console error, uncaught exception, log entry of level error (CSP violations
included), network request and JavaScript dialog; then it awaits ``img.decode()`` for every figure
and reads its natural size, exercises the filters, and writes a screenshot.

Skipped, with the reason, where /usr/bin/chromium is absent (``apt-get install chromium``).
Set REPRO_REPORT_SCREENSHOT to a path to keep the screenshot.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import select
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from PIL import Image

from repro import registry
from repro.experiments.tms import plots as tms_plots
from repro.judge import evaluate
from repro.load import load_claims
from repro.report import build_report
from repro.report.encode import RC, compact_svg, svg_data_uri
from repro.report.figures import observed_figure
from repro.runner import run_claim
from repro.store import Store

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")

CLAIMS = """
[source.test]
title = "Test source"
authors = "Tester"
year = 2024
url = "https://example.org"

[[claim]]
id = "browser.mean-positive"
source = "test"
statement = "Draws with mean 1 have a mean above 0 <script>alert(1)</script>"
evidence = "By construction <img src=x onerror=alert(2)>"
experiment = "calibration.normal"
metric = "value"
seeds = 12
assertion = { test = "greater", threshold = 0.0, alpha = 0.01 }
params = { mean = 1.0, sd = 0.5 }
[claim.scales.ci]
seeds = 10

[[claim]]
id = "browser.trend"
source = "test"
statement = "Values rise along x when the slope is 1"
evidence = "By construction"
experiment = "calibration.normal"
metric = "value"
seeds = 9
assertion = { test = "trend", direction = "increasing", alpha = 0.01 }
params = { slope = 1.0, sd = 0.5, sweep = [0.0, 1.0, 2.0, 3.0, 4.0] }
[claim.scales.ci]
seeds = 9

[[claim]]
id = "browser.tms"
source = "test"
statement = "A tiny ReLU toy model represents at least one feature"
evidence = "Any trained model does"
experiment = "tms.train"
metric = "n_represented"
seeds = 5
assertion = { test = "greater", threshold = 0.5, alpha = 0.2 }
at = 0.1
params = { n_features = 5, n_hidden = 2, feature_probability = [1.0, 0.3, 0.1, 0.03], steps = 40, batch = 64 }
[claim.scales.ci]
seeds = 5

[[claim]]
id = "browser.never-run"
source = "test"
statement = "A claim nothing has run yet"
evidence = "None"
experiment = "calibration.normal"
metric = "value"
seeds = 9
assertion = { test = "less", threshold = 0.0 }
[claim.scales.ci]
seeds = 9
"""


class DevTools:
    """A minimal synchronous DevTools-protocol client over chromium's fd 3 / fd 4 pipe."""

    def __init__(self, user_data_dir: Path, width: int = 1280, height: int = 2000):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def child_fds() -> None:  # runs in the child before exec: put the pipe ends on fds 3 and 4
            read_end, write_end = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        args = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--no-default-browser-check", "--mute-audio",
            f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}",
            "--remote-debugging-pipe", "about:blank",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=child_fds,
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._from_chrome], [], [], remaining)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5.0)
        except (OSError, RuntimeError, TimeoutError, ConnectionError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    (root / "claims").mkdir()
    (root / "claims" / "demo.toml").write_text(textwrap.dedent(CLAIMS))
    claim_set = load_claims(root / "claims" / "demo.toml")
    store = Store(root / "store")
    for claim in claim_set:
        if claim.id != "browser.never-run":
            run_claim(claim, "ci", store=store, device="cpu")
    tms = registry.get("tms.train")
    registry_entry = dataclasses.replace(tms, figures=tms.figures or tms_plots.FIGURES)
    with pytest.MonkeyPatch.context() as patch:  # until the tms figures are wired into the registry
        patch.setitem(registry._REGISTRY, "tms.train", registry_entry)
        return build_report(claim_set, store, "ci", root / "report")


CHECK_IMAGES = """
(async () => {
  const images = Array.from(document.images);
  const out = [];
  for (const img of images) {
    let decoded = true;
    try { await img.decode(); } catch (e) { decoded = false; }
    out.push({alt: img.alt, decoded: decoded, width: img.naturalWidth, height: img.naturalHeight});
  }
  return JSON.stringify(out);
})()
"""

FILTER = """
(() => {
  const pick = (id, value) => { const s = document.getElementById(id); s.value = value;
                                s.dispatchEvent(new Event("change")); };
  const visible = () => Array.from(document.querySelectorAll("#claims tbody tr")).filter(r => !r.hidden)
                                 .map(r => r.querySelector("td").textContent);
  const all = visible();
  pick("filter-status", "not_run"); const notRun = visible();
  pick("filter-status", "reproduced"); const reproduced = visible();
  const count = document.getElementById("filter-count").textContent;
  pick("filter-status", "");
  return JSON.stringify({all, notRun, reproduced, count,
                         statement: document.querySelector("#claims tbody tr td.statement").textContent});
})()
"""


def test_report_in_chromium(report, tmp_path):
    browser = DevTools(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 2000, "deviceScaleFactor": 1, "mobile": False}, session=session,
        )  # fmt: skip
        browser.send("Page.navigate", {"url": report.as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        images = json.loads(
            browser.send(
                "Runtime.evaluate",
                {"expression": CHECK_IMAGES, "awaitPromise": True, "returnByValue": True},
                session=session,
            )["result"]["value"]  # fmt: skip
        )
        filtered = json.loads(
            browser.send("Runtime.evaluate", {"expression": FILTER, "returnByValue": True}, session=session)["result"][
                "value"
            ]
        )
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        events = list(browser.events)
    finally:
        browser.close()

    methods = [e.get("method") for e in events]
    errors = [
        e["params"] for e in events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]  # fmt: skip
    assert errors == []
    assert "Page.javascriptDialogOpening" not in methods  # the <script>alert(1)</script> statement did not run
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    assert requests and all(url.startswith(("file:", "data:")) for url in requests), requests

    # Every figure decodes, with a real size: 2 calibration claims x 1, the tms claim x 6.
    assert len(images) >= 8
    assert all(i["decoded"] and i["width"] > 50 and i["height"] > 50 for i in images), images
    assert sum(i["alt"].startswith("browser.tms:") for i in images) == 6

    assert filtered["all"] == ["browser.mean-positive", "browser.trend", "browser.tms", "browser.never-run"]
    assert filtered["notRun"] == ["browser.never-run"]
    assert "browser.mean-positive" in filtered["reproduced"] and "browser.never-run" not in filtered["reproduced"]
    assert filtered["count"].endswith("of 4 claims shown")
    assert "<script>alert(1)</script>" in filtered["statement"]  # shown as text

    png = base64.b64decode(shot)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    target_path = Path(os.environ.get("REPRO_REPORT_SCREENSHOT") or tmp_path / "report.png")
    target_path.write_bytes(png)
    assert target_path.stat().st_size == len(png)


SHOW = """
(async () => {
  const img = document.getElementById("figure");
  img.src = %s;
  await img.decode();
  const box = img.getBoundingClientRect();
  return JSON.stringify([box.width, box.height]);
})()
"""


def test_compact_svg_draws_what_matplotlib_wrote(report, tmp_path):
    """Each figure of the tms claim and the report's own, as matplotlib wrote it and as the page embeds it,
    drawn by chromium: the same picture (text may move by a pixel where a no-op transform went)."""
    root = report.parent.parent
    claim_set, store = load_claims(root / "claims" / "demo.toml"), Store(root / "store")
    pairs = []
    for claim_id in ("browser.trend", "browser.tms"):
        run = evaluate(claim_set.get(claim_id), "ci", store)
        functions = {"per-seed values": observed_figure, **(tms_plots.FIGURES if claim_id == "browser.tms" else {})}
        for name, function in functions.items():
            buffer = io.BytesIO()
            with matplotlib.rc_context(RC):
                figure = function(run.claim, run)
                if figure is None:
                    continue
                figure.savefig(buffer, format="svg", metadata={"Date": None})
            raw = buffer.getvalue().decode()
            original = "data:image/svg+xml;base64," + base64.b64encode(raw.encode()).decode()
            pairs.append((f"{claim_id}: {name}", original, svg_data_uri(compact_svg(raw))))
    assert len(pairs) >= 6
    page = tmp_path / "figure.html"
    page.write_text('<!doctype html><body style="margin:0;background:#fff"><img id="figure" style="display:block">')
    browser = DevTools(tmp_path / "profile", width=1400, height=1400)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.send("Page.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 1400, "deviceScaleFactor": 2, "mobile": False}, session=session,
        )  # fmt: skip
        browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")

        def draw(uri: str) -> np.ndarray:
            expression = SHOW % json.dumps(uri)
            reply = browser.send(
                "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                session=session,
            )  # fmt: skip
            width, height = json.loads(reply["result"]["value"])
            clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
            shot = browser.send("Page.captureScreenshot", {"format": "png", "clip": clip}, session=session)["data"]
            return np.asarray(Image.open(io.BytesIO(base64.b64decode(shot))).convert("RGB")).astype(int)

        for name, original, compact in pairs:
            before, after = draw(original), draw(compact)
            assert before.shape == after.shape, name
            differs = (np.abs(before - after).max(axis=2) > 64).mean()
            assert differs < 0.005, (name, differs)
    finally:
        browser.close()
