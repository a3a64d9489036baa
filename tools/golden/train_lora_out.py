"""Writes tests/fixtures/train-golden/ from the stage results of train_lora.py (own code)."""

import hashlib
import json
from pathlib import Path

import torch

import train_lora as T
from train_lora_standins import write_safetensors

KIND_IDS = {"ar": 0, "nar": 1, "nar_len": 2}


def _f32(x):
    return torch.as_tensor(x).detach().to(torch.float32).contiguous()


def _i32(x):
    return torch.as_tensor(x).detach().to(torch.int32).contiguous()


def _noise(keys, ra, rb):
    noise = {}
    for k, (a, b) in enumerate(zip(ra["steps"], rb["steps"])):
        st = f"step{k + 1}"
        noise[f"{st}.loss"] = abs(a["stats"]["loss.nll"] - b["stats"]["loss.nll"])
        noise[f"{st}.loss_items"] = max(abs(float(x) - float(y)) for x, y in zip(a["ce"], b["ce"]))
        noise[f"{st}.grad_norm"] = abs(float(a["norm"]) - float(b["norm"]))
        noise[f"{st}.grads_max_abs"] = max(float((a["grads"][q].double() - b["grads"][q]).abs().max()) for q in keys)
        noise[f"{st}.grads_max_abs_value"] = max(float(b["grads"][q].abs().max()) for q in keys)
        noise[f"{st}.grads_max_rel_l2_per_tensor"] = max(
            float(((a["grads"][q].double() - b["grads"][q]).norm() / b["grads"][q].norm())) for q in keys)
        noise[f"{st}.grads_min_abs_value"] = min(float(b["grads"][q].abs().min()) for q in keys)
        noise[f"{st}.lora_after_max_abs"] = max(
            float((a["lora_after"][q].double() - b["lora_after"][q]).abs().max()) for q in keys)
    noise["f64_run_acc_equal"] = all(
        abs(float(x) - float(y)) < 1e-12 for a, b in zip(ra["steps"], rb["steps"]) for x, y in zip(a["acc"], b["acc"]))
    return noise


