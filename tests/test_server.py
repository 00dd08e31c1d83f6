"""A real `ruvon serve` process driven by the official openai SDK (sync and async) and by raw HTTP."""
import asyncio
import json
import time

import httpx
import openai
import pytest
import torch
from transformers import GPT2LMHeadModel

from ruvon.loading import load_tokenizer

MODEL = "standin"


@pytest.fixture(scope="module")
def server(standin_6l, ruvon_server): return ruvon_server(standin_6l)[1]


@pytest.fixture(scope="module")
def client(server): return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def hf_text(standin_6l):
    tok = load_tokenizer(standin_6l)
    hf = GPT2LMHeadModel.from_pretrained(standin_6l, dtype=torch.float32).eval()
    def greedy(prompt, n):
        ids = tok.encode(prompt)
        out = hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, pad_token_id=tok.eos_token_id)[0, len(ids):].tolist()
        if tok.eos_token_id in out: out = out[: out.index(tok.eos_token_id)]
        return tok.decode(out)
    return greedy


def test_greedy_completion_equals_hf(client, hf_text):
    for prompt in ("ROMEO:", "The SELECT statement"):
        r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=40, temperature=0)
        assert r.choices[0].text == hf_text(prompt, 40)
        assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 40
        assert r.object == "text_completion" and r.model == MODEL and r.id.startswith("cmpl-")


def test_stream_equals_non_stream_for_same_seed(client):
    args = dict(model=MODEL, prompt="First Citizen:", max_tokens=30, temperature=0.9, top_p=0.95, seed=123)
    whole = client.completions.create(**args).choices[0].text
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **args))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole
    assert chunks[-1].usage.completion_tokens == 30 and chunks[-1].choices == []
    assert client.completions.create(**args).choices[0].text == whole  # same seed, same text


def test_n_seed_stop_echo(client):
    r = client.completions.create(model=MODEL, prompt="ROMEO:", max_tokens=12, n=2, seed=5, temperature=1.0)
    assert [c.index for c in r.choices] == [0, 1] and r.usage.completion_tokens == 24
    one = client.completions.create(model=MODEL, prompt="ROMEO:", max_tokens=12, n=1, seed=5, temperature=1.0)
    assert one.choices[0].text == r.choices[0].text  # choice 0 does not depend on n
    stopped = client.completions.create(model=MODEL, prompt="ROMEO:", max_tokens=40, temperature=0, stop=["more"])
    assert stopped.choices[0].finish_reason == "stop" and "more" not in stopped.choices[0].text
    echoed = client.completions.create(model=MODEL, prompt="ROMEO:", max_tokens=5, temperature=0, echo=True)
    assert echoed.choices[0].text.startswith("ROMEO:")


def test_prompt_shapes_and_extensions(client):
    r = client.completions.create(model=MODEL, prompt=["ROMEO:", "JULIET:"], max_tokens=4, temperature=0, n=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    ids = client.completions.create(model=MODEL, prompt=[49, 2662, 46, 25], max_tokens=4, temperature=0)
    assert ids.usage.prompt_tokens == 4
    ext = client.completions.create(model=MODEL, prompt="SELECT", max_tokens=50, extra_body={"top_k": 5, "min_p": 0.05, "repetition_penalty": 1.2, "ignore_eos": True}, seed=1)
    assert ext.usage.completion_tokens == 50


def test_chat(client):
    messages = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "What is a table?"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=25, seed=3, temperature=0.8)
    msg = r.choices[0].message
    assert msg.role == "assistant" and r.object == "chat.completion" and "\nUser:" not in msg.content
    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=25, seed=3, temperature=0.8, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == msg.content
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason


def test_models_tokenize_detokenize(client, server):
    assert [m.id for m in client.models.list().data] == [MODEL]
    tokens = httpx.post(f"{server}/tokenize", json={"prompt": "Hello world"}).json()
    assert tokens["tokens"] == [15496, 995] and tokens["max_model_len"] == 1024
    assert httpx.post(f"{server}/detokenize", json={"tokens": [15496, 995]}).json() == {"prompt": "Hello world"}


def test_async_client(server):
    async def run():
        aclient = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
        whole = await aclient.completions.create(model=MODEL, prompt="ROMEO:", max_tokens=20, temperature=0)
        streamed = [c.choices[0].text async for c in await aclient.completions.create(model=MODEL, prompt="ROMEO:", max_tokens=20, temperature=0, stream=True)]
        many = await asyncio.gather(*[aclient.completions.create(model=MODEL, prompt=p, max_tokens=8, temperature=0) for p in ("a", "b", "c")])
        await aclient.close()
        return whole, streamed, many
    whole, streamed, many = asyncio.run(run())
    assert "".join(streamed) == whole.choices[0].text and len(many) == 3


