# Emily's CPU kernels (src/cpp/kernels) next to MLX's own, JAX jit (XLA) and PyTorch, in one
# run: best ms over 5 rounds of 20 calls, 1M f32 elements per op (pow: x ** y, y over
# [-3, 3]); softmax (Nx's composed form through Emily.Compiler's native lane), sum and max
# over the last axis of 128 x 32000 f32.
#
#     mix run benches/cpu_kernels.exs
#
# JAX and PyTorch run benches/cpu_kernels_py.py in their own processes, from .venv-bench
# (or EMILY_BENCH_PYTHON): pip install numpy "jax[cpu]" torch. Ratios are Emily's time over
# the faster peer's. See benches/README.md.
Nx.global_default_backend(Emily.Backend)

defmodule CpuKernelsBench do
  import Nx.Defn

  @n 1_000_000
  @ranges [
    exp: {-10, 10},
    expm1: {-10, 10},
    log: {0.01, 100},
    log1p: {0, 100},
    sin: {-10, 10},
    cos: {-10, 10},
    tanh: {-10, 10},
    sigmoid: {-10, 10},
    erf: {-5, 5},
    erf_inv: {-0.999, 0.999},
    sqrt: {0, 100},
    rsqrt: {0.01, 100},
    gelu: {-5, 5},
    pow: {0.01, 100}
  ]
  @rows_ops [:softmax, :sum_last, :max_last]
  def ops, do: Keyword.keys(@ranges)
  def rows_ops, do: @rows_ops

  def input(op) do
    {lo, hi} = @ranges[op]
    Nx.linspace(lo, hi, n: @n, type: :f32) |> Nx.backend_transfer(Emily.Backend)
  end

  defn(gelu(x), do: x * 0.5 * (1 + Nx.erf(x / Nx.sqrt(2))))

  defn softmax(x) do
    e = Nx.exp(x - Nx.reduce_max(x, axes: [-1], keep_axes: true))
    e / Nx.sum(e, axes: [-1], keep_axes: true)
  end

  def fun(:gelu), do: Nx.Defn.jit(&gelu/1, compiler: Emily.Compiler)
  def fun(:softmax), do: Nx.Defn.jit(&softmax/1, compiler: Emily.Compiler)
  def fun(:sum_last), do: &Nx.sum(&1, axes: [-1])
  def fun(:max_last), do: &Nx.reduce_max(&1, axes: [-1])

  def fun(:pow) do
    y = Nx.linspace(-3, 3, n: @n, type: :f32) |> Nx.backend_transfer(Emily.Backend)
    &Nx.pow(&1, y)
  end

  def fun(op), do: fn x -> apply(Nx, op, [x]) end

  def best_ms(f, reps \\ 20, rounds \\ 5) do
    f.()

    for _ <- 1..rounds do
      {us, _} = :timer.tc(fn -> for _ <- 1..reps, do: f.() end)
      us / reps / 1000
    end
    |> Enum.min()
  end

  def time(op, x) do
    f = fun(op)
    reps = if op in @rows_ops, do: 5, else: 20
    best_ms(fn -> Emily.eval(f.(x).data.ref) end, reps)
  end

  def peer(which) do
    py = System.get_env("EMILY_BENCH_PYTHON") || Path.expand(".venv-bench/bin/python")

    if File.exists?(py) do
      {out, 0} = System.cmd(py, ["benches/cpu_kernels_py.py", which], stderr_to_stdout: false)

      for line <- String.split(out, "\n", trim: true), into: %{} do
        [name, ms] = String.split(line)
        {String.to_atom(name), String.to_float(ms)}
      end
    else
      IO.puts("(no #{py}: #{which} column empty)")
      %{}
    end
  end
end

IO.puts(
  "Emily CPU kernels: #{inspect(Emily.Native.cpu_kernels_isa())}; #{System.schedulers_online()} schedulers"
)

jax = CpuKernelsBench.peer("jax")
torch = CpuKernelsBench.peer("torch")
softmax_x = Nx.Random.normal(Nx.Random.key(0), shape: {128, 32000}, type: :f32) |> elem(0)

rows =
  for op <- CpuKernelsBench.ops() ++ CpuKernelsBench.rows_ops() do
    x = if op in CpuKernelsBench.rows_ops(), do: softmax_x, else: CpuKernelsBench.input(op)
    # Captured programs keep the primitives they were built with: each setting captures anew.
    Emily.Native.cpu_kernels(false)
    Emily.Compiler.clear_cache()
    mlx = CpuKernelsBench.time(op, x)
    Emily.Native.cpu_kernels(true)
    Emily.Compiler.clear_cache()
    emily = CpuKernelsBench.time(op, x)
    {op, emily, mlx, jax[op], torch[op]}
  end

fmt = fn
  nil -> "-"
  v -> :erlang.float_to_binary(v * 1.0, decimals: 3)
end

IO.puts("\n| op | Emily ms | MLX's kernels ms | JAX jit ms | PyTorch ms | Emily / faster peer |")
IO.puts("|---|---|---|---|---|---|")

for {op, e, m, j, t} <- rows do
  peer = [j, t] |> Enum.reject(&is_nil/1) |> Enum.min(fn -> nil end)
  ratio = if peer, do: :erlang.float_to_binary(e / peer, decimals: 2) <> "x", else: "-"
  IO.puts("| #{op} | #{fmt.(e)} | #{fmt.(m)} | #{fmt.(j)} | #{fmt.(t)} | #{ratio} |")
end
