"""The CPU peer's self-check: its model against the golden data of the original implementation.

`tests/fixtures/valle-tiny` holds a tiny model in the released layout and what upstream vall_e
computes with it (its README: logits reproduced by the original HEAD code). The check runs the
peer's own code paths on it, in f32:

* input assembly: embeddings and positions of AR, NAR and NAR-len sequences (`layout`);
* the no-cache forward (upstream's AR loop): AR last-position logits for 3 response prefixes,
  NAR levels 1..7 and NAR-len conditional and unconditional logits, within 1e-4 (the project's
  logit tolerance), and the argmax of every NAR row exactly;
* the KV-cache path: greedy AR with the cache reproduces upstream's greedy tokens exactly (stop
  included) and its stop logits, and each step's logits equal a full no-cache recompute within 1e-5.
"""

import json
import os

import torch

from valle_torch import STOP, KVCache, Valle, config_of, read_safetensors

LOGITS = 1e-4  # logits against the golden files (tools/golden/valle.ts: issue 3)
CACHE = 1e-5  # KV cache against the no-cache recompute: same model, same f32 arithmetic
EMBEDDING = 1e-6  # sums of a few f16-exact rows


def compare(name: str, found, expected, tolerance: float) -> dict:
    """One comparison: shapes must agree, values within `tolerance`."""
    found, expected = torch.as_tensor(found), torch.as_tensor(expected)
    same_shape = tuple(found.shape) == tuple(expected.shape)
    error = (found.double() - expected.double()).abs().max().item() if same_shape and found.numel() else 0.0
    error = error if same_shape else float("inf")
    return {"name": name, "max_error": error, "tolerance": tolerance, "passed": same_shape and error <= tolerance}


def golden_model(folder: str) -> tuple:
    """The f32 weights of a golden folder's `model.sft` and their shape."""
    weights, meta = read_safetensors(os.path.join(folder, "model.sft"))
    size = json.loads(meta["config"])["size"]
    heads = size["heads"] if isinstance(size, dict) else {"full": 16, "half": 8, "quarter": 4}[size]
    return weights, config_of(weights, heads)


def golden_data(folder: str) -> tuple:
    """The inputs, layout, ar, nar and nar_len tensors of a golden folder."""
    return tuple(read_safetensors(os.path.join(folder, f"{name}.safetensors"))[0] for name in ("inputs", "layout", "ar", "nar", "nar_len"))


def run_check(folder: str) -> list:
    """Every comparison as {name, max_error, tolerance, passed}."""
    model = Valle(*golden_model(folder))
    inputs, layout, ar, nar, nar_len = golden_data(folder)
    phn, lang, prom = inputs["phn"].long(), int(inputs["lang"][0]), inputs["prom"].long()
    target = inputs["resp_target"].long()

    def seq(mode, resp, level=0, null=False):
        return model.sequence(phn, lang, prom, resp, mode, level, null)

    results = []
    cases = {
        "ar_prefix5": seq("ar", ar["prefix5.resp"].long()),
        "nar_L1": seq("nar", target, 1),
        "nar_L3_head": seq("nar", target, 3),
        "nar_len_mixed": seq("nar_len", layout["nar_len_mixed.resp"].long()),
        "nar_len_mixed_null": seq("nar_len", layout["nar_len_mixed_null.resp"].long(), null=True),
    }
    for name, (x, pos) in cases.items():
        results.append(compare(f"layout {name} embeddings", x, layout[f"{name}.x"], EMBEDDING))
        results.append(compare(f"layout {name} positions", pos, layout[f"{name}.pos"], 0))

    with torch.inference_mode():
        for p in (0, 1, 5):
            x, pos = seq("ar", ar[f"prefix{p}.resp"].long())
            logits = model.head(model.trunk(x, pos, causal=True), 0)[-1]
            results.append(compare(f"AR prefix {p} logits (no cache)", logits, ar[f"prefix{p}.logits"], LOGITS))

        frames = target.shape[0]
        for level in range(1, model.cfg.n_levels):
            x, pos = seq("nar", target, level)
            logits = model.head(model.trunk(x, pos, causal=False)[-frames:], level)
            rows = logits[nar["rows"].long()]
            results.append(compare(f"NAR L{level} logits", rows, nar[f"head.L{level}.logits_rows"], LOGITS))
            results.append(compare(f"NAR L{level} argmax", logits.argmax(-1), nar[f"head.L{level}.argmax"], 0))

        for step in (0, 2):
            resp = nar_len[f"step{step}.resp_in"].long()
            for kind, null in (("cond", False), ("uncond", True)):
                x, pos = seq("nar_len", resp, null=null)
                logits = model.head(model.trunk(x, pos, causal=False)[-frames:], model.cfg.n_levels)
                rows = logits[nar_len["rows"].long()]
                results.append(compare(f"NAR-len step {step} {kind} logits", rows, nar_len[f"step{step}.{kind}_rows"], LOGITS))

        results += greedy_with_cache(model, seq, ar)
    return results


def greedy_with_cache(model: Valle, seq, ar: dict) -> list:
    """Greedy AR through the KV cache, each step checked against a no-cache recompute."""
    expected = ar["greedy.sampled"].long()
    x, pos = seq("ar", torch.zeros(0, dtype=torch.long))
    cache = KVCache(model.cfg, x.shape[0] + expected.shape[0])
    logits = model.head(model.trunk(x, pos, causal=True, cache=cache)[-1], 0)
    tokens, stop_logits, cache_error = [], [], 0.0
    while True:
        x, pos = seq("ar", torch.tensor(tokens, dtype=torch.long))
        full = model.head(model.trunk(x, pos, causal=True)[-1], 0)
        cache_error = max(cache_error, (logits - full).abs().max().item())
        tokens.append(int(logits.argmax()))
        stop_logits.append(logits[STOP].item())
        if tokens[-1] == STOP or len(tokens) == expected.shape[0]:
            break
        step_pos = torch.tensor([len(tokens) - 1])
        logits = model.head(model.trunk(model.ar_token(tokens[-1]), step_pos, causal=True, cache=cache)[-1], 0)
    return [
        compare("AR greedy tokens with the KV cache", tokens, expected, 0),
        compare("AR greedy stop logits with the KV cache", stop_logits, ar["greedy.stop_logit"], LOGITS),
        {"name": "AR KV cache vs no-cache logits", "max_error": cache_error, "tolerance": CACHE, "passed": cache_error <= CACHE},
    ]
