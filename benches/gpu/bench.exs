# Emily on an NVIDIA GPU (MLX's CUDA backend), for the table in benches/gpu/README.md:
#
#   (a) matmul TFLOP/s, bf16 and f32, n = 4096 and 8192 (random data; checked against the
#       CPU on a block of rows)
#   (b) round trip of one op: 1k-element f32 add on the GPU, eval, read back, in µs
#   (c) to_binary from GPU memory, GB/s (256 MiB f32, freshly computed on the GPU)
#   (d) a transformer block forward (pre-LN, causal attention through MLX's fused SDPA, GELU
#       MLP), bf16 and f32, ms; its inputs and output go to a folder for the PyTorch script
#       to check (benches/gpu/bench_torch.py --check)
#
#     mix run benches/gpu/bench.exs OUT.json [BLOCK_DIR]
#
# EMILY_BENCH_QUICK=1 shrinks every size (a check of the script itself, e.g. with
# EMILY_BENCH_DEVICE=cpu on a machine without a GPU).
#
# PyTorch's figures come from benches/gpu/bench_torch.py on the same GPU in the same run
# (benches/gpu/device_run.sh); benches/gpu/table.py prints them side by side.
alias Emily.Native, as: N

defmodule GpuBench do
  @moduledoc false

  def median(xs) do
    s = Enum.sort(xs)
    Enum.at(s, div(length(s), 2))
  end

  # Uniform values in [-scale/2, scale/2): random bytes from the VM, scaled on the GPU.
  def rand(shape, dtype, w, scale \\ 1.0) do
    n = Enum.product(shape)
    u = N.from_binary(:crypto.strong_rand_bytes(4 * n), shape, :u32, w)
    f = N.astype(u, :f32, w)
    x = N.multiply(f, N.scalar(scale / 4_294_967_296, :f32, w), w)
    x = N.subtract(x, N.scalar(scale / 2, :f32, w), w)
    x = if dtype == :f32, do: x, else: N.astype(x, dtype, w)
    Emily.eval(x)
    x
  end

  # ||a - b|| / ||b|| computed on the worker of both (f32).
  def rel_err(a, b, w) do
    flat = fn t -> N.reshape(N.astype(t, :f32, w), [Enum.product(Emily.shape(t))], w) end
    a = flat.(a)
    b = flat.(b)
    d = N.subtract(a, b, w)
    num = N.sum(N.multiply(d, d, w), [0], false, w)
    den = N.sum(N.multiply(b, b, w), [0], false, w)
    <<n::float-32-native>> = Emily.to_binary(num)
    <<m::float-32-native>> = Emily.to_binary(den)
    :math.sqrt(n / m)
  end

  def time_s(fun) do
    {us, v} = :timer.tc(fun)
    {us / 1.0e6, v}
  end

  # --- (a) matmul -----------------------------------------------------------------------
  def quick?, do: System.get_env("EMILY_BENCH_QUICK") == "1"

  # EMILY_BENCH_ONLY=tf32: only the f32 products (run with MLX_ENABLE_TF32=1), keys
  # suffixed _tf32.
  def tf32_only?, do: System.get_env("EMILY_BENCH_ONLY") == "tf32"

  def matmul(w, cpu) do
    dtypes = if tf32_only?(), do: [:f32], else: [:bf16, :f32]
    suffix = if tf32_only?(), do: "_tf32", else: ""

    for dtype <- dtypes, n <- if(quick?(), do: [256, 512], else: [4096, 8192]) do
      a = rand([n, n], dtype, w)
      b = rand([n, n], dtype, w)
      # Correctness: 64 rows of the product against the CPU in f32 on the same inputs.
      c = N.matmul(a, b, w)
      rows = N.slice(c, [0, 0], [64, n], [1, 1], w)
      a64 = N.slice(a, [0, 0], [64, n], [1, 1], w)

      to_cpu = fn t ->
        N.from_binary(
          Emily.to_binary(N.astype(t, :f32, w)),
          Emily.shape(t),
          :f32,
          cpu
        )
      end

      ref = N.matmul(to_cpu.(a64), to_cpu.(b), cpu)

      err =
        rel_err(
          N.from_binary(Emily.to_binary(N.astype(rows, :f32, w)), [64, n], :f32, cpu),
          ref,
          cpu
        )

      per = 10
      batch = fn -> Emily.eval(for _ <- 1..per, do: N.matmul(a, b, w)) end
      batch.()
      batch.()
      times = for _ <- 1..5, do: elem(time_s(batch), 0) / per
      t = median(times)
      tflops = 2 * n * n * n / t / 1.0e12

      IO.puts(
        "matmul #{dtype} #{n}: #{Float.round(tflops, 1)} TFLOP/s (rel err vs CPU f32 #{fmt(err)})"
      )

      {"matmul_#{dtype}_#{n}#{suffix}", %{tflops: tflops, seconds: t, rel_err: err}}
    end
  end

  # --- (b) round trip ---------------------------------------------------------------------
  def round_trip(w) do
    a = rand([1000], :f32, w)
    b = rand([1000], :f32, w)
    expected = Enum.zip_with(f32_list_w(a, w), f32_list_w(b, w), &(&1 + &2))
    got = for <<v::float-32-native <- Emily.to_binary(N.add(a, b, w))>>, do: v
    true = Enum.zip(got, expected) |> Enum.all?(fn {g, e} -> abs(g - e) <= 1.0e-6 end)

    read = fn -> Emily.to_binary(N.add(a, b, w)) end
    eval = fn -> Emily.eval(N.add(a, b, w)) end

    per_op = fn f ->
      for(_ <- 1..200, do: f.())

      for _ <- 1..7 do
        {s, _} = time_s(fn -> for _ <- 1..500, do: f.() end)
        s / 500 * 1.0e6
      end
      |> median()
    end

    r = per_op.(read)
    e = per_op.(eval)

    IO.puts(
      "round trip (add 1k f32 + read back): #{Float.round(r, 1)} µs; add + eval only: #{Float.round(e, 1)} µs"
    )

    [{"round_trip_us", r}, {"eval_only_us", e}]
  end

  defp f32_list_w(t, _w), do: for(<<v::float-32-native <- Emily.to_binary(t)>>, do: v)

  # --- (c) to_binary from GPU memory --------------------------------------------------------
  def to_binary(w) do
    n = if quick?(), do: 1024 * 1024, else: 64 * 1024 * 1024
    x = rand([n], :f32, w)
    zero = N.scalar(0.0, :f32, w)
    first = Emily.to_binary(N.add(x, zero, w))
    ^first = Emily.to_binary(N.multiply(x, N.scalar(1.0, :f32, w), w))

    # to_binary can return before the bytes reach host memory (MLX's CUDA buffers are
    # managed memory: pages move on first touch), so the figure is to_binary followed by one
    # pass over every byte (zlib's crc32, as the PyTorch side does after .cpu()).
    runs =
      for _ <- 1..6 do
        y = N.add(x, zero, w)
        Emily.eval(y)
        {s0, bin} = time_s(fn -> Emily.to_binary(y) end)
        {s1, _} = time_s(fn -> :erlang.crc32(bin) end)
        ^n = div(byte_size(bin), 4)
        {s0, s0 + s1}
      end

    {t0, t} = {median(Enum.map(runs, &elem(&1, 0))), median(Enum.map(runs, &elem(&1, 1)))}
    host = :binary.copy(first)
    {tc, _} = time_s(fn -> :erlang.crc32(host) end)
    gbs = 4 * n / t / 1.0e9

    IO.puts(
      "to_binary #{div(4 * n, 1024 * 1024)} MiB f32 from the device's memory, then crc32 over it: " <>
        "#{Float.round(gbs, 2)} GB/s (#{Float.round(t * 1000, 1)} ms; to_binary alone " <>
        "#{Float.round(t0 * 1000, 2)} ms; crc32 of a host binary #{Float.round(tc * 1000, 1)} ms)"
    )

    [
      {"to_binary_gbs", gbs},
      {"to_binary_ms", t * 1000},
      {"to_binary_only_ms", t0 * 1000},
      {"crc32_host_ms", tc * 1000}
    ]
  end

  # --- (d) transformer block ---------------------------------------------------------------
  defp dims, do: if(quick?(), do: {1, 64, 128, 4, 512}, else: {8, 1024, 1024, 16, 4096})

  def block_params(dtype, w) do
    {b, l, d, _h, f} = dims()
    s = 1 / :math.sqrt(d)
    sf = 1 / :math.sqrt(f)

    %{
      x: rand([b, l, d], dtype, w, 2.0),
      g1: rand([d], dtype, w, 0.2),
      b1: rand([d], dtype, w, 0.2),
      wq: rand([d, d], dtype, w, 2 * s),
      wk: rand([d, d], dtype, w, 2 * s),
      wv: rand([d, d], dtype, w, 2 * s),
      wo: rand([d, d], dtype, w, 2 * s),
      g2: rand([d], dtype, w, 0.2),
      b2: rand([d], dtype, w, 0.2),
      w1: rand([d, f], dtype, w, 2 * s),
      c1: rand([f], dtype, w, 0.2),
      w2: rand([f, d], dtype, w, 2 * sf),
      c2: rand([d], dtype, w, 0.2)
    }
  end

  def block(p, dtype, w) do
    {b, l, d, h, _f} = dims()
    hd = div(d, h)
    ln = fn x, g, b -> N.layer_norm(x, [g], [b], 1.0e-5, w) end
    heads = fn t -> t |> N.reshape([b, l, h, hd], w) |> N.transpose([0, 2, 1, 3], w) end
    x0 = ln.(p.x, p.g1, p.b1)
    q = heads.(N.matmul(x0, p.wq, w))
    k = heads.(N.matmul(x0, p.wk, w))
    v = heads.(N.matmul(x0, p.wv, w))
    a = N.scaled_dot_product_attention(q, k, v, 1 / :math.sqrt(hd), true, [], [], w)
    a = a |> N.transpose([0, 2, 1, 3], w) |> N.reshape([b, l, d], w)
    x1 = N.add(p.x, N.matmul(a, p.wo, w), w)
    h2 = ln.(x1, p.g2, p.b2)
    m = N.add(N.matmul(h2, p.w1, w), p.c1, w)
    # GELU (erf form): 0.5 * m * (1 + erf(m / sqrt(2)))
    half = N.scalar(0.5, dtype, w)
    one = N.scalar(1.0, dtype, w)
    g = N.erf(N.multiply(m, N.scalar(1 / :math.sqrt(2), dtype, w), w), w)
    m = N.multiply(N.multiply(m, half, w), N.add(g, one, w), w)
    N.add(x1, N.add(N.matmul(m, p.w2, w), p.c2, w), w)
  end

  def transformer(w, dir) do
    File.mkdir_p!(dir)
    {b, l, d, h, f} = dims()
    File.write!(Path.join(dir, "meta.json"), JSON.encode!(%{b: b, l: l, d: d, h: h, f: f}))

    for dtype <- [:bf16, :f32] do
      p = block_params(dtype, w)
      out = block(p, dtype, w)
      Emily.eval(out)

      for {k, t} <- Map.put(p, :out, out) do
        File.write!(Path.join(dir, "#{dtype}_#{k}.bin"), Emily.to_binary(t))
      end

      fwd = fn -> Emily.eval(block(p, dtype, w)) end
      for _ <- 1..3, do: fwd.()
      times = for _ <- 1..20, do: elem(time_s(fwd), 0)
      t = median(times)
      {bt, _} = time_s(fn -> for _ <- 1..100, do: block(p, dtype, w) end)
      flops = 2 * b * l * (4 * d * d + 2 * d * f) + 4 * b * l * l * d

      IO.puts(
        "transformer block #{dtype} (B=#{b} L=#{l} D=#{d} H=#{h} F=#{f}): " <>
          "#{Float.round(t * 1000, 3)} ms, #{Float.round(flops / t / 1.0e12, 1)} TFLOP/s; " <>
          "building its graph: #{Float.round(bt / 100 * 1.0e6, 1)} µs"
      )

      {"block_#{dtype}", %{ms: t * 1000, tflops: flops / t / 1.0e12, build_us: bt / 100 * 1.0e6}}
    end
  end

  def fmt(x), do: :io_lib.format("~.2e", [x]) |> to_string()
