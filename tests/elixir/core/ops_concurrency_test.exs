defmodule Emily.OpsConcurrencyTest do
  # 32 processes build and read 200 mixed ops each at the same time, half on a worker of
  # their own, half on the shared default worker; every value is checked.
  use ExUnit.Case, async: false
  alias Emily.Native, as: N

  @moduletag timeout: 300_000

  @processes 32
  @ops 200

  defp read(t), do: Emily.Case.read(t)

  test "inline and queued evaluations of shared graphs from many processes, both ways" do
    # Tensors evaluated already, lazy ones built on the default worker and read by every
    # process (cheap graphs: evaluated in the callers' scheduler threads when the worker is
    # free, queued when not), with inline evaluation on and off, and direct execution off.
    w = Emily.Worker.current()
    base = Emily.Case.t([1.0, 2.0, 3.0, 4.0], [4], {:f, 32})
    Emily.eval(base)

    for {inline, direct} <- [{true, true}, {false, true}, {true, false}] do
      previous = Emily.Worker.set_inline_eval(inline)
      previous_direct = Emily.Worker.set_direct_execution(direct)

      try do
        shared = for k <- 1..8, do: N.multiply(base, N.full([4], k * 1.0, :f32, w), w)

        1..@processes
        |> Task.async_stream(
          fn p ->
            for i <- 1..50 do
              k = rem(p + i, 8) + 1
              assert read(base) == [1.0, 2.0, 3.0, 4.0]
              assert read(Enum.at(shared, k - 1)) == Enum.map([1.0, 2.0, 3.0, 4.0], &(&1 * k))
              mine = N.add(Enum.at(shared, k - 1), N.full([4], i * 1.0, :f32, w), w)
              assert read(mine) == Enum.map([1.0, 2.0, 3.0, 4.0], &(&1 * k + i))
            end
          end,
          max_concurrency: @processes,
          timeout: 120_000
        )
        |> Enum.each(fn r -> assert {:ok, _} = r end)
      after
        Emily.Worker.set_inline_eval(previous)
        Emily.Worker.set_direct_execution(previous_direct)
      end
    end
  end

  test "workers start and stop while other processes evaluate on the default worker" do
    # MLX registers a new CPU stream in a table it updates without a lock: evaluations
    # running meanwhile missed their own stream before Emily serialised the two.
    w = Emily.Worker.current()
    base = Emily.Case.t([1.0, 2.0, 3.0, 4.0], [4], {:f, 32})
    Emily.eval(base)

    creators =
      for _ <- 1..4 do
        Task.async(fn ->
          for _ <- 1..60 do
            own = Emily.Worker.start(:cpu)
            assert read(N.add(base, base, own)) == [2.0, 4.0, 6.0, 8.0]
            Emily.Worker.stop(own)
          end
        end)
      end

    readers =
      for p <- 1..8 do
        Task.async(fn ->
          for i <- 1..600 do
            x = N.add(base, N.full([4], (p + i) * 1.0, :f32, w), w)
            assert read(x) == Enum.map([1.0, 2.0, 3.0, 4.0], &(&1 + p + i))
          end
        end)
      end

    Task.await_many(creators ++ readers, 120_000)
  end

  test "32 processes x 200 mixed ops, own and shared workers, every value checked" do
    # An evaluated tensor shared by all processes (evaluated data is readable anywhere).
    shared = Emily.Case.t([10, 20, 30], [3], {:s, 32})
    Emily.eval(shared)

    tasks =
      for p <- 1..@processes do
        Task.async(fn ->
          own = if rem(p, 2) == 0, do: Emily.Worker.start(:cpu)
          if own, do: Process.put({Emily.Worker, :cpu}, own)

          try do
            for i <- 1..@ops, do: step(rem(i + p, 9), p, i, shared)
            {p, if(own, do: :own, else: :shared), @ops}
          after
            if own, do: Emily.Worker.stop(own)
          end
        end)
      end

    results = Task.await_many(tasks, 240_000)
    assert length(results) == @processes
    assert Enum.count(results, &match?({_, :own, @ops}, &1)) == div(@processes, 2)
    assert Enum.count(results, &match?({_, :shared, @ops}, &1)) == div(@processes, 2)
  end

  defp w, do: Emily.Worker.current()
  defp arange(a, b, type), do: N.arange(a * 1.0, b * 1.0, 1.0, type, w())

  defp step(0, p, i, _shared) do
    n = 1 + rem(i * 7 + p, 50)
    assert read(N.sum(arange(0, n, :s32), [0], false, w())) == [div(n * (n - 1), 2)]
  end

  defp step(1, p, i, _shared) do
    v = p + i / 4
    x = N.full([3], v, :f32, w())
    assert read(N.multiply(x, x, w())) == List.duplicate(v * v, 3)
  end

  defp step(2, _p, i, _shared) do
    x = N.reshape(arange(i, i + 6, :s64), [2, 3], w())
    assert read(N.transpose(x, [1, 0], w())) == Enum.map([0, 3, 1, 4, 2, 5], &(&1 + i))
  end

  defp step(3, p, i, _shared) do
    n = 2 + rem(i + p, 30)
    sorted = N.sort(N.flip(arange(0, n, :f32), [0], w()), 0, w())
    assert read(sorted) == Enum.map(0..(n - 1), &(&1 * 1.0))
  end

  defp step(4, p, i, _shared) do
    n = 1 + rem(i * 3 + p, 40)
    c = N.cumsum(N.ones([n], :s64, w()), 0, false, true, w())
    assert read(N.slice(c, [n - 1], [n], [1], w())) == [n]
  end

  defp step(5, _p, i, _shared) do
    j = rem(i, 10)
    start = N.scalar_int(j, :s32, w())
    window = N.slice_dynamic(arange(0, 10, :u8), N.reshape(start, [1], w()), [0], [3], w())
    s = min(j, 7)
    assert read(window) == [s, s + 1, s + 2]
  end

  defp step(6, p, i, _shared) do
    x = N.concatenate([N.full_int([2], p, :s16, w()), N.full_int([1], i, :s16, w())], 0, w())
    padded = N.pad(x, [0], [1], [0], N.scalar_int(0, :s16, w()), :constant, w())
    assert read(padded) == [0, p, p, i]
  end

  defp step(7, p, i, _shared) do
    at = rem(i + p, 5)

    x =
      N.slice_update(
        N.zeros([5], :f32, w()),
        N.full([1], 1.0, :f32, w()),
        [at],
        [at + 1],
        [1],
        w()
      )

    assert read(N.argmax(x, 0, false, w())) == [at]
    assert Enum.sort(read(N.topk(x, 2, 0, w()))) == [0.0, 1.0]
  end

  defp step(8, p, i, shared) do
    # the shared, already evaluated tensor as an input on this process's worker
    y = N.add(shared, N.full_int([3], p * 1000 + i, :s32, w()), w())
    m = N.max(y, [0], true, w())
    :ok = Emily.eval([y, m])
    assert read(y) == [10 + p * 1000 + i, 20 + p * 1000 + i, 30 + p * 1000 + i]
    assert read(m) == [30 + p * 1000 + i]
  end
end
