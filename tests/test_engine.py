"""The continuous-batching engine against the oracle: offline (LLM.generate) and behind the server under load."""
import asyncio

import httpx
import openai
import pytest
import torch
from transformers import GPT2LMHeadModel

from ruvon import LLM, SamplingParams
from ruvon.kv_cache import kv_cache_bytes_per_token
from ruvon.loading import load_config, load_tokenizer

PROMPTS = ["ROMEO:", "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?", "SELECT", "The git rebase command",
           "First Citizen:\nBefore we proceed any further, hear me speak.", "def main():", "CREATE TABLE", "Q:",
           "KING HENRY:", "In Perl,", "The Debian package", "Why did the chicken", "postgres=#", "The", "A",
           "MENENIUS:\nWhat work's, my countrymen, in hand? where go you\nWith bats and clubs? The matter? speak, I pray you."]


@pytest.fixture(scope="module")
def hf_greedy(standin_6l):
    tok = load_tokenizer(standin_6l)
    hf = GPT2LMHeadModel.from_pretrained(standin_6l, dtype=torch.float32).eval()
    cache = {}
    def greedy(prompt, n):
        if (prompt, n) not in cache:
            ids = tok.encode(prompt)
            out = hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, pad_token_id=tok.eos_token_id)[0, len(ids):].tolist()
            if tok.eos_token_id in out: out = out[: out.index(tok.eos_token_id) + 1]
            cache[prompt, n] = out
        return cache[prompt, n]
    return greedy


def test_llm_generate_matches_hf(standin_6l, hf_greedy):
    llm = LLM(str(standin_6l), kv_cache_memory=64 << 20, max_num_seqs=16)
    outs = llm.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=48))
    assert [o.prompt for o in outs] == PROMPTS
    for prompt, out in zip(PROMPTS, outs):
        assert out.outputs[0].token_ids == hf_greedy(prompt, 48), prompt


def one_context_of_kv(path) -> int:
    "Bytes of float32 KV for one full context: the smallest pool the engine accepts (64 blocks of 16)."
    cfg = load_config(str(path))
    return kv_cache_bytes_per_token(cfg, torch.float32) * cfg.n_positions


def test_tight_kv_budget_preempts_and_frees(standin_6l, hf_greedy):
    llm = LLM(str(standin_6l), max_num_seqs=32, kv_cache_memory=one_context_of_kv(standin_6l))
    assert llm.engine.bm.num_blocks == 64
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(32)]
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=48))
    assert llm.engine.scheduler.num_preemptions > 0
    assert llm.engine.bm.num_free_blocks == llm.engine.bm.num_blocks and not llm.engine.requests
    for prompt, out in zip(prompts, outs): assert out.outputs[0].token_ids == hf_greedy(prompt, 48)


def test_llm_rejects_bad_input(standin_2l):
    llm = LLM(str(standin_2l), kv_cache_memory=16 << 20)
    with pytest.raises(ValueError, match="empty"): llm.generate([[]])
    with pytest.raises(ValueError, match="leaving no room"): llm.generate([[1] * 1024])
    with pytest.raises(ValueError, match="token ids"): llm.generate([[50257]])
    assert not llm.engine.has_unfinished_requests()


@pytest.fixture(scope="module")
def tight_server(standin_6l, ruvon_server):
    """A server whose KV pool holds a single full context: concurrent load must preempt, never fail."""
    return ruvon_server(standin_6l, "--kv-cache-memory", str(one_context_of_kv(standin_6l)), "--max-num-seqs", "32")[1]


def test_server_under_concurrent_load_matches_alone(tight_server, hf_greedy):
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(32)]
    async def run():
        client = openai.AsyncOpenAI(base_url=f"{tight_server}/v1", api_key="unused", max_retries=0, timeout=300)
        async def one(p, stream):
            if not stream: return (await client.completions.create(model="standin", prompt=p, max_tokens=48, temperature=0)).choices[0].text
            return "".join([c.choices[0].text async for c in await client.completions.create(model="standin", prompt=p, max_tokens=48, temperature=0, stream=True)])
        texts = await asyncio.gather(*[one(p, i % 2 == 1) for i, p in enumerate(prompts)])
        await client.close()
        return texts
    texts = asyncio.run(run())
    for p, text in zip(prompts, texts):
        expected = hf_greedy(p, 48)
        assert text == _decode(expected), p
    assert httpx.get(f"{tight_server}/health").status_code == 200


def _decode(ids):
    from conftest import DATA
    tok = load_tokenizer(DATA / "checkpoints" / "ruvon-standin-6l")
    return tok.decode([i for i in ids if i != tok.eos_token_id])  # the server's text leaves out <|endoftext|>


@pytest.mark.parametrize("options, message", [
    (dict(block_size=0), "block_size (--block-size) must be an integer of at least 1, got 0"),
    (dict(attention_backend="flsh"), "attention_backend (--attention-backend) must be one of"),
    (dict(max_model_len=0), "max_model_len (--max-model-len) must be an integer of at least 2"),
    (dict(max_model_len=2048, max_num_batched_tokens=2048), "max_model_len (--max-model-len) must be at most the model's context length (n_positions = 1024), got 2048"),
    (dict(gpu_memory_utilization=0), "gpu_memory_utilization (--gpu-memory-utilization) must be in (0, 1]"),
])
def test_bad_engine_options_fail_before_loading(standin_2l, monkeypatch, options, message):
    "One clear ValueError naming the field and its flag, before any weights are loaded or memory allocated."
    import ruvon.loading
    def no_loading(*args, **kwargs): raise AssertionError("weights were loaded before the options were checked")
    monkeypatch.setattr(ruvon.loading, "load_model", no_loading)
    with pytest.raises(ValueError) as e: LLM(str(standin_2l), **options)
    assert message in str(e.value)


def test_short_context_with_a_small_kv_budget(standin_2l):
    "--max-model-len 256 lets a pool too small for one 1,024-token context serve; the context rule follows it."
    cfg = load_config(str(standin_2l))
    with pytest.raises(ValueError, match="one 1024-token sequence needs"):
        LLM(str(standin_2l), kv_cache_memory=300 * kv_cache_bytes_per_token(cfg, torch.float32))
    llm = LLM(str(standin_2l), max_model_len=256, kv_cache_memory=300 * kv_cache_bytes_per_token(cfg, torch.float32))
    assert llm.engine.config.max_model_len == 256 and llm.engine.bm.num_blocks == 18
    out = llm.generate(["ROMEO:"] * 3, SamplingParams(temperature=0, max_tokens=300, ignore_eos=True))
    assert all(len(o.prompt_token_ids) + len(o.outputs[0].token_ids) == 256 and o.outputs[0].finish_reason == "length" for o in out)
    with pytest.raises(ValueError, match="context holds 256"): llm.generate(["x " * 300])