BAD = [
    ("malformed JSON", "/v1/completions", b"{not json", 400),
    ("wrong type", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": "ten"}, 400),
    ("prompt missing", "/v1/completions", {"model": MODEL}, 400),
    ("negative max_tokens", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": -1}, 400),
    ("huge max_tokens", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 10**9}, 400),
    ("temperature < 0", "/v1/completions", {"model": MODEL, "prompt": "x", "temperature": -0.5}, 400),
    ("top_p = 0", "/v1/completions", {"model": MODEL, "prompt": "x", "top_p": 0}, 400),
    ("top_p > 1", "/v1/completions", {"model": MODEL, "prompt": "x", "top_p": 1.5}, 400),
    ("n = 0", "/v1/completions", {"model": MODEL, "prompt": "x", "n": 0}, 400),
    ("empty prompt list", "/v1/completions", {"model": MODEL, "prompt": []}, 400),
    ("empty prompt", "/v1/completions", {"model": MODEL, "prompt": ""}, 400),
    ("token id out of range", "/v1/completions", {"model": MODEL, "prompt": [50257]}, 400),
    ("unknown model", "/v1/completions", {"model": "gpt-4", "prompt": "x"}, 404),
    ("too-long prompt", "/v1/completions", {"model": MODEL, "prompt": "hello " * 1100}, 400),
    ("prompt + max_tokens too long", "/v1/completions", {"model": MODEL, "prompt": "hello " * 1000, "max_tokens": 100}, 400),
    ("stream + bad value", "/v1/completions", {"model": MODEL, "prompt": "x", "stream": True, "temperature": -1}, 400),
    ("chat: no messages", "/v1/chat/completions", {"model": MODEL, "messages": []}, 400),
    ("chat: bad role", "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, 400),
    ("chat: unknown model", "/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404),
]


@pytest.mark.parametrize("name, path, body, status", BAD, ids=[b[0] for b in BAD])
def test_bad_input(server, name, path, body, status):
    kw = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{server}{path}", timeout=30, **kw)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    ok = httpx.post(f"{server}/v1/completions", json={"model": MODEL, "prompt": "ROMEO:", "max_tokens": 3, "temperature": 0}, timeout=30)
    assert ok.status_code == 200 and httpx.get(f"{server}/health").status_code == 200


def test_too_long_error_says_the_numbers(server):
    r = httpx.post(f"{server}/v1/completions", json={"model": MODEL, "prompt": "hello " * 1000, "max_tokens": 100})
    msg = r.json()["error"]["message"]
    assert "1024 tokens" in msg and "1001 in the prompt" in msg and "100 for the completion" in msg


def test_sdk_raises_openai_errors(client):
    with pytest.raises(openai.NotFoundError): client.completions.create(model="gpt-4", prompt="x")
    with pytest.raises(openai.BadRequestError): client.completions.create(model=MODEL, prompt="x", temperature=-1)


def test_disconnect_mid_stream_keeps_server_responsive(server):
    """A client that hangs up mid-stream does not hold up the next request (the engine aborts it; the
    notebooks of Parts 6 and 8c check that its KV blocks return to the pool)."""
    body = {"model": MODEL, "prompt": "ROMEO:", "temperature": 0, "ignore_eos": True}
    t = time.perf_counter()
    httpx.post(f"{server}/v1/completions", json={**body, "max_tokens": 50}, timeout=120)
    per_token = (time.perf_counter() - t) / 50
    with httpx.stream("POST", f"{server}/v1/completions", json={**body, "max_tokens": 1000, "stream": True}) as r:
        assert next(r.iter_lines()).startswith("data: ")
    t = time.perf_counter()
    ok = httpx.post(f"{server}/v1/completions", json={**body, "max_tokens": 3}, timeout=120)
    waited = time.perf_counter() - t
    assert ok.status_code == 200
    assert waited < 0.25 * 1000 * per_token, f"waited {waited:.2f}s: the abandoned 1000-token request kept the worker busy"


def test_logprobs_match_hf(client, standin_6l):
    """Completions logprobs (generated and echoed prompt) and chat logprobs are HF's log_softmax of raw logits."""
    tok = load_tokenizer(standin_6l)
    hf = GPT2LMHeadModel.from_pretrained(standin_6l, dtype=torch.float32).eval()
    def hf_logprobs(ids):
        with torch.no_grad(): lp = hf(torch.tensor([ids])).logits[0].log_softmax(-1)
        return [lp[i - 1, t].item() for i, t in enumerate(ids) if i > 0]
    prompt = "ROMEO:\nBut, soft! what light"
    ids = tok.encode(prompt)
    # lm-evaluation-harness's loglikelihood call: echo the prompt, generate nothing
    scored = client.completions.create(model=MODEL, prompt=prompt, max_tokens=0, echo=True, logprobs=5)
    lp = scored.choices[0].logprobs
    assert scored.choices[0].text == prompt and lp.token_logprobs[0] is None and len(lp.tokens) == len(ids)
    assert max(abs(a - b) for a, b in zip(lp.token_logprobs[1:], hf_logprobs(ids))) <= 1e-4
    assert all(len(t) == 5 for t in lp.top_logprobs[1:]) and lp.text_offset[:2] == [0, len(tok.decode(ids[:1]))]
    # generated tokens along the greedy path (the engine-level check of Part 10 covers sampled tokens)
    r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=10, temperature=0, logprobs=2, extra_body={"ignore_eos": True})
    greedy = hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=10, pad_token_id=tok.eos_token_id)[0].tolist()
    assert max(abs(a - b) for a, b in zip(r.choices[0].logprobs.token_logprobs, hf_logprobs(greedy)[len(ids) - 1:])) <= 1e-4
    streamed = [c.choices[0].logprobs for c in client.completions.create(model=MODEL, prompt=prompt, max_tokens=10, temperature=0, logprobs=2, stream=True, extra_body={"ignore_eos": True})]
    assert [x for s in streamed for x in s.token_logprobs] == r.choices[0].logprobs.token_logprobs
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5, logprobs=True, top_logprobs=3, temperature=0)
    content = chat.choices[0].logprobs.content
    assert len(content) >= 1 and all(len(c.top_logprobs) == 3 and c.top_logprobs[0].logprob >= c.logprob - 1e-6 for c in content)


