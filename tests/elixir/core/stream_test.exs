defmodule Emily.StreamTest do
  use ExUnit.Case, async: true
  import Emily.Case
  alias Emily.Native, as: N

  defp w, do: Emily.Worker.current()
  defp id(t), do: N.tensor_worker(t)
  defp wid(worker), do: Emily.Worker.info(worker).id
  # The device workers are made on (EMILY_DEFAULT_DEVICE=gpu runs this file on the GPU).
  defp dev, do: Emily.Worker.default_device()
  defp other_dev, do: if(dev() == :cpu, do: :gpu, else: :cpu)

  test "with_worker gives the block its own worker and restores the previous one" do
    default = w()

    {inside, t} =
      Emily.Stream.with_worker(fn ->
        {w(), t([1, 2], [2], {:s, 32}) |> N.negative(w())}
      end)

    assert w() == default
    assert inside != default
    assert id(t) == wid(inside)
    # Tensors made inside stay usable afterwards.
    assert read(t) == [-1, -2]
  end

  test "put/2 sets and clears the process's worker" do
    mine = Emily.Stream.new()
    assert Emily.Stream.put(mine) == nil
    assert w() == mine
    assert Emily.Stream.put(nil) == mine
    assert w() == Emily.Worker.default()
    assert_raise MatchError, fn -> Emily.Stream.put(mine, other_dev()) end
  end

  test "an unevaluated input from another worker is evaluated on its own worker first" do
    # x's graph (exp) is built on the default worker and never evaluated there.
    x = N.exp(t([0.0, 1.0], [2], {:f, 32}), w())
    refute N.evaluated(x)

    y =
      Emily.Stream.with_worker(fn ->
        N.add(x, t([1.0, 1.0], [2], {:f, 32}), w())
      end)

    assert id(y) != id(x)
    [a, b] = read(y)
    assert abs(a - 2.0) < 1.0e-6
    assert abs(b - 3.7182817) < 1.0e-6
    assert N.evaluated(x)
  end

  test "a graph alternating between three workers evaluates, whichever worker reads it" do
    w1 = Emily.Stream.new()
    w2 = Emily.Stream.new()
    one = t([1], [1], {:s, 64})

    # ((((1 + 1) * 2 + 1) * 2 + 1) ...) alternating default, w1, w2, each step unevaluated.
    {t, expected} =
      Enum.reduce(1..12, {one, 1}, fn i, {acc, e} ->
        worker = Enum.at([Emily.Worker.default(), w1, w2], rem(i, 3))

        Emily.Stream.with_worker(worker, dev(), fn ->
          {N.add(N.multiply(acc, t([2], [1], {:s, 64}), w()), one, w()), e * 2 + 1}
        end)
      end)

    assert read(t) == [expected]
    # Read it through a fourth worker as well.
    z = Emily.Stream.with_worker(fn -> N.negative(N.add(t, one, w()), w()) end)
    assert read(z) == [-(expected + 1)]
  end

  test "eval/1 of tensors from several workers" do
    a = N.square(t([3], [1], {:s, 32}), w())
    b = Emily.Stream.with_worker(fn -> N.square(t([4], [1], {:s, 32}), w()) end)
    assert Emily.eval([a, b]) == :ok
    assert N.evaluated(a) and N.evaluated(b)
    assert read(a) == [9] and read(b) == [16]
  end

  test "processes with their own workers run concurrently and correctly" do
    tasks =
      for p <- 1..6 do
        Task.async(fn ->
          Emily.Stream.with_worker(fn ->
            for i <- 1..40 do
              x = t(Enum.to_list(1..64), [64], {:s, 64})
              y = N.add(N.multiply(x, t([p], [1], {:s, 64}), w()), t([i], [1], {:s, 64}), w())
              assert read(y) == Enum.map(1..64, &(&1 * p + i))
            end

            :done
          end)
        end)
      end

    assert Enum.map(tasks, &Task.await(&1, 60_000)) == List.duplicate(:done, 6)
  end

  test "an input from a stopped worker: evaluated ones stay readable, unevaluated ones raise" do
    other = Emily.Stream.new()

    {done, lazy} =
      Emily.Stream.with_worker(other, dev(), fn ->
        done = N.negative(t([5], [1], {:s, 32}), w())
        :ok = Emily.eval(done)
        {done, N.negative(t([6], [1], {:s, 32}), w())}
      end)

    Emily.Worker.stop(other)
    assert read(N.add(done, done, w())) == [-10]
    e = assert_raise Emily.Error, fn -> Emily.to_binary(N.add(lazy, done, w())) end
    assert e.message =~ "to_binary"
    assert e.message =~ "shut down"
    e = assert_raise Emily.Error, fn -> Emily.to_binary(lazy) end
    assert e.message =~ "shut down"
  end
end
