# Real models on Emily.Compiler's lanes next to PyTorch CPU (float32), in one run.
#
#   eval "$(scripts/setup.sh --env)"
#   MIX_ENV=test mix run benches/models.exs [rounds]
#
# Models from scripts/models.sh; PyTorch from the model tier's reference environment
# ($EMILY_CACHE/pyref, see tests/models/make_references.py; EMILY_BENCH_TORCH names
# another Python), which runs benches/models_torch.py on the same inputs first.
#
# * MiniLM: all-MiniLM-L6-v2 forward + mean pooling + L2 norm of 32 sentences padded or
#   truncated to 64 tokens (the model tier's sentences, twice), compiled once for
#   {32, 64} with Nx.Defn.compile; inputs on MLX, output evaluated. PyTorch: AutoModel
#   forward and the same pooling under inference_mode.
# * SmolLM2-135M-Instruct from its GGUF (dequantized to f32 by both): greedy generation
#   (Bumblebee's build_generate, KV cache) of 1 and of N new tokens for the model tier's
#   first chat prompt, no early stop. Time to first token = the 1-token call (prefill);
#   decode tokens/s = (N - 1) / (t(N) - t(1)). PyTorch: generate(do_sample=False).
#
# Times are the best of `rounds` calls (default 5) after a warm-up call.

Code.require_file("support/table.exs", __DIR__)
Code.require_file("support/measure.exs", __DIR__)

defmodule Bench.Models do
  def eval(%Nx.Tensor{} = t), do: Emily.eval(t.data.ref)

  def eval(container),
    do: container |> List.wrap() |> Nx.Defn.Composite.flatten_list() |> Enum.each(&eval/1)
end

rounds = Bench.Measure.rounds(5)
cache = Emily.ModelCase.cache_dir()
minilm_dir = Path.join(cache, "models/all-minilm-l6-v2")
smol_dir = Path.join(cache, "models/smollm2-135m-instruct")
smol_gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
fixtures = "tests/models/fixtures"
batch = 32
seq_len = 64
new_tokens = 32

sentences = Jason.decode!(File.read!(Path.join(fixtures, "minilm/reference.json")))["sentences"]
prompt = hd(Jason.decode!(File.read!(Path.join(fixtures, "smollm2/reference.json")))["chat"])

{:ok, tokenizer} = Bumblebee.load_tokenizer({:local, minilm_dir})
tokenizer = Bumblebee.configure(tokenizer, length: seq_len)

tokens =
  tokenizer
  |> Bumblebee.apply_tokenizer(Enum.take(Stream.cycle(sentences), batch))
  |> Map.take(["input_ids", "attention_mask"])

# --- PyTorch, first (it has the machine to itself) -------------------------------------
py = System.get_env("EMILY_BENCH_TORCH") || Path.join(cache, "pyref/bin/python")

torch =
  Bench.Measure.python_peer(
    py,
    "benches/models_torch.py",
    "emily_models_bench",
    %{
      minilm_dir: minilm_dir,
      minilm_input_ids: Nx.to_list(tokens["input_ids"]),
      minilm_attention_mask: Nx.to_list(tokens["attention_mask"]),
      smol_dir: smol_dir,
      smol_gguf: smol_gguf,
      smol_input_ids: prompt["input_ids"],
      smol_new_tokens: new_tokens
    },
    rounds,
    "PyTorch"
  )

# --- Emily ----------------------------------------------------------------------------
Nx.global_default_backend(Emily.Backend)
lanes = [:evaluator, :native, :fused]

{:ok, minilm} = Bumblebee.load_model({:local, minilm_dir}, backend: Emily.Backend)
{_init, predict} = Axon.build(minilm.model)
tokens = Nx.backend_copy(tokens, Emily.Backend)
Bench.Models.eval(tokens)

embed = fn params, inputs ->
  hidden = predict.(params, inputs).hidden_state
  mask = Nx.new_axis(inputs["attention_mask"], -1)
  pooled = Nx.divide(Nx.sum(Nx.multiply(hidden, mask), axes: [1]), Nx.sum(mask, axes: [1]))
  Nx.divide(pooled, Nx.LinAlg.norm(pooled, axes: [-1], keep_axes: true))
end

templates = [minilm.params, Nx.to_template(tokens)]