def test_chat_content_is_its_logprob_tokens(client):
    "Issue 12: a chat reply keeps its leading space; its content is its tokens' text, streamed or not."
    args = dict(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=6, temperature=0, logprobs=True)
    r = client.chat.completions.create(**args).choices[0]
    assert r.finish_reason == "length" and r.message.content == "".join(c.token for c in r.logprobs.content)
    assert r.message.content.startswith(" ")  # the space the model writes after "Assistant:"
    chunks = [c.choices[0] for c in client.chat.completions.create(stream=True, **args) if c.choices]
    assert "".join(c.delta.content or "" for c in chunks) == r.message.content
    assert "".join(t.token for c in chunks if c.logprobs for t in c.logprobs.content) == r.message.content


def test_logprobs_of_byte_fragments(client, standin_6l):
    "Issue 12: tokens holding part of a UTF-8 character are named bytes:\\xNN (no top_logprobs key lost); text_offset does not drift."
    tok = load_tokenizer(standin_6l)
    prompt = "It’s 日本語, isn’t it"
    scored = client.completions.create(model=MODEL, prompt=prompt, max_tokens=0, echo=True, logprobs=20).choices[0]
    lp, ids = scored.logprobs, tok.encode(prompt)
    assert "bytes:\\xe2\\x80" in lp.tokens and "bytes:\\x99" in lp.tokens
    assert all(len(t) == 20 for t in lp.top_logprobs[1:])  # 20 distinct names: fragments no longer collide as '�'
    text = scored.text
    for i, (token, offset) in enumerate(zip(lp.tokens, lp.text_offset)):
        assert offset == len(tok.decode(ids[:i]).rstrip("\ufffd")), (i, token)  # where the token's character starts
        if not token.startswith("bytes:"): assert text[offset:].startswith(token)
    assert lp.text_offset[-1] == text.rindex(" it")
    after_eot = client.completions.create(model=MODEL, prompt=[tok.eos_token_id] + ids, max_tokens=0, echo=True, logprobs=1).choices[0]
    assert after_eot.text == "<|endoftext|>" + prompt and after_eot.logprobs.text_offset[:2] == [0, len("<|endoftext|>")]  # echo shows it
    r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0, logprobs=1, extra_body={"ignore_eos": True}).choices[0]
    streamed = [c.choices[0].logprobs for c in client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0, logprobs=1,
                                                                         stream=True, extra_body={"ignore_eos": True})]
    assert [o for s in streamed for o in s.text_offset] == r.logprobs.text_offset


