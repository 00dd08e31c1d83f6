"""`ruvon loadtest` as users run it: the real executable against a real `ruvon serve` of the stand-in on CPU, and
against a small fake server that answers 429 (with and without Retry-After), 503, 400, a broken stream and a hang."""
import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import uvicorn
from conftest import free_port
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

MODEL = "standin"
STATS = {"mean", "p50", "p90", "p99"}
LATENCIES = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_latency_ms")


def ruvon(*args, timeout=120):
    exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


@pytest.fixture(scope="module")
def server(standin_6l, ruvon_server):
    return ruvon_server(standin_6l)[1]


def sse(*events):
    return "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)


TOKEN = {"choices": [{"index": 0, "text": " x", "finish_reason": None}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
# what the fake server does with its n-th completion request (the 0th is loadtest's test request)
BEHAVIOUR = ["ok", "429 retry-after", "429", "503", "stream error", "ok", "400", "hang"]


def fake_app() -> FastAPI:
    app, calls = FastAPI(), itertools.count()

    @app.get("/v1/models")
    def models(): return {"object": "list", "data": [{"id": "fake", "object": "model"}]}

    @app.post("/v1/completions")
    async def completions():
        kind = BEHAVIOUR[next(calls) % len(BEHAVIOUR)]
        error = lambda status, **kw: JSONResponse({"error": {"message": f"{kind}!", "type": "x", "param": None, "code": None}}, status, **kw)
        if kind == "429 retry-after": return error(429, headers={"Retry-After": "1"})
        if kind.startswith(("429", "503", "400")): return error(int(kind[:3]))
        if kind == "hang": await asyncio.sleep(2)  # past the client's --timeout 1
        events = sse(TOKEN, {"error": {"message": "boom"}}, "[DONE]") if kind == "stream error" else sse(TOKEN, TOKEN, USAGE, "[DONE]")
        return StreamingResponse(iter([events]), media_type="text/event-stream")
    return app


@pytest.fixture
def fake_server():
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(fake_app(), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not srv.started and time.time() < deadline: time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_closed_sweep_writes_json_and_plot(server, tmp_path):
    out, png = tmp_path / "sweep.json", tmp_path / "sweep.png"
    r = ruvon("loadtest", server, "--concurrency", 1, 4, "--num-requests", 6, "--max-tokens", 8, "--ignore-eos",
              "--prompt-words", 16, "--json", out, "--plot", png)
    assert r.returncode == 0, r.stderr
    assert "requests ok" in r.stdout and "TTFT ms p99" in r.stdout and "errors:" not in r.stdout
    result = json.loads(out.read_text())
    assert result["benchmark"] == "loadtest" and result["command"].startswith(f"ruvon loadtest {server} --concurrency 1 4 ")
    assert (result["url"], result["model"], result["mode"]) == (server, MODEL, "concurrency") and result["started_at"]
    assert result["config"]["concurrency"] == [1, 4] and result["config"]["max_tokens"] == 8 and result["config"]["ignore_eos"]
    assert [lv["concurrency"] for lv in result["levels"]] == [1, 4]
    for lv in result["levels"]:
        assert (lv["num_requests"], lv["num_ok"], lv["num_errors"], lv["errors"]) == (6, 6, 0, {})
        assert lv["num_output_tokens"] == 6 * 8 and lv["num_prompt_tokens"] == 6 * 16
        assert lv["output_tokens_per_s"] > 0 and lv["requests_per_s"] > 0
        assert lv["output_tokens_per_s"] == pytest.approx(lv["num_output_tokens"] / lv["elapsed_s"])
        for key in LATENCIES:
            assert set(lv[key]) == STATS and 0 < lv[key]["p50"] <= lv[key]["p90"] <= lv[key]["p99"], (key, lv[key])
        assert lv["ttft_ms"]["p99"] <= lv["e2e_latency_ms"]["p99"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_open_loop_without_streaming(server, tmp_path):
    out = tmp_path / "open.json"
    r = ruvon("loadtest", f"{server}/v1", "--request-rate", 20, "inf", "--num-requests", 4, "--max-tokens", 4, "--no-stream", "--json", out)
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    assert result["mode"] == "request_rate" and result["url"] == server and result["config"]["request_rate"] == [20.0, "inf"]
    assert [lv["request_rate"] for lv in result["levels"]] == [20.0, "inf"]
    for lv in result["levels"]:
        assert lv["num_ok"] == 4 and lv["num_errors"] == 0 and lv["num_output_tokens"] > 0
        assert lv["ttft_ms"]["p50"] is None and lv["itl_ms"]["p50"] is None and lv["e2e_latency_ms"]["p50"] > 0


def test_429s_and_other_failures_are_counted_by_kind(fake_server, tmp_path):
    out = tmp_path / "errors.json"
    r = ruvon("loadtest", fake_server, "--concurrency", 1, "--num-requests", len(BEHAVIOUR) - 1, "--timeout", 1, "--json", out)
    assert r.returncode == 0, r.stderr
    assert "1 users: http_400 × 1, http_429 × 2 (1 with Retry-After), http_503 × 1, stream × 1, timeout × 1" in r.stdout
    (lv,) = json.loads(out.read_text())["levels"]
    assert lv["errors"] == {"http_400": 1, "http_429": 2, "http_503": 1, "stream": 1, "timeout": 1}
    assert (lv["num_ok"], lv["num_errors"], lv["num_429_with_retry_after"]) == (1, 6, 1)
    assert lv["error_examples"]["http_429"] == "429 retry-after!" and lv["error_examples"]["stream"] == "boom"
    assert lv["num_output_tokens"] == 2 and lv["tpot_ms"]["mean"] > 0


@pytest.mark.parametrize("args, message", [
    (("--concurrency", 0), "--concurrency values must be at least 1, got 0"),
    (("--concurrency", 1, "--request-rate", 2), "give --concurrency or --request-rate"),
    (("--num-requests", 5, "--duration", 5), "give --num-requests or --duration, not both"),
    (("--request-rate", "inf", "--duration", 5), "needs --num-requests"),
    (("--plot", "/no/such/dir/x.png"), "--plot /no/such/dir/x.png: the directory /no/such/dir does not exist"),
])
def test_bad_options_are_one_line(args, message):
    r = ruvon("loadtest", "http://127.0.0.1:9", *args)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_unreachable_server_and_unknown_model_are_one_line(server):
    down = ruvon("loadtest", f"http://127.0.0.1:{free_port()}", "--concurrency", 1)
    unknown = ruvon("loadtest", server, "--model", "gpt-5", "--concurrency", 1, "--num-requests", 2)
    for r, message in ((down, "error: cannot reach http://127.0.0.1:"), (unknown, "error: the test request failed (http_404): The model `gpt-5` does not exist")):
        assert r.returncode == 1 and r.stderr.startswith(message) and r.stderr.count("\n") == 1, r.stderr