minilm_ms =
  for lane <- lanes, into: %{} do
    f = Nx.Defn.compile(embed, templates, compiler: Emily.Compiler, lane: lane)
    ms = Bench.Measure.best_ms(fn -> f.(minilm.params, tokens) |> Bench.Models.eval() end, rounds)
    {lane, ms}
  end

gguf = Emily.GGUF.read!(Path.join(smol_dir, smol_gguf))
{:ok, smol} = Emily.Bumblebee.load_gguf_model(gguf)
{:ok, config} = Emily.Bumblebee.load_gguf_generation_config(gguf)
ids = Nx.tensor([prompt["input_ids"]], type: :u32)

inputs = %{
  "input_ids" => ids,
  "attention_mask" => Nx.broadcast(1, Nx.shape(ids)),
  "seed" => Nx.tensor([0])
}

generate = fn lane, n ->
  config =
    Bumblebee.configure(config,
      max_new_tokens: n,
      eos_token_id: nil,
      strategy: %{type: :greedy_search}
    )

  smol.model
  |> Bumblebee.Text.Generation.build_generate(smol.spec, config)
  |> Nx.Defn.jit(compiler: Emily.Compiler, lane: lane)
end

smol_lanes = [:native, :fused]

smol_ms =
  for lane <- smol_lanes, into: %{} do
    first = generate.(lane, 1)
    all = generate.(lane, new_tokens)

    t1 =
      Bench.Measure.best_ms(fn -> first.(smol.params, inputs) |> Bench.Models.eval() end, rounds)

    tn = Bench.Measure.best_ms(fn -> all.(smol.params, inputs) |> Bench.Models.eval() end, rounds)
    got = Nx.to_flat_list(all.(smol.params, inputs).token_ids)
    {lane, {t1, tn, got}}
  end

# --- tables -----------------------------------------------------------------------------
IO.puts(
  "\nEmily #{Application.spec(:emily, :vsn)} vs PyTorch #{torch["torch"] || "-"} " <>
    "(#{torch["threads"] || "-"} threads), float32 CPU, best of #{rounds}; " <>
    "#{System.schedulers_online()} schedulers\n"
)

IO.puts("all-MiniLM-L6-v2 embeddings, batch #{batch} x #{seq_len} tokens: ms per batch")

Bench.Table.print(
  ["lane", "Emily ms", "sentences/s", "PyTorch ms", "Emily/PyTorch time"],
  for lane <- lanes do
    ms = minilm_ms[lane]

    [
      "#{lane}",
      Bench.Measure.fmt(ms),
      Bench.Measure.fmt(batch / ms * 1000),
      Bench.Measure.fmt(torch["minilm"]),
      Bench.Measure.ratio(ms, torch["minilm"])
    ]
  end
)

decode = fn t1, tn -> (new_tokens - 1) / ((tn - t1) / 1000) end

IO.puts(
  "\nSmolLM2-135M-Instruct (GGUF Q4_1 dequantized to f32), batch 1, prompt of " <>
    "#{length(prompt["input_ids"])} tokens, greedy #{new_tokens} new tokens"
)

torch_decode = torch["smol_all"] && decode.(torch["smol_first"], torch["smol_all"])

Bench.Table.print(
  [
    "lane",
    "first token ms",
    "PyTorch",
    "ratio",
    "decode tok/s",
    "PyTorch",
    "Emily/PyTorch tok/s",
    "same ids"
  ],
  for lane <- smol_lanes do
    {t1, tn, got} = smol_ms[lane]
    tok_s = decode.(t1, tn)

    [
      "#{lane}",
      Bench.Measure.fmt(t1),
      Bench.Measure.fmt(torch["smol_first"]),
      Bench.Measure.ratio(t1, torch["smol_first"]),
      Bench.Measure.fmt(tok_s),
      Bench.Measure.fmt(torch_decode),
      Bench.Measure.ratio(tok_s, torch_decode),
      if(torch["smol_ids"], do: "#{got == torch["smol_ids"]}", else: "-")
    ]
  end
)

for lane <- smol_lanes, ids = torch["smol_ids"], {_, _, got} = smol_ms[lane], got != ids do
  k =
    Enum.zip(got, ids) |> Enum.find_index(fn {a, b} -> a != b end) ||
      min(length(got), length(ids))

  IO.puts(
    "#{lane}: ids differ from PyTorch's at new token #{k} (Emily #{inspect(Enum.at(got, k))}, PyTorch #{inspect(Enum.at(ids, k))}; #{length(got)} vs #{length(ids)} tokens)"
  )
end
