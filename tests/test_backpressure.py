"""Part 15 on a real `ruvon serve` (stand-in, CPU): 100 concurrent streaming users against a bounded queue —
each completes or gets an immediate 429, none hangs, none is lost, and afterwards the KV pool is free and
/metrics counts what was served; plus the request timeout (sent once by the openai SDK), cancellation on disconnect, and SIGTERM drain."""
import asyncio
import json
import signal
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

MODEL = "standin"


def metrics(url: str) -> dict[str, float]:
    "Every sample of /metrics by name (labels summed)."
    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for s in family.samples: out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def wait_idle(url: str, timeout: float = 30) -> dict[str, float]:
    "Poll /metrics until nothing runs, nothing waits and the KV pool is free."
    deadline = time.time() + timeout
    while True:
        m = metrics(url)
        if m["ruvon:num_requests_running"] == m["ruvon:num_requests_waiting"] == m["ruvon:kv_cache_usage_perc"] == 0: return m
        assert time.time() < deadline, m
        time.sleep(0.2)


async def stream_one(client: httpx.AsyncClient, url: str, i: int) -> tuple[str, float, int]:
    "One streaming completion: ('ok' | '429' | other status, seconds to the response head, tokens received)."
    body = {"model": MODEL, "prompt": f"User {i}:", "max_tokens": 12, "temperature": 0, "stream": True, "ignore_eos": True}
    start = time.monotonic()
    async with client.stream("POST", f"{url}/v1/completions", json=body) as r:
        head = time.monotonic() - start
        if r.status_code == 429:
            assert r.headers["retry-after"] == "1" and json.loads(await r.aread())["error"]["code"] == "rate_limit_exceeded"
            return "429", head, 0
        if r.status_code != 200: return str(r.status_code), head, 0
        tokens, done = 0, False
        async for line in r.aiter_lines():
            if line == "data: [DONE]": done = True
            elif line.startswith("data: "): tokens += 1
        return ("ok" if done else "truncated"), head, tokens


@pytest.fixture
def bounded(standin_2l, ruvon_server):
    return ruvon_server(standin_2l, "--max-num-seqs", "8", "--max-queue", "8", "--kv-cache-memory", str(32 << 20))[1]


def test_100_concurrent_users_complete_or_get_an_immediate_429(bounded):
    async def crowd():
        async with httpx.AsyncClient(timeout=httpx.Timeout(120)) as client:
            return await asyncio.wait_for(asyncio.gather(*(stream_one(client, bounded, i) for i in range(100))), timeout=180)
    results = asyncio.run(crowd())
    kinds = [k for k, _, _ in results]
    assert len(results) == 100 and set(kinds) <= {"ok", "429"}, kinds      # none lost, none truncated, no other errors
    assert kinds.count("ok") >= 16 and kinds.count("429") >= 1, kinds      # the queue filled: some were turned away
    assert max(h for k, h, _ in results if k == "429") < 5.0                # ... at once, not after waiting in line
    m = wait_idle(bounded)
    assert m["ruvon:request_success_total"] == kinds.count("ok")            # /metrics counts exactly the requests served
    assert m["ruvon:e2e_request_latency_seconds_count"] == kinds.count("ok")
    assert m["ruvon:generation_tokens_total"] == 12 * kinds.count("ok")


def test_disconnect_cancels_and_frees_kv(bounded):
    body = {"model": MODEL, "prompt": "A long story:", "max_tokens": 900, "temperature": 0, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", f"{bounded}/v1/completions", json=body, timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i >= 6: break                                                 # a few tokens in, the client goes away
    before = metrics(bounded)["ruvon:generation_tokens_total"]
    m = wait_idle(bounded, timeout=20)                                       # the sequence left the batch, its blocks are free
    assert m["ruvon:generation_tokens_total"] - before < 900


@pytest.fixture(scope="module")
def timing_out(standin_2l, ruvon_server):
    "A server whose requests get 0.5 s before a 408."
    return ruvon_server(standin_2l, "--request-timeout", "0.5", "--kv-cache-memory", str(32 << 20))[1]


def test_request_timeout(timing_out):
    url = timing_out
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 900, "temperature": 0, "ignore_eos": True}
    r = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 408 and r.json()["error"]["code"] == "request_timeout"
    with httpx.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}, timeout=60) as s:
        events = [line for line in s.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and json.loads(events[-2][6:])["error"]["code"] == "request_timeout"
    wait_idle(url, timeout=20)                                                # both were cancelled and freed their blocks
    assert httpx.post(f"{url}/v1/completions", json={**body, "max_tokens": 4}, timeout=60).status_code == 200  # short ones still fine


def test_openai_sdk_does_not_retry_a_timeout(timing_out):
    "The official SDK retries 408s twice by default; the deadline's 408 says `x-should-retry: false`, so it is sent once."
    statuses = []
    http = openai.DefaultHttpxClient(event_hooks={"response": [lambda r: statuses.append(r.status_code)]})
    client = openai.OpenAI(base_url=f"{timing_out}/v1", api_key="none", http_client=http)  # default max_retries (2)
    with pytest.raises(openai.APIStatusError) as e:
        client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=900, temperature=0, extra_body={"ignore_eos": True})
    assert statuses == [408]                                                  # one request, no retries
    assert e.value.status_code == 408 and e.value.response.headers.get("x-should-retry") == "false"
    wait_idle(timing_out, timeout=20)


