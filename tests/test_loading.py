"""The loader's contract: what loads, in which dtype and layout, and the errors for what doesn't."""
import json
import shutil

import pytest
import torch

from ruvon.loading import ModelNotFoundError, WeightsNotFoundError, load_config, load_model, load_tokenizer
from ruvon.model import num_parameters

FAMILY = ["distilgpt2", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "openai-community/gpt2-xl", "distilbert/distilgpt2"]


@pytest.mark.parametrize("model_id", FAMILY)
def test_family_configs_from_hub_cache(model_id):
    cfg = load_config(model_id)
    assert cfg.n_embd % cfg.n_head == 0 and cfg.n_positions == 1024 and cfg.vocab_size == 50257
    assert load_tokenizer(model_id).encode("Hello world") == [15496, 995]


def test_family_parameter_counts():
    # Published sizes: 124M, 355M, 774M, 1.5B (distilgpt2: 82M).
    counts = {m: num_parameters(load_config(m)) for m in FAMILY[:5]}
    assert counts == {"distilgpt2": 81_912_576, "gpt2": 124_439_808, "gpt2-medium": 354_823_168,
                      "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}


def test_dummy_weights_are_seeded_and_shaped():
    a = load_model("distilgpt2", load_format="dummy", dtype="bfloat16", device="cpu")
    b = load_model("distilgpt2", load_format="dummy", dtype="bfloat16", device="cpu")
    assert a.wte.weight.dtype == torch.bfloat16 and a.lm_head.weight is a.wte.weight
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with torch.no_grad(): logits = a(torch.tensor([[15496, 995]]))
    assert logits.shape == (1, 2, 50257) and torch.isfinite(logits).all()


def test_dtypes_and_devices(standin_2l):
    assert load_model(standin_2l).wte.weight.dtype == torch.float32  # auto on CPU
    assert load_model(standin_2l, dtype="fp16").wte.weight.dtype == torch.float16
    assert load_model(standin_2l, dtype=torch.bfloat16).wte.weight.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"): load_model(standin_2l, dtype="int3")
    with pytest.raises(ValueError, match="unknown device"): load_model(standin_2l, device="tpu:7")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"): load_model(standin_2l, device="cuda")


def test_unknown_models():
    with pytest.raises(ModelNotFoundError, match="not found"): load_model("no-such-org/no-such-model")
    with pytest.raises(ModelNotFoundError, match="does not exist"): load_model("./missing/dir")
    with pytest.raises(ModelNotFoundError): load_tokenizer("no-such-model-anywhere")


def test_weights_missing_offline_says_what_to_do():
    with pytest.raises(WeightsNotFoundError, match="dummy"): load_model("gpt2")


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_shard(tmp_path, standin_6l):
    d = copy_checkpoint(standin_6l, tmp_path / "m")
    (d / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(WeightsNotFoundError, match="model-00002-of-00003"): load_model(d)


def test_incomplete_checkpoint(tmp_path, standin_6l):
    d = copy_checkpoint(standin_6l, tmp_path / "m")
    index = json.loads((d / "model.safetensors.index.json").read_text())
    # an index that references fewer shards than the model needs: tensors go missing
    shard = "model-00002-of-00003.safetensors"
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v != shard}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="lacks"): load_model(d)


def test_wrong_shapes(tmp_path, standin_2l):
    d = copy_checkpoint(standin_2l, tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["n_embd"], cfg["n_head"] = 256, 4
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="shape"): load_model(d)


def test_no_weights_in_local_dir(tmp_path, standin_2l):
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(standin_2l / "config.json", d)
    with pytest.raises(WeightsNotFoundError, match="load_format='dummy'"): load_model(d)
    assert load_model(d, load_format="dummy").config.n_layer == 2
