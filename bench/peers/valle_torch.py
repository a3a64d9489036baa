"""The VALL-E v1 model (`ar+nar-len-llama-8` layout) in plain PyTorch, for the CPU peer.

Written from the spec (`valle-spec.md` §2-4 in the shared docs), not from upstream code: the
weight keys of the released `.sft`, the input sequence `phn S lang S rvq S prom S resp` with
segment-relative positions and the HEAD embedding-sum rule, and the trunk: 12 pre-norm LLaMA blocks
(RMSNorm eps 1e-6, RoPE theta 10000 rotate-half, softmax attention, gated MLP with the exact erf
GELU), a final RMSNorm and one head per mode. Attention takes an optional KV cache; the causal mask
is for AR, the bidirectional one for NAR and NAR-len (`noncausal_masks`).

Transformers is not in Debian and PyPI is out of reach here, so the trunk is written out; the
peer's `--check` compares it with the golden logits of the original implementation.
"""

import json
import math
import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

STOP = 1024  # AR stop token and NAR-len mask token (= audio codes per level)
HEAD_ROWS = [1025] + [1024] * 8 + [256, 11]  # classifiers.proj.0..10: AR, NAR 1..7, NAR-len, STT, len


@dataclass(frozen=True)
class Config:
    """Model shape; the defaults are the released full size."""

    d_model: int = 1024
    heads: int = 16
    layers: int = 12
    ffn: int = 4096
    n_phn: int = 256
    n_audio: int = 1024
    n_levels: int = 8
    n_langs: int = 6
    n_tasks: int = 9
    eps: float = 1e-6
    theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


def weight_shapes(cfg: Config) -> dict:
    """Every tensor of the released layout (spec §2.2) with its shape."""
    d, a = cfg.d_model, cfg.n_audio
    shapes = {
        "text_emb.weight": (cfg.n_phn, d),
        "langs_emb.weight": (cfg.n_langs, d),
        "tasks_emb.weight": (cfg.n_tasks, d),
        "rvq_l_emb.weight": (cfg.n_levels, d),
        "len_emb.weight": (11, d),
        "sep": (d,),
        "model.norm.weight": (d,),
    }
    for k in range(cfg.n_levels):
        shapes[f"proms_emb.embeddings.{k}.weight"] = (a, d)
    for k in range(cfg.n_levels + 1):
        shapes[f"resps_emb.embeddings.{k}.weight"] = (a + (k in (0, cfg.n_levels)), d)
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (d,)
        shapes[p + "post_attention_layernorm.weight"] = (d,)
        for name in "qkvo":
            shapes[p + f"self_attn.{name}_proj.weight"] = (d, d)
        shapes[p + "mlp.gate_proj.weight"] = (cfg.ffn, d)
        shapes[p + "mlp.up_proj.weight"] = (cfg.ffn, d)
        shapes[p + "mlp.down_proj.weight"] = (d, cfg.ffn)
    for i, rows in enumerate(HEAD_ROWS):
        shapes[f"classifiers.proj.{i}.weight"] = (rows, d)
        shapes[f"classifiers.proj.{i}.bias"] = (rows,)
    return shapes


def random_weight_items(cfg: Config, seed: int = 0):
    """(name, tensor) of random f32 weights in the released layout (normal, std 0.02; norms 1), one
    at a time in `weight_shapes` order (the int8 peer quantizes each linear layer as it comes)."""
    gen = torch.Generator().manual_seed(seed)
    for name, shape in weight_shapes(cfg).items():
        t = torch.empty(shape, dtype=torch.float32)
        if "norm" in name:
            t.fill_(1.0)
        else:
            t.normal_(0.0, 0.02, generator=gen)
        yield name, t


def random_weights(cfg: Config, seed: int = 0) -> dict:
    """Random f32 weights in the released layout (normal, std 0.02; norms 1), filled in place."""
    return dict(random_weight_items(cfg, seed))


_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "U8": np.uint8}


