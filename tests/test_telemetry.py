"""Part 11's telemetry on a real `ruvon serve`: `/metrics` after known requests, the per-request JSON log lines on
stderr, and the live dashboard in headless Chromium (Debian's `chromium`, driven by Playwright's Python API)."""
import collections
import json
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import chromium
from playwright.sync_api import sync_playwright
from prometheus_client.parser import text_string_to_metric_families

MODEL = "standin"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PER_REQUEST = ["ruvon:time_to_first_token_seconds", "ruvon:e2e_request_latency_seconds", "ruvon:request_queue_time_seconds",
               "ruvon:request_prompt_tokens", "ruvon:request_generation_tokens"]
FAMILIES = {**{h: "histogram" for h in PER_REQUEST + ["ruvon:inter_token_latency_seconds"]},
            **{c: "counter" for c in ["ruvon:prompt_tokens", "ruvon:generation_tokens", "ruvon:request_success", "ruvon:num_preemptions"]},
            **{g: "gauge" for g in ["ruvon:num_requests_running", "ruvon:num_requests_waiting", "ruvon:kv_cache_usage_perc"]}}


@pytest.fixture(scope="module")
def server(standin_6l, ruvon_server):
    "A `ruvon serve` process: its URL, and the file its output (where the request log goes) lands in."
    proc, url = ruvon_server(standin_6l)
    return url, proc.log


def complete(url: str, prompt: str, max_tokens: int, stream: bool) -> tuple[int, int, str]:
    "One completion request, streamed or not: (prompt tokens, completion tokens, finish reason) as the client saw them."
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    args = dict(model=MODEL, prompt=prompt, max_tokens=max_tokens, temperature=0.8, seed=len(prompt))
    if not stream:
        r = client.completions.create(**args)
        return r.usage.prompt_tokens, r.usage.completion_tokens, r.choices[0].finish_reason
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **args))
    reason = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
    return chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, reason


@pytest.fixture(scope="module")
def served(server):
    "Every request made to the server so far (tests that make more append theirs)."
    url, _ = server
    made = [complete(url, p, n, stream) for p, n, stream in [("ROMEO:", 12, False), ("SELECT name FROM", 20, True), ("The git rebase", 7, False),
                                                             ("First Citizen:", 16, True), ("postgres=#", 9, True), ("Q:", 1, False)]]
    chat = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is a table?"}], max_tokens=10, seed=3, stream=True, stream_options={"include_usage": True})
    chunks = list(chat)
    made.append((chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)))
    return made


