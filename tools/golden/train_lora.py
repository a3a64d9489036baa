"""Training golden for LoRA fine-tuning: runs UPSTREAM's own training step on the tiny model.

    /usr/bin/python3 tools/golden/train_lora.py /path/to/vall-e-checkout [--dec2024-base FILE]
    /usr/bin/python3 tools/golden/train_lora.py /path/to/vall-e-checkout --load-ours FILE [FILE ...]

The checkout is e-c-k-e-r/vall-e at 73833ee56d163998d295b25f88bd295d27ed8768 (nothing of it is copied here;
it is imported from that path). Needs Debian's python3-torch (1.13) and python3-numpy; everything that cannot
be installed is replaced by the stand-ins of train_lora_standins.py (own code).

What runs is upstream's chain: `vall_e.engines.load_engines()` (yaml written by this tool, LoRA rank 4 /
alpha 8 applied by upstream's `apply_lora`, base weights from the tiny model.sft, AdamW built by upstream)
-> `Engines.step(batch, feeder=vall_e.train.train_feeder)` three times (AR_NAR.forward_train, Base.inputs,
Base.forward, Base.calc_loss, Engine.backward, Engine.step with clip_grad_norm_ and AdamW)
-> `Engines.export(callback=vall_e.export.extract_lora)` -> a fresh process started like the CLI with
`--yaml ... --lora lora.sft` loads it back through `load_engines` and gives the AR item's logits.

The random decisions are passed explicitly: upstream's `random.choice` / `random.random` in ar_nar.py are
replaced by a script (levels, masking decision, timestep, CFG draws), the NAR-len mask function
`_dropout_mask` returns the recorded mask, and every LoRA dropout is replaced by identity (model.dropout 0).
LoRA A and B start from seeded random values (not B = 0, so that dL/dA is not zero).

A second case repeats the steps with the Dec-2024 embedding-sum rule (b): upstream's AudioEmbedding.forward of
commit cd4a5f4 (from the checkout's git history, or the file given with --dec2024-base) swapped into HEAD.
Each case also runs in float64 to measure the noise floor.

With --load-ours nothing is trained: each given LoRA file (trained by this repository, tools/golden/train_ours.ts)
is loaded like upstream's own export above (a fresh process with `--yaml ... --lora FILE`, `load_engines`), and
upstream's AR logits of item 0 with it are written to ours_logits.safetensors, described in manifest.json: ours.

Outputs go to tests/fixtures/train-golden/ (see its README.md).
"""

import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the tools

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
UPSTREAM_COMMIT = "73833ee56d163998d295b25f88bd295d27ed8768"
DEC2024_COMMIT = "cd4a5f427ca80a41c37fe2517a5b89459efea9b8"  # source of AudioEmbedding.forward for rule (b)

SEED = 20261207
MODEL_NAME = "ar+nar-len"
MODEL_FULL_NAME = "ar+nar-len-llama-8"
LORA = dict(name="lora", rank=4, alpha=8)
LORA_FULL_NAME = "lora-r4-a8"
LR = 0.02
CLIP = 1.3  # step 1 norm 1.383 is clipped, steps 2 and 3 (1.22, 1.20) are not (spec 14.8)
STEPS = 3
MASKING_RATIO = 0.8  # upstream default (a fixed float); unused by the recorded mask but kept in the yaml
MASKING_TRAIN_P = 0.5  # any 0 < p < 1: the scripted draws decide (0.1 -> masked, 0.9 -> not)

# one item per row: kind, target level, n phonemes, P prompt frames, T target frames, lang
# every item has the same total length N = 24 (AR: n+P+T+7, NAR / NAR-len: n+P+T+6), see README
ITEMS = [
    dict(kind="ar", level=0, n=5, P=4, T=8, lang=0),
    dict(kind="nar", level=1, n=6, P=3, T=9, lang=1),
    dict(kind="nar", level=3, n=7, P=5, T=6, lang=2),
    dict(kind="nar", level=7, n=4, P=4, T=10, lang=3),
    dict(kind="nar_len", level=0, n=6, P=4, T=8, lang=5),
]
N_TOTAL = 24

