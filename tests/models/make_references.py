#!/usr/bin/env python3
"""Generate PyTorch/transformers reference fixtures for Emily's model test tier.

Writes (under --out, default tests/models/fixtures next to this script):

  minilm/   sentence-transformers all-MiniLM-L6-v2 embeddings + tokenizer ids
  smollm2/  SmolLM2-135M-Instruct (GGUF Q4_1, dequantised to f32 by transformers):
            greedy generations, first-step logits, layer-0 weights
  zoo/<arch>/  tiny random-weight models (config.json + model.safetensors) with
            reference inputs/outputs, for loading through Bumblebee

Everything loads from local files (HF_HUB_OFFLINE=1). Deterministic: fixed
seeds, single thread, CPU, float32.

Environment (CPU; PyPI's torch wheel also pulls NVIDIA's libraries, unused here):
  python3 -m venv ~/.cache/emily/pyref
  ~/.cache/emily/pyref/bin/pip install torch==2.15.0 transformers==5.25.0 \
      sentence-transformers==6.3.0 safetensors==0.8.0 gguf==0.19.0 accelerate==1.16.0 \
      numpy==2.4.6 tokenizers==0.23.3
Rerun:  ~/.cache/emily/pyref/bin/python tests/models/make_references.py
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import inspect
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

HERE = Path(__file__).resolve().parent


def versions():
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in [
        "torch",
        "transformers",
        "sentence-transformers",
        "safetensors",
        "gguf",
        "accelerate",
        "numpy",
        "tokenizers",
    ]:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def f32(t):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        return np.ascontiguousarray(t.to(torch.float32).numpy())
    return np.ascontiguousarray(np.asarray(t, dtype=np.float32))


def i64(t):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(t, dtype=np.int64))


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def write_st(path, tensors, metadata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata=metadata)
    desc = ", ".join(f"{k}{list(v.shape)}:{v.dtype}" for k, v in tensors.items())
    print(f"wrote {path} ({path.stat().st_size} bytes): {desc}")


def seed_all(seed=0):
    torch.manual_seed(seed)
    np.random.seed(seed)


# ---------------------------------------------------------------------------
# 1. MiniLM
# ---------------------------------------------------------------------------

MINILM_SENTENCES = [
    "Hi",
    "The cat sat on the mat.",
    "A cat was sitting on the rug.",
    "How do I reset my password?",
    "What is the procedure for changing my account password?",
    "The stock market fell 3.5% on Tuesday, erasing $1.2 trillion in value.",
    "Photosynthesis converts sunlight, water, and carbon dioxide into glucose and oxygen.",
    "Café culture in Paris is famous around the world.",
    "Wow!!! Really?! That's... unexpected.",
    (
        "The Roman Empire, at its height in the second century, stretched from the "
        "windswept hills of northern Britain to the deserts of Egypt and the rivers of "
        "Mesopotamia, and its network of paved roads, aqueducts, harbours and frontier "
        "forts allowed soldiers, merchants, officials and ideas to move across three "
        "continents with a speed and safety that would not be matched again for more "
        "than a thousand years."
    ),
    (
        "Training a large neural network usually involves feeding it billions of "
        "examples in small batches, computing a loss that measures how wrong its "
        "predictions are, and then using backpropagation and an optimiser such as Adam "
        "to nudge millions of parameters in the direction that reduces that loss, a "
        "process that is repeated for many epochs on clusters of specialised "
        "accelerators."
    ),
    "The recipe calls for 2 cups of flour, 3 eggs, and 250 ml of milk.",
    "Quantum computers use qubits that can exist in a superposition of states.",
    "The football match ended 2-1 after extra time.",
    "Please turn off the lights before leaving the room.",
    "Mount Everest is 8,849 metres tall, the highest peak on Earth.",
]
MINILM_QUERY = "How high is the tallest mountain in the world?"
MINILM_EXPECTED = 15


def make_minilm(models_dir, out_dir):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    src = models_dir / "all-minilm-l6-v2"
    out = out_dir / "minilm"
    seed_all(0)

    st = SentenceTransformer(str(src), device="cpu")
    st.eval()
    sentences = MINILM_SENTENCES
    assert len(sentences) == 16
    emb = st.encode(sentences, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    qemb = st.encode([MINILM_QUERY], normalize_embeddings=True, convert_to_numpy=True)
    sims = (emb @ qemb[0]).astype(np.float64)
    order = np.argsort(-sims)
    nearest = int(order[0])
    margin = float(sims[order[0]] - sims[order[1]])
    assert nearest == MINILM_EXPECTED, (nearest, sims.tolist())
    assert margin > 0.1, f"nearest-neighbour margin too small: {margin}"

    tok = AutoTokenizer.from_pretrained(str(src))
    max_seq_length = int(st.max_seq_length)
    enc = tok(
        sentences,
        padding="longest",
        truncation=True,
        max_length=max_seq_length,
        return_tensors="pt",
    )
    qenc = tok([MINILM_QUERY], return_tensors="pt")

    model = AutoModel.from_pretrained(str(src), dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        out_all = model(**enc)
        lhs = out_all.last_hidden_state
        # manual mean pooling + L2 norm, to double-check the pipeline
        m = enc["attention_mask"].unsqueeze(-1).to(lhs.dtype)
        pooled = (lhs * m).sum(1) / m.sum(1).clamp(min=1e-9)
        manual = torch.nn.functional.normalize(pooled, p=2, dim=1)
    manual_max_abs_diff = float(np.max(np.abs(manual.numpy() - emb)))
    assert manual_max_abs_diff < 1e-5, manual_max_abs_diff

    # first two sentences, un-padded each (their own lengths), for diagnostics
    diag = {}
    with torch.no_grad():
        for i in range(2):
            e = tok([sentences[i]], return_tensors="pt")
            diag[f"last_hidden_state_{i}"] = f32(model(**e).last_hidden_state[0])
            diag[f"input_ids_{i}"] = i64(e["input_ids"][0])

    tensors = {
        "embeddings": f32(emb),
        "query_embedding": f32(qemb[0]),
        "similarities": f32(sims),
        "input_ids": i64(enc["input_ids"]),
        "attention_mask": i64(enc["attention_mask"]),
        "token_type_ids": i64(enc["token_type_ids"]),
        "query_input_ids": i64(qenc["input_ids"][0]),
        # last_hidden_state of the padded batch, rows 0 and 1, first 9 positions
        # (sentence 1's full length; sentence 0 is padded from position 3 on)
        "last_hidden_state_batch_0_1": f32(lhs[:2, : int(enc["attention_mask"][1].sum())]),
        **diag,
    }
    write_st(out / "reference.safetensors", tensors)

    modules = json.loads((src / "modules.json").read_text())
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "local_dir": "~/.cache/emily/models/all-minilm-l6-v2",
        "pipeline": "SentenceTransformer(dir, device='cpu').encode(sentences, normalize_embeddings=True): "
        "BertModel last_hidden_state -> mean pooling over attention_mask -> L2 normalise",
        "sentence_transformers_modules": modules,
        "pooling_config": pooling,
        "max_seq_length": max_seq_length,
        "sentences": sentences,
        "query": MINILM_QUERY,
        "expected_neighbour_index": MINILM_EXPECTED,
        "expected_neighbour_sentence": sentences[MINILM_EXPECTED],
        "similarities_to_query": [round(float(s), 6) for s in sims],
        "neighbour_margin": round(margin, 6),
        "ranking": [int(i) for i in order],
        "tokenizer_padding": "longest (right padding, pad id %d), truncation at max_seq_length" % tok.pad_token_id,
        "padded_length": int(enc["input_ids"].shape[1]),
        "sequence_lengths": [int(x) for x in enc["attention_mask"].sum(1)],
        "manual_mean_pool_max_abs_diff": manual_max_abs_diff,
        "tensors": {
            "embeddings": "[16,384] f32, L2-normalised sentence embeddings (sentence-transformers)",
            "query_embedding": "[384] f32",
            "similarities": "[16] f32, embeddings @ query_embedding",
            "input_ids": "[16,L] i64, batch padded to longest",
            "attention_mask": "[16,L] i64",
            "token_type_ids": "[16,L] i64 (all zeros)",
            "query_input_ids": "[Lq] i64",
            "last_hidden_state_batch_0_1": "[2,9,384] f32: AutoModel last_hidden_state of the padded 16-batch, rows 0,1, positions [0,9) "
            "(row 0 has attention_mask 0 from position 3 on)",
            "last_hidden_state_0": "[L0,384] f32: sentence 0 alone (unpadded)",
            "last_hidden_state_1": "[L1,384] f32: sentence 1 alone (unpadded)",
            "input_ids_0": "[L0] i64",
            "input_ids_1": "[L1] i64",
        },
        "dtype": "float32",
        "versions": versions(),
    }
    write_json(out / "reference.json", meta)


# ---------------------------------------------------------------------------
# 2. SmolLM2 (GGUF)
# ---------------------------------------------------------------------------

SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_PROMPTS = [
    "What is the capital of France?",
    "What is 12 plus 30?",
    "Write a haiku about the sea.",
    "List three colours.",
]
SMOL_COMPLETION = "The capital of France is"
SMOL_NEW_TOKENS = 32
SMOL_COMPLETION_TOKENS = 8


def _gguf_notes():
    """Read transformers' own source to document the GGUF conversion."""
    import gguf.quants as gq
    import transformers.modeling_gguf_pytorch_utils as mg

    src_proc = inspect.getsource(mg.LlamaTensorProcessor)
    src_q41 = inspect.getsource(gq.Q4_1.dequantize_blocks)
    src_q80 = inspect.getsource(gq.Q8_0.dequantize_blocks)
    load_src = inspect.getsource(mg.load_gguf_checkpoint)
    assert "_reverse_permute_weights" in src_proc
    assert "dequantize(tensor.data, tensor.tensor_type)" in load_src
    return {
        "dequantisation": (
            "transformers.modeling_gguf_pytorch_utils.load_gguf_checkpoint calls "
            "gguf.dequantize(tensor.data, tensor.tensor_type) (gguf-py, gguf/quants.py) for every tensor, "
            "then casts to the requested torch dtype (float32). "
            "Q4_1 (block of 32 weights, 20 bytes: f16 d, f16 m, 16 bytes qs): gguf.quants.Q4_1.dequantize_blocks: "
            "q[j] = qs[j] & 0x0F for j<16, q[j+16] = qs[j] >> 4; w = d * q + m (d, m f16 widened to f32). "
            "Q8_0 (block of 32, 34 bytes: f16 d, 32 x int8): gguf.quants.Q8_0.dequantize_blocks: w = d * int8. "
            "F32 tensors are viewed as-is. GGUF dims are [ne0=in_features, ne1=out_features]; the numpy array "
            "(and hence the torch weight) is [out_features, in_features] (row-major, reversed GGUF dims)."
        ),
        "qk_permutation": (
            "Yes: transformers' LlamaTensorProcessor.process reverse-permutes blk.N.attn_q.weight with "
            "n_head=num_attention_heads (9) and blk.N.attn_k.weight with n_head=num_key_value_heads (3) "
            "(attn_v, attn_output, ffn_*, norms untouched). Exact formula "
            "(_reverse_permute_weights): dim = W.shape[0] // n_head // 2; "
            "W_hf = W_gguf.reshape(n_head, dim, 2, in_features).swapaxes(2, 1).reshape(W_gguf.shape). "
            "I.e. for head h, i in [0,dim), p in {0,1}: W_hf[h*2*dim + p*dim + i, :] = W_gguf[h*2*dim + 2*i + p, :]. "
            "This undoes llama.cpp convert_hf_to_gguf.py LlamaModel.permute "
            "(W.reshape(n_head, 2, dim, in).swapaxes(1, 2).reshape(W.shape)), which converts HF's "
            "rotate_half (split-halves) RoPE layout into GGML's interleaved-pairs layout. For q_proj: "
            "n_head=9, dim=32 (head_dim 64); for k_proj: n_head=3, dim=32."
        ),
        "tied_embeddings": (
            "The GGUF has no output.weight; transformers ties lm_head.weight to model.embed_tokens.weight "
            "(token_embd.weight, Q8_0 dequantised)."
        ),
        "source_excerpts": {
            "LlamaTensorProcessor": src_proc,
            "gguf.quants.Q4_1.dequantize_blocks": src_q41,
            "gguf.quants.Q8_0.dequantize_blocks": src_q80,
        },
    }


def _gguf_tensor_types(path):
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    out = {}
    for t in r.tensors:
        if t.name.startswith("blk.0.") or not t.name.startswith("blk."):
            out[t.name] = {"type": t.tensor_type.name, "shape_gguf": [int(x) for x in t.shape]}
    return out


def _verify_gguf_layer0(path, sd, cfg):
    """Independently dequantise blk.0 tensors and check the documented formulas
    reproduce transformers' state_dict exactly."""
    from gguf import GGUFReader, dequantize

    r = GGUFReader(str(path))
    raw = {t.name: t for t in r.tensors}

    def deq(name):
        t = raw[name]
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        return w.reshape([int(x) for x in reversed(t.shape)])  # [out, in]

    def unpermute(w, n_head):
        # explicit index form of transformers' _reverse_permute_weights
        dim = w.shape[0] // n_head // 2
        out = np.empty_like(w)
        for h in range(n_head):
            for p in range(2):
                for i in range(dim):
                    out[h * 2 * dim + p * dim + i] = w[h * 2 * dim + 2 * i + p]
        return out

    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    checks = {
        "model.layers.0.self_attn.q_proj.weight": unpermute(deq("blk.0.attn_q.weight"), nh),
        "model.layers.0.self_attn.k_proj.weight": unpermute(deq("blk.0.attn_k.weight"), nkv),
        "model.layers.0.self_attn.v_proj.weight": deq("blk.0.attn_v.weight"),
        "model.layers.0.self_attn.o_proj.weight": deq("blk.0.attn_output.weight"),
        "model.layers.0.mlp.gate_proj.weight": deq("blk.0.ffn_gate.weight"),
        "model.layers.0.mlp.up_proj.weight": deq("blk.0.ffn_up.weight"),
        "model.layers.0.mlp.down_proj.weight": deq("blk.0.ffn_down.weight"),
        "model.layers.0.input_layernorm.weight": deq("blk.0.attn_norm.weight"),
        "model.layers.0.post_attention_layernorm.weight": deq("blk.0.ffn_norm.weight"),
        "model.embed_tokens.weight": deq("token_embd.weight"),
        "model.norm.weight": deq("output_norm.weight"),
    }
    result = {}
    for k, w in checks.items():
        ref = sd[k].numpy()
        assert w.shape == ref.shape, (k, w.shape, ref.shape)
        d = float(np.max(np.abs(w - ref)))
        assert d == 0.0, (k, d)
        result[k] = "bit-exact"
    # and the q permutation is not the identity (so the check means something)
    q_raw = deq("blk.0.attn_q.weight")
    result["q_proj_differs_from_raw_gguf_row_order"] = bool(
        not np.array_equal(q_raw, sd["model.layers.0.self_attn.q_proj.weight"].numpy())
    )
    return result