end

[out_path | rest] = System.argv() ++ ["emily_gpu.json"]
block_dir = List.first(rest -- ["emily_gpu.json"]) || "/tmp/emily_block"
device = String.to_existing_atom(System.get_env("EMILY_BENCH_DEVICE", "gpu"))
w = Emily.Worker.start(device)
cpu = Emily.Worker.start(:cpu)
info = Emily.Native.device_info(device)

IO.puts(
  "Emily on #{info[:device_name]}; MLX #{Emily.Native.mlx_version()}; MLX_ENABLE_TF32=#{System.get_env("MLX_ENABLE_TF32")}"
)

results =
  if GpuBench.tf32_only?() do
    GpuBench.matmul(w, cpu)
  else
    GpuBench.matmul(w, cpu) ++
      GpuBench.round_trip(w) ++ GpuBench.to_binary(w) ++ GpuBench.transformer(w, block_dir)
  end
  |> Map.new()
  |> Map.put("device", info[:device_name] || to_string(device))
  |> Map.put("mlx", Emily.Native.mlx_version())

results =
  case File.read(out_path) do
    {:ok, old} when is_binary(old) and byte_size(old) > 0 -> Map.merge(JSON.decode!(old), results)
    _ -> results
  end

File.write!(out_path, JSON.encode!(results))
IO.puts("wrote #{out_path}")