def read_safetensors(path: str) -> tuple:
    """Tensors (floats as f32) and the `__metadata__` map of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + size])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, expected one of {list(_DTYPES)}")
        start = info["data_offsets"][0]
        count = math.prod(info["shape"])
        array = np.frombuffer(data, _DTYPES[info["dtype"]], count, 8 + size + start).reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.astype(np.float32) if array.dtype == np.float16 else array.copy())
    return tensors, meta


def config_of(weights: dict, heads: int) -> Config:
    """The shape of a weight map (spec §2.3; the head count is not in the shapes)."""
    n_phn, d = weights["text_emb.weight"].shape
    return Config(
        d_model=d,
        heads=heads,
        layers=1 + max(int(k.split(".")[2]) for k in weights if k.startswith("model.layers.")),
        ffn=weights["model.layers.0.mlp.gate_proj.weight"].shape[0],
        n_phn=n_phn,
        n_audio=weights["proms_emb.embeddings.0.weight"].shape[0],
        n_levels=sum(1 for k in weights if k.startswith("proms_emb.embeddings.")),
        n_langs=weights["langs_emb.weight"].shape[0],
        n_tasks=weights["tasks_emb.weight"].shape[0],
    )


class KVCache:
    """Keys and values of every layer, preallocated for `capacity` tokens ([heads, capacity, head_dim])."""

    def __init__(self, cfg: Config, capacity: int):
        shape = (cfg.heads, capacity, cfg.head_dim)
        self.k = [torch.empty(shape) for _ in range(cfg.layers)]
        self.v = [torch.empty(shape) for _ in range(cfg.layers)]
        self.length = 0


class Valle:
    """The model on f32 weights: input assembly, trunk, heads."""

    def __init__(self, weights: dict, cfg: Config):
        self.w = weights
        self.cfg = cfg
        self.inv_freq = cfg.theta ** (-torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim)

    def sequence(self, phn, lang, prom, resp, mode, level=0, null=False):
        """Input embeddings [N, d] and positions [N] of a TTS sequence (spec §3.3, §4.1-4.2).

        `phn` [n] phoneme ids, `lang` an id, `prom` [P, levels] codes, `resp` [R] level-0 codes
        (`ar`, `nar_len`; 1024 = mask) or [R, levels] codes with levels 0..level-1 given (`nar`).
        `null` is the CFG unconditional input: phonemes [1, 2] and no prompt segment.
        """
        w = self.w
        emb = lambda table, ids: F.embedding(ids, w[table])  # noqa: E731
        if null:
            phn = torch.tensor([1, 2])
        levels = range(level) if mode == "nar" else range(1)
        segments = [
            emb("text_emb.weight", phn),
            emb("langs_emb.weight", torch.tensor([lang])),
            emb("rvq_l_emb.weight", torch.tensor([level])),
        ]
        if not null:
            segments.append(sum(emb(f"proms_emb.embeddings.{k}.weight", prom[:, k]) for k in levels))
        if mode == "ar":
            segments.append(emb("resps_emb.embeddings.0.weight", resp))
        elif mode == "nar_len":
            segments.append(emb(f"resps_emb.embeddings.{self.cfg.n_levels}.weight", resp))
        else:
            segments.append(sum(emb(f"resps_emb.embeddings.{k + 1}.weight", resp[:, k]) for k in levels))
        sep = w["sep"][None]
        xs, pos = [], []
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            xs += [seg] if last else [seg, sep]
            pos.append(torch.arange(seg.shape[0] + (not last)))
        return torch.cat(xs), torch.cat(pos)

    def ar_token(self, token: int):
        """The input embedding [1, d] of one AR response token (the KV-cache step's input)."""
        return self.w["resps_emb.embeddings.0.weight"][token : token + 1]

    def trunk(self, x, pos, causal, cache=None):
        """The final-normed hidden states [N, d] of `x` [N, d] at positions `pos`.

        With `cache`, `x` follows the `cache.length` tokens already there, and its keys and
        values are appended.
        """
        cfg, w = self.cfg, self.w
        n, past = x.shape[0], 0 if cache is None else cache.length
        angles = pos.to(torch.float32)[:, None] * self.inv_freq[None]
        angles = torch.cat([angles, angles], dim=-1)
        cos, sin = angles.cos(), angles.sin()
        mask = None
        if causal and n > 1:
            mask = torch.full((n, past + n), float("-inf")).triu(past + 1)
        for i in range(cfg.layers):
            p = f"model.layers.{i}."
            h = rms_norm(x, w[p + "input_layernorm.weight"], cfg.eps)
            q, k, v = (
                self.linear(h, p + f"self_attn.{name}_proj").view(n, cfg.heads, cfg.head_dim).transpose(0, 1) for name in "qkv"
            )
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            if cache is not None:
                cache.k[i][:, past : past + n] = k
                cache.v[i][:, past : past + n] = v
                k, v = cache.k[i][:, : past + n], cache.v[i][:, : past + n]
            scores = torch.matmul(q, k.transpose(1, 2)) * (1.0 / math.sqrt(cfg.head_dim))
            if mask is not None:
                scores += mask
            o = torch.matmul(scores.softmax(dim=-1), v).transpose(0, 1).reshape(n, cfg.d_model)
            x = x + self.linear(o, p + "self_attn.o_proj")
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg.eps)
            gated = F.gelu(self.linear(h, p + "mlp.gate_proj")) * self.linear(h, p + "mlp.up_proj")
            x = x + self.linear(gated, p + "mlp.down_proj")
        if cache is not None:
            cache.length = past + n
        return rms_norm(x, w["model.norm.weight"], cfg.eps)

    def head(self, h, index):
        """Logits of hidden rows `h` through `classifiers.proj.{index}`."""
        return self.linear(h, f"classifiers.proj.{index}")

    def linear(self, x, name):
        """`x` through the linear layer `name`: its `.weight`, and its `.bias` where it has one."""
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rope(x, cos, sin):
    """Rotate-half RoPE of `x` [heads, N, head_dim]: pairs (j, j + head_dim/2)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin
