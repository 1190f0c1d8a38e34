"""The peers of benches/llm.exs: SmolLM2-135M-Instruct from the same GGUF file, greedy, on the
CPU, each in a process of its own (so its peak RSS is its own).

    python benches/llm_peers.py SPEC.json ROUNDS [torch|llama_cpp]

Without a peer name it runs each peer in a child process and prints one JSON object
{"torch": {...}, "llama_cpp": {...}} as its last line; a peer whose library is missing is
{"missing": "why"}. A peer's figures (ms, best of ROUNDS after a warm-up):

  first_B:  prefill of the 128-token prompt (batch B) and the first new token
  all_B:    the same and N - 1 more new tokens (KV cache)
  ids:      the N new ids at batch 1
  peak_rss_mib: the process's peak resident memory

torch: transformers' AutoModelForCausalLM (the GGUF dequantized to float32),
generate(do_sample=False), batches 1 and 8. llama_cpp: llama-cpp-python on the Q4_1 blocks
themselves (n_threads = the CPUs), eval of the prompt then of one token at a time with
greedy sampling; batch 1 only (its Python API runs one sequence).
"""
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from timing import best_ms  # noqa: E402


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_torch(spec, rounds):
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(
        spec["dir"], gguf_file=spec["gguf"], dtype=torch.float32
    ).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.forced_eos_token_id = None
    n = spec["new_tokens"]
    out = {"version": torch.__version__, "threads": torch.get_num_threads()}

    def generate(prompt, new):
        config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=new, eos_token_id=None)
        with torch.inference_mode():
            got = model.generate(
                input_ids=prompt, attention_mask=torch.ones_like(prompt), generation_config=config
            )
        assert got.shape[1] == prompt.shape[1] + new
        return got

    for b in spec["batches"]:
        prompt = torch.tensor([spec["prompt_ids"]] * b, dtype=torch.long)
        out[f"first_{b}"] = best_ms(lambda: generate(prompt, 1), rounds)
        out[f"all_{b}"] = best_ms(lambda: generate(prompt, n), rounds)
        if b == 1:
            out["ids"] = generate(prompt, n)[0, prompt.shape[1]:].tolist()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def run_llama_cpp(spec, rounds):
    import llama_cpp
    from llama_cpp import Llama

    threads = len(os.sched_getaffinity(0))
    llm = Llama(
        model_path=os.path.join(spec["dir"], spec["gguf"]),
        n_ctx=512,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    prompt = spec["prompt_ids"]
    n = spec["new_tokens"]

    def generate(new):
        llm.reset()
        llm.eval(prompt)
        ids = [llm.sample(top_k=1, temp=0.0)]
        for _ in range(new - 1):
            llm.eval([ids[-1]])
            ids.append(llm.sample(top_k=1, temp=0.0))
        return ids

    out = {"version": llama_cpp.__version__, "threads": threads}
    out["first_1"] = best_ms(lambda: generate(1), rounds)
    out["all_1"] = best_ms(lambda: generate(n), rounds)
    out["ids"] = generate(n)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


PEERS = {"torch": run_torch, "llama_cpp": run_llama_cpp}


def main():
    spec_path, rounds = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) > 3:
        spec = json.load(open(spec_path))
        print(json.dumps(PEERS[sys.argv[3]](spec, rounds)))
        return
    out = {}
    for name in PEERS:
        r = subprocess.run(
            [sys.executable, __file__, spec_path, str(rounds), name], capture_output=True, text=True
        )
        if r.returncode == 0:
            out[name] = json.loads(r.stdout.strip().splitlines()[-1])
        else:
            out[name] = {"missing": (r.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    print(json.dumps(out))


main()
