"""ruvon against the oracle, transformers' GPT2LMHeadModel, on the same weights (float32, CPU)."""
import json
import shutil

import pytest
import torch
from safetensors.torch import save_file
from transformers import GPT2Config as HFConfig
from transformers import GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from ruvon.generate import RecomputeDecoder, decode_steps
from ruvon.kv_cache import CachedDecoder
from ruvon.loading import load_model, load_tokenizer

hf_logging.disable_progress_bar()
hf_logging.set_verbosity_error()
TOL = 1e-4
PROMPTS = ["ROMEO:", "The SELECT statement retrieves rows from", "def main():\n    ", "git rebase -i", "Q: Why?\nA:"]


def hf_model(path):
    return GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32).eval()


def max_error(ours, hf, ids):
    with torch.no_grad(): return (ours(ids) - hf(ids).logits).abs().max().item()


@pytest.mark.parametrize("name", ["standin_6l", "standin_2l"])
def test_logits_parity_standins(request, name):
    path = request.getfixturevalue(name)
    ours, hf, tok = load_model(path), hf_model(path), load_tokenizer(path)
    for prompt in PROMPTS:
        ids = torch.tensor([tok.encode(prompt)])
        assert max_error(ours, hf, ids) <= TOL, prompt
    full_context = torch.randint(0, 50257, (2, 1024), generator=torch.Generator().manual_seed(0))
    assert max_error(ours, hf, full_context) <= TOL


def test_logits_parity_random_gpt2(tmp_path):
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(HFConfig()).eval()  # gpt2's shape: 12 layers, 768 wide, 12 heads
    hf.save_pretrained(tmp_path)
    ids = torch.randint(0, 50257, (2, 64), generator=torch.Generator().manual_seed(1))
    assert max_error(load_model(tmp_path), hf, ids) <= TOL


def test_original_gpt2_layout(tmp_path, standin_2l):
    """The original `gpt2` upload: names without `transformer.`, causal-mask buffers, a single file."""
    hf = hf_model(standin_2l)
    tensors = {k.removeprefix("transformer."): v.contiguous() for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    for i in range(hf.config.n_layer): tensors[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 1024, 1024, dtype=torch.uint8))
    save_file(tensors, tmp_path / "model.safetensors")
    shutil.copy(standin_2l / "config.json", tmp_path / "config.json")
    ids = torch.randint(0, 50257, (1, 40), generator=torch.Generator().manual_seed(2))
    assert max_error(load_model(tmp_path), hf, ids) <= TOL


@pytest.mark.parametrize("name", ["standin_6l", "standin_2l"])
def test_greedy_parity_with_hf_generate(request, name):
    path = request.getfixturevalue(name)
    ours, hf, tok = load_model(path), hf_model(path), load_tokenizer(path)
    for prompt in PROMPTS:
        ids = tok.encode(prompt)
        expected = hf.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=64, pad_token_id=tok.eos_token_id)[0, len(ids):].tolist()
        if tok.eos_token_id in expected: expected = expected[: expected.index(tok.eos_token_id) + 1]
        for decoder in (CachedDecoder(ours), RecomputeDecoder(ours)):
            got = [s.token_id for s in decode_steps(decoder, ids, 64, tok.eos_token_id)]
            assert got == expected, (prompt, type(decoder).__name__)
            assert len(got) >= 40 or got[-1] == tok.eos_token_id


def test_fp16_weights_on_cpu(standin_6l):
    """float16 runs on CPU too; logits stay close to float32 (a loose bound sized to fp16)."""
    ids = torch.tensor([load_tokenizer(standin_6l).encode("ROMEO:\nWhat say you?")])
    with torch.no_grad():
        ref = load_model(standin_6l)(ids)
        half = load_model(standin_6l, dtype="float16")(ids).float()
    assert (half - ref).abs().max().item() < 0.1
    assert torch.equal(half[0, -1].argmax(), ref[0, -1].argmax())
