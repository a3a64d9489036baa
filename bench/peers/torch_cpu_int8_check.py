"""The int8 peer's self-check: the dynamically quantized model computes the same model as the f32 one.

Int8 weights and inputs change every logit a little, so the comparisons are relative: the
relative error ||int8 - reference|| / ||reference|| of each set of logits, within `RELATIVE`
(per-tensor int8 gives 0.02 to 0.035 on the tiny model and 0.08 to 0.12 at full size, where twelve
layers of 1024-wide rows add their rounding; logits of a wrong model, level or head are unrelated
to the reference, about 1.4). Beside it, for reading, not gated: the mean KL(reference || int8) of
the rows' distributions (1e-3 to 3e-3 at full size, between the library's q8 and q4) and the share
of rows whose argmax agrees (near-ties flip: the random weights' logits are nearly flat).

* the golden `valle-tiny` (d 32) quantized: AR last-position logits for 3 response prefixes (no
  cache), NAR levels 1..7 and NAR-len conditional and unconditional rows, against the logits of
  the original implementation; AR through the int8 KV cache, teacher-forced on upstream's greedy
  tokens, against the f32 peer's cached steps and against an int8 no-cache recompute;
* the full-size model (d 1024, 12 layers: rows long enough for quantization to matter), random
  f32 weights and the same weights quantized, on one 52-token utterance: AR (every response row,
  causal), NAR levels 1 and 7, NAR-len with every other frame masked.
"""

import torch

from torch_cpu_check import golden_data, golden_model
from valle_torch import STOP, Config, KVCache, Valle, random_weights
from valle_torch_int8 import quantize_weights

RELATIVE = 0.25  # relative logit error: int8 gives at most 0.12 at full size, a wrong model about 1.4


def relative(name: str, found, expected, tolerance: float = RELATIVE) -> dict:
    """Relative error of logits `found` against `expected` ([rows, codes] or [codes]), KL, top-1."""
    found, expected = torch.as_tensor(found).double(), torch.as_tensor(expected).double()
    if found.shape != expected.shape:
        return {"name": name, "relative_error": float("inf"), "tolerance": tolerance, "passed": False}
    found, expected = found.reshape(-1, found.shape[-1]), expected.reshape(-1, expected.shape[-1])
    error = ((found - expected).norm() / expected.norm()).item()
    p = expected.log_softmax(-1)
    kl = (p.exp() * (p - found.log_softmax(-1))).sum(-1).mean().item()
    top1 = (found.argmax(-1) == expected.argmax(-1)).double().mean().item()
    return {"name": name, "relative_error": error, "kl": kl, "top1": top1, "tolerance": tolerance, "passed": error <= tolerance}


def run_int8_check(folder: str, seed: int = 0) -> list:
    """Every comparison as {name, relative_error, kl, top1, tolerance, passed}."""
    weights, cfg = golden_model(folder)
    f32, int8 = Valle(weights, cfg), quantize_weights(weights, cfg)
    inputs, _, ar, nar, nar_len = golden_data(folder)
    phn, lang, prom = inputs["phn"].long(), int(inputs["lang"][0]), inputs["prom"].long()
    target = inputs["resp_target"].long()

    def seq(mode, resp, level=0, null=False):
        return int8.sequence(phn, lang, prom, resp, mode, level, null)

    results = []
    with torch.inference_mode():
        for p in (0, 1, 5):
            x, pos = seq("ar", ar[f"prefix{p}.resp"].long())
            logits = int8.head(int8.trunk(x, pos, causal=True), 0)[-1]
            results.append(relative(f"tiny: AR prefix {p} logits (no cache) vs upstream", logits, ar[f"prefix{p}.logits"]))

        frames = target.shape[0]
        for level in range(1, cfg.n_levels):
            x, pos = seq("nar", target, level)
            rows = int8.head(int8.trunk(x, pos, causal=False)[-frames:], level)[nar["rows"].long()]
            results.append(relative(f"tiny: NAR L{level} logits vs upstream", rows, nar[f"head.L{level}.logits_rows"]))

        for step in (0, 2):
            resp = nar_len[f"step{step}.resp_in"].long()
            for kind, null in (("cond", False), ("uncond", True)):
                x, pos = seq("nar_len", resp, null=null)
                rows = int8.head(int8.trunk(x, pos, causal=False)[-frames:], cfg.n_levels)[nar_len["rows"].long()]
                results.append(relative(f"tiny: NAR-len step {step} {kind} logits vs upstream", rows, nar_len[f"step{step}.{kind}_rows"]))

        results += cached_steps(f32, int8, seq, ar["greedy.sampled"].long())
        results += full_size(seed)
    return results


def cached_steps(f32: Valle, int8: Valle, seq, tokens) -> list:
    """AR through each model's KV cache on upstream's greedy `tokens`; int8 also recomputed without one."""
    x, pos = seq("ar", torch.zeros(0, dtype=torch.long))
    caches = [KVCache(m.cfg, x.shape[0] + tokens.shape[0]) for m in (f32, int8)]
    ours, theirs, recomputed = [], [], []
    for i in range(tokens.shape[0]):
        if i:
            x, pos = f32.ar_token(int(tokens[i - 1])), torch.tensor([i - 1])
        theirs.append(f32.head(f32.trunk(x, pos, causal=True, cache=caches[0])[-1], 0))
        ours.append(int8.head(int8.trunk(x, pos, causal=True, cache=caches[1])[-1], 0))
        full_x, full_pos = seq("ar", tokens[:i])
        recomputed.append(int8.head(int8.trunk(full_x, full_pos, causal=True)[-1], 0))
        if int(tokens[i]) == STOP:
            break
    ours, theirs, recomputed = torch.stack(ours), torch.stack(theirs), torch.stack(recomputed)
    return [
        relative(f"tiny: AR {len(ours)} steps with the KV cache vs f32 (upstream's greedy tokens)", ours, theirs),
        relative("tiny: AR KV cache vs no-cache recompute (int8)", ours, recomputed),
    ]


def full_size(seed: int) -> list:
    """f32 and int8 of the same full-size random weights on one 52-token utterance."""
    cfg = Config()
    weights = random_weights(cfg, seed)
    f32, int8 = Valle(weights, cfg), quantize_weights(weights, cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    phonemes, prompt, frames = 8, 13, 25  # + 6 markers: 52 tokens, the peer's short NAR case
    phn = torch.cat([torch.tensor([1]), torch.randint(3, cfg.n_phn, (phonemes - 2,), generator=gen), torch.tensor([2])])
    prom = torch.randint(0, cfg.n_audio, (prompt, cfg.n_levels), generator=gen)
    resp = torch.randint(0, cfg.n_audio, (frames, cfg.n_levels), generator=gen)
    masked = resp[:, 0].clone()
    masked[::2] = STOP
    cases = [
        ("AR, every response row", "ar", resp[:, 0], 0, True, 0),
        ("NAR L1", "nar", resp, 1, False, 1),
        ("NAR L7", "nar", resp, 7, False, 7),
        ("NAR-len, every other frame masked", "nar_len", masked, 0, False, cfg.n_levels),
    ]
    results = []
    for name, mode, codes, level, causal, head in cases:
        x, pos = f32.sequence(phn, 0, prom, codes, mode, level)
        expected = f32.head(f32.trunk(x, pos, causal=causal)[-frames:], head)
        found = int8.head(int8.trunk(x, pos, causal=causal)[-frames:], head)
        results.append(relative(f"full size: {name} logits vs f32", found, expected))
    return results
