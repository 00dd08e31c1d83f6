"""The pure-Python BPE must agree id for id with Hugging Face on every corpus we have."""
import pytest
from transformers import AutoTokenizer

from ruvon.loading import load_tokenizer
from ruvon.tokenizer import tokenizer_from_files


@pytest.fixture(scope="module")
def tokenizers(data_dir):
    python = tokenizer_from_files(data_dir / "gpt2-tokenizer", backend="python")
    fast = load_tokenizer("gpt2", backend="hf")  # built from the Hub cache's vocab.json and merges.txt
    reference = AutoTokenizer.from_pretrained("gpt2")  # transformers' own GPT-2 tokenizer, configured by HF
    return python, fast, reference


def corpus_files():
    from conftest import DATA
    return sorted((DATA / "corpus").glob("*.txt"))


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_parity(tokenizers, path):
    python, fast, reference = tokenizers
    text = path.read_text(encoding="utf-8")
    ids = python.encode(text)
    assert ids == reference(text)["input_ids"], f"python BPE differs from transformers on {path.name}"
    assert ids == fast.encode(text), f"ruvon's HF backend differs on {path.name}"
    assert python.decode(ids) == text


def test_corpora_present():
    assert len(corpus_files()) >= 8


def test_special_token_and_bytes(tokenizers):
    python, fast, reference = tokenizers
    text = "a<|endoftext|>b \x00\x7f\u200b 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ﷽ 👩‍👩‍👧"
    assert python.encode(text) == fast.encode(text) == reference(text)["input_ids"]
    assert python.encode(text)[1] == 50256
    assert python.decode(python.encode(text)) == text
