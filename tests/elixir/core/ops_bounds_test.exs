defmodule Emily.OpsBoundsTest do
  # Arguments MLX 0.32 does not check and that used to read or write out of bounds, divide
  # by zero or wrap around (found by native_fuzz_test.exs): now clamped or refused.
  use ExUnit.Case, async: true
  import Emily.OpsCase
  alias Emily.Native, as: N

  defp s32(list), do: tensor(list, [length(list)], {:s, 32})

  test "take clamps indices into the array (negative ones count from the end)" do
    x = s32([0, 10, 20, 30, 40, 50])

    assert_tensor(N.take(x, s32([5, -1, -6, 6, 7, -7, 1_000_000]), w()), [7], {:s, 32}, [
      50,
      50,
      0,
      50,
      50,
      0,
      50
    ])

    m = tensor(Enum.to_list(0..5), [2, 3], {:s, 32})
    assert_tensor(N.take_axis(m, s32([-1, 3, 9]), 1, w()), [2, 3], {:s, 32}, [2, 2, 2, 5, 5, 5])
    idx = tensor([9, -9], [2, 1], {:s, 64})
    assert_tensor(N.take_along_axis(m, idx, 1, w()), [2, 1], {:s, 32}, [2, 3])
  end

  test "gather clamps each start so the slice fits; empty gathers are empty" do
    m = tensor(Enum.to_list(0..5), [2, 3], {:s, 32})
    # rows 5 (-> 1) and -1 (-> 1), slices of 1 x 2 starting at column 9 (-> 1)
    g = N.gather(m, [s32([5, -1]), s32([9, 9])], [0, 1], [1, 2], w())
    assert_tensor(g, [2, 1, 2], {:s, 32}, [4, 5, 4, 5])
    assert_tensor(N.gather(m, [s32([0])], [0], [0, 3], w()), [1, 0, 3], {:s, 32}, [])

    assert_tensor(
      N.gather(m, [tensor([], [0], {:s, 32})], [0], [1, 3], w()),
      [0, 1, 3],
      {:s, 32},
      []
    )
  end

  test "scatters drop out-of-range updates; empty updates leave the array as it is" do
    z = N.zeros([4], :f32, w())
    upd = tensor([1.0, 2.0], [2, 1], {:f, 32})

    # 7 is past the end: dropped. -1 counts from the end.
    assert_tensor(N.scatter_add(z, [s32([7, -1])], upd, [0], w()), [4], {:f, 32}, [
      0.0,
      0.0,
      0.0,
      2.0
    ])

    assert_tensor(N.scatter_add(z, [s32([-9, 4])], upd, [0], w()), [4], {:f, 32}, [
      0.0,
      0.0,
      0.0,
      0.0
    ])

    x = tensor([1.0, 2.0], [2], {:f, 64})

    assert_tensor(N.scatter_prod(x, [], N.zeros([0], :f64, w()), [], w()), [2], {:f, 64}, [
      1.0,
      2.0
    ])

    assert_raise ArgumentError, ~r/index arrays for an array with 1 dimensions/, fn ->
      N.scatter(z, [s32([0]), s32([0])], upd, [0], w())
    end

    assert_raise ArgumentError, ~r/does not fit an axis of 4/, fn ->
      N.scatter(z, [], N.zeros([5], :f32, w()), [], w())
    end
  end

  test "conv strides, dilations and groups must be positive" do
    input = N.ones([1, 4, 1], :f32, w())
    weight = N.ones([1, 2, 1], :f32, w())
    assert_tensor(N.conv1d(input, weight, 1, 0, 1, 1, w()), [1, 3, 1], {:f, 32}, [2.0, 2.0, 2.0])

    assert_raise ArgumentError, ~r/groups must be at least 1/, fn ->
      N.conv1d(input, weight, 1, 0, 1, 0, w())
    end

    assert_raise ArgumentError, ~r/stride must be at least 1/, fn ->
      N.conv1d(input, weight, 0, 0, 1, 1, w())
    end

    assert_raise ArgumentError, ~r/32-bit range/, fn ->
      N.conv1d(input, weight, 1, 0, 1, 2 ** 32, w())
    end
  end

  test "quantize's group size must be one the mode supports; fftshift axes must be distinct" do
    assert_raise ArgumentError, ~r/group_size 1099511627776 is not supported/, fn ->
      N.quantize(N.ones([2, 64], :f32, w()), 2 ** 40, 4, :affine, w())
    end

    assert_raise ArgumentError, ~r/repeated axis/, fn ->
      N.fftshift(N.ones([4], :f32, w()), [0, 0], w())
    end

    assert_raise ArgumentError, ~r/out of range/, fn ->
      N.fftshift(N.ones([4], :f32, w()), [1], w())
    end
  end

  test "as_strided refuses views whose reach overflows" do
    x = tensor(Enum.to_list(0..5), [6], {:s, 32})
    assert_tensor(N.as_strided(x, [2, 2], [2, 1], 1, w()), [2, 2], {:s, 32}, [1, 2, 3, 4])

    assert_raise ArgumentError, ~r/reaches past/, fn ->
      N.as_strided(x, [3, 3], [2 ** 62, 2 ** 62], 0, w())
    end
  end

  test "tri and eye refuse negative sizes before building anything" do
    assert_raise ArgumentError, ~r/must not be negative/, fn ->
      N.tri(2_147_483_647, -1, 0, :s8, w())
    end

    assert_raise ArgumentError, ~r/must not be negative/, fn ->
      N.eye(-1, 2_147_483_647, 0, :f32, w())
    end
  end
end
