# Op-layer costs, next to Python MLX and numpy, measured in one run:
#
#   (a) round trip of one evaluated op: 1k-element f32 add + eval + read back, in µs
#   (b) graph build only: one add node, no eval, in µs
#   (c) f32 matmul GFLOP/s at 256, 512, 1024, 2048
#
#     mix run benches/ops.exs [rounds]
#
# Python MLX and numpy run in their own OS processes (benches/ops_py.py), each measurement
# interleaved with Emily's over several rounds; the table shows each side's best round. See
# benches/README.md for the Python environment.
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

  # Best of 3 batches, in GFLOP/s.
  def gflops(run, n) do
    run.()
    reps = max(3, trunc(2.0e10 / (2 * n * n * n)))

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

  # Starts benches/ops_py.py <which> as a port; nil when Python or the library is missing.
  def start_python(which) do
    with py when py != nil <- python() do
      # Python MLX binds the same OpenBLAS as Emily (its wheel ships reference BLAS).
      env = if which == "mlx", do: [{~c"LD_PRELOAD", String.to_charlist(openblas())}], else: []

      port =
        Port.open({:spawn_executable, py}, [
          :binary,
          :exit_status,
          {:line, 4096},
          {:args, ["benches/ops_py.py", which]},
          {:env, env}
        ])

      case answer(port, 120_000) do
        "ready" ->
          port

        other ->
          IO.puts("python #{which} did not start: #{inspect(other)}")
          nil
      end
    end
  end

  def ask(nil, _), do: nil

  def ask(port, command) do
    Port.command(port, command <> "\n")

    case Float.parse(answer(port, 600_000) || "") do
      {v, ""} -> v
      _ -> nil
    end
  end

  defp answer(port, timeout) do
    receive do
      {^port, {:data, {:eol, line}}} -> line
      {^port, {:exit_status, _}} -> nil
    after
      timeout -> nil
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

  def fmt(nil), do: "-"
  def fmt(x) when is_float(x) and x >= 100, do: :erlang.float_to_binary(x, decimals: 0)
  def fmt(x) when is_float(x), do: :erlang.float_to_binary(x, decimals: 1)

  def ratio(a, b) when is_float(a) and is_float(b),
    do: :erlang.float_to_binary(a / b, decimals: 2) <> "x"

  def ratio(_, _), do: "-"

  def best(xs, :lower), do: xs |> Enum.reject(&is_nil/1) |> Enum.min(fn -> nil end)
  def best(xs, :higher), do: xs |> Enum.reject(&is_nil/1) |> Enum.max(fn -> nil end)
end

rounds =
  case System.argv() do
    [r] -> String.to_integer(r)
    _ -> 3
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

<<1.0::float-32-native, 2.0::float-32-native, _::binary>> = roundtrip.()

mats =
  for n <- Bench.sizes(), into: %{} do
    x = Native.from_binary(Bench.random_f32(n * n), [n, n], :f32, w)
    y = Native.from_binary(Bench.random_f32(n * n), [n, n], :f32, w)
    Emily.eval([x, y])
    {n, {x, y}}
  end

py = Bench.start_python("mlx")
np = Bench.start_python("numpy")
if py == nil, do: IO.puts("(no Python MLX: see benches/README.md)")

measures =
  [
    {"1k f32 add + eval + read, µs (NIFs)", :lower, fn -> Bench.per_op_us(roundtrip, 500) end,
     "roundtrip", nil},
    {"1k f32 add + eval + read, µs (Emily.to_binary)", :lower,
     fn -> Bench.per_op_us(fn -> Emily.to_binary(Native.add(a, b, w)) end, 500) end, "roundtrip",
     nil},
    {"graph build, one add, µs", :lower,
     fn ->
       us = Bench.per_op_us(fn -> Native.add(a, b, w) end, 20_000)
       :erlang.garbage_collect()
       us
     end, "build", nil}
  ] ++
    for n <- Bench.sizes() do
      {x, y} = mats[n]

      {"f32 matmul #{n}, GFLOP/s", :higher,
       fn -> Bench.gflops(fn -> Emily.eval(Native.matmul(x, y, w)) end, n) end, "matmul #{n}",
       "matmul #{n}"}
    end

results =
  for {name, better, emily, py_cmd, np_cmd} <- measures do
    {es, ms, ns} =
      for _ <- 1..rounds, reduce: {[], [], []} do
        {es, ms, ns} ->
          e = emily.()
          # let OpenBLAS's threads go idle between libraries
          if np_cmd, do: Process.sleep(200)
          m = Bench.ask(py, py_cmd)
          if np_cmd, do: Process.sleep(200)
          n = if np_cmd, do: Bench.ask(np, np_cmd)
          if np_cmd, do: Process.sleep(200)
          {[e | es], [m | ms], [n | ns]}
      end

    {name, Bench.best(es, better), Bench.best(ms, better), Bench.best(ns, better)}
  end

IO.puts("""

Best of #{rounds} interleaved rounds (#{System.schedulers_online()} schedulers; OpenBLAS \
kernels: #{Emily.Native.blas_core() || "not OpenBLAS"}, #{Emily.Native.blas_threads()} threads, \
OPENBLAS_CORETYPE=\
#{System.get_env("OPENBLAS_CORETYPE", "(unset)")}, which numpy's OpenBLAS follows too).

| measure | Emily | Python MLX | Emily / MLX | numpy | Emily / numpy |
|---|---|---|---|---|---|\
""")

for {name, e, m, n} <- results do
  IO.puts(
    "| #{name} | #{Bench.fmt(e)} | #{Bench.fmt(m)} | #{Bench.ratio(e, m)} | " <>
      "#{Bench.fmt(n)} | #{Bench.ratio(e, n)} |"
  )
end

IO.puts("""

Targets: round trip <= 1.0x Python MLX; graph build <= 5 µs/op; matmul >= 0.9x numpy.
""")