def scrape(url: str) -> dict:
    r = httpx.get(f"{url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(fams: dict, name: str, sample: str = "", **labels) -> float:
    found = [s.value for s in fams[name].samples if s.name == name + sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, sample, labels, found)
    return found[0]


def test_metrics_count_the_requests(server, served):
    url, _ = server
    fams = scrape(url)
    for name, kind in FAMILIES.items(): assert fams[name].type == kind, name
    labels = {k for f in fams.values() if f.name.startswith("ruvon:") for s in f.samples for k in s.labels}
    assert labels == {"model_name", "finished_reason", "le", "reason", "param", "block_size", "num_gpu_blocks"}  # low cardinality: nothing per request (reason, param: fixed sets; the KV pool's: one value a process)
    (pool,) = fams["ruvon:cache_config_info"].samples
    assert pool.value == 1 and int(pool.labels["num_gpu_blocks"]) > 0 and int(pool.labels["block_size"]) > 0
    assert {s.labels["model_name"] for f in fams.values() if f.name.startswith("ruvon:") for s in f.samples} == {MODEL}
    n, prompt, completion = len(served), sum(p for p, _, _ in served), sum(c for _, c, _ in served)
    for h in PER_REQUEST: assert value(fams, h, "_count") == n, h
    assert value(fams, "ruvon:request_prompt_tokens", "_sum") == prompt
    assert value(fams, "ruvon:request_generation_tokens", "_sum") == completion
    assert value(fams, "ruvon:inter_token_latency_seconds", "_count") == completion - n  # n = 1: one gap per token after the first
    assert value(fams, "ruvon:prompt_tokens", "_total") == prompt
    assert value(fams, "ruvon:generation_tokens", "_total") == completion
    reasons = collections.Counter(r for _, _, r in served)
    for reason in ("stop", "length", "abort"): assert value(fams, "ruvon:request_success", "_total", finished_reason=reason) == reasons[reason]
    assert value(fams, "ruvon:num_preemptions", "_total") == 0
    assert [value(fams, g) for g in ("ruvon:num_requests_running", "ruvon:num_requests_waiting", "ruvon:kv_cache_usage_perc")] == [0, 0, 0.0]
    ttft, e2e = (value(fams, h, "_sum") for h in ("ruvon:time_to_first_token_seconds", "ruvon:e2e_request_latency_seconds"))
    assert 0 < ttft < e2e


def test_request_log_lines(server, served):
    _, stderr = server
    lines = [json.loads(l) for l in stderr.read_text().splitlines() if l.startswith("{")]
    assert len(lines) == len(served)
    assert sorted((d["prompt_tokens"], d["completion_tokens"], d["finish_reason"]) for d in lines) == sorted(served)
    for d in lines:
        assert set(d) == {"id", "prompt_tokens", "completion_tokens", "ttft_s", "tpot_s", "e2e_s", "queue_s", "finish_reason"}
        assert 0 <= d["queue_s"] <= d["ttft_s"] <= d["e2e_s"]
        assert (d["tpot_s"] is None) == (d["completion_tokens"] < 2)
    assert len({d["id"] for d in lines}) == len(lines)


def test_dashboard_in_chromium(server, served):
    """The page loads, shows the requests made so far, and updates while more run; the screenshot is kept."""
    url, _ = server
    data = httpx.get(f"{url}/dashboard/data").json()
    assert data["model_name"] == MODEL and len(data["series"]["output_tokens_per_s"]) == data["window_s"]
    assert data["cost"]["usd_per_hour"] == 2.5 and data["cost"]["usd_per_1k_output_tokens"] > 0  # Part 19 prices every ruvon serve
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium())
        page = browser.new_page(viewport={"width": 1000, "height": 560})
        errors, requested = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{url}/dashboard")
        shows = lambda n: page.wait_for_function(f"document.getElementById('finished').textContent == '{n}'", timeout=10_000)
        shows(len(served))
        assert page.inner_text("#model") == MODEL and page.inner_text("#ttft").count("/") == 2
        served += [complete(url, "KING HENRY:", 40, True), complete(url, "def main():", 30, False)]
        shows(len(served))
        page.wait_for_function("parseFloat(document.getElementById('tps').textContent) > 0", timeout=10_000)
        assert page.inner_text("#kv") == "0.0 %" and page.inner_text("#running") == page.inner_text("#waiting") == "0"
        assert page.inner_text("#status").startswith("updated")
        assert page.inner_text("#cost") not in ("", "\u2013")                   # "this run costs $X per 1K tokens", live
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
        browser.close()
    assert not errors, errors
    assert all(u.startswith(url) for u in requested), "the page must fetch nothing but its own server"
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_one_id_from_client_to_log(server):
    "X-Request-Id becomes the response's id (cmpl-<id>), is echoed back, and is the id of the request's log line."
    url, log = server
    r = httpx.post(f"{url}/v1/completions", json={"model": MODEL, "prompt": "Hi", "max_tokens": 2}, headers={"X-Request-Id": "trace-42"}, timeout=60)
    assert r.json()["id"] == "cmpl-trace-42" and r.headers["x-request-id"] == "trace-42"
    fresh = httpx.post(f"{url}/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}, timeout=60)
    assert fresh.json()["id"] == f"chatcmpl-{fresh.headers['x-request-id']}"
    for _ in range(50):
        ids = {json.loads(l)["id"] for l in log.read_text().splitlines() if l.startswith("{")}
        if {"cmpl-trace-42", fresh.json()["id"]} <= ids: break
        time.sleep(0.1)
    assert {"cmpl-trace-42", fresh.json()["id"]} <= ids
