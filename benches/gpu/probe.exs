# Runs ops on the CPU and on the GPU and compares the results, each GPU case on a fresh
# worker with a time limit (a hang shows as HANG and leaves only that worker stuck). For
# checking what MLX's CUDA backend computes differently from its CPU backend.
#
#     mix run benches/gpu/probe.exs
alias Emily.Native, as: N

defmodule Probe do
  @moduledoc false

  def t(values, shape, type, w) do
    bin =
      for v <- values, into: <<>> do
        case type do
          :f32 -> <<v * 1.0::float-32-native>>
          :s64 -> <<v::signed-64-native>>
          :s32 -> <<v::signed-32-native>>
        end
      end

    N.from_binary(bin, shape, type, w)
  end

  def read(x) do
    case Emily.dtype(x) do
      {:c, 64} ->
        for <<re::float-32-native, im::float-32-native <- Emily.to_binary(x)>>, do: {re, im}

      {:f, 32} ->
        for <<v::float-32-native <- Emily.to_binary(x)>>, do: v

      {:s, 64} ->
        for <<v::signed-64-native <- Emily.to_binary(x)>>, do: v

      other ->
        {:dtype, other}
    end
  end

  def run(name, fun, timeout \\ 15_000) do
    cpu = Emily.Worker.start(:cpu)
    gpu = Emily.Worker.start(String.to_existing_atom(System.get_env("EMILY_PROBE_DEVICE", "gpu")))
    c = safe(fn -> read(fun.(cpu)) end, timeout)
    g = safe(fn -> read(fun.(gpu)) end, timeout)

    verdict =
      case {c, g} do
        {{:ok, a}, {:ok, b}} -> if close?(a, b), do: "same", else: "DIFFERENT"
        {_, :hang} -> "HANG (gpu worker #{inspect(Emily.Worker.info(gpu))})"
        _ -> "ERROR"
      end

    IO.puts(
      "#{String.pad_trailing(name, 44)} #{verdict}\n    cpu: #{inspect(c, limit: 12)}\n    gpu: #{inspect(g, limit: 12)}"
    )

    Emily.Worker.stop(cpu)
    if not String.starts_with?(verdict, "HANG"), do: Emily.Worker.stop(gpu)
  end

  defp safe(f, timeout) do
    task =
      Task.async(fn ->
        try do
          {:ok, f.()}
        rescue
          e -> {:error, Exception.message(e)}
        end
      end)

    case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
      {:ok, r} -> r
      nil -> :hang
    end
  end

  defp close?(a, b) when is_list(a) and is_list(b) and length(a) == length(b) do
    Enum.zip(a, b) |> Enum.all?(fn {x, y} -> near(x, y) end)
  end

  defp close?(_, _), do: false
  defp near({a, b}, {c, d}), do: near(a, c) and near(b, d)
  defp near(x, y) when is_number(x) and is_number(y), do: abs(x - y) <= 1.0e-4 * max(1, abs(x))
  defp near(x, y), do: x == y
end

f = fn v, s, w -> Probe.t(v, s, :f32, w) end
x12 = fn w -> f.([1, 2], [1, 2, 1], w) end

Probe.run("conv_transpose1d stride 1", fn w ->
  N.conv_transpose1d(x12.(w), x12.(w), 1, 0, 1, 0, 1, w)
end)

Probe.run("conv_transpose1d stride 2", fn w ->
  N.conv_transpose1d(x12.(w), x12.(w), 2, 0, 1, 0, 1, w)
end)

Probe.run("conv_transpose1d stride 3", fn w ->
  N.conv_transpose1d(x12.(w), x12.(w), 3, 0, 1, 0, 1, w)
end)

Probe.run("conv_general input_dilation 2, flip", fn w ->
  N.conv_general(x12.(w), x12.(w), [1], [1], [1], [1], [2], 1, true, w)
end)

Probe.run("conv_transpose1d stride 2, 4 ch, len 16", fn w ->
  x = f.(Enum.map(1..64, &(&1 / 7)), [1, 16, 4], w)
  k = f.(Enum.map(1..48, &(&1 / 11)), [4, 3, 4], w)
  N.conv_transpose1d(x, k, 2, 1, 1, 1, 1, w)
end)

