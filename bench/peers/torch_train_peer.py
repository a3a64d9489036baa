#!/usr/bin/env python3
"""Peer benchmark: UPSTREAM's own LoRA training step in PyTorch on the CPU, beside the library's.

Runs e-c-k-e-r/vall-e's code itself (a checkout at the golden tool's commit, imported from its path, nothing
copied; `tools/golden/train_lora_standins.py` stands in for the packages Debian's torch 1.13 cannot install,
as for the training golden): `vall_e.engines.load_engines()` on the full-size random model of the bench
(`bench/out/valle-full.sft`, d 1024, 16 heads, 12 layers, FFN 4096, loaded into f32 modules), LoRA rank 128 /
alpha 128 (upstream's default) applied by upstream's `apply_lora` to its default modules (q, v, o, gate, up,
down of every layer: `LoRALinear`, dropout off), loss mode A, upstream's AdamW; then
`Engines.step(batch, feeder=vall_e.train.train_feeder)`, which is the whole training step (AR_NAR.forward_train,
Base.inputs, Base.forward, Base.calc_loss, backward, clip_grad_norm_, AdamW, zeroing the gradients).

The batch is one item of the bench's shape (150 phonemes, a 225-frame prompt, 750 frames: 10 s after 3 s),
trained as an AR item (level 0 with its stop token) or as a NAR item (level `--nar-level`); upstream's random
decisions are scripted as the golden tool does (`scripted_decisions`). Each kind: one warm-up step, then
`--steps` timed steps (their median). Threads: torch's and OpenBLAS's (`OPENBLAS_NUM_THREADS=1` when torch
loads, then `openblas_set_num_threads`, as the inference peer does) both `--threads` (default: the cores).

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/peers/torch_train_peer.py /tmp/vall-e --out train-peer.json

Prints one JSON object on stdout (progress on stderr).
"""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GOLDEN = ROOT / "tools" / "golden"
sys.path.insert(0, str(GOLDEN))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import train_lora as golden  # noqa: E402  (the golden tool: its yaml, decisions, commit; stdlib imports only)
import train_lora_standins as S  # noqa: E402
from torch_cpu_peer import blas  # noqa: E402

UTTERANCE = (150, 225, 750)  # phonemes, prompt frames, response frames: 10 s after a 3 s prompt
RANK, ALPHA = 128, 128


def log(line: str) -> None:
    print(f"torch_train_peer: {line}", file=sys.stderr, flush=True)


def config_yaml() -> str:
    """The golden tool's yaml, full size, rank 128 / alpha 128, one item per batch."""
    cfg = json.loads(golden.yaml_text())
    cfg["models"][0]["size"] = {"dim": 1024, "heads": 16, "layers": 12, "ffn": 4}
    cfg["loras"] = [dict(name="lora", rank=RANK, alpha=ALPHA, training=True)]
    cfg["hyperparameters"]["batch_size"] = 1
    cfg["hyperparameters"]["gradient_clipping"] = 1.0
    cfg["hyperparameters"]["learning_rate"] = 1e-4
    return json.dumps(cfg, indent=1)


