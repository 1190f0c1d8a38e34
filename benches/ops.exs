# Op-layer costs, next to Python MLX and numpy, measured in one run:
#
#   (a) round trip of one evaluated op: 1k-element f32 add + eval + read back, in µs
#   (b) graph build only: one add node, no eval, in µs
#   (c) f32 matmul GFLOP/s at 256, 512, 1024, 2048
#
#     mix run benches/ops.exs
#
# Python MLX and numpy run in their own processes (benches/ops_py.py), one after the other,
# after Emily's part. See benches/README.md for the Python environment.
alias Emily.Native

defmodule Bench do
  @sizes [256, 512, 1024, 2048]
  def sizes, do: @sizes

  # Median over batches of the mean time of one call, in µs.
  def per_op_us(fun, iters, batches \\ 7) do
    fun.()

    for _ <- 1..batches do
      {us, _} = :timer.tc(fn -> loop(fun, iters) end)
      us / iters
    end
    |> median()
  end

  defp loop(_fun, 0), do: :ok

  defp loop(fun, n) do
    fun.()
    loop(fun, n - 1)
  end

  def median(xs) do
    s = Enum.sort(xs)
    Enum.at(s, div(length(s), 2))
  end

  def reps_for(n), do: max(3, trunc(2.0e10 / (2 * n * n * n)))

  def gflops(run, n) do
    run.()
    reps = reps_for(n)

    best =
      for _ <- 1..3 do
        {us, _} = :timer.tc(fn -> loop(run, reps) end)
        us / reps
      end
      |> Enum.min()

    2 * n * n * n / best / 1000
  end

  def random_f32(n) do
    for _ <- 1..n, into: <<>>, do: <<:rand.normal()::float-32-native>>
  end

  def python do
    System.get_env("EMILY_BENCH_PYTHON") ||
      Enum.find([Path.expand(".venv-bench/bin/python")], &File.exists?/1)
  end

  # Runs benches/ops_py.py in its own process; nil when Python or the library is missing.
  def run_python(which) do
    case python() do
      nil ->
        nil

      py ->
        # Python MLX binds the same OpenBLAS as Emily (its wheel ships reference BLAS).
        env =
          if which == "mlx",
            do: [{"LD_PRELOAD", openblas()}],
            else: []

        case System.cmd(py, ["benches/ops_py.py", which], env: env, stderr_to_stdout: true) do
          {out, 0} -> decode(out)
          {out, _} -> IO.puts("python #{which} failed:\n#{out}") && nil
        end
    end
  end

  defp openblas do
    Enum.find(
      [
        "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/libopenblas.so.0"
      ],
      "",
      &File.exists?/1
    )
  end

  # `name value` lines -> %{"name" => float}
  def decode(out) do
    for line <- String.split(out, "\n", trim: true),
        [k, v] <- [String.split(line)],
        {f, ""} <- [Float.parse(v)],
        into: %{},
        do: {k, f}
  end

  def fmt(nil), do: "-"
  def fmt(x) when is_float(x) and x >= 100, do: :erlang.float_to_binary(x, decimals: 0)
  def fmt(x) when is_float(x), do: :erlang.float_to_binary(x, decimals: 1)
  def fmt(x), do: to_string(x)

  def ratio(_, nil), do: "-"
  def ratio(nil, _), do: "-"
  def ratio(a, b), do: :erlang.float_to_binary(a / b, decimals: 2) <> "x"
end

w = Emily.Worker.current()

a =
  Native.from_binary(
    for(i <- 0..999, into: <<>>, do: <<i * 1.0::float-32-native>>),
    [1000],
    :f32,
    w
  )

b =
  Native.from_binary(for(_ <- 1..1000, into: <<>>, do: <<1.0::float-32-native>>), [1000], :f32, w)

Emily.eval([a, b])

# (a) round trip through the raw NIFs (what Emily.to_binary/1 does, less telemetry)
roundtrip = fn ->
  c = Native.add(a, b, w)
  ref = make_ref()
  :ok = Native.to_binary(c, ref)
  Emily.Worker.await(ref)
end

check = roundtrip.()
<<1.0::float-32-native, 2.0::float-32-native, _::binary>> = check

rt_native = Bench.per_op_us(roundtrip, 500)
rt_api = Bench.per_op_us(fn -> Emily.to_binary(Native.add(a, b, w)) end, 500)

# (b) graph build only
build = Bench.per_op_us(fn -> Native.add(a, b, w) end, 20_000)
:erlang.garbage_collect()

# (c) matmul
emily_mm =
  for n <- Bench.sizes(), into: %{} do
    x = Native.from_binary(Bench.random_f32(n * n), [n, n], :f32, w)
    y = Native.from_binary(Bench.random_f32(n * n), [n, n], :f32, w)
    Emily.eval([x, y])
    {"matmul_#{n}", Bench.gflops(fn -> Emily.eval(Native.matmul(x, y, w)) end, n)}
  end

# Let OpenBLAS's threads go idle before the other processes measure.
Process.sleep(1000)
py = Bench.run_python("mlx")
Process.sleep(1000)
np = Bench.run_python("numpy")

if py == nil, do: IO.puts("(no Python MLX: see benches/README.md)")

IO.puts("""

| measure | Emily | Python MLX | Emily / MLX | numpy | Emily / numpy |
|---|---|---|---|---|---|\
""")

get = fn m, k -> m && m[k] end

row = fn name, e, m, n ->
  IO.puts(
    "| #{name} | #{Bench.fmt(e)} | #{Bench.fmt(m)} | #{Bench.ratio(e, m)} | " <>
      "#{Bench.fmt(n)} | #{Bench.ratio(e, n)} |"
  )
end

row.("1k f32 add + eval + read, µs (NIFs)", rt_native, get.(py, "roundtrip_us"), nil)
row.("1k f32 add + eval + read, µs (Emily.to_binary)", rt_api, get.(py, "roundtrip_us"), nil)
row.("graph build, one add, µs", build, get.(py, "build_us"), nil)

for n <- Bench.sizes() do
  k = "matmul_#{n}"
  row.("f32 matmul #{n}, GFLOP/s", emily_mm[k], get.(py, k), get.(np, k))
end

IO.puts("""

Targets: round trip <= 1.0x Python MLX; graph build <= 5 µs/op; matmul >= 0.9x numpy.
""")
