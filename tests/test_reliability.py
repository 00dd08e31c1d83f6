"""Issue #12 on a real `ruvon serve` (stand-in, CPU): a whole response cut by the drain timeout gets a clean 503, every refusal
is counted by a bounded reason in /metrics, and large rejected bodies do not grow the server's memory."""
import json
import signal
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ruvon.server import ALL_REJECTION_REASONS, build_app, serving_for
from ruvon.telemetry import serve_telemetry

MODEL = "standin"
KEY = "k3y"


def rejected(text: str) -> dict[tuple[str, str], float]:
    "ruvon:request_rejected_total by (reason, param)."
    fam = next(f for f in text_string_to_metric_families(text) if f.name == "ruvon:request_rejected")
    return {(s.labels["reason"], s.labels["param"]): s.value for s in fam.samples}


def gauge(url: str, name: str, **headers) -> float:
    fam = next(f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10, headers=headers).text) if f.name == name)
    return sum(s.value for s in fam.samples)


def wait_running(url: str, n: int = 1, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while gauge(url, "ruvon:num_requests_running") < n:
        assert time.time() < deadline, "the request never started"
        time.sleep(0.05)


def in_thread(fn) -> dict:
    "Run `fn` in a thread; the returned dict gets its result (or exception) and a `done` event."
    out = {"done": threading.Event()}
    def run():
        try: out["result"] = fn()
        except Exception as e: out["error"] = e
        out["done"].set()
    threading.Thread(target=run, daemon=True).start()
    return out


def test_drain_timeout_ends_a_whole_response_with_a_503(standin_2l, ruvon_server):
    "A non-streamed request still running when --drain-timeout expires gets a 503 in OpenAI's shape, not a dropped connection."
    proc, url = ruvon_server(standin_2l, "--kv-cache-memory", str(32 << 20), "--drain-timeout", "1.5")
    body = {"model": MODEL, "prompt": "Drain:", "max_tokens": 1000, "n": 4, "temperature": 0, "ignore_eos": True}
    call = in_thread(lambda: httpx.post(f"{url}/v1/completions", json=body, timeout=60))
    wait_running(url)
    proc.send_signal(signal.SIGTERM)
    assert call["done"].wait(30), "no response"
    assert "error" not in call, f"the connection dropped: {call.get('error')!r}"
    r = call["result"]
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == "server_shutting_down"
    assert proc.wait(timeout=30) == 0


def test_refusals_are_counted_by_reason(standin_2l, ruvon_server):
    "400 (by field), 401, 404, 413, 429 and 408 (whole and streamed) each count once under their reason; messages never become labels."
    _, url = ruvon_server(standin_2l, "--kv-cache-memory", str(32 << 20), "--api-key", KEY, "--max-num-seqs", "1", "--max-queue", "0",
                          "--request-timeout", "2", "--max-request-bytes", "4096")
    auth = {"Authorization": f"Bearer {KEY}"}
    before = rejected(httpx.get(f"{url}/metrics").text)                       # /metrics needs no key
    assert {r for r, p in before if p == ""} == set(ALL_REJECTION_REASONS)    # every reason there from the start
    post = lambda path, body, **kw: httpx.post(f"{url}{path}", json=body, headers=kw.pop("headers", auth), timeout=60, **kw)
    ok = {"model": MODEL, "prompt": "Hi", "max_tokens": 2}
    assert post("/v1/completions", {**ok, "temperature": -1}).status_code == 400
    assert post("/v1/chat/completions", {"model": MODEL, "messages": []}).status_code == 400
    assert httpx.post(f"{url}/v1/completions", content=b"{not json", headers={**auth, "content-type": "application/json"}).status_code == 400
    assert post("/v1/completions", ok, headers={}).status_code == 401
    for i in range(20): assert post("/v1/completions", {**ok, "model": f"gpt-{i}-{'x' * i}"}).status_code == 404  # 20 messages, one series
    assert httpx.get(f"{url}/no/such/route").status_code == 404
    assert post("/v1/completions", {**ok, "prompt": "x" * 5000}).status_code == 413
    long = {"model": MODEL, "prompt": "Long:", "max_tokens": 900, "temperature": 0, "ignore_eos": True}
    hog = in_thread(lambda: post("/v1/completions", long))                   # holds the one slot until its deadline
    wait_running(url)
    assert post("/v1/completions", ok).status_code == 429
    assert hog["done"].wait(30) and hog["result"].status_code == 408
    with httpx.stream("POST", f"{url}/v1/completions", json={**long, "stream": True}, headers=auth, timeout=60) as s:
        events = [l for l in s.iter_lines() if l.startswith("data: ")]
    assert json.loads(events[-2][6:])["error"]["code"] == "request_timeout"   # a 408 after the stream began: an error event
    after = rejected(httpx.get(f"{url}/metrics").text)
    grown = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert grown == {("invalid_request", "temperature"): 1, ("invalid_request", "messages"): 1, ("invalid_request", ""): 1,
                     ("unauthorized", ""): 1, ("model_not_found", ""): 20, ("not_found", ""): 1, ("request_too_large", ""): 1,
                     ("queue_full", ""): 1, ("timeout", ""): 2}, grown


def test_refusals_while_loading_and_draining_are_counted(standin_2l):
    "503s while the model loads (before any telemetry exists) and while the server drains are counted too."
    load, gate = serving_for(str(standin_2l), MODEL), threading.Event()
    app = build_app(lambda: (gate.wait(60), load())[1], extensions=[serve_telemetry])
    body = {"model": MODEL, "prompt": "Hi", "max_tokens": 2}
    with TestClient(app) as client:
        assert client.post("/v1/completions", json=body).status_code == 503
        gate.set(); app.state.loader_thread.join()
        assert client.post("/v1/completions", json=body).status_code == 200
        app.state.ruvon.admission.drain(30)
        r = client.post("/v1/completions", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (503, "server_shutting_down")
        counts = rejected(client.get("/metrics").text)
    assert {k: v for k, v in counts.items() if v} == {("not_ready", ""): 1, ("shutting_down", ""): 1}


def rss_mb(pid: int) -> float:
    return int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1]) / 1024


