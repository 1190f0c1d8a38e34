# SmolLM2-135M-Instruct (its GGUF, Q4_1 blocks and a Q8_0 embedding) generating greedily on
# the CPU: Emily with the blocks kept quantized (MLX's affine layout, Emily's quantized
# matmul kernel) and dequantized to float32, next to llama.cpp on the same GGUF and
# PyTorch/transformers (float32), in one run.
#
#   eval "$(scripts/setup.sh --env)"
#   EMILY_BENCH_PYTHON=.venv-bench/bin/python MIX_ENV=test mix run benches/llm.exs [rounds]
#
# The model from scripts/models.sh. Peers: benches/llm_peers.py under EMILY_BENCH_PYTHON
# (torch, transformers, gguf and llama-cpp-python; each peer in a process of its own), run
# first, with the machine to themselves.
#
# The prompt: 128 tokens (the model tier's four chat prompts, one after another, cut at 128),
# at batch 1 and 8 (the same prompt in each row). For each: time to first token = a greedy
# generation of 1 new token (prefill + one step); decode tokens/s = B * (N - 1) / (t(N) -
# t(1)); prefill tokens/s = B * 128 / t(1). Emily runs Bumblebee's build_generate (KV cache
# on MLX, the loop in the native program) on Emily.Compiler's native lane, compiled once per
# shape. Peak memory: the process's peak RSS (Emily: after the quantized model, then after
# the float32 one as well; MLX's own peak in parentheses). Times are the best of `rounds`
# (default 3) after a warm-up call.

Code.require_file("support/table.exs", __DIR__)
Code.require_file("support/measure.exs", __DIR__)

defmodule Bench.LLM do
  def peak_rss_mib do
    "/proc/self/status"
    |> File.read!()
    |> then(&Regex.run(~r/VmHWM:\s+(\d+) kB/, &1))
    |> case do
      [_, kb] -> String.to_integer(kb) / 1024
      _ -> nil
    end
  end
end

rounds = Bench.Measure.rounds(3)
cache = Emily.ModelCase.cache_dir()
dir = Path.join(cache, "models/smollm2-135m-instruct")
gguf_name = "SmolLM2-135M-Instruct.Q4_1.gguf"
ref = Jason.decode!(File.read!("tests/models/fixtures/smollm2/reference.json"))
prompt_len = 128
new_tokens = 32
batches = [1, 8]
prompt_ids = ref["chat"] |> Enum.flat_map(& &1["input_ids"]) |> Enum.take(prompt_len)
true = length(prompt_ids) == prompt_len

# --- peers, first ----------------------------------------------------------------------
py = Path.expand(System.get_env("EMILY_BENCH_PYTHON") || ".venv-bench/bin/python")

peers =
  Bench.Measure.python_peer(
    py,
    "benches/llm_peers.py",
    "emily_llm_bench",
    %{
      dir: dir,
      gguf: gguf_name,
      prompt_ids: prompt_ids,
      new_tokens: new_tokens,
      batches: batches
    },
    rounds,
    "peer"
  )

# --- Emily -----------------------------------------------------------------------------
Nx.global_default_backend(Emily.Backend)
gguf = Emily.GGUF.read!(Path.join(dir, gguf_name))
{:ok, config} = Emily.Bumblebee.load_gguf_generation_config(gguf)

measure = fn model ->
  for b <- batches, into: %{} do
    ids = Nx.tensor(List.duplicate(prompt_ids, b), type: :u32)

    inputs = %{
      "input_ids" => ids,
      "attention_mask" => Nx.broadcast(1, Nx.shape(ids)),
      "seed" => Nx.broadcast(0, {b})
    }

    gen = fn n ->
      c =
        Bumblebee.configure(config,
          max_new_tokens: n,
          eos_token_id: nil,
          strategy: %{type: :greedy_search}
        )

      model.model
      |> Bumblebee.Text.Generation.build_generate(model.spec, c)
      |> Nx.Defn.jit(compiler: Emily.Compiler, lane: :native)
    end

    first = gen.(1)
    all = gen.(new_tokens)
    ids_of = fn f -> f.(model.params, inputs).token_ids |> Nx.to_list() end
    t1 = Bench.Measure.best_ms(fn -> ids_of.(first) end, rounds)
    tn = Bench.Measure.best_ms(fn -> ids_of.(all) end, rounds)
    {b, %{first: t1, all: tn, ids: hd(ids_of.(all))}}
  end
end

