defmodule Emily.OpsQuantizeTest do
  use ExUnit.Case, async: true
  import Emily.Case
  import Bitwise
  alias Emily.Native, as: N

  setup do
    {:ok, w: Emily.Worker.current()}
  end

  # Unpacks 4-bit codes, 8 per u32 word, lowest bits first.
  defp nibbles(words), do: for(w <- words, i <- 0..7, do: w >>> (4 * i) &&& 0xF)

  test "affine quantize: codes, scales and biases reproduce w exactly", %{w: w} do
    values = for i <- 0..31, do: rem(i, 16)
    [wq, scales, biases] = N.quantize(f(values, {1, 32}), 32, 4, 0, w)
    assert Emily.dtype(wq) == {:u, 32}
    assert Emily.shape(wq) == {1, 4}
    assert Emily.shape(scales) == {1, 1}
    [s] = read(scales)
    [b] = read(biases)
    # 16 levels spanning 0..15: |scale| = 1
    assert abs(s) == 1.0
    assert Enum.map(nibbles(read(wq)), &(&1 * s + b)) == Enum.map(values, &(&1 * 1.0))

    assert read(N.dequantize(wq, scales, [biases], 32, 4, 0, w)) == Enum.map(values, &(&1 * 1.0))
  end

  test "affine quantization is lossy in a bounded way", %{w: w} do
    values = for i <- 0..63, do: i / 10
    [wq, scales, biases] = N.quantize(f(values, {1, 64}), 64, 4, 0, w)
    back = read(N.dequantize(wq, scales, [biases], 64, 4, 0, w))
    # step = 6.3 / 15: error at most half a step
    for {a, e} <- Enum.zip(back, values), do: assert(abs(a - e) <= 6.3 / 30 + 1.0e-5)
  end

  test "quantized_matmul with and without transpose", %{w: w} do
    row0 = for i <- 0..31, do: rem(i, 16)
    row1 = for i <- 0..31, do: 15 - rem(i, 16)
    [wq, scales, biases] = N.quantize(f(row0 ++ row1, {2, 32}), 32, 4, 0, w)
    x = f(Enum.to_list(0..31), {1, 32})
    # x . row0 = sum j * (j mod 16) = 4400; x . row1 = 15 * 496 - 4400 = 3040
    r = N.quantized_matmul(x, wq, scales, [biases], true, 32, 4, 0, w)
    assert Emily.shape(r) == {1, 2}
    assert read(r) == [4400.0, 3040.0]

    # w [32, 32] with w[k][n] = n mod 16: (ones @ w)[n] = 32 * (n mod 16)
    wm = for _k <- 0..31, n <- 0..31, do: rem(n, 16)
    [wq, scales, biases] = N.quantize(f(wm, {32, 32}), 32, 4, 0, w)

    r =
      N.quantized_matmul(
        f(List.duplicate(1, 32), {1, 32}),
        wq,
        scales,
        [biases],
        false,
        32,
        4,
        0,
        w
      )

    assert read(r) == for(n <- 0..31, do: 32.0 * rem(n, 16))
  end

  test "mxfp4 has no biases and represents e2m1 values exactly", %{w: w} do
    values = List.duplicate([0, 0.5, 1, 1.5, 2, 3, 4, 6], 4) |> List.flatten()
    outs = N.quantize(f(values, {1, 32}), 32, 4, 1, w)
    assert length(outs) == 2
    [wq, scales] = outs
    assert read(N.dequantize(wq, scales, [], 32, 4, 1, w)) == Enum.map(values, &(&1 * 1.0))
  end

  test "bad arguments raise ArgumentError", %{w: w} do
    x = f(Enum.to_list(0..31), {1, 32})
    [wq, scales, _biases] = N.quantize(x, 32, 4, 0, w)

    assert_raise ArgumentError, ~r/dequantize/, fn ->
      N.dequantize(wq, scales, [], 32, 4, 0, w)
    end

    assert_raise ArgumentError, ~r/mode/, fn -> N.quantize(x, 32, 4, 9, w) end
    # the last axis must be a multiple of the group size
    assert_raise ArgumentError, ~r/quantize/, fn ->
      N.quantize(f([1, 2, 3], {1, 3}), 32, 4, 0, w)
    end

    # group sizes and bits the mode does not support (MLX would divide by them first)
    for {gs, bits} <- [
          {2 ** 31, 4},
          {2 ** 40, 4},
          {16, 4},
          {48, 4},
          {32, 7},
          {32, 1},
          {32, 2 ** 32}
        ] do
      assert_raise ArgumentError, ~r/quantize.*(group_size|bits).*not supported/, fn ->
        N.quantize(x, gs, bits, 0, w)
      end

      assert_raise ArgumentError, ~r/dequantize.*not supported/, fn ->
        N.dequantize(wq, scales, [], gs, bits, 0, w)
      end

      assert_raise ArgumentError, ~r/quantized_matmul.*not supported/, fn ->
        N.quantized_matmul(x, wq, scales, [], true, gs, bits, 0, w)
      end
    end

    assert_raise ArgumentError, ~r/bits 8 is not supported by mode mxfp4/, fn ->
      N.quantize(x, 32, 8, 1, w)
    end
  end
end
