defmodule Emily.OpsIndexTest do
  use ExUnit.Case, async: true
  import Emily.Case
  alias Emily.Native, as: N

  setup do
    {:ok, w: Emily.Worker.current()}
  end

  # [[1, 2, 3], [4, 5, 6]]
  defp a23, do: t([1, 2, 3, 4, 5, 6], [2, 3], {:f, 32})
  defp idx(values, shape), do: t(values, shape, {:s, 32})

  test "take indexes the flattened array", %{w: w} do
    r = N.take(a23(), idx([5, 0, 2], [3]), w)
    assert Emily.shape(r) == [3]
    assert read(r) == [6.0, 1.0, 3.0]
  end

  test "take_axis", %{w: w} do
    r = N.take_axis(a23(), idx([2, 0], [2]), 1, w)
    assert Emily.shape(r) == [2, 2]
    assert read(r) == [3.0, 1.0, 6.0, 4.0]

    r = N.take_axis(a23(), idx([1, 1], [2]), 0, w)
    assert Emily.shape(r) == [2, 3]
    assert read(r) == [4.0, 5.0, 6.0, 4.0, 5.0, 6.0]
  end

  test "take_along_axis", %{w: w} do
    r = N.take_along_axis(a23(), idx([2, 0], [2, 1]), 1, w)
    assert Emily.shape(r) == [2, 1]
    assert read(r) == [3.0, 4.0]
  end

  test "put_along_axis and scatter_add_axis", %{w: w} do
    z = t([0, 0, 0, 0, 0, 0], [2, 3], {:f, 32})
    r = N.put_along_axis(z, idx([1, 2], [2, 1]), t([7, 8], [2, 1], {:f, 32}), 1, w)
    assert read(r) == [0.0, 7.0, 0.0, 0.0, 0.0, 8.0]

    z = t([0, 0, 0], [3], {:f, 32})
    r = N.scatter_add_axis(z, idx([0, 0, 2], [3]), t([1, 2, 3], [3], {:f, 32}), 0, w)
    assert read(r) == [3.0, 0.0, 3.0]
  end

  test "gather slices along one and several axes", %{w: w} do
    a = t(Enum.to_list(0..8), [3, 3], {:f, 32})
    r = N.gather(a, [idx([2, 0], [2])], [0], [1, 3], w)
    assert Emily.shape(r) == [2, 1, 3]
    assert read(r) == [6.0, 7.0, 8.0, 0.0, 1.0, 2.0]

    # points a[0, 1] and a[2, 0]
    r = N.gather(a, [idx([0, 2], [2]), idx([1, 0], [2])], [0, 1], [1, 1], w)
    assert Emily.shape(r) == [2, 1, 1]
    assert read(r) == [1.0, 6.0]
  end

  test "scatter replaces, scatter_add accumulates duplicates", %{w: w} do
    z = t([0, 0, 0, 0], [4], {:f, 32})
    r = N.scatter(z, [idx([1, 3], [2])], t([5, 6], [2, 1], {:f, 32}), [0], w)
    assert read(r) == [0.0, 5.0, 0.0, 6.0]

    r = N.scatter_add(z, [idx([1, 1, 3], [3])], t([1, 2, 3], [3, 1], {:f, 32}), [0], w)
    assert read(r) == [0.0, 3.0, 0.0, 3.0]
  end

  test "scatter_prod, scatter_max, scatter_min", %{w: w} do
    a = t([2, 2, 2], [3], {:f, 32})
    r = N.scatter_prod(a, [idx([0, 0], [2])], t([3, 4], [2, 1], {:f, 32}), [0], w)
    assert read(r) == [24.0, 2.0, 2.0]

    a = t([1, 5, 1], [3], {:f, 32})
    up = t([3, 2], [2, 1], {:f, 32})
    assert read(N.scatter_max(a, [idx([0, 1], [2])], up, [0], w)) == [3.0, 5.0, 1.0]
    assert read(N.scatter_min(a, [idx([0, 1], [2])], up, [0], w)) == [1.0, 2.0, 1.0]
  end

  test "scatter of rows in 2-D", %{w: w} do
    z = t([0, 0, 0, 0, 0, 0], [3, 2], {:s, 64})
    # updates: index shape [1] ++ slice [1, 2]
    r = N.scatter(z, [idx([2], [1])], t([7, 9], [1, 1, 2], {:s, 64}), [0], w)
    assert read(r) == [0, 0, 0, 0, 7, 9]
  end

  # Index values out of range are only known when the graph runs: gathers clamp them (after
  # counting negatives in [-n, -1] from the end), scatters drop their updates.
  test "gathers clamp out-of-range indices", %{w: w} do
    # flattened, n = 6: 9 -> 5, -1 -> 5, -6 -> 0, -100 -> 0
    assert read(N.take(a23(), idx([9, -1, -6, -100], [4]), w)) == [6.0, 6.0, 1.0, 1.0]
    # n = 3: 5 -> 2, -1 -> 2, -7 -> 0
    assert read(N.take_axis(a23(), idx([5, -1, -7], [3]), 1, w)) ==
             [3.0, 3.0, 1.0, 6.0, 6.0, 4.0]

    assert read(N.take_axis(a23(), idx([2, -3], [2]), 0, w)) ==
             [4.0, 5.0, 6.0, 1.0, 2.0, 3.0]

    assert read(N.take_along_axis(a23(), idx([7, -9], [2, 1]), 1, w)) == [3.0, 4.0]
    # unsigned indices past the end, up to the top of their type
    assert read(N.take(a23(), t([4_294_967_295, 1], [2], {:u, 32}), w)) == [6.0, 2.0]
    assert read(N.take(a23(), t([18_446_744_073_709_551_615], [1], {:u, 64}), w)) == [6.0]
    assert read(N.take(a23(), t([-128, 127], [2], {:s, 8}), w)) == [1.0, 6.0]

    # a 2-row window of a 3-row array starts at row 0 or 1: 5 -> 1, -1 (row 2) -> 1, -3 -> 0
    a = t(Enum.to_list(0..8), [3, 3], {:f, 32})
    r = N.gather(a, [idx([5, -1, -3], [3])], [0], [2, 3], w)
    assert Emily.shape(r) == [3, 2, 3]

    assert read(r) ==
             [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] ++
               [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]

    # points: (9, -1) -> (2, 2), (-4, 1) -> (0, 1)
    r = N.gather(a, [idx([9, -4], [2]), idx([-1, 1], [2])], [0, 1], [1, 1], w)
    assert read(r) == [8.0, 1.0]
  end

  test "scatters drop updates at out-of-range indices", %{w: w} do
    z = t([0, 0, 0, 0], [4], {:f, 32})
    i = idx([1, 4, -1, -5], [4])
    up = t([5, 6, 7, 8], [4, 1], {:f, 32})
    assert read(N.scatter(z, [i], up, [0], w)) == [0.0, 5.0, 0.0, 7.0]
    assert read(N.scatter_add(z, [i], up, [0], w)) == [0.0, 5.0, 0.0, 7.0]

    a = t([2, 2, 2], [3], {:f, 32})
    r = N.scatter_prod(a, [idx([0, 3, -4], [3])], t([3, 4, 5], [3, 1], {:f, 32}), [0], w)
    assert read(r) == [6.0, 2.0, 2.0]

    a = t([1, 5, 1], [3], {:s, 32})
    up = t([3, 9], [2, 1], {:s, 32})
    assert read(N.scatter_max(a, [idx([0, 7], [2])], up, [0], w)) == [3, 5, 1]
    up = t([2, -10], [2, 1], {:s, 32})
    assert read(N.scatter_min(a, [idx([1, -9], [2])], up, [0], w)) == [1, 2, 1]

    # whole rows: row 3 of 3 is dropped, row 0 written
    z = t([0, 0, 0, 0, 0, 0], [3, 2], {:s, 64})
    r = N.scatter(z, [idx([3, 0], [2])], t([7, 9, 1, 2], [2, 1, 2], {:s, 64}), [0], w)
    assert read(r) == [1, 2, 0, 0, 0, 0]

    # a 2-wide slice starting at column 2 of 3 does not fit: dropped whole
    z = t(List.duplicate(0, 9), [3, 3], {:f, 32})
    up = t([1, 1, 2, 2], [2, 1, 2], {:f, 32})
    r = N.scatter_add(z, [idx([0, 1], [2]), idx([2, 1], [2])], up, [0, 1], w)
    assert read(r) == [0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0]
    r = N.scatter(z, [idx([0, 1], [2]), idx([2, 1], [2])], up, [0, 1], w)
    assert read(r) == [0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0]

    z = t([0, 0, 0, 0, 0, 0], [2, 3], {:f, 32})
    r = N.put_along_axis(z, idx([5, -1], [2, 1]), t([7, 8], [2, 1], {:f, 32}), 1, w)
    assert read(r) == [0.0, 0.0, 0.0, 0.0, 0.0, 8.0]

    z = t([0, 0, 0], [3], {:f, 32})
    r = N.scatter_add_axis(z, idx([0, 3, -1, -4], [4]), t([1, 2, 3, 4], [4], {:f, 32}), 0, w)
    assert read(r) == [1.0, 0.0, 3.0]
  end

  test "empty updates and empty axes", %{w: w} do
    a = t([1, 2, 3, 4, 5, 6], [2, 3], {:f, 32})
    # no index arrays and an empty update: nothing written
    r = N.scatter_min(a, [], N.zeros([0, 3], :f32, w), [], w)
    assert read(r) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    r = N.scatter(a, [idx([], [0])], N.zeros([0, 2, 3], :f32, w), [0], w)
    assert read(r) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]

    # taking from an empty axis: only an empty result is possible
    empty = N.zeros([2, 0], :f32, w)
    assert Emily.shape(N.take_axis(empty, idx([], [0]), 1, w)) == [2, 0]

    assert_raise ArgumentError, ~r/take.*empty axis/, fn ->
      N.take_axis(empty, idx([0], [1]), 1, w)
    end

    assert_raise ArgumentError, ~r/take.*empty axis/, fn -> N.take(empty, idx([0], [1]), w) end

    assert_raise ArgumentError, ~r/take_along_axis.*size 0/, fn ->
      N.take_along_axis(empty, idx([0, 0], [2, 1]), 1, w)
    end
  end

  test "bad arguments raise ArgumentError naming the op", %{w: w} do
    assert_raise ArgumentError, ~r/take_axis/, fn -> N.take_axis(a23(), idx([0], [1]), 5, w) end

    assert_raise ArgumentError, ~r/gather/, fn ->
      N.gather(a23(), [idx([0], [1])], [0, 1], [1, 1], w)
    end

    f = t([0.0], [1], {:f, 32})
    assert_raise ArgumentError, ~r/take.*integers/, fn -> N.take(a23(), f, w) end

    assert_raise ArgumentError, ~r/take_along_axis.*integers/, fn ->
      N.take_along_axis(a23(), f, 0, w)
    end

    assert_raise ArgumentError, ~r/scatter.*integers/, fn -> N.scatter(a23(), [f], f, [0], w) end
    b = t([true], [1], :bool)

    assert_raise ArgumentError, ~r/gather.*integers/, fn ->
      N.gather(a23(), [b], [0], [1, 3], w)
    end

    # slice sizes must fit the array
    assert_raise ArgumentError, ~r/gather.*slice size/, fn ->
      N.gather(a23(), [idx([0], [1])], [0], [3, 3], w)
    end

    assert_raise ArgumentError, ~r/scatter_add.*does not fit/, fn ->
      N.scatter_add(a23(), [idx([0], [1])], t([1, 1, 1, 1], [1, 1, 4], {:f, 32}), [0], w)
    end
  end
end
