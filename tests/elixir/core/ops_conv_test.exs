defmodule Emily.OpsConvTest do
  use ExUnit.Case, async: true
  import Emily.Case
  alias Emily.Native, as: N

  setup do
    {:ok, w: Emily.Worker.current()}
  end

  # channels-last: input [N, W, C], weight [C_out, K, C_in]
  defp x5, do: f([1, 2, 3, 4, 5], [1, 5, 1])
  defp k3, do: f([1, 0, -1], [1, 3, 1])

  test "conv1d: cross-correlation, padding, stride, dilation", %{w: w} do
    r = N.conv1d(x5(), k3(), 1, 0, 1, 1, w)
    assert Emily.shape(r) == [1, 3, 1]
    assert read(r) == [-2.0, -2.0, -2.0]

    # padded input [0, 1, 2, 3, 4, 5, 0]
    assert read(N.conv1d(x5(), k3(), 1, 1, 1, 1, w)) == [-2.0, -2.0, -2.0, -2.0, 4.0]
    assert read(N.conv1d(x5(), k3(), 2, 0, 1, 1, w)) == [-2.0, -2.0]
    # dilation 2: taps x[i], x[i+2], x[i+4]
    assert read(N.conv1d(x5(), k3(), 1, 0, 2, 1, w)) == [-4.0]
  end

  test "conv_general: defaults, flip, asymmetric padding, input dilation", %{w: w} do
    assert read(N.conv_general(x5(), k3(), [], [], [], [], [], 1, false, w)) ==
             [-2.0, -2.0, -2.0]

    # flipped kernel [-1, 0, 1]: a true convolution
    assert read(N.conv_general(x5(), k3(), [1], [0], [0], [1], [1], 1, true, w)) ==
             [2.0, 2.0, 2.0]

    # padding only on the right: [1, 2, 3, 4, 5, 0]
    assert read(N.conv_general(x5(), k3(), [1], [0], [1], [1], [1], 1, false, w)) ==
             [-2.0, -2.0, -2.0, 4.0]

    # input dilation 2: [1, 0, 2] with kernel [1, 1]
    r =
      N.conv_general(
        f([1, 2], [1, 2, 1]),
        f([1, 1], [1, 2, 1]),
        [1],
        [0],
        [0],
        [1],
        [2],
        1,
        false,
        w
      )

    assert read(r) == [1.0, 2.0]
  end

  test "conv2d and grouped channels", %{w: w} do
    x = f(Enum.to_list(1..9), [1, 3, 3, 1])
    r = N.conv2d(x, f([1, 1, 1, 1], [1, 2, 2, 1]), [1, 1], [0, 0], [1, 1], 1, w)
    assert Emily.shape(r) == [1, 2, 2, 1]
    assert read(r) == [12.0, 16.0, 24.0, 28.0]

    # two input channels [1, 2], two groups, one output channel per group
    r = N.conv2d(f([1, 2], [1, 1, 1, 2]), f([3, 4], [2, 1, 1, 1]), [1, 1], [0, 0], [1, 1], 2, w)
    assert read(r) == [3.0, 8.0]

    # two output channels mixing two input channels
    r =
      N.conv2d(
        f([1, 2], [1, 1, 1, 2]),
        f([1, 1, 1, -1], [2, 1, 1, 2]),
        [1, 1],
        [0, 0],
        [1, 1],
        1,
        w
      )

    assert read(r) == [3.0, -1.0]
  end

  test "conv3d", %{w: w} do
    r =
      N.conv3d(
        f(Enum.to_list(1..8), [1, 2, 2, 2, 1]),
        f(List.duplicate(1, 8), [1, 2, 2, 2, 1]),
        [1, 1, 1],
        [0, 0, 0],
        [1, 1, 1],
        1,
        w
      )

    assert Emily.shape(r) == [1, 1, 1, 1, 1]
    assert read(r) == [36.0]
  end

  test "transposed convolutions", %{w: w} do
    # out[j] = sum_i x[i] * k[j - i * stride]
    x = f([1, 2], [1, 2, 1])
    k = f([1, 2], [1, 2, 1])
    assert read(N.conv_transpose1d(x, k, 1, 0, 1, 0, 1, w)) == [1.0, 4.0, 4.0]
    assert read(N.conv_transpose1d(x, k, 2, 0, 1, 0, 1, w)) == [1.0, 2.0, 2.0, 4.0]

    r =
      N.conv_transpose2d(
        f([2], [1, 1, 1, 1]),
        f([1, 2, 3, 4], [1, 2, 2, 1]),
        [1, 1],
        [0, 0],
        [1, 1],
        [0, 0],
        1,
        w
      )

    assert Emily.shape(r) == [1, 2, 2, 1]
    assert read(r) == [2.0, 4.0, 6.0, 8.0]

    r =
      N.conv_transpose3d(
        f([1], [1, 1, 1, 1, 1]),
        f([5, 6], [1, 2, 1, 1, 1]),
        [1, 1, 1],
        [0, 0, 0],
        [1, 1, 1],
        [0, 0, 0],
        1,
        w
      )

    assert Emily.shape(r) == [1, 2, 1, 1, 1]
    assert read(r) == [5.0, 6.0]
  end

  test "bad arguments raise ArgumentError", %{w: w} do
    x = f(Enum.to_list(1..9), [1, 3, 3, 1])
    k = f([1, 1, 1, 1], [1, 2, 2, 1])

    assert_raise ArgumentError, ~r/conv2d.*stride/, fn ->
      N.conv2d(x, k, [1, 1, 1], [0, 0], [1, 1], 1, w)
    end

    assert_raise ArgumentError, ~r/conv1d/, fn ->
      N.conv1d(x5(), f([1, 1], [1, 1, 2]), 1, 0, 1, 1, w)
    end

    # channel mismatch
    assert_raise ArgumentError, fn ->
      N.conv2d(x, f([1, 1], [1, 1, 1, 2]), [1, 1], [0, 0], [1, 1], 1, w)
    end

    # zero or negative groups, strides, dilations (MLX divides by groups before checking)
    for g <- [0, -1, 2 ** 32] do
      assert_raise ArgumentError, ~r/conv1d.*groups/, fn ->
        N.conv1d(x5(), k3(), 1, 0, 1, g, w)
      end

      assert_raise ArgumentError, ~r/conv2d.*groups/, fn ->
        N.conv2d(x, k, [1, 1], [0, 0], [1, 1], g, w)
      end

      assert_raise ArgumentError, ~r/conv_general.*groups/, fn ->
        N.conv_general(x5(), k3(), [], [], [], [], [], g, false, w)
      end
    end

    assert_raise ArgumentError, ~r/conv1d.*stride must be at least 1/, fn ->
      N.conv1d(x5(), k3(), 0, 0, 1, 1, w)
    end

    assert_raise ArgumentError, ~r/conv_transpose1d.*dilation/, fn ->
      N.conv_transpose1d(x5(), k3(), 1, 0, -2, 0, 1, w)
    end

    assert_raise ArgumentError, ~r/conv2d.*dilation/, fn ->
      N.conv2d(x, k, [1, 1], [0, 0], [1, 0], 1, w)
    end

    # conv_general's lists: empty, one value, or one per spatial axis
    assert_raise ArgumentError, ~r/conv_general.*padding_lo needs 0, 1 or 1 values/, fn ->
      N.conv_general(x5(), k3(), [], [-1, -1], [], [], [], 1, false, w)
    end

    assert_raise ArgumentError, ~r/conv_general.*input_dilation/, fn ->
      N.conv_general(x5(), k3(), [], [], [], [], [0], 1, false, w)
    end
  end
end