def make_smollm2(models_dir, out_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    src = models_dir / "smollm2-135m-instruct"
    out = out_dir / "smollm2"
    seed_all(0)

    tok = AutoTokenizer.from_pretrained(str(src), gguf_file=SMOL_GGUF)
    model = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=SMOL_GGUF, dtype=torch.float32)
    model.eval()
    cfg = model.config

    # Pure greedy argmax, no logits processors, EOS does not stop generation so
    # exactly SMOL_NEW_TOKENS tokens are produced.
    def gen_config(n):
        return GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=n,
            min_new_tokens=None,
            eos_token_id=None,
            pad_token_id=cfg.pad_token_id if cfg.pad_token_id is not None else 0,
            bos_token_id=cfg.bos_token_id,
            temperature=None,
            top_p=None,
            top_k=None,
            repetition_penalty=None,
        )

    eos_id = tok.eos_token_id
    bos_id = tok.bos_token_id
    # generate() fills None fields of the passed GenerationConfig from
    # model.generation_config, so the model default EOS must be cleared too.
    model.generation_config.eos_token_id = None
    model.generation_config.forced_eos_token_id = None

    def run(ids, n):
        ids_t = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad():
            logits = model(input_ids=ids_t).logits[0, -1].clone()
            g = model.generate(
                input_ids=ids_t,
                attention_mask=torch.ones_like(ids_t),
                generation_config=gen_config(n),
            )
        new = g[0, len(ids):].tolist()
        assert len(new) == n, (len(new), n)
        assert new[0] == int(torch.argmax(logits)), "first generated token != argmax of prompt logits"
        # cross-check with a hand-written greedy loop (full recompute, no cache)
        with torch.no_grad():
            cur = list(ids)
            manual = []
            for _ in range(n):
                lg = model(input_ids=torch.tensor([cur])).logits[0, -1]
                nxt = int(torch.argmax(lg))
                manual.append(nxt)
                cur.append(nxt)
        assert manual == new, ("manual greedy loop disagrees with generate()", manual, new)
        return logits, new

    records = []
    logits_all = []
    for p in SMOL_PROMPTS:
        msgs = [{"role": "user", "content": p}]
        formatted = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        ids_default = tok(formatted).input_ids
        ids_nospecial = tok(formatted, add_special_tokens=False).input_ids
        ids = ids_default
        logits, new = run(ids, SMOL_NEW_TOKENS)
        logits_all.append(f32(logits))
        eos_pos = [i for i, t in enumerate(new) if t == eos_id]
        records.append(
            {
                "prompt": p,
                "formatted": formatted,
                "input_ids": ids,
                "input_ids_add_special_tokens_false": ids_nospecial,
                "tokenizer_added_bos": len(ids_default) == len(ids_nospecial) + 1
                and ids_default[0] == bos_id,
                "formatted_starts_with_bos_text": formatted.startswith(tok.bos_token),
                "new_ids": new,
                "text": tok.decode(new, skip_special_tokens=False),
                "text_skip_special": tok.decode(new, skip_special_tokens=True),
                "eos_positions_in_new_ids": eos_pos,
                "text_until_eos": tok.decode(new[: eos_pos[0]] if eos_pos else new, skip_special_tokens=True),
                "first_step_argmax": int(torch.argmax(logits)),
                "first_step_top5": [int(i) for i in torch.topk(logits, 5).indices],
            }
        )
        print(f"smollm2 {p!r} -> {records[-1]['text']!r}")

    comp_ids = tok(SMOL_COMPLETION).input_ids
    comp_ids_ns = tok(SMOL_COMPLETION, add_special_tokens=False).input_ids
    comp_logits, comp_new = run(comp_ids, SMOL_COMPLETION_TOKENS)
    completion = {
        "prompt": SMOL_COMPLETION,
        "input_ids": comp_ids,
        "input_ids_add_special_tokens_false": comp_ids_ns,
        "tokenizer_added_bos": comp_ids != comp_ids_ns,
        "new_ids": comp_new,
        "text": tok.decode(comp_new, skip_special_tokens=False),
        "full_text": tok.decode(comp_ids + comp_new, skip_special_tokens=False),
        "first_step_argmax": int(torch.argmax(comp_logits)),
    }
    print(f"smollm2 completion {SMOL_COMPLETION!r} -> {completion['text']!r}")

    write_st(
        out / "reference.safetensors",
        {
            "chat_first_step_logits": np.stack(logits_all),  # [4, vocab]
            "completion_first_step_logits": f32(comp_logits),  # [vocab]
        },
    )

    # layer-0 weights as transformers holds them (after dequant + un-permute)
    sd = model.state_dict()
    full = [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.post_attention_layernorm.weight",
        "model.norm.weight",
    ]
    rows32 = [
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
    ]
    wts = {}
    shapes = {}
    for k in full:
        wts[k] = f32(sd[k])
        shapes[k] = {"full_shape": list(sd[k].shape), "stored": "full"}
    for k in rows32:
        wts[k] = f32(sd[k][:32])
        shapes[k] = {"full_shape": list(sd[k].shape), "stored": "rows [0,32)"}
    k = "model.embed_tokens.weight"
    wts[k] = f32(sd[k][:64])
    shapes[k] = {"full_shape": list(sd[k].shape), "stored": "rows [0,64)"}
    verification = _verify_gguf_layer0(src / SMOL_GGUF, sd, cfg)
    lm_tied = bool(model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr())
    write_st(out / "weights_layer0.safetensors", wts)

    cfg_used = {
        k: getattr(cfg, k, None)
        for k in [
            "model_type",
            "architectures",
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "hidden_act",
            "max_position_embeddings",
            "rms_norm_eps",
            "tie_word_embeddings",
            "bos_token_id",
            "eos_token_id",
            "pad_token_id",
            "attention_bias",
            "mlp_bias",
        ]
    }
    rp = getattr(cfg, "rope_parameters", None)
    cfg_used["rope_parameters"] = dict(rp) if rp is not None else None
    cfg_used["rope_theta"] = (rp or {}).get("rope_theta", getattr(cfg, "rope_theta", None))
    cfg_used["lm_head_shares_embed_tokens_storage"] = lm_tied

    meta = {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)",
        "gguf_file": SMOL_GGUF,
        "local_dir": "~/.cache/emily/models/smollm2-135m-instruct",
        "loading": "AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=torch.float32); "
        "AutoTokenizer.from_pretrained(dir, gguf_file=...)",
        "generation": (
            "Batch 1, no padding. Pure greedy: GenerationConfig(do_sample=False, num_beams=1, "
            f"max_new_tokens=N, eos_token_id=None, no temperature/top_k/top_p/repetition_penalty) so no logits "
            "processor touches the scores and EOS does NOT stop generation: exactly N new tokens are produced "
            "(tokens after an EOS are still the model's argmax continuation). eos_positions_in_new_ids "
            "lists where EOS was emitted. Cross-checked against a hand-written full-recompute argmax loop."
        ),
        "chat_template": "tokenizer.apply_chat_template([{'role':'user','content':p}], add_generation_prompt=True, "
        "tokenize=False), then tokenizer(formatted) (add_special_tokens default)",
        "bos_note": (
            f"bos_token={tok.bos_token!r} (id {bos_id}), eos_token={tok.eos_token!r} (id {eos_id}), "
            f"add_bos_token={getattr(tok, 'add_bos_token', None)}. The tokenizer does not add a BOS; the chat "
            "template's text itself begins with '<|im_start|>' (id 1 = bos id), so input_ids[0] == 1 for chat "
            "prompts. The plain completion prompt gets no BOS."
        ),
        "new_tokens": SMOL_NEW_TOKENS,
        "chat": records,
        "completion": completion,
        "config_used": cfg_used,
        "gguf_tensor_types_layer0_and_globals": _gguf_tensor_types(src / SMOL_GGUF),
        "weights_layer0": {
            "file": "weights_layer0.safetensors",
            "names": "transformers state_dict names, f32, [out_features, in_features]",
            "tensors": shapes,
            "note": "q_proj/k_proj/norms stored fully; v/o/gate/up/down only their first 32 rows "
            "(size budget); embed_tokens first 64 rows. lm_head.weight is tied to embed_tokens.",
        },
        "gguf_layer0_verification": verification,
        "tensors": {
            "reference.safetensors:chat_first_step_logits": "[4, vocab] f32: logits at the last prompt "
            "position (the forward of the prompt), one row per chat prompt",
            "reference.safetensors:completion_first_step_logits": "[vocab] f32",
        },
        "notes": _gguf_notes(),
        "dtype": "float32",
        "versions": versions(),
    }
    write_json(out / "reference.json", meta)


