defmodule Emily.OpsIndexTest do
  use ExUnit.Case, async: true
  import Emily.Case
  alias Emily.Native, as: N

  setup do
    {:ok, w: Emily.Worker.current()}
  end

  # [[1, 2, 3], [4, 5, 6]]
  defp a23, do: t([1, 2, 3, 4, 5, 6], {2, 3}, {:f, 32})
  defp idx(values, shape), do: t(values, shape, {:s, 32})

  test "take indexes the flattened array", %{w: w} do
    r = N.take(a23(), idx([5, 0, 2], {3}), w)
    assert Emily.shape(r) == {3}
    assert read(r) == [6.0, 1.0, 3.0]
  end

  test "take_axis", %{w: w} do
    r = N.take_axis(a23(), idx([2, 0], {2}), 1, w)
    assert Emily.shape(r) == {2, 2}
    assert read(r) == [3.0, 1.0, 6.0, 4.0]

    r = N.take_axis(a23(), idx([1, 1], {2}), 0, w)
    assert Emily.shape(r) == {2, 3}
    assert read(r) == [4.0, 5.0, 6.0, 4.0, 5.0, 6.0]
  end

  test "take_along_axis", %{w: w} do
    r = N.take_along_axis(a23(), idx([2, 0], {2, 1}), 1, w)
    assert Emily.shape(r) == {2, 1}
    assert read(r) == [3.0, 4.0]
  end

  test "put_along_axis and scatter_add_axis", %{w: w} do
    z = t([0, 0, 0, 0, 0, 0], {2, 3}, {:f, 32})
    r = N.put_along_axis(z, idx([1, 2], {2, 1}), t([7, 8], {2, 1}, {:f, 32}), 1, w)
    assert read(r) == [0.0, 7.0, 0.0, 0.0, 0.0, 8.0]

    z = t([0, 0, 0], {3}, {:f, 32})
    r = N.scatter_add_axis(z, idx([0, 0, 2], {3}), t([1, 2, 3], {3}, {:f, 32}), 0, w)
    assert read(r) == [3.0, 0.0, 3.0]
  end

  test "gather slices along one and several axes", %{w: w} do
    a = t(Enum.to_list(0..8), {3, 3}, {:f, 32})
    r = N.gather(a, [idx([2, 0], {2})], [0], [1, 3], w)
    assert Emily.shape(r) == {2, 1, 3}
    assert read(r) == [6.0, 7.0, 8.0, 0.0, 1.0, 2.0]

    # points a[0, 1] and a[2, 0]
    r = N.gather(a, [idx([0, 2], {2}), idx([1, 0], {2})], [0, 1], [1, 1], w)
    assert Emily.shape(r) == {2, 1, 1}
    assert read(r) == [1.0, 6.0]
  end

  test "scatter replaces, scatter_add accumulates duplicates", %{w: w} do
    z = t([0, 0, 0, 0], {4}, {:f, 32})
    r = N.scatter(z, [idx([1, 3], {2})], t([5, 6], {2, 1}, {:f, 32}), [0], w)
    assert read(r) == [0.0, 5.0, 0.0, 6.0]

    r = N.scatter_add(z, [idx([1, 1, 3], {3})], t([1, 2, 3], {3, 1}, {:f, 32}), [0], w)
    assert read(r) == [0.0, 3.0, 0.0, 3.0]
  end

  test "scatter_prod, scatter_max, scatter_min", %{w: w} do
    a = t([2, 2, 2], {3}, {:f, 32})
    r = N.scatter_prod(a, [idx([0, 0], {2})], t([3, 4], {2, 1}, {:f, 32}), [0], w)
    assert read(r) == [24.0, 2.0, 2.0]

    a = t([1, 5, 1], {3}, {:f, 32})
    up = t([3, 2], {2, 1}, {:f, 32})
    assert read(N.scatter_max(a, [idx([0, 1], {2})], up, [0], w)) == [3.0, 5.0, 1.0]
    assert read(N.scatter_min(a, [idx([0, 1], {2})], up, [0], w)) == [1.0, 2.0, 1.0]
  end

  test "scatter of rows in 2-D", %{w: w} do
    z = t([0, 0, 0, 0, 0, 0], {3, 2}, {:s, 64})
    # updates: index shape [1] ++ slice [1, 2]
    r = N.scatter(z, [idx([2], {1})], t([7, 9], {1, 1, 2}, {:s, 64}), [0], w)
    assert read(r) == [0, 0, 0, 0, 7, 9]
  end

  test "bad arguments raise ArgumentError naming the op", %{w: w} do
    assert_raise ArgumentError, ~r/take_axis/, fn -> N.take_axis(a23(), idx([0], {1}), 5, w) end

    assert_raise ArgumentError, ~r/gather/, fn ->
      N.gather(a23(), [idx([0], {1})], [0, 1], [1, 1], w)
    end
  end
end
