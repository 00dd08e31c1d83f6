__version__ = "0.1.0"

from .loading import load_model, load_tokenizer
from .sampling import SamplingParams
from .engine import LLM
