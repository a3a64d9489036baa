#!/usr/bin/env python3
"""Peer benchmark: the VALL-E model in plain PyTorch on the CPU, beside the library's CPU backend.

The full-size model (d 1024, 16 heads, 12 layers, FFN 4096, every embedding table and head of the
released layout: 229 M parameters) with random f32 weights, built by `valle_torch.py`. It measures,
at batch 1, the median over `--repeats` runs after one warm-up run of each:

  * `kv_cache`: AR steps with a KV cache at a context of `--ar-context` tokens (the prefill of that
    many tokens, then `--ar-steps` single-token steps, each timed);
  * `no_kv_cache`: upstream vall_e's AR step, which recomputes the whole sequence (`use_cache=False`)
    and applies the head to every row, at the same context (`--nocache-steps` steps per run);
  * `nar`: one NAR pass (bidirectional, no cache; levels 1..7 in turn) per `--nar-tokens` total;
  * `nar_len`: one NAR-len pass (conditional input, half the response masked) per total; a demasking
    step with CFG is one such pass plus an unconditional one of `frames + 7` tokens;
  * `peak_rss_mb`: the process's peak resident memory (weights, activations, allocator).

Each token total is split like the 10 s utterance of the bench (40 phonemes, 225 prompt frames,
750 response frames), scaled; the shape is in the output. Best CPU configuration: f32 (CPU torch has
no fast f16 GEMV), `inference_mode`, one torch thread per core, OpenBLAS with 1 thread of its own
(`OPENBLAS_NUM_THREADS`, read when torch loads; set it in the environment to compare), a
preallocated KV cache. The configuration found at run time is in `config`.

`--dtype int8` is the second peer, `pytorch-cpu-int8`: the same model and measurements with
PyTorch's dynamic int8 quantization of every linear layer (`valle_torch_int8.py`: int8 weights,
inputs quantized per call; fbgemm where the build has it, else qnnpack, or `--engine`). Its
kernels run on torch's threads, not OpenBLAS's (one thread: attention only): `--threads auto` times
one thread and one per core on short runs first and takes the faster for AR steps and for full
passes (on a busy machine, threads handing off small products made an AR step up to 10x slower).

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/peers/torch_cpu_peer.py --out peer-cpu.json
    /usr/bin/python3 bench/peers/torch_cpu_peer.py --check   # against the golden valle-tiny
    OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/peers/torch_cpu_peer.py --dtype int8 --out int8.json
    /usr/bin/python3 bench/peers/torch_cpu_peer.py --dtype int8 --check   # int8 against upstream and f32

Prints one JSON object on stdout (progress on stderr); the format is in bench/README.md.
"""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the sources

import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from valle_torch import STOP, Config, KVCache, Valle, random_weights, weight_shapes  # noqa: E402

UTTERANCE = (40, 225, 750)  # phonemes, prompt frames, response frames of the bench's 10 s case
FIXED = 6  # separators (3), lang and rvq tokens
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "valle-tiny")


def log(line: str) -> None:
    print(f"torch_cpu_peer: {line}", file=sys.stderr, flush=True)


def split(tokens: int) -> tuple:
    """Phonemes, prompt frames and response frames of a sequence of `tokens` in all."""
    scale = (tokens - FIXED) / sum(UTTERANCE)
    phonemes, prompt = max(2, round(UTTERANCE[0] * scale)), max(1, round(UTTERANCE[1] * scale))
    frames = tokens - FIXED - phonemes - prompt
    if frames < 1:
        raise SystemExit(f"torch_cpu_peer: {tokens} tokens leave no response frame (at least {FIXED + 4})")
    return phonemes, prompt, frames