Probe.run("conv_transpose2d stride 2", fn w ->
  x = f.(Enum.map(1..16, & &1), [1, 4, 4, 1], w)
  k = f.([1, 2, 3, 4], [1, 2, 2, 1], w)
  N.conv_transpose2d(x, k, [2, 2], [0, 0], [1, 1], [0, 0], 1, w)
end)

m = fn w -> f.([1, 2, 3, 4], [2, 2], w) end
Probe.run("fftn axes [0,1]", fn w -> N.fftn(m.(w), [], [0, 1], :backward, w) end)
Probe.run("rfft2", fn w -> N.rfft2(m.(w), [], [], :backward, w) end)

Probe.run("irfft2(rfft2, n=[2,2])", fn w ->
  N.irfft2(N.rfft2(m.(w), [], [], :backward, w), [2, 2], [], :backward, w)
end)

Probe.run("rfftn axes [0,1]", fn w -> N.rfftn(m.(w), [], [0, 1], :backward, w) end)

Probe.run("irfftn(rfftn) no n", fn w ->
  N.irfftn(N.rfftn(m.(w), [], [0, 1], :backward, w), [], [0, 1], :backward, w)
end)

Probe.run("irfftn(rfftn, n=[2,2])", fn w ->
  N.irfftn(N.rfftn(m.(w), [], [0, 1], :backward, w), [2, 2], [0, 1], :backward, w)
end)

Probe.run("irfftn(rfftn, n=[2,2]) again", fn w ->
  N.irfftn(N.rfftn(m.(w), [], [0, 1], :backward, w), [2, 2], [0, 1], :backward, w)
end)

Probe.run("fftn axis [1]", fn w -> N.fftn(m.(w), [], [1], :backward, w) end)

Probe.run("scatter s64 rows (CPU-stream fallback)", fn w ->
  src = Probe.t([0, 0, 0, 0, 0, 0], [3, 2], :s64, w)
  idx = Probe.t([2], [1], :s32, w)
  upd = Probe.t([7, 9], [1, 1, 2], :s64, w)
  N.scatter(src, [idx], upd, [0], w)
end)

Probe.run("norm nuclear (svd on the CPU stream)", fn w ->
  N.norm(f.([3, 0, 0, -4], [2, 2], w), :nuc, 0.0, [], false, w)
end)

Probe.run("sdpa causal f32 (TF32 off)", fn w ->
  q = f.([1, 0, 0, 1], [1, 1, 2, 2], w)
  k = f.([0, 0, 1, 0], [1, 1, 2, 2], w)
  v = f.([1, 2, 3, 4], [1, 1, 2, 2], w)
  N.scaled_dot_product_attention(q, k, v, 1.0, true, [], [], w)
end)

if System.argv() == ["poison"] do
  # With EMILY_GPU_CPU_FALLBACK=0 a float64 op reaches MLX's GPU and fails when evaluated.
  # Does the worker evaluate anything afterwards?
  gpu = Emily.Worker.start(:gpu)
  x = N.from_binary(<<1.0::float-64-native, 2.0::float-64-native>>, [2], :f64, gpu)
  y = f.([1, 2], [2], gpu)

  first =
    try do
      Emily.to_binary(N.add(x, x, gpu))
    rescue
      e -> {:raised, Exception.message(e)}
    end

  task = Task.async(fn -> Probe.read(N.add(y, y, gpu)) end)

  after_error =
    case Task.yield(task, 15_000) || Task.shutdown(task, :brutal_kill) do
      {:ok, v} -> {:ok, v}
      nil -> :hang
    end

  IO.puts(
    "eval error on the GPU: #{inspect(first)}; the same worker afterwards: #{inspect(after_error)}"
  )

  fresh = Emily.Worker.start(:gpu)

  IO.puts(
    "a new GPU worker afterwards: #{inspect(Probe.read(N.add(f.([1, 2], [2], fresh), f.([1, 2], [2], fresh), fresh)))}"
  )
end

IO.puts("probe done")