def test_sigterm_drains_in_flight_then_exits(standin_2l, ruvon_server):
    proc, url = ruvon_server(standin_2l, "--kv-cache-memory", str(32 << 20), "--drain-timeout", "120")
    body = {"model": MODEL, "prompt": "Drain:", "max_tokens": 150, "temperature": 0, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        first = next(l for l in lines if l.startswith("data: "))
        proc.send_signal(signal.SIGTERM)                                      # stop while this request is mid-stream
        time.sleep(0.3)
        try: refused = httpx.post(f"{url}/v1/completions", json={**body, "stream": False}, timeout=10).status_code
        except httpx.HTTPError: refused = "connection refused"
        rest = [l for l in lines if l.startswith("data: ")]
    assert refused in (503, "connection refused")                             # no new work once draining
    events = [first, *rest]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert len(chunks) == 150 and chunks[-1]["choices"][0]["finish_reason"] == "length"  # the in-flight request finished whole
    assert proc.wait(timeout=30) == 0                                         # and the server exited cleanly


def test_requests_are_priced(standin_2l, ruvon_server):
    "Part 19: usage.cost_usd on responses (streamed too), the cost histogram and gauge, the dashboard's panel."
    _, url = ruvon_server(standin_2l, "--kv-cache-memory", str(32 << 20), "--gpu-cost-per-hour", "3.6")
    body = {"model": MODEL, "prompt": "Price me:", "max_tokens": 8, "temperature": 0, "ignore_eos": True}
    plain = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["usage"]
    with httpx.stream("POST", f"{url}/v1/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}}, timeout=60) as s:
        last = [json.loads(l[6:]) for l in s.iter_lines() if l.startswith("data: {")][-1]["usage"]
    assert plain["cost_usd"] > 0 and last["cost_usd"] > 0
    m = wait_idle(url)
    assert m["ruvon:request_cost_dollars_count"] == 2
    assert abs(m["ruvon:request_cost_dollars_sum"] - plain["cost_usd"] - last["cost_usd"]) < 1e-12
    assert m["ruvon:cost_per_million_output_tokens_dollars"] > 0
    panel = httpx.get(f"{url}/dashboard/data", timeout=10).json()["cost"]
    assert panel["usd_per_hour"] == 3.6 and panel["usd_per_1k_output_tokens"] > 0


def test_disconnect_cancels_a_whole_response_too(bounded):
    "A non-streamed request whose client leaves is cancelled as a stream is: its blocks and its admission slot come back."
    body = {"model": MODEL, "prompt": "A long story:", "max_tokens": 900, "temperature": 0, "ignore_eos": True}
    before = metrics(bounded)["ruvon:generation_tokens_total"]
    with pytest.raises(httpx.ReadTimeout): httpx.post(f"{bounded}/v1/completions", json=body, timeout=1.5)  # the client gives up
    wait_idle(bounded, timeout=10)                                           # long before 900 tokens could have been made
    assert metrics(bounded)["ruvon:generation_tokens_total"] - before < 900


def test_drain_timeout_ends_streams_with_an_error_event(standin_2l, ruvon_server):
    "A stream still running when --drain-timeout expires ends with a 503 error event and [DONE], not a dropped connection."
    proc, url = ruvon_server(standin_2l, "--kv-cache-memory", str(32 << 20), "--drain-timeout", "1.5")
    body = {"model": MODEL, "prompt": "Drain:", "max_tokens": 1000, "temperature": 0, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        next(l for l in lines if l.startswith("data: "))
        proc.send_signal(signal.SIGTERM)
        events = [l for l in lines if l.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and json.loads(events[-2][6:])["error"]["code"] == "server_shutting_down", events[-3:]
    assert proc.wait(timeout=30) == 0