def test_logprobs_bad_values(server):
    for body in ({"logprobs": 21}, {"logprobs": -1}):
        r = httpx.post(f"{server}/v1/completions", json={"model": MODEL, "prompt": "x", **body})
        assert r.status_code == 400 and r.json()["error"]["param"] == "logprobs"
    r = httpx.post(f"{server}/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_logprobs"


def test_short_context_serves_on_a_small_kv_pool(standin_2l, ruvon_server):
    "`--max-model-len 256` with a pool of 300 tokens' KV (less than one 1,024-token context) starts and serves 256-token contexts."
    from ruvon.kv_cache import kv_cache_bytes_per_token
    from ruvon.loading import load_config
    pool = 300 * kv_cache_bytes_per_token(load_config(str(standin_2l)), torch.float32)
    url = ruvon_server(standin_2l, "--max-model-len", "256", "--kv-cache-memory", str(pool))[1]
    assert httpx.get(f"{url}/v1/models").json()["data"][0]["max_model_len"] == 256
    ok = httpx.post(f"{url}/v1/completions", json={"model": MODEL, "prompt": "ROMEO:", "max_tokens": 250, "temperature": 0, "ignore_eos": True}, timeout=120)
    assert ok.status_code == 200 and ok.json()["usage"]["total_tokens"] == 253
    too_long = httpx.post(f"{url}/v1/completions", json={"model": MODEL, "prompt": "ROMEO:", "max_tokens": 254})
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
    assert "maximum context length is 256 tokens" in too_long.json()["error"]["message"]


BAD_FOR_EVERYONE_BEFORE = [  # issue #12: each of these once ended every stream in flight with the attacker's error
    ({"logit_bias": {"60000": -100}}, 400, "logit_bias"),
    ({"seed": 18446744073709551616}, 400, "seed"),
    ({"temperature": 1e-300}, 200, None),
    ({"top_p": 1e-300}, 200, None),
    ({"repetition_penalty": 1e-300}, 200, None),
]


def test_extreme_parameters_hurt_no_other_request(server):
    "Three streams run while each extreme request is sent: it gets a clean 400 or tokens, and the streams all finish normally."
    async def victim(http):
        body = {"model": MODEL, "prompt": "ROMEO:", "max_tokens": 40, "temperature": 0, "ignore_eos": True, "stream": True}
        async with http.stream("POST", f"{server}/v1/completions", json=body) as r:
            events = [line async for line in r.aiter_lines() if line.startswith("data: ")]
        return r.status_code, events
    async def run():
        async with httpx.AsyncClient(timeout=120) as http:
            victims = [asyncio.create_task(victim(http)) for _ in range(3)]
            await asyncio.sleep(0.5)
            answers = [await http.post(f"{server}/v1/completions", json={"model": MODEL, "prompt": "Hi", "max_tokens": 4, **extra})
                       for extra, _, _ in BAD_FOR_EVERYONE_BEFORE]
            return answers, await asyncio.gather(*victims)
    answers, victims = asyncio.run(run())
    for r, (extra, status, param) in zip(answers, BAD_FOR_EVERYONE_BEFORE):
        assert r.status_code == status, (extra, r.text)
        if param: assert r.json()["error"]["param"] == param, r.text
        else: assert r.json()["usage"]["completion_tokens"] == 4
    for status, events in victims:
        assert status == 200 and events[-1] == "data: [DONE]" and not any('"error"' in e for e in events)
        assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] == "length"


