"""Part 16 as users reach it: `ruvon serve --speculative-config` (same greedy text as without, counters on /metrics, streaming),
`ruvon bench latency --speculative-config` (acceptance in its JSON), and bad configs refused in one line before anything loads."""
import json
import os
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ruvon.llm import LLM
from ruvon.outputs import SamplingParams

MODEL = "standin"
PROMPTS = ["ROMEO:", "def fibonacci(n):\n    ", "The cat sat on the", "First Citizen:\nBefore we proceed any further"]


def ruvon(*args, timeout=300):
    exe = os.path.join(os.path.dirname(sys.executable), "ruvon")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def draft_config(draft, k=4) -> str: return json.dumps({"method": "draft_model", "model": str(draft), "num_speculative_tokens": k})


@pytest.fixture(scope="module")
def offline_greedy(standin_6l) -> list[str]:
    "The target's own greedy text for each prompt (no speculation), 24 tokens."
    llm = LLM(str(standin_6l), kv_cache_memory=32 << 20, max_num_seqs=8)
    return [o.outputs[0].text for o in llm.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=24, ignore_eos=True))]


@pytest.mark.parametrize("method", ["draft_model", "ngram"])
def test_served_greedy_text_is_unchanged(standin_6l, standin_2l, ruvon_server, offline_greedy, method):
    spec = draft_config(standin_2l) if method == "draft_model" else json.dumps({"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_min": 1})
    _, url = ruvon_server(standin_6l, "--kv-cache-memory", str(32 << 20), "--speculative-config", spec)
    body = {"model": MODEL, "prompt": PROMPTS, "max_tokens": 24, "temperature": 0, "ignore_eos": True}
    r = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert [c["text"] for c in sorted(r.json()["choices"], key=lambda c: c["index"])] == offline_greedy
    streamed = ""
    with httpx.stream("POST", f"{url}/v1/completions", json={**body, "prompt": PROMPTS[0], "stream": True}, timeout=120) as s:
        for line in s.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]": streamed += json.loads(line[6:])["choices"][0]["text"]
    assert streamed == offline_greedy[0]
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}
    drafts = families["ruvon:spec_decode_num_drafts"].samples[0].value
    proposed = families["ruvon:spec_decode_num_draft_tokens"].samples[0].value
    accepted = families["ruvon:spec_decode_num_accepted_tokens"].samples[0].value
    per_pos = {s.labels["position"]: s.value for s in families["ruvon:spec_decode_num_accepted_tokens_per_pos"].samples}
    assert drafts > 0 and 0 < accepted <= proposed and sum(per_pos.values()) == accepted
    card = httpx.get(f"{url}/dashboard/data").json()["panels"]["speculative decoding"]  # Part 11's dashboard shows it
    assert card["value"] == f"{accepted / proposed:.0%} accepted" and f"{int(drafts):,} verifications" in card["sub"], card


@pytest.mark.parametrize("spec, says", [
    ('{"method": "eagle", "num_speculative_tokens": 4}', "method must be one of ngram, draft_model"),
    ('{"method": "ngram", "num_speculative_tokens": 17}', "num_speculative_tokens must be an integer in 1..16"),
    ('{"model": "/no/such/draft", "num_speculative_tokens": 4}', "/no/such/draft"),
    ('{"method": "ngram", "num_speculative_tokens": 4', "is not JSON"),
])
def test_bad_speculative_config_is_one_line_at_startup(standin_6l, spec, says):
    r = ruvon("serve", standin_6l, "--device", "cpu", "--port", "1", "--speculative-config", spec, timeout=120)  # port 1: never reached
    assert r.returncode == 1 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bench_latency_reports_acceptance(tmp_path, standin_6l, standin_2l):
    out = tmp_path / "latency.json"
    r = ruvon("bench", "latency", standin_6l, "--device", "cpu", "--batch-size", 2, "--input-len", 16, "--output-len", 16,
              "--num-iters-warmup", 1, "--num-iters", 2, "--kv-cache-memory", 32 << 20,
              "--speculative-config", draft_config(standin_2l, 3), "--json", out)
    assert r.returncode == 0, r.stderr
    spec = json.loads(out.read_text())["metrics"]["spec_decode"]
    assert spec["num_speculative_tokens"] == 3 and spec["num_drafts"] > 0 and 1 <= spec["mean_accepted_length"] <= 4
