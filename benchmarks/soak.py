"""Soak test of `ruvon serve` (issue #12): mixed traffic at about twice the server's capacity for --minutes, then a JSON report.

Traffic, as Poisson arrivals: valid completions and chats (streamed and not), invalid requests (bad parameters, an unknown model,
a too-long prompt, a body over --max-request-bytes, a body of ~260k tiny lists) and abandoned ones (a stream closed after its first event, a whole response
given up after 0.3 s). Capacity is measured first: requests/s with --max-num-seqs clients in a closed loop.

The report: /health's latency, probed every 0.1 s throughout, requests served, rejected by reason (as the responses said, and as `ruvon:request_rejected_total` counted),
abandoned, hung (no response within --deadline seconds: must be 0), transport errors, the server's RSS at the start (after a
warm-up) and at the end (after the load), and the KV-cache usage idle before and after (must be back to the idle value).

Without --url the script launches `ruvon serve` on a stand-in model (CPU) and stops it afterwards. The acceptance run is
30 minutes (the default); `--minutes 3` proves the script on a small machine:

    python benchmarks/soak.py --minutes 3 --out benchmarks/results/soak_cpu-2cores_standin-2l_3min.json
"""
import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RUVON_DATA", ROOT.parent / "shared" / "data"))
MODEL = "standin"


def free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def launch(checkpoint: str, max_num_seqs: int, log: Path) -> tuple[subprocess.Popen, str]:
    "`ruvon serve CHECKPOINT` on CPU with a bounded queue and a request timeout; wait until healthy."
    port, exe = free_port(), os.path.join(os.path.dirname(sys.executable), "ruvon")
    cmd = [exe, "serve", checkpoint, "--port", str(port), "--served-model-name", MODEL, "--device", "cpu", "--max-num-seqs", str(max_num_seqs),
           "--max-queue", str(max_num_seqs), "--request-timeout", "60", "--kv-cache-memory", str(64 << 20), "--max-request-bytes", str(1 << 20)]
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}", time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None: sys.exit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200: return proc, url
        except httpx.HTTPError: pass
        time.sleep(0.3)
    proc.kill(); sys.exit("server did not become healthy")


def metrics(url: str) -> dict:
    "The gauges and the rejection counter this report reads."
    fams = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text)}
    value = lambda name: sum(s.value for s in fams[name].samples) if name in fams else None
    rejected = {f"{s.labels['reason']}{':' + s.labels['param'] if s.labels['param'] else ''}": int(s.value)
                for s in fams["ruvon:request_rejected"].samples if s.value} if "ruvon:request_rejected" in fams else None
    return {"num_requests_running": value("ruvon:num_requests_running"), "num_requests_waiting": value("ruvon:num_requests_waiting"),
            "kv_cache_usage_perc": value("ruvon:kv_cache_usage_perc"), "rejected": rejected}


def rss_mb(pid: int | None) -> float | None:
    if pid is None: return None
    return round(int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1]) / 1024, 1)