load = fn opts ->
  {us, {:ok, model}} = :timer.tc(fn -> Emily.Bumblebee.load_gguf_model(gguf, opts) end)
  {model, us / 1000}
end

{q4, q4_load} = load.(quantized: true)
q4_ms = measure.(q4)
q4_rss = Bench.LLM.peak_rss_mib()
q4_mlx = Emily.memory_stats().peak / 2 ** 20
{f32, f32_load} = load.([])
f32_ms = measure.(f32)
f32_rss = Bench.LLM.peak_rss_mib()
f32_mlx = Emily.memory_stats().peak / 2 ** 20

# --- tables ----------------------------------------------------------------------------
torch = peers["torch"] || %{}
llama = peers["llama_cpp"] || %{}

IO.puts(
  "\nSmolLM2-135M-Instruct, greedy, prompt #{prompt_len} tokens, #{new_tokens} new tokens, " <>
    "best of #{rounds}; Emily #{Application.spec(:emily, :vsn)} (#{System.schedulers_online()} " <>
    "schedulers), llama.cpp (llama-cpp-python #{llama["version"] || "-"}, " <>
    "#{llama["threads"] || "-"} threads), PyTorch #{torch["version"] || "-"} " <>
    "(#{torch["threads"] || "-"} threads)\n"
)

for {name, p} <- peers, p["missing"], do: IO.puts("(#{name}: #{p["missing"]})")

decode = fn b, t1, tn -> if t1 && tn, do: b * (new_tokens - 1) / ((tn - t1) / 1000) end
prefill = fn b, t1 -> if t1, do: b * prompt_len / (t1 / 1000) end

rows =
  for b <- batches,
      {name, r} <- [
        {"Emily 4-bit (Q4_1 blocks)", q4_ms[b]},
        {"Emily f32 (dequantized)", f32_ms[b]},
        {"llama.cpp (Q4_1)",
         llama["first_#{b}"] && %{first: llama["first_#{b}"], all: llama["all_#{b}"]}},
        {"PyTorch f32",
         torch["first_#{b}"] && %{first: torch["first_#{b}"], all: torch["all_#{b}"]}}
      ] do
    {b, name, r && decode.(b, r.first, r.all), r && prefill.(b, r.first), r && r.first}
  end

peer_decode = fn b, name ->
  Enum.find_value(rows, fn {bb, n, d, _, _} -> if bb == b and n == name, do: d end)
end

Bench.Table.print(
  [
    "batch / engine",
    "decode tok/s",
    "vs llama.cpp",
    "vs PyTorch",
    "prefill tok/s",
    "first token ms"
  ],
  for {b, name, d, p, t1} <- rows do
    [
      "#{b}  #{name}",
      Bench.Measure.fmt(d),
      Bench.Measure.ratio(d, peer_decode.(b, "llama.cpp (Q4_1)")),
      Bench.Measure.ratio(d, peer_decode.(b, "PyTorch f32")),
      Bench.Measure.fmt(p),
      Bench.Measure.fmt(t1)
    ]
  end
)

IO.puts("\nLoading and memory")

Bench.Table.print(
  ["engine", "load ms", "peak RSS MiB"],
  [
    [
      "Emily 4-bit",
      Bench.Measure.fmt(q4_load),
      "#{Bench.Measure.fmt(q4_rss)} (MLX #{Bench.Measure.fmt(q4_mlx)})"
    ],
    [
      "Emily f32 (after 4-bit)",
      Bench.Measure.fmt(f32_load),
      "#{Bench.Measure.fmt(f32_rss)} (MLX #{Bench.Measure.fmt(f32_mlx)})"
    ],
    ["llama.cpp", "-", Bench.Measure.fmt(llama["peak_rss_mib"])],
    ["PyTorch f32", "-", Bench.Measure.fmt(torch["peak_rss_mib"])]
  ]
)

IO.puts("\nNew ids at batch 1 against PyTorch's (same dequantized weights) and llama.cpp's")

for {name, got} <- [{"Emily 4-bit", q4_ms[1].ids}, {"Emily f32", f32_ms[1].ids}],
    {peer, want} <- [{"PyTorch", torch["ids"]}, {"llama.cpp", llama["ids"]}],
    want do
  k = Enum.zip(got, want) |> Enum.find_index(fn {a, b} -> a != b end)

  IO.puts(
    "#{name} vs #{peer}: " <> if(k, do: "first differs at new token #{k}", else: "identical")
  )
end
