# Emily.Compiler lanes against Python MLX and JAX on the same graphs, in one run.
#
#   eval "$(scripts/setup.sh --env)"   # Nx from Hex or ../shared/deps (see README)
#   MIX_ENV=test mix run benches/compiler.exs [--quick]
#
# Graphs (f32):
#   * chain: 200 Nx ops, 50 x (dot with a 32x32 matrix, multiply by 0.5, add, tanh) on a
#     32x32 input: dispatch-bound.
#   * block: a transformer block, d=768, seq=128, 12 heads, MLP 4d with exact gelu (erf),
#     pre-layer-norm: compute-bound.
#   * loop: a defn `while` of 1000 iterations over a scalar state (Emily lanes only): the
#     evaluator reads the predicate back into Elixir on each iteration, the native lanes loop
#     on the worker.
#
# Lanes run functions compiled once with Nx.Defn.compile (the evaluator lane then walks the
# expression op by op on each call); times are µs per call (inputs ready, outputs
# evaluated). Python MLX (benches/README.md says how to install it into .venv-bench) runs
# the same graphs plain and mx.compile'd, and JAX jit where jax is installed there (XLA on
# the CPU, the compiler EXLA uses), in its own OS process (a port), with OpenBLAS
# preloaded since Emily's NIF links it. Each round measures every column once, in turn;
# the table shows each column's best round, so a burst of load from elsewhere hits all
# columns alike.

Code.require_file("support/table.exs", __DIR__)
Code.require_file("support/measure.exs", __DIR__)

defmodule Bench.Defs do
  import Nx.Defn

  @steps 50

  defn(chain(x, w), do: chain_steps(x, w))

  deftransformp chain_steps(x, w) do
    Enum.reduce(1..@steps, x, fn _, x ->
      x |> Nx.dot(w) |> Nx.multiply(0.5) |> Nx.add(x) |> Nx.tanh()
    end)
  end

  defn loop(n) do
    {_, acc, _} =
      while {i = 0, acc = 0.0, n}, i < n do
        {i + 1, acc * 0.5 + Nx.sin(i), n}
      end

    acc
  end

  defn layer_norm(t, g, b) do
    mean = Nx.mean(t, axes: [-1], keep_axes: true)
    var = Nx.variance(t, axes: [-1], keep_axes: true)
    (t - mean) * Nx.rsqrt(var + 1.0e-5) * g + b
  end

  defn block(x, wq, wk, wv, wo, w1, w2, g1, b1, g2, b2) do
    {s, d} = Nx.shape(x)
    heads = 12
    dh = div(d, heads)
    split = fn t -> t |> Nx.reshape({s, heads, dh}) |> Nx.transpose(axes: [1, 0, 2]) end
    h = layer_norm(x, g1, b1)
    q = split.(Nx.dot(h, wq))
    k = split.(Nx.dot(h, wk))
    v = split.(Nx.dot(h, wv))
    scores = Nx.dot(q, [2], [0], k, [2], [0]) / Nx.sqrt(dh)
    scores = scores - Nx.reduce_max(scores, axes: [-1], keep_axes: true)
    e = Nx.exp(scores)
    a = e / Nx.sum(e, axes: [-1], keep_axes: true)
    att = Nx.dot(a, [2], [0], v, [1], [0]) |> Nx.transpose(axes: [1, 0, 2]) |> Nx.reshape({s, d})
    x = x + Nx.dot(att, wo)
    h = layer_norm(x, g2, b2)
    u = Nx.dot(h, w1)
    u = 0.5 * u * (1 + Nx.erf(u / Nx.sqrt(2)))
    x + Nx.dot(u, w2)
  end
end

defmodule Bench do
  def rand(shape, seed) do
    n = Tuple.product(shape)

    for(i <- 0..(n - 1), do: :math.sin(i * 12.9898 + seed * 78.233) * 0.999)
    |> Nx.tensor(type: {:f, 32}, backend: Emily.Backend)
    |> Nx.reshape(shape)
  end

  # µs per call of `iters` calls.
  def batch(f, args, iters) do
    {t, _} = :timer.tc(fn -> for _ <- 1..iters, do: apply(f, args) end)
    t / iters
  end

  def python do
    py = System.get_env("EMILY_BENCH_PYTHON") || Path.expand(".venv-bench/bin/python")

    blas =
      Enum.find(
        [
          "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
          "/usr/lib/aarch64-linux-gnu/libopenblas.so.0"
        ],
        &File.exists?/1
      )

    if File.exists?(py) do
      env = if blas, do: [{~c"LD_PRELOAD", String.to_charlist(blas)}], else: []

      Port.open({:spawn_executable, py}, [
        :binary,
        {:line, 1024},
        {:args, ["benches/compiler_mlx.py"]},
        {:env, env}
      ])
    else
      IO.puts("(no .venv-bench: Python MLX columns skipped; see benches/README.md)")
      nil
    end
  end

  def py_batch(nil, _graph, _kind, _iters), do: nil

  def py_batch(port, graph, kind, iters) do
    Port.command(port, "#{graph} #{kind} #{iters}\n")

    receive do
      {^port, {:data, {:eol, "-1"}}} -> nil
      {^port, {:data, {:eol, line}}} -> String.to_float(line)
    after
      600_000 -> raise "no answer from Python MLX"
    end
  end

  def fmt(nil), do: "-"
  def fmt(us) when us >= 10_000, do: :erlang.float_to_binary(us / 1, decimals: 0)
  def fmt(us), do: :erlang.float_to_binary(us / 1, decimals: 1)
