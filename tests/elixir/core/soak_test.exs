defmodule Emily.SoakTest do
  @moduledoc """
  GC accounting soak tests: 500 iterations over 64 MiB tensors, with no manual
  `:erlang.garbage_collect/0`, in a process with an 8 MiB heap (a process holding some
  state: it collects rarely on its own). MLX's active memory must stay under 8 tensors
  (512 MiB) with the accounting on. The same loops with it off are the baseline: the
  `to_binary/1` loop stays bounded anyway (the BEAM charges resource binaries to the binary
  heap), the handle loop does not (stopped at 1 GiB). Prints the figures.
  """
  use ExUnit.Case, async: false
  import Bitwise
  alias Emily.Native, as: N

  @moduletag timeout: 300_000

  @mib 1 <<< 20
  @tensor 64 * @mib
  @n div(@tensor, 4)
  @bound 8 * @tensor
  @cap 1024 * @mib

  setup_all do
    w = Emily.Worker.current()
    # Reused buffers (no page faults) keep a 64 MiB iteration at a few ms.
    old_cache = Emily.Memory.set_cache_limit(1024 * @mib)
    old_threshold = Emily.Memory.set_gc_threshold(2 * @tensor)
    old_pressure = Emily.Memory.gc_pressure?()
    base = Emily.from_binary(:binary.copy(<<1.0::float-32-native>>, @n), [@n], {:f, 32})

    on_exit(fn ->
      Emily.Memory.set_cache_limit(old_cache)
      Emily.Memory.set_gc_threshold(old_threshold)
      Emily.Memory.set_gc_pressure(old_pressure)
      Emily.Memory.clear_cache()
    end)

    {:ok, base: base, w: w}
  end

  # Runs 500 iterations of `mode` in a fresh process with an 8 MiB heap; returns the largest
  # rise of MLX's active memory seen after an iteration, MLX's peak rise and the iterations
  # run (fewer when the rise passed @cap).
  defp soak(mode, pressure, %{base: base, w: w}) do
    Emily.Memory.set_gc_pressure(pressure)
    Emily.eval(N.zeros([1], :u8, w))
    Emily.Memory.reset_peak()
    a0 = Emily.memory_stats().active
    parent = self()
    t0 = System.monotonic_time(:millisecond)

    {pid, ref} =
      :erlang.spawn_opt(
        fn ->
          result =
            Enum.reduce_while(1..500, {0, 0}, fn i, {max_rise, _} ->
              t = N.add(base, N.full([1], i * 1.0, :f32, w), w)

              case mode do
                :to_binary ->
                  <<v::float-32-native, _::binary>> = Emily.to_binary(t)
                  true = v == i + 1.0

                :handles ->
                  :ok = Emily.eval(t)
              end

              rise = max(max_rise, Emily.memory_stats().active - a0)
              if rise > @cap, do: {:halt, {rise, i}}, else: {:cont, {rise, i}}
            end)

          send(parent, {:soaked, result})
        end,
        [:monitor, min_heap_size: 1 <<< 20]
      )

    assert_receive {:soaked, {rise, iterations}}, 120_000
    assert_receive {:DOWN, ^ref, _, ^pid, _}, 10_000
    ms = System.monotonic_time(:millisecond) - t0
    peak = Emily.memory_stats().peak - a0

    IO.puts(
      "\n[soak] #{mode}, GC accounting #{if pressure, do: "on ", else: "off"}: " <>
        "max active rise #{div(rise, @mib)} MiB, MLX peak rise #{div(peak, @mib)} MiB, " <>
        "#{iterations} iterations in #{ms} ms"
    )

    {rise, peak, iterations}
  end

  test "to_binary of 64 MiB tensors, 500 times", ctx do
    {rise, peak, 500} = soak(:to_binary, true, ctx)
    assert rise <= @bound and peak <= @bound
    # Without the accounting: bounded by the BEAM's own binary-heap accounting.
    {rise, _peak, 500} = soak(:to_binary, false, ctx)
    assert rise <= @bound
  end

  test "64 MiB tensor handles made and dropped, 500 times", ctx do
    before = Emily.memory_stats().pressure_signals
    {rise, peak, 500} = soak(:handles, true, ctx)
    assert rise <= @bound and peak <= @bound
    assert Emily.memory_stats().pressure_signals > before
    # Without the accounting the dead handles pile up: past 1 GiB (16 tensors) early on.
    {rise, _peak, iterations} = soak(:handles, false, ctx)
    assert rise > @cap and iterations < 500
  end

  test "64 MiB tensor handles, 500 times, with every collection request held back", ctx do
    # As on a device faster than a request's round trip: Emily.Memory.Pressure is suspended,
    # so none of the requests it is sent reaches a process until the loop is over. The
    # bound holds through the processes' own collections while they wait for the worker.
    before = Emily.memory_stats().self_collections
    :ok = :sys.suspend(Emily.Memory.Pressure)

    {rise, peak, 500} =
      try do
        soak(:handles, true, ctx)
      after
        :sys.resume(Emily.Memory.Pressure)
      end

    assert rise <= @bound and peak <= @bound
    assert Emily.memory_stats().self_collections > before
  end
end