class Inputs:
    """Random phonemes, prompt codes and response codes for one token total."""

    def __init__(self, cfg: Config, tokens: int, gen: torch.Generator):
        self.tokens = tokens
        self.phonemes, self.prompt_frames, self.frames = split(tokens)
        codes = lambda *shape: torch.randint(0, cfg.n_audio, shape, generator=gen)  # noqa: E731
        inner = torch.randint(3, cfg.n_phn, (self.phonemes - 2,), generator=gen)
        self.phn = torch.cat([torch.tensor([1]), inner, torch.tensor([2])])
        self.prom = codes(self.prompt_frames, cfg.n_levels)
        self.resp = codes(self.frames, cfg.n_levels)

    def shape(self) -> dict:
        return {"tokens": self.tokens, "phonemes": self.phonemes, "prompt_frames": self.prompt_frames, "frames": self.frames}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def summary(samples: list) -> dict:
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "samples_ms": [round(s, 3) for s in samples]}


def ar_kv_cache(model: Valle, data: Inputs, steps: int, repeats: int) -> dict:
    prefill, step_ms = [], []
    for rep in range(repeats + 1):
        x, pos = model.sequence(data.phn, 0, data.prom, data.resp[:, 0], "ar")
        cache = KVCache(model.cfg, data.tokens + steps)
        state = {}

        def first():
            state["token"] = int(model.head(model.trunk(x, pos, causal=True, cache=cache)[-1], 0).argmax())

        def step(i):
            h = model.trunk(model.ar_token(state["token"] % STOP), torch.tensor([data.frames + i]), causal=True, cache=cache)
            state["token"] = int(model.head(h[-1], 0).argmax())

        ms = timed(first)
        times = [timed(lambda: step(i)) for i in range(steps)]
        if rep:  # the first run warms up
            prefill.append(ms)
            step_ms += times
    out = {"context": data.tokens, "steps": steps, "prefill": summary(prefill), "step": summary(step_ms)}
    out["steps_per_s"] = 1e3 / out["step"]["median_ms"]
    return out


def ar_no_cache(model: Valle, data: Inputs, steps: int, repeats: int) -> dict:
    step_ms = []
    for rep in range(repeats + 1):
        resp = data.resp[:, 0].tolist()

        def step():
            x, pos = model.sequence(data.phn, 0, data.prom, torch.tensor(resp), "ar")
            logits = model.head(model.trunk(x, pos, causal=True), 0)  # every row, as upstream
            resp.append(int(logits[-1].argmax()) % STOP)

        times = [timed(step) for _ in range(steps)]
        if rep:
            step_ms += times
    out = {"context": data.tokens, "steps": steps, "step": summary(step_ms)}
    out["steps_per_s"] = 1e3 / out["step"]["median_ms"]
    return out


def nar_pass(model: Valle, data: Inputs, mode: str, repeats: int) -> dict:
    resp = data.resp
    if mode == "nar_len":
        resp = data.resp[:, 0].clone()
        resp[::2] = STOP  # half the response masked

    def run(level):
        x, pos = model.sequence(data.phn, 0, data.prom, resp, mode, level)
        model.head(model.trunk(x, pos, causal=False)[-data.frames :], level or model.cfg.n_levels).argmax(-1)

    levels = [1 + rep % (model.cfg.n_levels - 1) if mode == "nar" else 0 for rep in range(repeats + 1)]
    times = [timed(lambda: run(level)) for level in levels]
    return {**data.shape(), "pass": summary(times[1:])}


def probe_threads(model: Valle, cfg: Config, candidates: list, seed: int) -> dict:
    """The int8 peer's threads (`--threads auto`): the faster of `candidates` for AR steps (small
    products, where a thread pool's hand-offs cost most: on a busy machine two threads made a step
    up to 10x slower than one) and for full passes (large products), each timed on a short run."""
    gen = torch.Generator().manual_seed(seed + 2)  # not the measurements' inputs
    short, long = Inputs(cfg, 64, gen), Inputs(cfg, 128, gen)
    probe = {}
    for threads in candidates:
        torch.set_num_threads(threads)
        step = ar_kv_cache(model, short, 6, 1)["step"]["median_ms"]
        probe[threads] = {"ar_step_ms": step, "nar_pass_128_ms": nar_pass(model, long, "nar", 1)["pass"]["median_ms"]}
    step = min(candidates, key=lambda n: probe[n]["ar_step_ms"])
    full = min(candidates, key=lambda n: probe[n]["nar_pass_128_ms"])
    return {"kv_cache": step, "no_kv_cache": full, "nar": full, "nar_len": full, "probe": probe}