end

{rounds, quick?} =
  case System.argv() do
    ["--quick" | _] -> {2, true}
    [n | _] -> {String.to_integer(n), false}
    [] -> {5, false}
  end

Nx.global_default_backend(Emily.Backend)

n = 32
chain_args = [Bench.rand({n, n}, 1), Nx.multiply(Bench.rand({n, n}, 2), 1 / n)]
d = 768
s = 128
sc = 1 / :math.sqrt(d)

block_args =
  [Bench.rand({s, d}, 1)] ++
    for(k <- 2..5, do: Nx.multiply(Bench.rand({d, d}, k), sc)) ++
    [Nx.multiply(Bench.rand({d, 4 * d}, 6), sc), Nx.multiply(Bench.rand({4 * d, d}, 7), 0.5 * sc)] ++
    [
      Nx.add(Bench.rand({d}, 8), 1),
      Bench.rand({d}, 9),
      Nx.add(Bench.rand({d}, 10), 1),
      Bench.rand({d}, 11)
    ]

Enum.each(chain_args ++ block_args, &Emily.eval(&1.data.ref))

graphs = [
  {"chain", "chain: 200 ops (dot+mul+add+tanh) 32x32", &Bench.Defs.chain/2, chain_args,
   if(quick?, do: 20, else: 200)},
  {"block", "transformer block d=768 seq=128", &Bench.Defs.block/11, block_args,
   if(quick?, do: 2, else: 10)},
  {"loop", "while: 1000 iterations, scalar state", &Bench.Defs.loop/1,
   [Nx.tensor(1000, backend: Emily.Backend)], if(quick?, do: 2, else: 10)}
]

# Python MLX has no graph-level loop: no Python columns for it.
py_graphs = ["chain", "block"]

lanes = [:evaluator, :native, :fused]
port = Bench.python()

compiled =
  for {g, _, fun, args, _} <- graphs, lane <- lanes, into: %{} do
    templates = Enum.map(args, &Nx.to_template/1)

    f =
      Nx.Defn.compile(fun, templates,
        compiler: Emily.Compiler,
        lane: lane,
        debug_options: [stats: self()]
      )

    program =
      receive do
        {:emily_compiler, %{program: p}} -> p
      after
        0 -> nil
      end

    # warm up (the fused lane compiles its kernels here)
    for _ <- 1..3, do: apply(f, args)
    {{g, lane}, {f, program}}
  end

py_kinds = ["plain", "compiled", "jax"]
for g <- py_graphs, k <- py_kinds, do: Bench.py_batch(port, g, k, 3)

IO.puts(
  "Emily.Compiler lanes vs Python MLX and JAX: µs per call, best of #{rounds} alternating rounds"
)

results =
  Enum.reduce(1..rounds, %{}, fn _, acc ->
    Enum.reduce(graphs, acc, fn {g, _, _, args, iters}, acc ->
      acc =
        Enum.reduce(lanes, acc, fn lane, acc ->
          {f, program} = compiled[{g, lane}]
          us = Bench.batch(f, args, iters)
          acc = Map.update(acc, {g, lane}, us, &min(&1, us))

          if lane == :native do
            # the native lane's own work in its last call: replay (C++), MLX evaluation
            st = Emily.Native.program_stats(program)

            split =
              {st.last_replay_us + st.last_eval_us, st.last_replay_us, st.last_eval_us, st.nodes}

            Map.update(acc, {g, :split}, split, &min(&1, split))
          else
            acc
          end
        end)

      Enum.reduce(py_kinds, acc, fn k, acc ->
        case g in py_graphs and Bench.py_batch(port, g, k, iters) do
          r when r in [nil, false] -> acc
          us -> Map.update(acc, {g, k}, us, &min(&1, us))
        end
      end)
    end)
  end)

header = [
  "graph",
  "evaluator",
  "native",
  "fused",
  "mlx",
  "mx.compile",
  "jax jit",
  "eval/native",
  "fused/mx.compile",
  "best lane/jax"
]

table =
  for {g, name, _, _, _} <- graphs do
    r = fn k -> Map.get(results, {g, k}) end

    [name, Bench.fmt(r.(:evaluator)), Bench.fmt(r.(:native)), Bench.fmt(r.(:fused))] ++
      [Bench.fmt(r.("plain")), Bench.fmt(r.("compiled")), Bench.fmt(r.("jax"))] ++
      [
        Bench.Measure.ratio(r.(:evaluator), r.(:native)),
        Bench.Measure.ratio(r.(:fused), r.("compiled"))
      ] ++
      [Bench.Measure.ratio(Enum.min([r.(:native), r.(:fused)]), r.("jax"))]
  end

Bench.Table.print(header, table)

IO.puts(
  "\ntargets: eval/native >= 10 on the chain; fused/mx.compile <= 1.2 on the block; " <>
    "best lane/jax <= 1.5 on the chain, <= 0.9 on the block\n"
)

for {g, name, _, _, _} <- graphs do
  {_, replay, eval, nodes} = results[{g, :split}]

  IO.puts(
    "#{name}: native program of #{nodes} MLX nodes; inside its job (best call): " <>
      "replay #{replay} µs, MLX evaluation #{eval} µs"
  )
end