LORA_MODULES = ["self_attn.q_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def lora_keys(n_layers=2):
    keys = []
    for i in range(n_layers):
        for m in LORA_MODULES:
            for ab in ("A", "B"):
                keys.append(f"model.layers.{i}.{m}.lora_{ab}")
    return keys


def yaml_text(lr=LR, clip=CLIP):
    # JSON is valid YAML; upstream reads it with yaml.safe_load
    cfg = {
        "device": "cpu",
        "tokenizer": "naive",
        "silent_errors": True,
        "models": [{
            "name": MODEL_NAME,
            "version": 5,
            "size": {"dim": 32, "heads": 4, "layers": 2, "ffn": 4},
            "tasks": 9, "langs": 6, "tones": 1,
            "training": True,
            "dropout": 0.0,
            "capabilities": ["ar", "nar", "len"],
            "experimental": {
                "split_classifiers": True,
                "audio_embedding_sums": True,
                "unified_position_ids": False,
                "noncausal_masks": True,
                "masking_train_p": MASKING_TRAIN_P,
                "masking_ratio": MASKING_RATIO,
            },
        }],
        "loras": [dict(LORA, training=True)],
        "hyperparameters": {
            "batch_size": len(ITEMS),
            "gradient_accumulation_steps": 1,
            "gradient_clipping": clip,
            "optimizer": "AdamW",
            "learning_rate": lr,
        },
        "trainer": {"backend": "local", "weight_dtype": "float32", "amp": False, "check_for_oom": False},
        "inference": {"backend": "local", "weight_dtype": "float32", "amp": False},
    }
    return json.dumps(cfg, indent=1)


# --------------------------------------------------------------------------------------------------
# the case (inputs, mask, initial LoRA), made once by the orchestrator


def make_case(torch):
    g = torch.Generator().manual_seed(SEED)
    items = []
    for spec in ITEMS:
        n, P, T = spec["n"], spec["P"], spec["T"]
        phn = torch.cat([torch.tensor([1]), torch.randint(3, 256, (n - 2,), generator=g), torch.tensor([2])])
        prom = torch.randint(0, 1024, (P, 8), generator=g)
        resp = torch.randint(0, 1024, (T, 8), generator=g)
        mask = None
        if spec["kind"] == "nar_len":
            while True:
                mask = torch.rand(T, generator=g) < MASKING_RATIO
                if 0 < int(mask.sum()) < T:
                    break
        extra = 7 if spec["kind"] == "ar" else 6
        assert n + P + T + extra == N_TOTAL
        items.append(dict(spec, phn=phn, prom=prom, resp=resp, mask=mask))
    lora = {}
    shapes = lora_shapes()
    for k in lora_keys():
        shape = shapes[k]
        fan_in = shape[1]
        # A ~ U(+-1/sqrt(in)) like upstream's kaiming_uniform_(a=sqrt 5); B ~ U(+-0.2) instead of zeros
        bound = 1.0 / (fan_in ** 0.5) if k.endswith("lora_A") else 0.2
        lora[k] = (torch.rand(shape, generator=g) * 2 - 1) * bound
    return dict(items=items, lora=lora)


def lora_shapes(d=32, ffn=128, r=4):
    io = {"self_attn.q_proj": (d, d), "self_attn.v_proj": (d, d), "self_attn.o_proj": (d, d),
          "mlp.gate_proj": (d, ffn), "mlp.up_proj": (d, ffn), "mlp.down_proj": (ffn, d)}
    shapes = {}
    for k in lora_keys():
        mod = k.split(".", 3)[3].rsplit(".", 1)[0]
        fi, fo = io[mod]
        shapes[k] = (r, fi) if k.endswith("lora_A") else (fo, r)
    return shapes


# --------------------------------------------------------------------------------------------------
# stage run inside a child process: upstream imported with the yaml on argv


class ScriptedRandom:
    """Replaces the `random` module seen by upstream's ar_nar.py: returns the decisions the tool chose."""

    def __init__(self, choices, draws):
        self.choices = list(choices)
        self.draws = list(draws)
        self.log = []

    def choice(self, seq):
        v = self.choices.pop(0)
        assert v in seq, (v, seq)
        self.log.append(("choice", v))
        return v

    def random(self):
        v = self.draws.pop(0)
        self.log.append(("random", v))
        return v

    def done(self):
        assert not self.choices and not self.draws, (self.choices, self.draws)


def scripted_decisions(items):
    choices = [it["level"] for it in items]
    draws = []
    # forward_train's first loop: masking decision (only for levels inside masking_train_rvq_levels [0, 0]),
    # then the timestep of a masked item
    for it in items:
        if it["level"] == 0:
            if it["kind"] == "nar_len":
                draws += [0.1, 0.5]  # 0.1 < masking_train_p -> masked; timestep 0.5 (unused: ratio is fixed)
            else:
                draws += [0.9]  # not masked -> AR item with stop token
    # second loop: three CFG draws per tts item (prom dropout, cond dropout, raw text), all p = 0
    for it in items:
        draws += [0.99, 0.99, 0.99]
    return choices, draws


def stage(args):
    import torch

    sys.path.insert(0, str(HERE))
    import train_lora_standins as S

    S.install()
    sys.path.insert(0, str(Path(args.upstream).resolve()))
    argv = ["vall_e", "--yaml", str(Path(args.work) / "config.yaml")]
    lora_file = Path(args.lora_file or Path(args.work) / "ckpt" / LORA_FULL_NAME / "lora.sft")
    if args.stage == "loadback":
        argv += ["--lora", str(lora_file)]
    sys.argv = argv
    torch.manual_seed(0)

    import vall_e.models.base as base
    import vall_e.models.ar_nar as ar_nar
    import vall_e.models.arch.llama as llama
    from vall_e.models.lora import LoRALinear
    from vall_e.engines import load_engines
    from vall_e.train import train_feeder
    from vall_e.export import extract_lora

    if args.rule == "dec2024":
        swap_in_dec2024_embedding(base, Path(args.work) / "base_dec2024.py")

    case = torch.load(Path(args.work) / "case.pt")
    items = case["items"]
    dtype = torch.float64 if args.stage == "f64" else torch.float32

    engines = load_engines(training=args.stage != "loadback")
    (name, engine), = engines.items()
    module = engine.module
    result = {"name": name}

    for m in module.modules():
        if isinstance(m, LoRALinear):
            m.dropout = torch.nn.Identity()

    params = dict(module.named_parameters())
    lkeys = lora_keys()
    assert sorted(k for k in params if "lora_" in k) == sorted(lkeys), sorted(k for k in params if "lora_" in k)

    if args.stage == "loadback":
        from vall_e.config import cfg

        exported = S.read_safetensors(lora_file)[0]
        result["loaded_vs_exported"] = max(float((params[k].detach() - exported[k].float()).abs().max()) for k in lkeys)
        result["lora_scaling"] = sorted({m.scaling for m in module.modules() if isinstance(m, LoRALinear)})
        result["lora_config"] = {k: getattr(cfg.lora, k) for k in ("name", "rank", "alpha")}
        result["param_dtypes"] = sorted({str(params[k].dtype) for k in lkeys})
        result["training_mode"] = module.training
        result["ar_logits"] = ar_logits(torch, module, items[0])
        torch.save(result, args.result)
        return

    with torch.no_grad():
        for k in lkeys:
            params[k].copy_(case["lora"][k])

    if dtype == torch.float64:
        module.to(torch.float64)
        make_true_f64(torch, llama)

    # random decisions and the NAR-len mask, as recorded
    masks = [it["mask"] for it in items if it["mask"] is not None]

    def recorded_mask(input, p):
        m = masks[0]
        assert input.shape[0] == m.shape[0] and p == MASKING_RATIO
        return m.clone()

    base._dropout_mask = recorded_mask

    # per-item cross entropy and accuracy (upstream only keeps their mean)
    ce_log = []

    class RecordingF:
        def __getattr__(self, k):
            return getattr(torch.nn.functional, k)

        def cross_entropy(self, *a, **kw):
            out = torch.nn.functional.cross_entropy(*a, **kw)
            ce_log.append(out.detach().clone())
            return out

    base.F = RecordingF()
    acc_log = []
    orig_acc_forward = S.MulticlassAccuracy.forward

    def acc_forward(self, preds, target):
        out = orig_acc_forward(self, preds, target)
        acc_log.append(out.detach().clone())
        return out

    S.MulticlassAccuracy.forward = acc_forward

    # gradients are read where upstream clips them (Engine.step zeroes them right after the optimizer step)
    name_of = {id(p): k for k, p in params.items()}
    grad_log = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def clip_and_record(parameters, max_norm, *a, **kw):
        parameters = list(parameters)
        with_grad = {name_of[id(p)] for p in parameters if p.grad is not None}
        assert with_grad == set(lkeys), sorted(with_grad ^ set(lkeys))
        grads = {name_of[id(p)]: p.grad.detach().clone() for p in parameters if p.grad is not None}
        norm = real_clip(parameters, max_norm, *a, **kw)
        grad_log.append(dict(grads=grads, norm=norm.detach().clone()))
        return norm

    torch.nn.utils.clip_grad_norm_ = clip_and_record

    batch = {
        "phns": [it["phn"].to(torch.int16) for it in items],
        "proms": [it["prom"].to(torch.int16) for it in items],
        "resps": [it["resp"].to(torch.int16) for it in items],
        "lang": [torch.tensor([it["lang"]], dtype=torch.uint8) for it in items],
        "tone": [torch.tensor([0], dtype=torch.uint8) for it in items],
        "task": ["tts" for _ in items],
        "text": [None for _ in items],
    }

    steps = []
    for step in range(STEPS):
        choices, draws = scripted_decisions(items)
        rnd = ScriptedRandom(choices, draws)
        ar_nar.random = rnd
        ce_log.clear()
        acc_log.clear()
        stats = engines.step(batch, feeder=train_feeder)
        rnd.done()
        after = {k: params[k].detach().clone() for k in lkeys}
        steps.append(dict(
            stats={k: v for k, v in stats.items() if isinstance(v, (int, float)) and k != "elapsed_time"},
            ce=[c for c in ce_log], acc=[a for a in acc_log],
            grads=grad_log[step]["grads"], norm=grad_log[step]["norm"], lora_after=after,
        ))
    result["steps"] = steps
    result["decisions"] = rnd.log

    if args.stage == "f32" and args.rule == "head":
        result["alone"] = items_alone(torch, engine, train_feeder, items, batch, params, lkeys, ce_log, ar_nar)
        result["ar_logits_in_process"] = ar_logits(torch, module, items[0])
        # upstream's export expects the LoRA's checkpoint folder to exist already (a training run has saved
        # checkpoints there); saving checkpoints needs a process group, so only the folder is made here
        (Path(args.work) / "ckpt" / LORA_FULL_NAME).mkdir(parents=True, exist_ok=True)
        engines.export(userdata={}, callback=extract_lora)
    torch.save(result, args.result)


def items_alone(torch, engine, train_feeder, items, batch, params, lkeys, ce_log, ar_nar):
    """Each item as a batch of one through upstream's train_feeder + Engine.backward (no optimizer step), at
    the LoRA after step 3: its loss and gradients, to compare with the same items inside the 5-item batch."""
    out = []
    with torch.no_grad():
        for k in lkeys:
            params[k].grad = None
    for i, it in enumerate(items):
        one = {k: [v[i]] for k, v in batch.items()}
        choices, draws = scripted_decisions([it])
        rnd = ScriptedRandom(choices, draws)
        ar_nar.random = rnd
        ce_log.clear()
        loss, stats = train_feeder(engine=engine, batch=one)
        engine.backward(loss)
        rnd.done()
        out.append(dict(loss=loss.detach().clone(), grads={k: params[k].grad.detach().clone() for k in lkeys}))
        with torch.no_grad():
            for k in lkeys:
                params[k].grad = None
    # the batch itself at the same LoRA, for the comparison
    choices, draws = scripted_decisions(items)
    rnd = ScriptedRandom(choices, draws)
    ar_nar.random = rnd
    ce_log.clear()
    loss, stats = train_feeder(engine=engine, batch=batch)
    engine.backward(loss)
    rnd.done()
    together = dict(loss=loss.detach().clone(), items=[c for c in ce_log],
                    grads={k: params[k].grad.detach().clone() for k in lkeys})
    with torch.no_grad():
        for k in lkeys:
            params[k].grad = None
    return dict(items=out, batch=together)


def swap_in_dec2024_embedding(base, old_base_file):
    """Rule (b) of training-spec section 4.2: replaces HEAD's AudioEmbedding.forward by the one of upstream
    commit cd4a5f4 (read from that commit's vall_e/models/base.py at run time, as the inference golden did),
    which sums levels 0..quant_level-1 instead of 0..quant_level; the call sites stay HEAD's."""
    import ast

    src = old_base_file.read_text()
    tree = ast.parse(src)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "AudioEmbedding")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    module = ast.Module(body=[fn], type_ignores=[])
    namespace = {}
    exec(compile(module, f"{old_base_file}:AudioEmbedding.forward", "exec"), base.__dict__, namespace)
    base.AudioEmbedding.forward = namespace["forward"]


