#!/usr/bin/env python3
"""Peer benchmark: the VALL-E trunk in PyTorch + Hugging Face transformers on CUDA.

Same architecture as @valle/core's model: a LLaMA decoder with the exact (erf) GELU MLP,
d_model 1024, 16 heads, 12 layers, FFN 4096, RMSNorm eps 1e-6, RoPE theta 10000, f16 weights,
an AR head of 1025 classes, random weights. It measures, at batch 1:

  * AR steps/s with a KV cache (prefill the prompt once, then one token per step, greedy),
  * AR steps/s without a KV cache, recomputing the whole sequence each step as upstream
    vall_e does (`use_cache=False`),

and prints one JSON object (also written to --out). `bench/run.ts` runs it on the same GPU in the
same session and reports our/peer ratios.

    python3 bench/peers/transformers_peer.py --prompt 250 --steps 750 --out peer.json
"""

import argparse
import json
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def build(device: str) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=1025,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=12,
        num_attention_heads=16,
        num_key_value_heads=16,
        hidden_act="gelu",
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        max_position_embeddings=32768,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device=device, dtype=torch.float16)
    model.eval()
    return model


@torch.inference_mode()
def ar_with_cache(model, prompt: int, steps: int, device: str) -> dict:
    ids = torch.randint(0, 1024, (1, prompt), device=device)
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = model(input_ids=ids, use_cache=True)
    past = out.past_key_values
    token = out.logits[:, -1:].argmax(-1)
    torch.cuda.synchronize()
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        out = model(input_ids=token, past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = out.logits[:, -1:].argmax(-1)
    torch.cuda.synchronize()
    decode = time.perf_counter() - start
    return {"prefill_ms": prefill * 1e3, "steps": steps, "steps_per_s": steps / decode}


@torch.inference_mode()
def ar_without_cache(model, prompt: int, steps: int, device: str) -> dict:
    ids = torch.randint(0, 1024, (1, prompt), device=device)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        logits = model(input_ids=ids, use_cache=False).logits
        ids = torch.cat([ids, logits[:, -1:].argmax(-1)], dim=1)
    torch.cuda.synchronize()
    return {"steps": steps, "steps_per_s": steps / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", type=int, default=250, help="prefill tokens (3 s prompt + text)")
    parser.add_argument("--steps", type=int, default=750, help="AR steps with the KV cache (10 s)")
    parser.add_argument("--nocache-steps", type=int, default=150, help="AR steps without a cache")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    device = "cuda"
    model = build(device)
    ar_with_cache(model, args.prompt, 20, device)  # warm-up: kernels, allocator
    result = {
        "peer": "pytorch+transformers",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "dtype": "float16",
        "prompt_tokens": args.prompt,
        "kv_cache": ar_with_cache(model, args.prompt, args.steps, device),
        "no_kv_cache": ar_without_cache(model, args.prompt, args.nocache_steps, device),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
