"""The CPU peer's model with PyTorch's dynamic int8 quantization of its linear layers.

`torch.ao.quantization.quantize_dynamic(..., {nn.Linear}, dtype=torch.qint8)`, PyTorch's own
recipe for CPU inference of transformer linears: every projection of the trunk (q, k, v, o, gate,
up, down) and every output head gets int8 weights (per-tensor symmetric scale, the default
dynamic qconfig) and runs as `quantized::linear_dynamic`, which quantizes its input rows to uint8
on the fly (one scale per call) and accumulates in int32. Embedding tables, norms and attention
(QK^T, softmax, AV against the KV cache) stay f32, as in the f32 peer: `QuantizedValle` is
`valle_torch.Valle` with `linear` swapped, nothing else.

The quantized kernels come from an engine chosen once, before the weights are packed: fbgemm
(x86, AVX2/AVX-512) where the build has it, else qnnpack. Debian's torch 1.13 has no fbgemm (its
engines: qnnpack, onednn); `--engine` picks another.
"""

import torch
import torch.nn as nn

from valle_torch import Config, Valle, random_weight_items

PREFERRED = ("fbgemm", "qnnpack")  # the engine `auto` takes: the first the build has


def choose_engine(asked: str = "auto") -> str:
    """Sets torch's quantized engine (`auto`: the first of PREFERRED the build has) and returns it.

    Raises RuntimeError, naming the engines there are, when the build has none that fits.
    """
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    wanted = PREFERRED if asked == "auto" else (asked,)
    engine = next((e for e in wanted if e in engines), None)
    if engine is None:
        raise RuntimeError(f"this torch build has no quantized engine {' or '.join(wanted)} (it has: {', '.join(engines) or 'none'})")
    torch.backends.quantized.engine = engine
    return engine


def quantize_linear(weight: torch.Tensor, bias=None) -> nn.Module:
    """One dynamically quantized int8 linear layer (`quantize_dynamic` on an `nn.Linear`)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    quantized = torch.ao.quantization.quantize_dynamic(nn.Sequential(layer), {nn.Linear}, dtype=torch.qint8)[0]
    if torch.backends.quantized.engine == "qnnpack":
        # qnnpack ignores the reduced (7-bit) input range that version-4 modules ask for, and says so
        # on every call; version 3 calls the same op without asking: the same arithmetic, no warning.
        quantized.version = 3
    return quantized


def is_linear(name: str) -> bool:
    """Whether a layer name (without `.weight`/`.bias`) is a linear layer: a projection or a head."""
    return name.startswith("classifiers.proj.") or "_proj" in name.rsplit(".", 1)[-1]


class QuantizedValle(Valle):
    """`Valle` whose linear layers are int8 modules (`layers`: name -> module); the rest f32 `weights`."""

    def __init__(self, weights: dict, layers: dict, cfg: Config):
        super().__init__(weights, cfg)
        self.layers = layers

    def linear(self, x, name):
        if x.dim() == 1:  # quantized::linear_dynamic takes rows only (the AR head gets one vector)
            return self.layers[name](x[None])[0]
        return self.layers[name](x)


def quantize_weights(weights: dict, cfg: Config) -> QuantizedValle:
    """The model of an f32 weight map with every linear layer quantized (the map is left as it was)."""
    modules = {k.rsplit(".", 1)[0] for k in weights if is_linear(k.rsplit(".", 1)[0])}
    layers = {m: quantize_linear(weights[m + ".weight"], weights.get(m + ".bias")) for m in sorted(modules)}
    rest = {k: v for k, v in weights.items() if k.rsplit(".", 1)[0] not in modules}
    return QuantizedValle(rest, layers, cfg)


def random_quantized(cfg: Config, seed: int = 0) -> QuantizedValle:
    """The int8 model of `valle_torch.random_weights(cfg, seed)` (the same f32 values, quantized),
    each linear layer quantized as soon as its weights exist, so the f32 copy of the whole trunk
    (916 MB at full size) never is: the peak RSS is the int8 model's, not its construction's."""
    weights, layers, pending = {}, {}, {}
    for name, tensor in random_weight_items(cfg, seed):
        module, _, part = name.rpartition(".")
        if not is_linear(module):
            weights[name] = tensor
            continue
        parts = pending.setdefault(module, {})
        parts[part] = tensor
        # The heads have a bias (after their weight in `weight_shapes`), the projections none.
        if "weight" in parts and ("bias" in parts or not module.startswith("classifiers.")):
            parts = pending.pop(module)
            layers[module] = quantize_linear(parts["weight"], parts.get("bias"))
    assert not pending, f"linear layers without all their tensors: {sorted(pending)}"
    return QuantizedValle(weights, layers, cfg)