def make_true_f64(torch, llama):
    """For the float64 reference only: upstream's RMSNorm and RoPE compute in float32 even when the module is
    float64 (spec section 14.3); these dtype-preserving versions make the reference float64 throughout."""

    def rms_forward(self, x):
        v = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(v + self.variance_epsilon))

    def rope_forward(self, x, position_ids):
        dim = self.config.hidden_size // self.config.num_attention_heads
        inv = 1.0 / (self.config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        freqs = position_ids[:, :, None].to(torch.float64) * inv[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    llama.RMSNorm.forward = rms_forward
    llama.RotaryEmbedding.forward = rope_forward


def ar_logits(torch, module, item):
    """Teacher-forced logits of the AR item (level 0 with the stop token appended, as trained), through
    upstream's Base.inputs / Base.forward in eval mode (LoRA enabled)."""
    was = module.training
    module.eval()
    resp = torch.cat([item["resp"][:, :1], torch.full((1, 1), 1024)]).to(torch.int16)
    with torch.no_grad():
        inputs = module.inputs(
            phns_list=[item["phn"].to(torch.int16)], proms_list=[item["prom"].to(torch.int16)],
            resps_list=[resp], lang_list=[torch.tensor([item["lang"]], dtype=torch.uint8)],
            task_list=["tts"], quant_levels=[0],
        )
        out = module.forward_super(inputs=inputs, quant_levels=[0])
    module.train(was)
    return out.logits[0].detach().to(torch.float64).clone()


# --------------------------------------------------------------------------------------------------
# orchestrator


def run_stage(upstream, work, stage_name, rule="head", lora_file=None):
    result = Path(work) / f"result-{stage_name}-{rule}.pt"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", stage_name, "--rule", rule, "--work", str(work),
           "--result", str(result), upstream]
    if lora_file is not None:
        cmd += ["--lora-file", str(Path(lora_file).resolve())]
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
    env.pop("VALLE_YAML", None)
    env.pop("VALLE_LORA", None)
    env.pop("VALLE_MODEL", None)
    proc = subprocess.run(cmd, cwd=str(work), env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"stage {stage_name} failed")
    import torch

    return torch.load(result)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("upstream", help="path of an e-c-k-e-r/vall-e checkout at " + UPSTREAM_COMMIT)
    ap.add_argument("--model", default=str(ROOT / "tests" / "fixtures" / "valle-tiny" / "model.sft"))
    ap.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "train-golden"))
    ap.add_argument("--dec2024-base", help="vall_e/models/base.py of upstream commit " + DEC2024_COMMIT +
                    " for the rule (b) case; default: `git show` from the checkout if it has that history")
    ap.add_argument("--load-ours", nargs="+", metavar="FILE",
                    help="instead of training: load each LoRA file (trained here by tools/golden/train_ours.ts) "
                         "through upstream's --lora path and write upstream's AR logits for it into --out "
                         "(ours_logits.safetensors, manifest.json: ours)")
    ap.add_argument("--stage", choices=["f32", "f64", "loadback"], help=argparse.SUPPRESS)
    ap.add_argument("--lora-file", help=argparse.SUPPRESS)
    ap.add_argument("--rule", choices=["head", "dec2024"], default="head", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        return stage(args)

    import torch

    sys.path.insert(0, str(HERE))
    import train_lora_out as out

    with tempfile.TemporaryDirectory(prefix="train-golden-") as work:
        work = Path(work)
        (work / "config.yaml").write_text(yaml_text())
        (work / "ckpt" / MODEL_FULL_NAME).mkdir(parents=True)
        os.symlink(Path(args.model).resolve(), work / "ckpt" / MODEL_FULL_NAME / "fp32.sft")
        case = make_case(torch)
        torch.save(case, work / "case.pt")
        if args.load_ours:
            out.check_case(Path(args.out), case)
            out.write_ours(Path(args.out), {f: run_stage(args.upstream, work, "loadback", lora_file=f)
                                            for f in args.load_ours})
            return
        r32 = run_stage(args.upstream, work, "f32")
        r64 = run_stage(args.upstream, work, "f64")
        back = run_stage(args.upstream, work, "loadback")
        lora_sft = (work / "ckpt" / LORA_FULL_NAME / "lora.sft").read_bytes()
        old = dec2024_source(args)
        if old is None:
            raise SystemExit("the rule (b) case needs vall_e/models/base.py of " + DEC2024_COMMIT +
                             ": pass --dec2024-base FILE or a checkout with that history")
        (work / "base_dec2024.py").write_text(old)
        dec = (run_stage(args.upstream, work, "f32", "dec2024"), run_stage(args.upstream, work, "f64", "dec2024"))
        out.write(Path(args.out), case, r32, r64, back, lora_sft, yaml_text(), dec)


def dec2024_source(args):
    if args.dec2024_base:
        return Path(args.dec2024_base).read_text()
    proc = subprocess.run(["git", "-C", args.upstream, "show", f"{DEC2024_COMMIT}:vall_e/models/base.py"],
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


if __name__ == "__main__":
    main()
