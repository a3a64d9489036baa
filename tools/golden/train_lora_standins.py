"""Stand-ins that let upstream's VALL-E training code import and run with Debian's torch 1.13 on the CPU.

Nothing here is upstream code. These are small replacements for packages that cannot be installed here
(no PyPI): HuggingFace `transformers` plumbing (a Llama config with HF's defaults, the default RoPE init,
an output dict, GELU), `torchmetrics`' top-k multiclass accuracy, a `safetensors` reader/writer, the
torch >= 2 names the model touches (`torch.nn.attention.SDPBackend`, `F.scaled_dot_product_attention`,
`torch.optim.Adafactor`), and permissive dummies for the dataset/audio/logging packages that are imported
but never used on the training-step path (pandas, torchaudio, phonemizer, auraloss, ...).

`install()` must run before anything from `vall_e` is imported.
"""

import enum
import importlib.abc
import importlib.machinery
import json
import math
import struct
import sys
import types
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------------
# permissive dummies


class _DummyMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _dummy_class(name)


def _dummy_class(name):
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _dummy_class(name)()

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _dummy_class(attr)()

    return _DummyMeta(name, (), {"__init__": __init__, "__call__": __call__, "__getattr__": __getattr__})


class _PermissiveModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _dummy_class(name)
        setattr(self, name, value)
        return value


class _PermissiveFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots):
        self.roots = set(roots)

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _PermissiveModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


PERMISSIVE = [
    "psutil", "coloredlogs", "torchaudio", "einops", "auraloss", "phonemizer", "humanize",
    "requests", "pykakasi", "langdetect", "nltk", "inflect", "encodec", "vocos", "dac", "audiotools",
    "nemo", "soundfile", "sageattention", "native_sparse_attention_pytorch", "prodigyopt", "schedulefree",
    "bitsandbytes", "dadaptation", "h5py", "tqdm", "openai_whisper", "whisperx", "librosa",
]


def _module(name, **attrs):
    module = types.ModuleType(name)
    module.__path__ = []
    for k, v in attrs.items():
        setattr(module, k, v)
    sys.modules[name] = module
    return module


# --------------------------------------------------------------------------------------------------
# torch >= 2 names on torch 1.13


class SDPBackend(enum.Enum):
    ERROR = -1
    MATH = 0
    FLASH_ATTENTION = 1
    EFFICIENT_ATTENTION = 2
    CUDNN_ATTENTION = 3


@contextmanager
def sdpa_kernel(*args, **kwargs):
    yield


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Textbook attention: softmax(Q K^T / sqrt(d) + mask) V, in the inputs' dtype."""
    if dropout_p != 0.0:
        raise RuntimeError("the stand-in attention has no dropout; run with model.dropout 0")
    d = query.shape[-1]
    scores = torch.matmul(query, key.transpose(-2, -1)) * (scale if scale is not None else 1.0 / math.sqrt(d))
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        causal = torch.ones(L, S, dtype=torch.bool, device=query.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, value)