def openblas():
    """The OpenBLAS that torch loaded (Debian's torch links the `libblas.so.3` alternative), or None."""
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "blas" in line.lower() and "/" in line})
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_config.restype = ctypes.c_char_p
            return lib, path
        except (OSError, AttributeError):
            continue
    return None, libs


def blas(threads: int) -> dict:
    """Sets OpenBLAS's own threads; the BLAS found and its configuration."""
    lib, path = openblas()
    if lib is None:
        return {"libraries": path, "openblas": None}
    lib.openblas_set_num_threads(threads)
    return {"library": path, "openblas": lib.openblas_get_config().decode(), "threads": lib.openblas_get_num_threads()}


def configuration(args, engine) -> dict:
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    shown = torch.__config__.show().splitlines()
    int8 = {
        "dtype": "int8 linears (dynamic quantization), f32 embeddings, norms and attention",
        "quantized_engine": engine,
        "quantized_engines": torch.backends.quantized.supported_engines,
        "linear": "torch.ao.quantization.quantize_dynamic({nn.Linear}, dtype=torch.qint8): quantized::linear_dynamic, "
        "per-tensor symmetric int8 weights, uint8 inputs quantized per call, int32 accumulation",
    }
    return {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "dtype": "float32",
        "torch_threads": "auto: the faster of 1 and the cores per kind of run" if args.threads == "auto" else torch.get_num_threads(),
        "cores": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "blas": blas(args.blas_threads),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "cpu_capability": next((line.split(":")[1].strip() for line in shown if "CPU capability" in line), None),
        "linear": "torch.nn.functional.linear on dense f32 (BLAS gemm/gemv)",
        "kv_cache": "preallocated per layer",
        **(int8 if engine else {}),
    }


