"""Shared setup for ruvon's pytest suites: the offline data and Hub cache every test uses."""
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RUVON_DATA", ROOT.parent / "shared" / "data")).resolve()
# The Hub cache holds the GPT-2 family's configs and tokenizers, no weights; offline, it answers like the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_CACHE", str(DATA / "hf-hub"))
if not torch.cuda.is_available(): os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton kernels run on CPU tensors in CI


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir(): pytest.fail(f"offline data not found at {DATA} (set RUVON_DATA)")
    return DATA


@pytest.fixture(scope="session")
def standin_6l(data_dir) -> Path: return data_dir / "checkpoints" / "ruvon-standin-6l"


@pytest.fixture(scope="session")
def standin_2l(data_dir) -> Path: return data_dir / "checkpoints" / "ruvon-standin-2l"