def test_lone_surrogates_unknown_routes_and_huge_n_are_clean_errors(server):
    "A lone surrogate is a 400 naming its field; unknown routes and wrong methods answer in OpenAI's shape; n beyond the batch is a 400."
    def post(path, body):
        return httpx.post(f"{server}{path}", content=json.dumps(body), headers={"content-type": "application/json"}, timeout=60)
    for path, body, param in [("/v1/completions", {"model": MODEL, "prompt": "Hi \ud800"}, "prompt"),
                              ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "\ud800"}]}, "messages"),
                              ("/tokenize", {"prompt": "\udfff"}, "prompt")]:
        r = post(path, body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param and "lone surrogate" in r.json()["error"]["message"], r.text
    missing, wrong = httpx.get(f"{server}/v1/nothing"), httpx.get(f"{server}/v1/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed" and "POST" in wrong.headers["allow"]
    r = post("/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 1, "n": 100000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "n", r.text
    assert post("/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 2}).status_code == 200


def test_openai_shapes_of_today(client, server):
    "The developer role and text content parts are read; images, tools and JSON mode are refused by name; /v1/models/{id}; usage: null until the last chunk."
    r = client.chat.completions.create(model=MODEL, max_tokens=5, temperature=0, messages=[
        {"role": "developer", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "a table?"}]}])
    same = client.chat.completions.create(model=MODEL, max_tokens=5, temperature=0, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a table?"}])
    assert r.choices[0].message.content == same.choices[0].message.content
    for extra, param in [({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]}, "messages"),
                         ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
                         ({"response_format": {"type": "json_object"}}, "response_format")]:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, **extra}
        bad = httpx.post(f"{server}/v1/chat/completions", json=body)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError): client.models.retrieve("gpt-4")
    body = {"model": MODEL, "prompt": "Hi", "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{server}/v1/completions", json=body, timeout=60) as s:
        chunks = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
    assert all("usage" in c for c in chunks) and all(c["usage"] is None for c in chunks[:-1]) and chunks[-1]["usage"]["completion_tokens"] == 3


def test_huge_bodies_and_prompts_are_refused_fast(server):
    "A body over --max-request-bytes is a 413; a prompt too long to fit is refused before it is tokenized, and /health stays quick."
    big = httpx.post(f"{server}/v1/completions", content=b'{"model": "standin", "prompt": "' + b"x" * (9 << 20) + b'"}',
                     headers={"content-type": "application/json"}, timeout=60)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    async def run():
        async with httpx.AsyncClient(timeout=60) as http:
            long = asyncio.create_task(http.post(f"{server}/v1/completions", json={"model": MODEL, "prompt": "hello " * 1_000_000}))
            await asyncio.sleep(0.05)
            t0 = time.perf_counter(); health = await http.get(f"{server}/health"); health_s = time.perf_counter() - t0
            return await long, health, health_s
    long, health, health_s = asyncio.run(run())
    assert long.status_code == 400 and long.json()["error"]["code"] == "context_length_exceeded", long.text
    assert health.status_code == 200 and health_s < 1.0


def test_api_key_guards_the_api_not_health_or_metrics(standin_2l, ruvon_server):
    "--api-key: /v1/* needs the bearer token (constant-time check), /health and /metrics stay open, the dashboard takes ?key= once."
    url = ruvon_server(standin_2l, "--api-key", "k3y", "--allowed-origins", '["https://app.example"]')[1]
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer nope"}).json()["error"]["code"] == "invalid_api_key"
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="k3y", max_retries=0)
    assert sdk.completions.create(model=MODEL, prompt="Hi", max_tokens=2).usage.completion_tokens == 2
    with pytest.raises(openai.AuthenticationError): openai.OpenAI(base_url=f"{url}/v1", api_key="bad", max_retries=0).models.list()
    assert httpx.get(f"{url}/health").status_code == 200 and httpx.get(f"{url}/metrics").status_code == 200
    assert httpx.get(f"{url}/dashboard").status_code == 401
    with httpx.Client(base_url=url) as browser:
        assert browser.get("/dashboard", params={"key": "k3y"}).status_code == 200
        assert browser.get("/dashboard/data").status_code == 200  # the cookie the page set
    preflight = httpx.options(f"{url}/v1/completions", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://app.example"


def test_chat_errors_name_the_chat_fields(server):
    "A chat request's limits are named as the chat API names them: top_logprobs, max_completion_tokens."
    chat = lambda **extra: httpx.post(f"{server}/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **extra})
    assert chat(logprobs=True, top_logprobs=30).json()["error"]["param"] == "top_logprobs"
    assert chat(max_completion_tokens=-1).json()["error"]["param"] == "max_completion_tokens"
    assert chat(max_completion_tokens=5000).json()["error"]["param"] == "max_completion_tokens"
    assert chat(max_tokens=5000).json()["error"]["param"] == "max_tokens"


def test_tokenizer_info_and_openapi_errors(server):
    "vLLM's /tokenizer_info, and an OpenAPI schema that documents the 400s the server answers instead of FastAPI's 422."
    info = httpx.get(f"{server}/tokenizer_info").json()
    assert info["eos_token"] == "<|endoftext|>" and info["eos_token_id"] == 50256 and info["model_max_length"] == 1024
    schema = httpx.get(f"{server}/openapi.json").json()
    responses = schema["paths"]["/v1/completions"]["post"]["responses"]
    assert "422" not in json.dumps(schema["paths"]) and responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith("OpenAIError")
