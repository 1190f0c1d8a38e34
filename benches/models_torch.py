"""PyTorch (CPU, float32) on the workloads of benches/models.exs, run by it in the same run.

Usage: models_torch.py INPUTS.json ROUNDS
INPUTS.json (written by benches/models.exs) names the models' directories and holds the
inputs: MiniLM's token ids and mask (batch x length) and SmolLM2's prompt ids.
Prints one JSON object: best-of-ROUNDS milliseconds for
  minilm:      AutoModel forward + mean pooling + L2 norm of the batch
  smol_first:  greedy generate of 1 new token (prefill + first token)
  smol_all:    greedy generate of N new tokens (N from the inputs), KV cache on
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))
from timing import best_ms  # noqa: E402

import torch
from transformers import AutoModel, AutoModelForCausalLM, GenerationConfig


def main():
    spec = json.load(open(sys.argv[1]))
    rounds = int(sys.argv[2])
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    minilm = AutoModel.from_pretrained(spec["minilm_dir"], dtype=torch.float32).eval()
    ids = torch.tensor(spec["minilm_input_ids"], dtype=torch.long)
    mask = torch.tensor(spec["minilm_attention_mask"], dtype=torch.long)

    def embed():
        with torch.inference_mode():
            h = minilm(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1)
            return torch.nn.functional.normalize(pooled, dim=-1)

    out["minilm"] = best_ms(embed, rounds)

    smol = AutoModelForCausalLM.from_pretrained(
        spec["smol_dir"], gguf_file=spec["smol_gguf"], dtype=torch.float32
    ).eval()
    prompt = torch.tensor([spec["smol_input_ids"]], dtype=torch.long)
    n = spec["smol_new_tokens"]
    # generate() fills the passed config's unset fields from the model's, end-of-sequence
    # id included: cleared there, so that no token is suppressed and none stops the run
    # (Emily's side sets eos_token_id: nil the same way)
    smol.generation_config.eos_token_id = None
    smol.generation_config.forced_eos_token_id = None

    def generate(new):
        config = GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=new, eos_token_id=None
        )
        with torch.inference_mode():
            got = smol.generate(
                input_ids=prompt, attention_mask=torch.ones_like(prompt), generation_config=config
            )
        assert got.shape[1] == prompt.shape[1] + new
        return got

    out["smol_first"] = best_ms(lambda: generate(1), rounds)
    out["smol_all"] = best_ms(lambda: generate(n), rounds)
    out["smol_ids"] = generate(n)[0, prompt.shape[1]:].tolist()
    print(json.dumps(out))


main()
