"""Shared setup for ruvon's pytest suites: the offline data and Hub cache every test uses."""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RUVON_DATA", ROOT.parent / "shared" / "data")).resolve()
# The Hub cache holds the GPT-2 family's configs and tokenizers, no weights; offline, it answers like the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_CACHE", str(DATA / "hf-hub"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir(): pytest.fail(f"offline data not found at {DATA} (set RUVON_DATA)")
    return DATA


@pytest.fixture(scope="session")
def standin_6l(data_dir) -> Path: return data_dir / "checkpoints" / "ruvon-standin-6l"


@pytest.fixture(scope="session")
def standin_2l(data_dir) -> Path: return data_dir / "checkpoints" / "ruvon-standin-2l"


@pytest.fixture(scope="module")
def browser():
    "Headless Chromium through Playwright, one per test module."
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium())
        yield b
        b.close()


def chromium() -> str:
    "The Chromium the browser tests drive (Debian's package; Playwright downloads no browser here), or skip saying how to get one."
    exe = os.environ.get("RUVON_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe: pytest.skip("no Chromium: the browser tests need one (Debian/Ubuntu: apt-get install chromium fonts-noto-color-emoji), "
                            "or RUVON_CHROMIUM=/path/to/it")
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ruvon_server(tmp_path_factory):
    """Start `ruvon serve CHECKPOINT --served-model-name standin --device cpu ARGS...` and wait until healthy: (process, url).
    The server's output (its request log included) goes to the file `process.log`, never to a pipe nobody drains. Stopped at teardown."""
    procs = []
    def start(checkpoint, *args: str) -> tuple[subprocess.Popen, str]:
        port, log = free_port(), tmp_path_factory.mktemp("serve") / "server.log"
        exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
        with open(log, "w") as out:
            proc = subprocess.Popen([exe, "serve", str(checkpoint), "--port", str(port), "--served-model-name", "standin", "--device", "cpu", *args],
                                    stdout=out, stderr=subprocess.STDOUT)
        proc.log = log
        procs.append(proc)
        url, deadline = f"http://127.0.0.1:{port}", time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None: pytest.fail(log.read_text())
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200: return proc, url
            except httpx.HTTPError: pass
            time.sleep(0.3)
        pytest.fail("server did not become healthy")
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try: proc.wait(timeout=30)
            except subprocess.TimeoutExpired: proc.kill()