def wait_idle(url: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while True:
        m = metrics(url)
        if m["num_requests_running"] == m["num_requests_waiting"] == 0 and m["kv_cache_usage_perc"] == 0 or time.time() > deadline: return m
        time.sleep(0.5)


PROMPTS = ["ROMEO:", "SELECT name FROM users WHERE", "The git rebase command", "In the beginning", "def main():", "Q: What is a table?\nA:"]


def hostile_body(max_request_bytes: int) -> bytes:
    "A body just under the limit made of tiny lists, `[[[1],[1],...]]`: many containers for few bytes (refused, cheaply)."
    return b'{"model": "standin", "prompt": [[' + b",".join([b"[1]"] * ((max_request_bytes - 64) // 4)) + b"]]}"


def request_kinds(rng: random.Random, max_request_bytes: int) -> list[tuple[str, float, dict]]:
    "(kind, weight, request) for the traffic mix; each request is httpx.request's arguments plus how to read it."
    p = lambda: rng.choice(PROMPTS)
    tokens = lambda: rng.randint(8, 48)
    completion = lambda **kw: {"url": "/v1/completions", "json": {"model": MODEL, "prompt": p(), "max_tokens": tokens(), "temperature": 0.8, **kw}}
    chat = lambda **kw: {"url": "/v1/chat/completions", "json": {"model": MODEL, "messages": [{"role": "user", "content": p()}], "max_tokens": tokens(), **kw}}
    return [
        ("completion", 25, lambda: completion()),
        ("completion_stream", 15, lambda: {**completion(stream=True), "stream": True}),
        ("chat", 10, lambda: chat()),
        ("chat_stream", 10, lambda: {**chat(stream=True), "stream": True}),
        ("bad_params", 6, lambda: completion(temperature=-1, top_p=rng.choice([2, -1]))),
        ("bad_logit_bias", 3, lambda: completion(logit_bias={"60000": -100})),
        ("unknown_model", 3, lambda: {"url": "/v1/completions", "json": {"model": "gpt-4", "prompt": "x"}}),
        ("too_long_prompt", 4, lambda: completion(prompt="hello " * 2000)),
        ("oversized_body", 4, lambda: {"url": "/v1/completions", "content": b'{"model": "standin", "prompt": "' + b"x" * max_request_bytes + b'"}',
                                       "headers": {"content-type": "application/json"}}),
        ("json_bomb", 3, lambda: {"url": "/v1/completions", "content": hostile_body(max_request_bytes), "headers": {"content-type": "application/json"}}),
        ("abandoned_stream", 10, lambda: {**completion(stream=True, max_tokens=200, ignore_eos=True), "stream": True, "abandon": True}),
        ("abandoned_whole", 10, lambda: {**completion(max_tokens=200, ignore_eos=True), "abandon": True}),
    ]


async def one(http: httpx.AsyncClient, kind: str, spec: dict, deadline_s: float) -> tuple[str, str]:
    "Send one request: (kind, outcome) where outcome is served | rejected:<code> | abandoned | hung | error:<type>."
    spec = dict(spec)
    stream, abandon = spec.pop("stream", False), spec.pop("abandon", False)
    try:
        async with asyncio.timeout(deadline_s):
            if abandon and not stream:
                try: await http.post(**spec, timeout=0.3); return kind, "served"  # finished before we gave up
                except httpx.TimeoutException: return kind, "abandoned"
            async with http.stream("POST", **spec) as r:
                if r.status_code != 200:
                    body = json.loads(await r.aread())
                    err = body["error"]
                    return kind, f"rejected:{r.status_code}:{err.get('code') or err['type']}{':' + err['param'] if err.get('param') else ''}"
                events = []
                async for line in r.aiter_lines():
                    if not line.startswith("data: "): continue
                    if abandon: return kind, "abandoned"                        # leave after the first event
                    events.append(line)
                if stream:
                    if events[-1] != "data: [DONE]": return kind, "error:truncated"
                    last = json.loads(events[-2][6:])  # the last event before [DONE]: a chunk, or an error event
                    if "error" in last: return kind, f"rejected:stream:{last['error']['code']}"
                return kind, "served"
    except TimeoutError: return kind, "hung"
    except httpx.HTTPError as e: return kind, f"error:{type(e).__name__}"
    except Exception as e: return kind, f"error:client:{type(e).__name__}"  # a bug here is reported, not fatal to the run


async def capacity(url: str, concurrency: int, seconds: float) -> float:
    "Requests/s the server completes with `concurrency` clients in a closed loop (completions of 8–48 tokens)."
    rng, done = random.Random(1), 0
    kinds = {k: make for k, _, make in request_kinds(rng, 0)}
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        end = time.monotonic() + seconds
        async def user():
            nonlocal done
            while time.monotonic() < end:
                if (await one(http, "completion", kinds["completion"](), 120))[1] == "served": done += 1
        start = time.monotonic()
        await asyncio.gather(*(user() for _ in range(concurrency)))
    return done / (time.monotonic() - start)


async def probe_health(url: str, stop: asyncio.Event, every_s: float = 0.1) -> list[float]:
    "GET /health every `every_s` seconds on a connection of its own until `stop`; each answer's latency in seconds."
    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        while not stop.is_set():
            t0 = time.perf_counter()
            r = await http.get("/health")
            latencies.append(time.perf_counter() - t0 if r.status_code == 200 else float("inf"))
            await asyncio.sleep(every_s)
    return latencies


async def soak(url: str, rate: float, minutes: float, deadline_s: float, max_request_bytes: int, seed: int) -> tuple[list[tuple[str, str]], list[float]]:
    "Poisson arrivals at `rate` requests/s for `minutes`: every request's (kind, outcome), and /health's latencies meanwhile."
    rng = random.Random(seed)
    kinds = request_kinds(rng, max_request_bytes)
    tasks, end, stop = [], time.monotonic() + 60 * minutes, asyncio.Event()
    health = asyncio.create_task(probe_health(url, stop))
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(deadline_s), limits=limits) as http:
        while time.monotonic() < end:
            kind, _, make = rng.choices(kinds, weights=[w for _, w, _ in kinds])[0]
            tasks.append(asyncio.create_task(one(http, kind, make(), deadline_s)))
            await asyncio.sleep(rng.expovariate(rate))
        outcomes = await asyncio.gather(*tasks)
    stop.set()
    return outcomes, await health


def health_summary(latencies: list[float]) -> dict:
    "Percentiles of /health's latency in ms (measured by a client sharing the machine with the load generator), and how many took over 100 ms."
    ms = sorted(1e3 * x for x in latencies)
    at = lambda q: round(ms[min(len(ms) - 1, int(q * len(ms)))], 1)
    return {"probes": len(ms), "p50": at(0.5), "p99": at(0.99), "max": round(ms[-1], 1), "over_100ms": sum(x > 100 for x in ms)}


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(), "platform": platform.platform()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="a running server (its model must be served as 'standin'); default: launch one")
    ap.add_argument("--model", default=str(DATA / "checkpoints/ruvon-standin-2l"), help="checkpoint to launch (without --url)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--max-num-seqs", type=int, default=8, help="of the launched server; also the capacity probe's clients")
    ap.add_argument("--load-factor", type=float, default=2.0, help="arrival rate as a multiple of the measured capacity")
    ap.add_argument("--deadline", type=float, default=180.0, help="seconds without a response after which a request counts as hung")
    ap.add_argument("--max-request-bytes", type=int, default=1 << 20, help="the server's limit (oversized bodies exceed it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    proc, url = (None, args.url) if args.url else launch(args.model, args.max_num_seqs, Path(tempfile.mkdtemp()) / "server.log")
    try:
        cap = asyncio.run(capacity(url, args.max_num_seqs, 15))             # also the warm-up
        idle_before, rss_start = wait_idle(url), rss_mb(proc and proc.pid)
        t0 = time.monotonic()
        outcomes, health = asyncio.run(soak(url, args.load_factor * cap, args.minutes, args.deadline, args.max_request_bytes, args.seed))
        elapsed = time.monotonic() - t0
        idle_after, rss_end = wait_idle(url), rss_mb(proc and proc.pid)
    finally:
        if proc: proc.terminate(); proc.wait(timeout=60)
    by_outcome = Counter(o for _, o in outcomes)
    rejected_seen = Counter(o.split(":", 1)[1] for _, o in outcomes if o.startswith("rejected:"))
    metric_rejected = {k: v - (idle_before["rejected"] or {}).get(k, 0) for k, v in (idle_after["rejected"] or {}).items()}
    result = {
        "benchmark": "soak", "command": "python " + " ".join(sys.argv), "machine": machine(), "url": args.url or f"launched: {args.model}",
        "minutes": round(elapsed / 60, 2), "capacity_requests_per_s": round(cap, 2), "arrival_rate_per_s": round(args.load_factor * cap, 2),
        "requests": len(outcomes), "served": by_outcome["served"], "abandoned": by_outcome["abandoned"], "hung": by_outcome["hung"],
        "errors": {o: n for o, n in by_outcome.items() if o.startswith("error:")},
        "rejected_by_response": dict(sorted(rejected_seen.items())), "rejected_by_metric": dict(sorted((k, v) for k, v in metric_rejected.items() if v)),
        "by_kind": {k: dict(Counter(o for kk, o in outcomes if kk == k)) for k in sorted({k for k, _ in outcomes})},
        "health_latency_ms": health_summary(health),
        "rss_mb": {"start": rss_start, "end": rss_end},
        "kv_cache_usage": {"idle_before": idle_before["kv_cache_usage_perc"], "end": idle_after["kv_cache_usage_perc"]},
        "idle_at_end": {k: idle_after[k] for k in ("num_requests_running", "num_requests_waiting")},
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    if result["hung"] or result["errors"]: sys.exit(1)


if __name__ == "__main__":
    main()