def write(out: Path, case, r32, r64, back, lora_sft: bytes, yaml_text: str, dec=None):
    out.mkdir(parents=True, exist_ok=True)
    items = case["items"]
    keys = T.lora_keys()
    docs = {}  # file -> {tensor: (shape, dtype, meaning)}

    def put(file, tensors, name, value, meaning):
        tensors[name] = value
        docs.setdefault(file, {})[name] = (list(value.shape), {torch.float32: "F32", torch.int32: "I32", torch.uint8: "U8"}[value.dtype], meaning)

    # ---------------------------------------------------------------- train.safetensors
    tr = {}
    f = "train.safetensors"
    for i, it in enumerate(items):
        put(f, tr, f"item{i}.phn", _i32(it["phn"]), f"phoneme ids incl. <bos>=1 ... <eos>=2 ({it['kind']} item, n = {it['n']})")
        put(f, tr, f"item{i}.prom", _i32(it["prom"]), f"prompt codes [P={it['P']}, 8] (all 8 levels, as the dataloader gives them)")
        put(f, tr, f"item{i}.resp", _i32(it["resp"]), f"target codes [T={it['T']}, 8] (all 8 levels; upstream keeps levels 0..q)")
        put(f, tr, f"item{i}.lang", _i32([it["lang"]]), "language id")
        if it["mask"] is not None:
            put(f, tr, f"item{i}.mask", it["mask"].to(torch.uint8), "NAR-len mask [T]: 1 = frame replaced by the mask token 1024 and scored")
    put(f, tr, "levels", _i32([it["level"] for it in items]), "target RVQ level q per item (the recorded random.choice)")
    put(f, tr, "kinds", _i32([KIND_IDS[it["kind"]] for it in items]), "item kind: 0 AR (level 0 + stop token), 1 NAR level q, 2 NAR-len (level 0, masked)")
    steps = r32["steps"]
    put(f, tr, "loss", _f32([s["stats"]["loss.nll"] for s in steps]), "[3] batch loss of step k (forward before update k) = mean of loss_items (loss.nll)")
    put(f, tr, "loss_items", _f32(torch.stack([torch.stack(s["ce"]) for s in steps])), "[3, 5] per-item mean cross entropy (upstream's _calc_loss per item)")
    put(f, tr, "acc", _f32([s["stats"]["stats.acc"] for s in steps]), "[3] top-10 accuracy metric (stats.acc = mean over items)")
    put(f, tr, "acc_items", _f32(torch.stack([torch.stack(s["acc"]) for s in steps])), "[3, 5] per-item top-10 accuracy")
    put(f, tr, "grad_norm", _f32([float(s["norm"]) for s in steps]), "[3] pre-clip total L2 norm of all LoRA gradients (clip_grad_norm_'s return value)")
    put(f, tr, "ar_logits", _f32(back["ar_logits"]), "[N=24, 1025] AR item logits (eval, teacher-forced level 0 + stop) from upstream after loading lora.sft with --lora")
    write_safetensors(tr, str(out / f), {"about": "train golden: inputs, losses, metrics, AR logits", "settings": yaml_text})

    # ---------------------------------------------------------------- LoRA states and gradients
    def lora_file(name, state, meaning):
        t = {}
        for k in keys:
            put(name, t, k, _f32(state[k]), meaning)
        write_safetensors(t, str(out / name), {"about": meaning, "config": json.dumps(dict(T.LORA, training=True, embeddings=False, parametrize=False, rvq_levels=[], path=None))})

    lora_file("lora_init.safetensors", case["lora"], "initial LoRA (seeded uniform A and B)")
    for k in range(T.STEPS):
        lora_file(f"lora_step{k + 1}.safetensors", steps[k]["lora_after"], f"LoRA after optimizer step {k + 1}")
    g = {}
    for k, s in enumerate(steps):
        prefix = "" if k == 0 else f"step{k + 1}."
        for key in keys:
            put("grads.safetensors", g, f"{prefix}{key}.grad", _f32(s["grads"][key]),
                f"dL/d{key.rsplit('.', 1)[1]} of step {k + 1} (pre-clip, GAS 1)")
    write_safetensors(g, str(out / "grads.safetensors"), {"about": "LoRA gradients, pre-clip"})
    (out / "lora.sft").write_bytes(lora_sft)

    # ---------------------------------------------------------------- noise floor f32 vs f64
    noise = _noise(keys, r32, r64)

    # ---------------------------------------------------------------- rule (b) case
    dec_info = None
    if dec is not None:
        d32, d64 = dec
        f = "dec2024.safetensors"
        t = {}
        ds = d32["steps"]
        put(f, t, "loss", _f32([s["stats"]["loss.nll"] for s in ds]), "[3] rule (b): batch loss of step k")
        put(f, t, "loss_items", _f32(torch.stack([torch.stack(s["ce"]) for s in ds])), "[3, 5] rule (b): per-item cross entropy")
        put(f, t, "acc", _f32([s["stats"]["stats.acc"] for s in ds]), "[3] rule (b): top-10 accuracy")
        put(f, t, "acc_items", _f32(torch.stack([torch.stack(s["acc"]) for s in ds])), "[3, 5] rule (b): per-item top-10 accuracy")
        put(f, t, "grad_norm", _f32([float(s["norm"]) for s in ds]), "[3] rule (b): pre-clip LoRA gradient norm")
        for q in keys:
            put(f, t, f"{q}.grad", _f32(ds[0]["grads"][q]), "rule (b): step-1 gradient (pre-clip) at lora_init")
        for k in range(T.STEPS):
            for q in keys:
                put(f, t, f"step{k + 1}.{q}", _f32(ds[k]["lora_after"][q]), f"rule (b): LoRA after step {k + 1}")
        write_safetensors(t, str(out / f), {"about": "rule (b) (Dec-2024 embedding sums, AudioEmbedding.forward of "
                                                     + T.DEC2024_COMMIT + "), same batch, init and settings"})
        dec_info = {
            "source": "AudioEmbedding.forward of " + T.DEC2024_COMMIT + " swapped into HEAD",
            "grad_norm_pre_clip": [float(s["norm"]) for s in ds],
            "stats_per_step": [s["stats"] for s in ds],
            "f32_vs_f64": _noise(keys, d32, d64),
            "step1_loss_items_minus_head": [float(x) - float(y) for x, y in zip(ds[0]["ce"], steps[0]["ce"])],
        }

    # ---------------------------------------------------------------- batch of 5 vs each item alone
    al = r32["alone"]
    mean_alone = {q: sum(x["grads"][q].double() for x in al["items"]) / len(al["items"]) for q in keys}
    batch_vs_alone = {
        "at": "LoRA after step 3, float32",
        "loss_items_max_abs": max(abs(float(x["loss"]) - float(y)) for x, y in zip(al["items"], al["batch"]["items"])),
        "loss_mean_max_abs": abs(float(al["batch"]["loss"]) - sum(float(x["loss"]) for x in al["items"]) / len(al["items"])),
        "grads_max_abs": max(float((al["batch"]["grads"][q].double() - mean_alone[q]).abs().max()) for q in keys),
    }

    # ---------------------------------------------------------------- Adam sensitivity of the first update
    # a first AdamW step moves each element by lr * g / (|g| + eps); its derivative lr * eps / (|g| + eps)^2
    # is large where |g| is small, so tiny gradient differences move those elements a lot
    g1 = torch.cat([steps[0]["grads"][q].flatten().double() * min(1.0, T.CLIP / float(steps[0]["norm"])) for q in keys])
    sens = float((T.LR * 1e-7 / (g1.abs() + 1e-7) ** 2).max())
    adam = {"step1_min_abs_clipped_grad": float(g1.abs().min()), "step1_max_dupdate_dgrad": sens}

    # ---------------------------------------------------------------- manifest
    exported = {}
    import train_lora_standins as S

    lt, lmeta = S.read_safetensors(out / "lora.sft")
    exported["keys"] = sorted(lt.keys())
    exported["dtypes"] = sorted({str(v.dtype) for v in lt.values()})
    exported["metadata"] = lmeta
    exported["equals_lora_step3"] = all(torch.equal(lt[k], _f32(steps[-1]["lora_after"][k])) for k in keys)
    exported["loaded_back_max_abs_diff"] = back["loaded_vs_exported"]
    exported["loaded_back_scaling"] = back["lora_scaling"]
    exported["logits_loadback_vs_in_process_max_abs"] = float((back["ar_logits"] - r32["ar_logits_in_process"]).abs().max())

    files = {}
    for p in sorted(out.iterdir()):
        if p.suffix in (".safetensors", ".sft"):
            files[p.name] = {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
    manifest = {
        "upstream": {"repo": "e-c-k-e-r/vall-e", "commit": T.UPSTREAM_COMMIT},
        "generator": "tools/golden/train_lora.py",
        "torch": torch.__version__,
        "model": "tests/fixtures/valle-tiny/model.sft",
        "seed": T.SEED,
        "yaml": json.loads(yaml_text),
        "items": [{k: it[k] for k in ("kind", "level", "n", "P", "T", "lang")} for it in items],
        "sequence_length_N": T.N_TOTAL,
        "decisions_per_step": [list(x) for x in r32["decisions"]],
        "lr": T.LR, "clip": T.CLIP, "steps": T.STEPS,
        "adamw": {"betas": [0.9, 0.96], "eps": 1e-7, "weight_decay": 0.01},
        "lora_scaling": 2.0,
        "grad_norm_pre_clip": [float(s["norm"]) for s in steps],
        "stats_per_step": [s["stats"] for s in steps],
        "f32_vs_f64": noise,
        "batch_vs_alone": batch_vs_alone,
        "dec2024": dec_info,
        "adam_first_step_sensitivity": adam,
        "export": exported,
        "files": files,
        "tensors": {f: {k: {"shape": v[0], "dtype": v[1], "doc": v[2]} for k, v in d.items()} for f, d in docs.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps({"dec2024": dec_info, "noise": noise, "alone": batch_vs_alone, "adam": adam, "export": {k: v for k, v in exported.items() if k != "keys"}, "files": files}, indent=1))


def check_case(out: Path, case):
    """The batch make_case rebuilds must be the one the folder holds (its AR item is what --load-ours runs)."""
    import train_lora_standins as S

    tr = S.read_safetensors(out / "train.safetensors")[0]
    for i, it in enumerate(case["items"]):
        for name in ("phn", "prom", "resp"):
            assert torch.equal(_i32(it[name]), tr[f"item{i}.{name}"]), f"item{i}.{name} differs from {out}"


def write_ours(out: Path, loaded):
    """Upstream's AR logits for each LoRA trained here (`--load-ours`): ours_logits.safetensors, manifest: ours."""
    import train_lora_standins as S

    tensors, docs, loras = {}, {}, {}
    theirs = S.read_safetensors(out / "train.safetensors")[0]["ar_logits"]
    for file, r in loaded.items():
        file = Path(file)
        stored = S.read_safetensors(file)[0]
        dtypes = sorted({str(v.dtype) for v in stored.values()})
        assert len(dtypes) == 1, dtypes
        key = f"{file.stem}.ar_logits"
        tensors[key] = _f32(r["ar_logits"])
        docs[key] = {"shape": list(tensors[key].shape), "dtype": "F32",
                     "doc": f"[N=24, 1025] AR item logits (eval, teacher-forced level 0 + stop) from upstream after "
                            f"loading {file.name} (trained here) with --lora"}
        loras[file.name] = {
            "dtype": {"torch.float32": "F32", "torch.float16": "F16"}[dtypes[0]],
            "logits": key,
            "config_read_by_upstream": r["lora_config"],
            "loaded_param_dtypes": r["param_dtypes"],
            "loaded_vs_file_max_abs_diff": r["loaded_vs_exported"],
            "loaded_scaling": r["lora_scaling"],
            "training_mode": r["training_mode"],
            "logits_vs_ar_logits_max_abs": float((tensors[key] - theirs).abs().max()),
        }
    name = "ours_logits.safetensors"
    write_safetensors(tensors, str(out / name), {"about": "upstream's AR logits with each LoRA trained here"})
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["ours"] = {
        "made_by": "tools/golden/train_ours.ts: our training step (CPU backend, f32 weights) on this batch from "
                   "lora_init, the same steps and optimizer; exportLora as f32 and f16",
        "loaded_by": "train_lora.py --load-ours: a fresh process started like the CLI (--yaml, --lora FILE), "
                     "load_engines(training=False), Base.inputs + Base.forward of item 0",
        "logits": name,
        "loras": loras,
    }
    for f in [*(Path(f).name for f in loaded), name]:
        p = out / f
        manifest["files"][f] = {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest["tensors"][name] = docs
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(manifest["ours"], indent=1))