def item(kind: str, level: int, gen: torch.Generator) -> dict:
    n, P, T = UTTERANCE
    return dict(
        kind=kind, level=level,
        phn=torch.cat([torch.tensor([1]), torch.randint(3, 256, (n - 2,), generator=gen), torch.tensor([2])]),
        prom=torch.randint(0, 1024, (P, 8), generator=gen),
        resp=torch.randint(0, 1024, (T, 8), generator=gen),
        lang=0, mask=None,
    )


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("upstream", help="an e-c-k-e-r/vall-e checkout at " + golden.UPSTREAM_COMMIT)
    ap.add_argument("--model", default=str(ROOT / "bench" / "out" / "valle-full.sft"))
    ap.add_argument("--threads", type=int, default=cores, help="torch's and OpenBLAS's threads")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per item kind, after a warm-up step")
    ap.add_argument("--kinds", default="ar,nar", help="item kinds: ar, nar")
    ap.add_argument("--nar-level", type=int, default=1)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    out = Path(args.out).resolve() if args.out else None
    upstream = Path(args.upstream).resolve()

    torch.set_num_threads(args.threads)
    result = {
        "peer": "pytorch-cpu-train (upstream vall_e)",
        "load_average": {"start": os.getloadavg()},
        "config": {
            "torch": torch.__version__,
            "upstream": golden.UPSTREAM_COMMIT,
            "dtype": "float32",
            "torch_threads": torch.get_num_threads(),
            "blas": blas(args.threads),
            "cores": cores,
            "lora": {"rank": RANK, "alpha": ALPHA, "modules": golden.LORA_MODULES},
            "attention": "the stand-ins' scaled_dot_product_attention (torch 1.13 has none): softmax(QK^T/sqrt d + mask) V",
        },
        "shape": dict(zip(("phonemes", "prompt_frames", "frames"), UTTERANCE)),
    }
    log(f"torch {torch.__version__}, {args.threads} threads, BLAS {result['config']['blas']}")
    if not result["config"]["blas"].get("openblas"):
        log("not OpenBLAS: Debian's torch then runs the reference BLAS, many times slower (apt-get install libopenblas0-pthread)")

    with tempfile.TemporaryDirectory(prefix="train-peer-") as work:
        work = Path(work)
        (work / "config.yaml").write_text(config_yaml())
        (work / "ckpt" / golden.MODEL_FULL_NAME).mkdir(parents=True)
        os.symlink(Path(args.model).resolve(), work / "ckpt" / golden.MODEL_FULL_NAME / "fp32.sft")
        os.chdir(work)
        S.install()
        sys.path.insert(0, str(upstream))
        sys.argv = ["vall_e", "--yaml", str(work / "config.yaml")]
        torch.manual_seed(0)
        import vall_e.models.ar_nar as ar_nar
        from vall_e.engines import load_engines
        from vall_e.models.lora import LoRALinear
        from vall_e.train import train_feeder

        start = time.perf_counter()
        engines = load_engines(training=True)
        (_, engine), = engines.items()
        module = engine.module
        adapted = [m for m in module.modules() if isinstance(m, LoRALinear)]
        for m in adapted:
            m.dropout = torch.nn.Identity()
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        result["load_s"] = time.perf_counter() - start
        result["lora"] = {"modules": len(adapted), "trainable_parameters": trainable,
                          "dtypes": sorted({str(p.dtype) for p in module.parameters()})}
        log(f"loaded in {result['load_s']:.1f} s: {len(adapted)} LoRA modules, {trainable / 1e6:.1f} M trainable")

        gen = torch.Generator().manual_seed(19)
        result["steps"] = []
        for kind in args.kinds.split(","):
            it = item(kind, 0 if kind == "ar" else args.nar_level, gen)
            batch = {
                "phns": [it["phn"].to(torch.int16)], "proms": [it["prom"].to(torch.int16)],
                "resps": [it["resp"].to(torch.int16)], "lang": [torch.tensor([0], dtype=torch.uint8)],
                "tone": [torch.tensor([0], dtype=torch.uint8)], "task": ["tts"], "text": [None],
            }
            samples, cpu = [], 0.0
            for n in range(args.steps + 1):
                choices, draws = golden.scripted_decisions([it])
                rnd = golden.ScriptedRandom(choices, draws)
                ar_nar.random = rnd
                t0, c0 = time.perf_counter(), time.process_time()
                stats = engines.step(batch, feeder=train_feeder)
                ms = (time.perf_counter() - t0) * 1e3
                rnd.done()
                log(f"{kind} step {n} ({'warm-up' if n == 0 else 'timed'}): {ms:.0f} ms")
                if n > 0:
                    samples.append(ms)
                    cpu += time.process_time() - c0
            _, P, T = UTTERANCE
            scored = T + 1 if kind == "ar" else T
            median = statistics.median(samples)
            result["steps"].append({
                "kind": kind, "level": it["level"], "scored_tokens": scored, "step_ms": samples,
                "median_ms": median, "tokens_per_s": scored / (median / 1e3),
                "cpu_ms_per_step": cpu * 1e3 / args.steps,
                "stats": {k: v for k, v in stats.items() if isinstance(v, (int, float))},
            })
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["load_average"]["end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")


if __name__ == "__main__":
    main()