BIG = 8 << 20  # the default --max-request-bytes
BIG_BODIES = {  # each just under the limit, each refused with a 400
    "a too-long prompt (by characters)": ("/v1/completions", {"model": MODEL, "prompt": "x" * (BIG - 100), "max_tokens": 4}),
    "2.7M token ids": ("/v1/completions", {"model": MODEL, "prompt": [1] * 2_700_000, "max_tokens": 4}),
    "220k chat messages": ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "x"}] * 220_000}),
}


@pytest.fixture(scope="module")
def default_limits(standin_2l, ruvon_server):
    return ruvon_server(standin_2l, "--kv-cache-memory", str(32 << 20))


def test_large_rejected_bodies_do_not_grow_memory(default_limits):
    "Bodies just under --max-request-bytes, refused: the server's RSS settles after the first few and does not grow with more (no leak)."
    proc, url = default_limits
    bodies = [(path, json.dumps(body).encode()) for path, body in BIG_BODIES.values()]
    assert all(len(b) <= BIG for _, b in bodies)
    def send(rounds: int) -> None:
        with httpx.Client(timeout=120, headers={"content-type": "application/json"}) as c:
            for _ in range(rounds):
                for path, b in bodies: assert c.post(f"{url}{path}", content=b).status_code == 400
    send(2)                                                                   # warm: the allocator's high-water mark
    settled = rss_mb(proc.pid)
    send(8)                                                                   # 24 more bodies: ~200 MB if each leaked its body alone
    grown = rss_mb(proc.pid) - settled
    print(f"RSS after 6 big refused bodies {settled:.0f} MB; after 24 more {grown:+.0f} MB")
    assert grown < 100, grown
    assert httpx.post(f"{url}/v1/completions", json={"model": MODEL, "prompt": "Hi", "max_tokens": 2}).status_code == 200



def test_one_request_cannot_ask_for_too_many_choices(standin_2l, ruvon_server):
    "Prompts x n above --max-choices-per-request is a 400 before tokenizing (param: the list, or n); at the limit it is served."
    _, url = ruvon_server(standin_2l, "--kv-cache-memory", str(32 << 20), "--max-choices-per-request", "8")
    post = lambda body: httpx.post(f"{url}/v1/completions", json={"model": MODEL, "max_tokens": 1, **body}, timeout=60)
    for body, param in (({"prompt": [[1, 2, 3]] * 9}, "prompt"), ({"prompt": ["a", "b"], "n": 5}, "n"), ({"prompt": [[1, 2, 3]] * 100_000}, "prompt")):
        r = post(body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "n": 9, "max_tokens": 1}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "n", r.text
    served = post({"prompt": ["a", "b"], "n": 4})
    assert served.status_code == 200 and len(served.json()["choices"]) == 8, served.text


def near_limit(path: str, head: str, item: str, tail: str) -> tuple[str, bytes]:
    "A body just under --max-request-bytes: `head`, `item` repeated (comma-separated) to fill it, `tail`."
    n = (BIG - 64 - len(head) - len(tail)) // (len(item) + 1)
    return path, (head + ",".join([item] * n) + tail).encode()


SHAPES = {  # 8 MB of items that each fail validation: two million errors, each made while holding Python's lock, unless validation stops early
    "lists inside a token-id prompt": near_limit("/v1/completions", '{"model": "standin", "prompt": [[', "[1]", "]]}"),
    "lists as stop strings": near_limit("/v1/completions", '{"model": "standin", "prompt": "x", "stop": [', "[1]", "]}"),
    "lists as content parts": near_limit("/v1/chat/completions", '{"model": "standin", "messages": [{"role": "user", "content": [', "[1]", "]}]}"),
    "lists as logit biases": near_limit("/v1/completions", '{"model": "standin", "prompt": "x", "logit_bias": {"1": [', "[1]", "]}}"),
    "empty content parts": near_limit("/v1/chat/completions", '{"model": "standin", "messages": [{"role": "user", "content": [', "{}", "]}]}"),
    "a 1 MiB body of lists (parsed whole)": ("/v1/completions", ('{"model": "standin", "prompt": [[' + ",".join(["[1]"] * 262_000) + ']]}').encode()),
    "a huge logit_bias": near_limit("/v1/completions", '{"model": "standin", "prompt": "x", "logit_bias": {', '"1":[]', "}}"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_health_stays_quick_while_a_pathological_body_is_refused(default_limits, shape):
    "Bodies built to make validation slow are refused with one 400, and /health, polled throughout, answers every time within 0.5 s."
    _, url = default_limits
    path, body = SHAPES[shape]
    refused = in_thread(lambda: httpx.post(f"{url}{path}", content=body, headers={"content-type": "application/json"}, timeout=120))
    slowest = 0.0
    with httpx.Client(timeout=30) as c:
        while not refused["done"].is_set():
            t0 = time.perf_counter()
            assert c.get(f"{url}/health").status_code == 200
            slowest = max(slowest, time.perf_counter() - t0)
            time.sleep(0.01)
    r = refused.get("result")
    assert r is not None and r.status_code == 400, refused
    print(f"{shape}: {len(body) / 2**20:.1f} MB refused ({r.json()['error']['message'][:60]}); slowest /health {slowest * 1e3:.0f} ms")
    assert slowest < 0.5, slowest