class Adafactor(torch.optim.Optimizer):
    """Placeholder so `utils/ml.py` imports (torch 1.13 has no Adafactor); never constructed here."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("Adafactor stand-in is a placeholder")


# --------------------------------------------------------------------------------------------------
# transformers


class LlamaConfig:
    """HF LlamaConfig's defaults for the fields upstream's llama.py reads."""

    def __init__(self, vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=None, hidden_act="silu", max_position_embeddings=2048,
                 initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True, pad_token_id=None, bos_token_id=1,
                 eos_token_id=2, pretraining_tp=1, tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None,
                 attention_bias=False, attention_dropout=0.0, mlp_bias=False, head_dim=None, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads if num_key_value_heads is not None else num_attention_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.pad_token_id = pad_token_id
        self.rope_theta = rope_theta
        self.rope_scaling = rope_scaling
        self.attention_bias = attention_bias
        self.attention_dropout = attention_dropout
        self.mlp_bias = mlp_bias
        self.head_dim = head_dim if head_dim is not None else hidden_size // num_attention_heads
        self.output_attentions = kwargs.pop("output_attentions", False)
        self.output_hidden_states = kwargs.pop("output_hidden_states", False)
        self.use_return_dict = kwargs.pop("return_dict", True)
        self._attn_implementation = "sdpa"
        for k, v in kwargs.items():
            setattr(self, k, v)


class PreTrainedModel(nn.Module):
    def __init__(self, config, *args, **kwargs):
        super().__init__()
        self.config = config

    def post_init(self):
        pass


def _rope_default(config, device=None, seq_len=None, **kwargs):
    # HF's _compute_default_rope_parameters
    base = config.rope_theta
    dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float().to(device) / dim))
    return inv_freq, 1.0


class BaseModelOutputWithPast(dict):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)


class GELUActivation(nn.Module):
    def forward(self, x):
        return F.gelu(x)


class SiLUActivation(nn.Module):
    def forward(self, x):
        return F.silu(x)


class _ACT2FN(dict):
    def __getitem__(self, key):
        return {"gelu": GELUActivation, "silu": SiLUActivation}[key]()


class Cache:
    pass


class DynamicCache(Cache):
    pass


class StaticCache(Cache):
    pass


class AttentionMaskConverter:
    @staticmethod
    def _unmask_unattended(mask, min_dtype):
        return mask


class PreTrainedTokenizerFast:
    def __init__(self, *args, **kwargs):
        pass


class Conv1D(nn.Module):
    pass


# --------------------------------------------------------------------------------------------------
# torchmetrics


class MulticlassAccuracy(nn.Module):
    """torchmetrics MulticlassAccuracy(average="micro", multidim_average="global") on [N, C] logits:
    the fraction of non-ignored rows whose target is among the top_k logits."""

    def __init__(self, num_classes, top_k=1, average="micro", multidim_average="global", ignore_index=None, **kw):
        super().__init__()
        assert average == "micro" and multidim_average == "global"
        self.num_classes = num_classes
        self.top_k = top_k
        self.ignore_index = ignore_index

    def forward(self, preds, target):
        keep = target != self.ignore_index if self.ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
        preds, target = preds[keep], target[keep]
        top = preds.topk(self.top_k, dim=-1).indices
        hit = (top == target[:, None]).any(dim=-1)
        return hit.float().sum() / max(1, hit.numel())


class MulticlassPrecision(MulticlassAccuracy):
    pass


class BinaryAccuracy(nn.Module):
    pass


# --------------------------------------------------------------------------------------------------
# safetensors

_ST_DTYPES = {
    "F64": (np.float64, torch.float64), "F32": (np.float32, torch.float32), "F16": (np.float16, torch.float16),
    "I64": (np.int64, torch.int64), "I32": (np.int32, torch.int32), "I16": (np.int16, torch.int16),
    "I8": (np.int8, torch.int8), "U8": (np.uint8, torch.uint8), "BOOL": (np.bool_, torch.bool),
}
_TORCH_TO_ST = {v[1]: k for k, v in _ST_DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    base = 8 + n
    for k, v in header.items():
        npd, _ = _ST_DTYPES[v["dtype"]]
        s, e = v["data_offsets"]
        arr = np.frombuffer(data[base + s:base + e], dtype=npd).reshape(v["shape"]).copy()
        tensors[k] = torch.from_numpy(arr)
    return tensors, metadata


def write_safetensors(tensors, path, metadata=None):
    """Like the safetensors package: keys sorted, 8-byte aligned header padded with spaces."""
    header = {}
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous().cpu()
        raw = t.numpy().tobytes() if t.dtype != torch.bool else t.to(torch.uint8).numpy().tobytes()
        header[k] = {"dtype": _TORCH_TO_ST[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class _SafeOpen:
    def __init__(self, path, framework="pt", device="cpu"):
        self._tensors, self._metadata = read_safetensors(path)
        self._device = device

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def keys(self):
        return list(self._tensors.keys())

    def get_tensor(self, k):
        return self._tensors[k].to(self._device)

    def metadata(self):
        return dict(self._metadata)


def _save_file(tensors, filename, metadata=None):
    write_safetensors(tensors, str(filename), metadata)


# --------------------------------------------------------------------------------------------------
# pandas (upstream's flatten_dict only uses json_normalize(dict).to_dict(orient="records"))


class _Records:
    def __init__(self, records):
        self.records = records

    def to_dict(self, orient="records"):
        assert orient == "records"
        return self.records


def json_normalize(d, sep="."):
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}{sep}{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    walk("", d)
    return _Records([flat])


# --------------------------------------------------------------------------------------------------


def install():
    sys.meta_path.insert(0, _PermissiveFinder(PERMISSIVE))

    attention = _module("torch.nn.attention", SDPBackend=SDPBackend, sdpa_kernel=sdpa_kernel)
    torch.nn.attention = attention
    F.scaled_dot_product_attention = scaled_dot_product_attention
    torch.optim.Adafactor = Adafactor
    for name, value in (("flash_sdp_enabled", False), ("mem_efficient_sdp_enabled", False),
                        ("math_sdp_enabled", True), ("cudnn_sdp_enabled", False)):
        if not hasattr(torch.backends.cuda, name):
            setattr(torch.backends.cuda, name, (lambda v: lambda: v)(value))

    _module("transformers", PreTrainedTokenizerFast=PreTrainedTokenizerFast, LlamaConfig=LlamaConfig)
    _module("transformers.models")
    _module("transformers.models.llama")
    _module("transformers.models.llama.configuration_llama", LlamaConfig=LlamaConfig)
    _module("transformers.models.llama.modeling_llama", LlamaPreTrainedModel=PreTrainedModel)
    _module("transformers.modeling_utils", PreTrainedModel=PreTrainedModel)
    _module("transformers.modeling_attn_mask_utils", AttentionMaskConverter=AttentionMaskConverter)
    _module("transformers.modeling_rope_utils", ROPE_INIT_FUNCTIONS={"default": _rope_default})
    _module("transformers.modeling_outputs", BaseModelOutputWithPast=BaseModelOutputWithPast)
    _module("transformers.cache_utils", Cache=Cache, DynamicCache=DynamicCache, StaticCache=StaticCache)
    _module("transformers.activations", ACT2FN=_ACT2FN())
    _module("transformers.pytorch_utils", Conv1D=Conv1D)
    _module("transformers.utils", is_flash_attn_2_available=lambda: False)

    _module("pandas", json_normalize=json_normalize)
    _module("torchmetrics")
    _module("torchmetrics.classification", MulticlassAccuracy=MulticlassAccuracy,
            MulticlassPrecision=MulticlassPrecision, BinaryAccuracy=BinaryAccuracy)

    _module("safetensors", safe_open=_SafeOpen)
    _module("safetensors.torch", save_file=_save_file)