# ---------------------------------------------------------------------------
# 3. Zoo of tiny random models
# ---------------------------------------------------------------------------

VOCAB = 128
MAXPOS = 128
HID = 64
INTER = 128
LAYERS = 2
HEADS = 4
KV = 2
SEQ = 10
PAD_LEN = 3  # the second example has its last 3 positions padded (encoders)


def randomize(model, seed):
    """Replace every parameter with deterministic random values (so norms/biases are non-trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 0:
                continue  # e.g. CLIP logit_scale: keep its init value
            if p.dim() == 1:
                if name.endswith("bias"):
                    v = 0.1 * torch.randn(p.shape, generator=g)
                else:  # norm weights
                    v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            else:
                v = 0.1 * torch.randn(p.shape, generator=g)
            p.copy_(v.to(p.dtype))
    model.eval()
    return model


def token_ids(seed, batch=2, seq=SEQ, low=5, high=VOCAB):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (batch, seq), generator=g)


def padded_mask(batch=2, seq=SEQ, pad=PAD_LEN):
    m = torch.ones(batch, seq, dtype=torch.long)
    m[1, seq - pad :] = 0
    return m


def patch_config(path, extra, arch):
    """Add 4.x-style keys Bumblebee 0.7 reads, without removing any key."""
    cfg = json.loads(path.read_text())
    added = {}

    def put(d, k, v, where=""):
        if d.get(k) is None or k not in d:
            if k not in d or d[k] != v:
                added[where + k] = v
            d[k] = v

    def fix(d, where=""):
        rp = d.get("rope_parameters")
        if isinstance(rp, dict) and "rope_theta" in rp and "rope_theta" not in d:
            d["rope_theta"] = rp["rope_theta"]
            added[where + "rope_theta"] = rp["rope_theta"]
        if "dtype" in d and "torch_dtype" not in d:
            d["torch_dtype"] = d["dtype"] or "float32"
            added[where + "torch_dtype"] = d["torch_dtype"]
        # Bumblebee's number() converter rejects null for keys that are present;
        # give token ids concrete values rather than null.
        for k in ["pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"]:
            if k in d and d[k] is None and k in extra.get("token_ids", {}):
                d[k] = extra["token_ids"][k]
                added[where + k] = d[k]

    fix(cfg)
    for sub in ["text_config", "vision_config"]:
        if isinstance(cfg.get(sub), dict):
            fix(cfg[sub], sub + ".")
    cfg["architectures"] = [arch]
    cfg.setdefault("torch_dtype", "float32")
    cfg["torch_dtype"] = "float32"
    # Bumblebee's Llama rope_scaling converter only accepts null or a known scaling
    # dict; transformers 5 does not write rope_scaling for default rope, but make sure.
    rs = cfg.get("rope_scaling")
    if isinstance(rs, dict) and rs.get("rope_type", rs.get("type")) == "default":
        cfg["rope_scaling"] = None
        added["rope_scaling"] = None
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return cfg, added


def bumblebee_input(note):
    """Splits "name (explanation ... axes [a,b,c])" into the Bumblebee input's name, the
    transpose taking HF's layout to Bumblebee's (or None) and the explanation."""
    m = re.match(r"^(\w+)(?: \((.*)\))?$", note)
    name, why = m.group(1), m.group(2)
    axes = re.search(r"axes \[([\d,]+)\]", why or "")
    return {
        "bumblebee_input": name,
        "bumblebee_transpose": [int(a) for a in axes.group(1).split(",")] if axes else None,
        **({"bumblebee_layout": why} if why else {}),
    }


def save_zoo(out_root, name, model, arch, bumblebee, inputs, outputs, notes="", token_ids_cfg=None):
    d = out_root / name
    d.mkdir(parents=True, exist_ok=True)
    for stale in d.glob("*"):
        stale.unlink()
    model.save_pretrained(str(d), safe_serialization=True)
    # save_pretrained drops tied parameters (e.g. an MLM decoder sharing the word
    # embeddings); Bumblebee looks each parameter up by its own name, so write them out.
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(d / "model.safetensors"), "pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}
    state = model.state_dict()
    shares = {}
    for k, v in state.items():
        shares.setdefault(v.data_ptr(), []).append(k)
    tied = {
        k: v.detach().clone().contiguous()
        for k, v in state.items()
        if k not in stored and len(shares[v.data_ptr()]) > 1
    }
    if tied:
        save_file({**stored, **tied}, str(d / "model.safetensors"), metadata={"format": "pt"})
    for extra in ["generation_config.json"]:
        # keep only what Bumblebee needs; generation_config is harmless but unused
        pass
    cfg, added = patch_config(d / "config.json", {"token_ids": token_ids_cfg or {}}, arch)
    tensors = {}
    for k, (v, _) in inputs.items():
        tensors["input." + k] = i64(v) if v.dtype in (torch.long, torch.int32, torch.int64) else f32(v)
    for k, (v, *_) in outputs.items():
        tensors["output." + k] = f32(v)
    write_st(d / "reference.safetensors", tensors)
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        param_names = sorted(f.keys())
    meta = {
        "architecture": arch,
        "bumblebee": {"module": bumblebee[0], "architecture": bumblebee[1]},
        "load_hint": f"Bumblebee.load_model({{:local, dir}}) -> {bumblebee[0]}, :{bumblebee[1]} "
        f"(config.json architectures = [{arch!r}])",
        "dtype": "float32",
        "inputs": {
            k: {
                "tensor": "input." + k,
                "shape": list(v.shape),
                "dtype": "int64" if v.dtype in (torch.long,) else "float32",
                **bumblebee_input(bb),
            }
            for k, (v, bb) in inputs.items()
        },
        "outputs": {
            k: {
                "tensor": "output." + k,
                "shape": list(v.shape),
                "dtype": "float32",
                "bumblebee_output": bb,
                # what makes Bumblebee's output transformers' (None: nothing)
                "bumblebee_postprocess": post[0] if post else None,
            }
            for k, (v, bb, *post) in outputs.items()
        },
        "config_keys_added_for_bumblebee": added,
        "params": param_names,
        "notes": notes,
        "versions": versions(),
    }
    write_json(d / "reference.json", meta)
    total = sum(p.stat().st_size for p in d.glob("*"))
    print(f"zoo/{name}: {total} bytes")


ENC_NOTE = (
    "Example 1 of the batch is right-padded (attention_mask 0 on its last %d positions). "
    "Outputs at padded positions are whatever transformers computed; compare only mask==1 positions "
    "if an implementation differs there." % PAD_LEN
)
DEC_NOTE = "Causal LM, no padding (attention_mask all ones)."


def zoo_bert(out, seed):
    from transformers import BertConfig, BertForMaskedLM, BertModel

    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=HID,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTER,
        max_position_embeddings=MAXPOS,
        type_vocab_size=2,
        hidden_act="gelu",
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    m = randomize(BertModel(cfg), seed)
    ids = token_ids(seed)
    mask = padded_mask()
    ids[1, SEQ - PAD_LEN :] = 0
    tt = torch.zeros_like(ids)
    with torch.no_grad():
        o = m(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    save_zoo(
        out,
        "bert",
        m,
        "BertModel",
        ("Bumblebee.Text.Bert", "base"),
        {
            "input_ids": (ids, "input_ids"),
            "attention_mask": (mask, "attention_mask"),
            "token_type_ids": (tt, "token_type_ids"),
        },
        {
            "last_hidden_state": (o.last_hidden_state, "hidden_state"),
            "pooler_output": (o.pooler_output, "pooled_state"),
        },
        ENC_NOTE,
        {"pad_token_id": 0},
    )

    torch.manual_seed(seed + 100)
    mlm = randomize(BertForMaskedLM(cfg), seed + 100)
    with torch.no_grad():
        o = mlm(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    save_zoo(
        out,
        "bert_mlm",
        mlm,
        "BertForMaskedLM",
        ("Bumblebee.Text.Bert", "for_masked_language_modeling"),
        {
            "input_ids": (ids, "input_ids"),
            "attention_mask": (mask, "attention_mask"),
            "token_type_ids": (tt, "token_type_ids"),
        },
        {"logits": (o.logits, "logits")},
        ENC_NOTE + " MLM decoder weight is tied to word_embeddings (only the decoder bias is separate).",
        {"pad_token_id": 0},
    )


def zoo_distilbert(out, seed):
    from transformers import DistilBertConfig, DistilBertModel

    cfg = DistilBertConfig(
        vocab_size=VOCAB,
        dim=HID,
        n_layers=LAYERS,
        n_heads=HEADS,
        hidden_dim=INTER,
        max_position_embeddings=MAXPOS,
        activation="gelu",
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    m = randomize(DistilBertModel(cfg), seed)
    ids = token_ids(seed)
    ids[1, SEQ - PAD_LEN :] = 0
    mask = padded_mask()
    with torch.no_grad():
        o = m(input_ids=ids, attention_mask=mask)
    save_zoo(
        out,
        "distilbert",
        m,
        "DistilBertModel",
        ("Bumblebee.Text.Distilbert", "base"),
        {"input_ids": (ids, "input_ids"), "attention_mask": (mask, "attention_mask")},
        {"last_hidden_state": (o.last_hidden_state, "hidden_state")},
        ENC_NOTE,
        {"pad_token_id": 0},
    )


def zoo_gpt2(out, seed):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_positions=MAXPOS,
        n_embd=HID,
        n_layer=LAYERS,
        n_head=HEADS,
        n_inner=INTER,
        activation_function="gelu_new",
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    m = randomize(GPT2LMHeadModel(cfg), seed)
    ids = token_ids(seed)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        o = m(input_ids=ids, attention_mask=mask)
    save_zoo(
        out,
        "gpt2",
        m,
        "GPT2LMHeadModel",
        ("Bumblebee.Text.Gpt2", "for_causal_language_modeling"),
        {"input_ids": (ids, "input_ids"), "attention_mask": (mask, "attention_mask")},
        {"logits": (o.logits, "logits")},
        DEC_NOTE + " lm_head tied to transformer.wte.",
        {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2},
    )


def _llama_like(out, seed, name, cfg_cls, model_cls, arch, bb, extra_cfg, note=""):
    cfg = cfg_cls(
        vocab_size=VOCAB,
        hidden_size=HID,
        intermediate_size=INTER,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV,
        max_position_embeddings=MAXPOS,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        **extra_cfg,
    )
    torch.manual_seed(seed)
    m = randomize(model_cls(cfg), seed)
    ids = token_ids(seed)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        o = m(input_ids=ids, attention_mask=mask)
    save_zoo(
        out,
        name,
        m,
        arch,
        bb,
        {"input_ids": (ids, "input_ids"), "attention_mask": (mask, "attention_mask")},
        {"logits": (o.logits, "logits")},
        DEC_NOTE + " GQA: 4 query heads, 2 kv heads, head_dim 16. " + note,
        {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2},
    )


def zoo_llama(out, seed):
    from transformers import LlamaConfig, LlamaForCausalLM

    _llama_like(
        out,
        seed,
        "llama",
        LlamaConfig,
        LlamaForCausalLM,
        "LlamaForCausalLM",
        ("Bumblebee.Text.Llama", "for_causal_language_modeling"),
        {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}, "head_dim": 16},
        "rope_theta 10000.",
    )


def zoo_mistral(out, seed):
    from transformers import MistralConfig, MistralForCausalLM

    _llama_like(
        out,
        seed,
        "mistral",
        MistralConfig,
        MistralForCausalLM,
        "MistralForCausalLM",
        ("Bumblebee.Text.Mistral", "for_causal_language_modeling"),
        {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}, "sliding_window": None, "head_dim": 16},
        "sliding_window null (full attention), rope_theta 10000.",
    )


def zoo_qwen3(out, seed):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    _llama_like(
        out,
        seed,
        "qwen3",
        Qwen3Config,
        Qwen3ForCausalLM,
        "Qwen3ForCausalLM",
        ("Bumblebee.Text.Qwen3", "for_causal_language_modeling"),
        {
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "head_dim": 16,
            "use_sliding_window": False,
            "attention_bias": False,
        },
        "Qwen3 has per-head RMSNorm on q and k (q_norm/k_norm). rope_theta 1e6.",
    )


def zoo_t5(out, seed):
    from transformers import T5Config, T5ForConditionalGeneration

    cfg = T5Config(
        vocab_size=VOCAB,
        d_model=HID,
        d_kv=HID // HEADS,
        d_ff=INTER,
        num_layers=LAYERS,
        num_decoder_layers=LAYERS,
        num_heads=HEADS,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed)
    m = randomize(T5ForConditionalGeneration(cfg), seed)
    ids = token_ids(seed)
    ids[1, SEQ - PAD_LEN :] = 0
    mask = padded_mask()
    dec = token_ids(seed + 1, seq=6)
    dec[:, 0] = 0  # decoder_start_token_id
    with torch.no_grad():
        o = m(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
    save_zoo(
        out,
        "t5",
        m,
        "T5ForConditionalGeneration",
        ("Bumblebee.Text.T5", "for_conditional_generation"),
        {
            "input_ids": (ids, "input_ids"),
            "attention_mask": (mask, "attention_mask"),
            "decoder_input_ids": (dec, "decoder_input_ids"),
        },
        {
            "logits": (o.logits, "logits"),
            "encoder_last_hidden_state": (o.encoder_last_hidden_state, "encoder_hidden_state"),
        },
        ENC_NOTE
        + " Decoder gets no attention mask (all ones). tie_word_embeddings=true: lm_head = shared, and the "
        "decoder output is scaled by d_model**-0.5 before the lm_head (standard T5).",
        {"pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0},
    )


def zoo_vit(out, seed):
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(
        hidden_size=HID,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTER,
        image_size=32,
        patch_size=8,
        num_channels=3,
        qkv_bias=True,
        hidden_act="gelu",
    )
    torch.manual_seed(seed)
    m = randomize(ViTModel(cfg), seed)
    g = torch.Generator().manual_seed(seed)
    px = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        o = m(pixel_values=px)
    save_zoo(
        out,
        "vit",
        m,
        "ViTModel",
        ("Bumblebee.Vision.Vit", "base"),
        {"pixel_values": (px, "pixel_values (Bumblebee wants NHWC: transpose HF's NCHW with axes [0,2,3,1])")},
        {
            "last_hidden_state": (o.last_hidden_state, "hidden_state"),
            "pooler_output": (o.pooler_output, "pooled_state"),
        },
        "pixel_values stored in HF layout [batch, channels, height, width] = [2,3,32,32]; Bumblebee's "
        "input is {batch, height, width, channels}. 16 patches + CLS = 17 tokens.",
    )


def zoo_clip(out, seed):
    from transformers import CLIPConfig, CLIPModel

    eos = VOCAB - 1
    text = dict(
        vocab_size=VOCAB,
        hidden_size=HID,
        intermediate_size=INTER,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        max_position_embeddings=MAXPOS,
        hidden_act="quick_gelu",
        projection_dim=32,
        pad_token_id=1,
        bos_token_id=VOCAB - 2,
        eos_token_id=eos,
    )
    vision = dict(
        hidden_size=HID,
        intermediate_size=INTER,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_act="quick_gelu",
        projection_dim=32,
    )
    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)
    torch.manual_seed(seed)
    m = randomize(CLIPModel(cfg), seed)
    ids = token_ids(seed, low=3, high=VOCAB - 2)
    ids[:, 0] = VOCAB - 2  # bos
    ids[0, SEQ - 1] = eos
    ids[1, SEQ - PAD_LEN - 1] = eos
    ids[1, SEQ - PAD_LEN :] = 1  # pad
    mask = padded_mask()
    g = torch.Generator().manual_seed(seed)
    px = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        o = m(input_ids=ids, attention_mask=mask, pixel_values=px)
    save_zoo(
        out,
        "clip",
        m,
        "CLIPModel",
        ("Bumblebee.Multimodal.Clip", "base"),
        {
            "input_ids": (ids, "input_ids"),
            "attention_mask": (mask, "attention_mask"),
            "pixel_values": (px, "pixel_values (Bumblebee wants NHWC: transpose HF's NCHW with axes [0,2,3,1])"),
        },
        {
            # Bumblebee returns the projections; transformers L2-normalises them
            "text_embeds": (o.text_embeds, "text_embedding", "l2_normalize"),
            "image_embeds": (o.image_embeds, "image_embedding", "l2_normalize"),
            "logits_per_image": (o.logits_per_image, "logits_per_image"),
            "logits_per_text": (o.logits_per_text, "logits_per_text"),
        },
        ENC_NOTE + f" The EOS token ({eos}) is the largest id in each text row, so pooling by "
        "argmax(input_ids) (Bumblebee ClipText) and by first eos_token_id (transformers) pick the same "
        "position. text_embeds/image_embeds are L2-normalised projections; logits scaled by exp(logit_scale). "
        "pixel_values in HF NCHW layout.",
        {"pad_token_id": 1, "bos_token_id": VOCAB - 2, "eos_token_id": eos},
    )


def zoo_whisper(out, seed):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    cfg = WhisperConfig(
        vocab_size=VOCAB,
        num_mel_bins=80,
        d_model=HID,
        encoder_layers=LAYERS,
        decoder_layers=LAYERS,
        encoder_attention_heads=HEADS,
        decoder_attention_heads=HEADS,
        encoder_ffn_dim=INTER,
        decoder_ffn_dim=INTER,
        max_source_positions=64,
        max_target_positions=64,
        activation_function="gelu",
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        suppress_tokens=None,
        begin_suppress_tokens=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    m = randomize(WhisperForConditionalGeneration(cfg), seed)
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2, 80, 128, generator=g)
    dec = token_ids(seed + 1, seq=6)
    dec[:, 0] = 1
    with torch.no_grad():
        o = m(input_features=feats, decoder_input_ids=dec)
    save_zoo(
        out,
        "whisper",
        m,
        "WhisperForConditionalGeneration",
        ("Bumblebee.Audio.Whisper", "for_conditional_generation"),
        {
            "input_features": (
                feats,
                "input_features (Bumblebee wants {batch, frames, mel}: transpose HF's [batch, mel, frames] with axes [0,2,1])",
            ),
            "decoder_input_ids": (dec, "decoder_input_ids"),
        },
        {
            "logits": (o.logits, "logits"),
            "encoder_last_hidden_state": (o.encoder_last_hidden_state, "encoder_hidden_state"),
        },
        "input_features stored in HF layout [batch, num_mel_bins=80, frames=128] (frames = 2*max_source_positions). "
        "Bumblebee's input is {batch, 128, 80}. Decoder unmasked; proj_out tied to decoder.embed_tokens. "
        "All parameters (including encoder.embed_positions) are random.",
        {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1},
    )


ZOO = [
    ("bert", zoo_bert),
    ("distilbert", zoo_distilbert),
    ("gpt2", zoo_gpt2),
    ("llama", zoo_llama),
    ("mistral", zoo_mistral),
    ("qwen3", zoo_qwen3),
    ("t5", zoo_t5),
    ("vit", zoo_vit),
    ("clip", zoo_clip),
    ("whisper", zoo_whisper),
]


def make_zoo(out_dir):
    out = out_dir / "zoo"
    failures = {}
    for i, (name, fn) in enumerate(ZOO):
        try:
            fn(out, 1000 + i)
        except Exception as e:  # keep going; report at the end
            import traceback

            traceback.print_exc()
            failures[name] = f"{type(e).__name__}: {e}"
    if failures:
        print("zoo failures:", json.dumps(failures, indent=2))
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.path.expanduser("~/.cache/emily/models"))
    ap.add_argument("--out", default=str(HERE / "fixtures"))
    ap.add_argument("--only", choices=["minilm", "smollm2", "zoo"])
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    models = Path(args.models).expanduser()
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    failures = {}
    if args.only in (None, "minilm"):
        make_minilm(models, out)
    if args.only in (None, "smollm2"):
        make_smollm2(models, out)
    if args.only in (None, "zoo"):
        failures = make_zoo(out)

    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"fixtures total: {total} bytes under {out}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
