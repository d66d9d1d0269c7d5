"""`ns-viewer` serves a gansvr run on loopback, and headless Chromium renders it with the instance control.

Chromium is driven through its DevTools protocol (a websocket on loopback), so that the test can wait for the
viewer's first rendered frame instead of guessing a delay. Nothing leaves the machine: the viewer's page is served
by viser from its bundled client build and every other host name fails to resolve.
"""

import base64
import contextlib
import io
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np
import torch
from PIL import Image
from websockets.sync.client import connect

from gansvr_ns.compat import VIEWER_CPU_MAX_RES
from tests.viewer.conftest import BIN, tiny_run_flags

WINDOW = (1280, 800)
"""Browser window (width, height); the viewer's panel takes the right 320 px, the header the top 50 px."""
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
    "--enable-unsafe-swiftshader",  # software WebGL: the viewer draws its frames with three.js
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # only the loopback viewer resolves
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]
FRAME_TEXT = re.compile(r"Resolution:\s*([1-9]\d*)\D([1-9]\d*)\s*px")
"""The viewer's status line once it has sent a rendered frame (it starts at 0x0px)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Stop a process started with `start_new_session=True`, and its children, by its process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args[0]} exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_server(args: list, port: int, log: Path) -> Iterator[subprocess.Popen]:
    """A command serving a viewer on 127.0.0.1:`port`, once it answers HTTP (nerfstudio's imports take ~1 min)."""
    with log.open("w") as output:
        process = subprocess.Popen([str(a) for a in args], stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=log.parent)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/", process, log, timeout=300)
            yield process
        finally:
            stop(process)


def loopback(port: int) -> list:
    return ["--viewer.websocket-port", port, "--viewer.websocket-host", "127.0.0.1"]


def capture(port: int, profile: Path) -> Tuple[str, np.ndarray]:
    """(page text, screenshot) of the viewer on `port` once it has shown a rendered frame."""
    with chromium_page(profile) as page:
        page.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
        page.wait_for_text(FRAME_TEXT, timeout=180)
        time.sleep(2.0)  # let the client draw the frame it received
        return page.text(), page.screenshot()


def assert_renders_object(image: np.ndarray) -> None:
    """The screenshot is not blank, and the viewport (left of the panel, below the header) shows an object at its
    centre, where the start camera looks, brighter than its empty corner."""
    assert image.shape == (WINDOW[1], WINDOW[0], 3)
    assert image.std() > 10.0, "blank screenshot"
    viewport = image[50:, : WINDOW[0] - 320].astype(float)
    height, width = viewport.shape[:2]
    centre = viewport[height // 2 - 40 : height // 2 + 40, width // 2 - 40 : width // 2 + 40].mean()
    corner = viewport[:80, :80].mean()
    assert centre - corner > 20.0, f"no rendered object at the centre of the viewport ({centre:.0f} vs {corner:.0f})"


def devtools_port(process: subprocess.Popen, path: Path, timeout: float = 60) -> int:
    """The DevTools port Chromium writes to `<profile>/DevToolsActivePort` when it is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "chromium exited at startup"
        if path.is_file() and path.read_text().strip():
            return int(path.read_text().split()[0])
        time.sleep(0.2)
    raise AssertionError(f"chromium wrote no {path.name} within {timeout:.0f} s")


@contextlib.contextmanager
def chromium_page(profile: Path, window=WINDOW) -> Iterator["Page"]:
    """A page of a fresh headless Chromium (profile folder `profile`), driven over the DevTools protocol."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: run GANSVR_WITH_CHROMIUM=1 bash scripts/setup.sh"
    process = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port = devtools_port(process, profile / "DevToolsActivePort")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            target = next(t for t in json.load(response) if t["type"] == "page")
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as socket:
            page = Page(socket)
            # headless --window-size includes the window frame; pin the page's viewport to exactly `window`
            page.call("Emulation.setDeviceMetricsOverride", width=window[0], height=window[1], deviceScaleFactor=1,
                      mobile=False)
            yield page
    finally:
        stop(process)


class Page:
    """DevTools commands on one page."""

    def __init__(self, socket):
        self.socket = socket
        self.ids = itertools.count(1)

    def call(self, method: str, **params):
        """Send one DevTools command and return its result (events in between are ignored)."""
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv(timeout=60))
            if reply.get("id") == message_id:
                assert "error" not in reply, reply["error"]
                return reply["result"]

    def text(self) -> str:
        """The page's visible text followed by the values of its inputs (dropdowns show their value there)."""
        script = "[document.body.innerText, ...[...document.querySelectorAll('input')].map(i => i.value)].join('\\n')"
        return self.call("Runtime.evaluate", expression=script, returnByValue=True)["result"].get("value", "")

    def wait_for_text(self, pattern: re.Pattern, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = pattern.search(self.text())
            if match:
                return match
            time.sleep(1.0)
        raise AssertionError(f"the page never showed {pattern.pattern!r}; it shows:\n{self.text()[-2000:]}")

    def screenshot(self) -> np.ndarray:
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_ns_viewer_page_renders_in_headless_chromium(tiny_run, tmp_path):
    _, data, config = tiny_run
    default_instance = json.loads((data / "dataset.json").read_text())["splits"]["test"][0]
    port = free_port()
    with running_server([BIN / "ns-viewer", "--load-config", config, *loopback(port)], port, tmp_path / "log.txt"):
        text, image = capture(port, tmp_path / "profile")
    Image.fromarray(image).save(tmp_path / "viewer.png")
    assert "Instance" in text and default_instance in text  # the gansvr instance dropdown, on its default
    max_res = 512 if torch.cuda.is_available() else VIEWER_CPU_MAX_RES  # nerfstudio's start value, or the CPU one
    assert "Max res" in text and f"\n{max_res}\n" in text
    assert_renders_object(image)


def test_viewer_during_ns_train(tiny_run, tmp_path):
    _, data, _ = tiny_run
    port = free_port()
    args = [BIN / "ns-train", "gansvr", "--data", data, "--output-dir", tmp_path / "outputs",
            *tiny_run_flags(iterations=100_000, vis="viewer"), *loopback(port)]
    with running_server(args, port, tmp_path / "log.txt"):
        text, image = capture(port, tmp_path / "profile")
    Image.fromarray(image).save(tmp_path / "viewer.png")
    assert "Instance" in text and "Pause Training" in text
    assert_renders_object(image)
