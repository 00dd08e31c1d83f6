__version__ = "0.1.0"

import os as _os
import torch as _torch

# Without a CUDA GPU, Triton can only interpret kernels (Part 12), and it must be told before it is first
# imported, which PyTorch may do indirectly; so say it before anything else loads.
if not _torch.cuda.is_available(): _os.environ.setdefault("TRITON_INTERPRET", "1")

from .loading import load_model, load_tokenizer
from .sampling import SamplingParams
from .engine import LLM