def check(folder: str, int8: bool, seed: int) -> None:
    if int8:
        from torch_cpu_int8_check import run_int8_check

        results = run_int8_check(folder, seed)
    else:
        from torch_cpu_check import run_check

        results = run_check(folder)
    for r in results:
        told = f"{r['max_error']:.3g}" if "max_error" in r else f"relative error {r['relative_error']:.3g}"
        if "kl" in r:
            told += f", KL {r['kl']:.2g}, top-1 {100 * r['top1']:.0f}%"
        log(f"{'ok  ' if r['passed'] else 'FAIL'} {r['name']}: {told} (tolerance {r['tolerance']:g})")
    passed = all(r["passed"] for r in results)
    print(json.dumps({"check": folder, "passed": passed, "results": results}, indent=2))
    sys.exit(0 if passed else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = len(os.sched_getaffinity(0))
    parser.add_argument("--dtype", choices=("float32", "int8"), default="float32", help="int8: quantize the linear layers (dynamic)")
    parser.add_argument("--engine", default="auto", help="int8: torch's quantized engine (auto: fbgemm, else qnnpack)")
    parser.add_argument("--threads", help="torch's threads (f32: 1, elementwise ops; int8: auto, the faster of 1 and the cores)")
    parser.add_argument("--blas-threads", type=int, help="OpenBLAS threads (f32: the cores, the matrix products; int8: 1, attention)")
    parser.add_argument("--ar-context", type=int, default=300, help="tokens before the first timed AR step")
    parser.add_argument("--ar-steps", type=int, default=16, help="AR steps per run with the KV cache")
    parser.add_argument("--nocache-steps", type=int, default=3, help="AR steps per run without a cache")
    parser.add_argument("--nar-tokens", default="52,1000", help="NAR and NAR-len pass sizes, tokens in all")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each measurement (after a warm-up)")
    parser.add_argument("--only", default="kv_cache,no_kv_cache,nar,nar_len", help="measurements to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--check", nargs="?", const=GOLDEN, metavar="DIR", help="check the model against golden data and exit")
    args = parser.parse_args()
    int8 = args.dtype == "int8"
    args.threads = args.threads or ("auto" if int8 else "1")
    args.blas_threads = args.blas_threads or (1 if int8 else cores)
    auto = args.threads == "auto"
    if auto and not int8:
        raise SystemExit("torch_cpu_peer: --threads auto is for --dtype int8")
    torch.set_num_threads(cores if auto else int(args.threads))
    engine = None
    if int8:
        from valle_torch_int8 import choose_engine, random_quantized

        try:
            engine = choose_engine(args.engine)
        except RuntimeError as e:
            raise SystemExit(f"torch_cpu_peer: {e}")
    if args.check:
        check(args.check, int8, args.seed)
    only = set(args.only.split(","))

    peer = "pytorch-cpu-int8" if int8 else "pytorch-cpu"
    result = {"peer": peer, "config": configuration(args, engine), "load_average": {"start": os.getloadavg()}}
    log(f"torch {torch.__version__}, {args.threads} threads, BLAS {result['config']['blas']}" + (f", {engine} int8" if int8 else ""))
    cfg = Config()
    start = time.perf_counter()
    if int8:
        # Each f32 layer is freed once quantized; glibc would keep those 4-16 MB blocks in its heap
        # (its mmap threshold rises to the size of the first one freed) and in the peak RSS.
        ctypes.CDLL(None).mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: blocks from 1 MiB always mmapped
    model = random_quantized(cfg, args.seed) if int8 else Valle(random_weights(cfg, args.seed), cfg)
    shapes = weight_shapes(cfg)
    params = sum(math.prod(shape) for shape in shapes.values())
    weights_mb = params * 4 / 2**20
    if int8:  # a byte per linear weight instead of 4 (their scales: a few bytes per layer)
        from valle_torch_int8 import is_linear

        linear = [shape for name, shape in shapes.items() if name.endswith(".weight") and is_linear(name[: -len(".weight")])]
        weights_mb -= sum(3 * math.prod(shape) for shape in linear) / 2**20
    result["model"] = {"d_model": cfg.d_model, "heads": cfg.heads, "layers": cfg.layers, "ffn": cfg.ffn, "params": params, "weights_mb": weights_mb}
    log(f"random weights: {params / 1e6:.1f} M parameters{' (linears in int8)' if int8 else ''} in {time.perf_counter() - start:.1f} s")
    result["repeats"] = args.repeats
    gen = torch.Generator().manual_seed(args.seed + 1)
    threads = dict.fromkeys(("kv_cache", "no_kv_cache", "nar", "nar_len"), torch.get_num_threads())
    with torch.inference_mode():
        if auto:
            threads = probe_threads(model, cfg, sorted({1, cores}), args.seed)
            log(f"threads: {threads['kv_cache']} for AR steps, {threads['nar']} for full passes ({threads['probe']})")
        result["threads"] = threads
        torch.set_num_threads(threads["kv_cache"])
        if "kv_cache" in only:
            result["kv_cache"] = ar_kv_cache(model, Inputs(cfg, args.ar_context, gen), args.ar_steps, args.repeats)
            log(f"AR step with the KV cache: {result['kv_cache']['step']['median_ms']:.1f} ms")
        torch.set_num_threads(threads["nar"])
        if "no_kv_cache" in only:
            result["no_kv_cache"] = ar_no_cache(model, Inputs(cfg, args.ar_context, gen), args.nocache_steps, args.repeats)
            log(f"AR step without a cache: {result['no_kv_cache']['step']['median_ms']:.1f} ms")
        for mode in ("nar", "nar_len"):
            if mode in only:
                result[mode] = []
                for tokens in map(int, args.nar_tokens.split(",")):
                    result[mode].append(nar_pass(model, Inputs(cfg, tokens, gen), mode, args.repeats))
                    log(f"{mode} pass of {tokens} tokens: {result[mode][-1]['pass']['median_ms']:.1f} ms")
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["load_average"]["end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
