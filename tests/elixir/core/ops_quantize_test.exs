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
    [wq, scales, biases] = N.quantize(f(values, [1, 32]), 32, 4, :affine, w)
    assert Emily.dtype(wq) == {:u, 32}
    assert Emily.shape(wq) == [1, 4]
    assert Emily.shape(scales) == [1, 1]
    [s] = read(scales)
    [b] = read(biases)
    # 16 levels spanning 0..15: |scale| = 1
    assert abs(s) == 1.0
    assert Enum.map(nibbles(read(wq)), &(&1 * s + b)) == Enum.map(values, &(&1 * 1.0))

    assert read(N.dequantize(wq, scales, [biases], 32, 4, :affine, w)) ==
             Enum.map(values, &(&1 * 1.0))
  end

  test "affine quantization is lossy in a bounded way", %{w: w} do
    values = for i <- 0..63, do: i / 10
    [wq, scales, biases] = N.quantize(f(values, [1, 64]), 64, 4, :affine, w)
    back = read(N.dequantize(wq, scales, [biases], 64, 4, :affine, w))
    # step = 6.3 / 15: error at most half a step
    for {a, e} <- Enum.zip(back, values), do: assert(abs(a - e) <= 6.3 / 30 + 1.0e-5)
  end

  test "quantized_matmul with and without transpose", %{w: w} do
    row0 = for i <- 0..31, do: rem(i, 16)
    row1 = for i <- 0..31, do: 15 - rem(i, 16)
    [wq, scales, biases] = N.quantize(f(row0 ++ row1, [2, 32]), 32, 4, :affine, w)
    x = f(Enum.to_list(0..31), [1, 32])
    # x . row0 = sum j * (j mod 16) = 4400; x . row1 = 15 * 496 - 4400 = 3040
    r = N.quantized_matmul(x, wq, scales, [biases], true, 32, 4, :affine, w)
    assert Emily.shape(r) == [1, 2]
    assert read(r) == [4400.0, 3040.0]

    # w [32, 32] with w[k][n] = n mod 16: (ones @ w)[n] = 32 * (n mod 16)
    wm = for _k <- 0..31, n <- 0..31, do: rem(n, 16)
    [wq, scales, biases] = N.quantize(f(wm, [32, 32]), 32, 4, :affine, w)

    r =
      N.quantized_matmul(
        f(List.duplicate(1, 32), [1, 32]),
        wq,
        scales,
        [biases],
        false,
        32,
        4,
        :affine,
        w
      )

    assert read(r) == for(n <- 0..31, do: 32.0 * rem(n, 16))
  end

  test "mxfp4 has no biases and represents e2m1 values exactly", %{w: w} do
    values = List.duplicate([0, 0.5, 1, 1.5, 2, 3, 4, 6], 4) |> List.flatten()
    outs = N.quantize(f(values, [1, 32]), 32, 4, :mxfp4, w)
    assert length(outs) == 2
    [wq, scales] = outs
    assert read(N.dequantize(wq, scales, [], 32, 4, :mxfp4, w)) == Enum.map(values, &(&1 * 1.0))
  end

  test "bad arguments raise ArgumentError", %{w: w} do
    x = f(Enum.to_list(0..31), [1, 32])
    [wq, scales, _biases] = N.quantize(x, 32, 4, :affine, w)

    assert_raise ArgumentError, ~r/dequantize/, fn ->
      N.dequantize(wq, scales, [], 32, 4, :affine, w)
    end

    assert_raise ArgumentError, ~r/mode/, fn -> N.quantize(x, 32, 4, :bogus, w) end
    # the last axis must be a multiple of the group size
    assert_raise ArgumentError, ~r/quantize/, fn ->
      N.quantize(f([1, 2, 3], [1, 3]), 32, 4, :affine, w)
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
        N.quantize(x, gs, bits, :affine, w)
      end

      assert_raise ArgumentError, ~r/dequantize.*not supported/, fn ->
        N.dequantize(wq, scales, [], gs, bits, :affine, w)
      end

      assert_raise ArgumentError, ~r/quantized_matmul.*not supported/, fn ->
        N.quantized_matmul(x, wq, scales, [], true, gs, bits, :affine, w)
      end
    end

    assert_raise ArgumentError, ~r/bits 8 is not supported by mode mxfp4/, fn ->
      N.quantize(x, 32, 8, :mxfp4, w)
    end
  end

  describe "gather_qmm" do
    # Rows quantized exactly at 4 bits (each spans 16 levels of step 1, or only 0 and 15).
    defp rows do
      [
        for(i <- 0..31, do: rem(i, 16)),
        for(i <- 0..31, do: 15 - rem(i, 16)),
        for(i <- 0..31, do: if(rem(i, 2) == 0, do: 0, else: 15)),
        for(i <- 0..31, do: rem(i, 4) * 5)
      ]
    end

    # x matrices [1, 32]: ones, e_1, i mod 3
    defp xs,
      do: [
        List.duplicate(1, 32),
        for(i <- 0..31, do: if(i == 1, do: 1, else: 0)),
        for(i <- 0..31, do: rem(i, 3))
      ]

    defp dot(a, b), do: Enum.zip_with(a, b, &(&1 * &2)) |> Enum.sum() |> Kernel.*(1.0)

    # x[i] @ W[j]^T, W[j] = rows j*2 and j*2 + 1
    defp expect(i, j), do: for(r <- Enum.slice(rows(), 2 * j, 2), do: dot(Enum.at(xs(), i), r))

    # gather_qmm over these weights: transposed, group_size 32, 4 bits, affine, unsorted.
    defp gather_qmm_with(wq, scales, biases, w) do
      fn x, lhs, rhs ->
        N.gather_qmm(x, wq, scales, [biases], lhs, rhs, true, 32, 4, :affine, false, w)
      end
    end

    defp quantized(w) do
      N.quantize(f(List.flatten(rows()), [2, 2, 32]), 32, 4, :affine, w)
    end

    defp idx(values, type \\ {:s, 32}), do: t(values, [length(values)], type)

    test "quantized_matmul per index pair", %{w: w} do
      [wq, scales, biases] = quantized(w)
      gq = gather_qmm_with(wq, scales, biases, w)
      assert Emily.shape(wq) == [2, 2, 4]
      x = f(List.flatten(xs()), [3, 1, 32])

      r =
        gq.(x, [idx([2, 0, 1])], [idx([1, 0, 1])])

      assert Emily.shape(r) == [3, 1, 2]
      assert read(r) == expect(2, 1) ++ expect(0, 0) ++ expect(1, 1)

      # rhs only: lhs is every x matrix in order
      r =
        N.gather_qmm(x, wq, scales, [biases], [], [idx([1, 1, 0])], true, 32, 4, :affine, true, w)

      assert read(r) == expect(0, 1) ++ expect(1, 1) ++ expect(2, 0)

      # f16 and bf16 x (values and sums exact in both)
      for type <- [{:f, 16}, {:bf, 16}] do
        x1 = t(Enum.at(xs(), 1), [1, 1, 32], type)

        r =
          N.gather_qmm(
            x1,
            wq,
            scales,
            [biases],
            [idx([0])],
            [idx([1])],
            true,
            32,
            4,
            :affine,
            false,
            w
          )

        assert read(r) == expect(1, 1)
      end
    end

    test "out-of-range indices are clamped, negatives count from the end", %{w: w} do
      [wq, scales, biases] = quantized(w)
      gq = gather_qmm_with(wq, scales, biases, w)
      x = f(List.flatten(xs()), [3, 1, 32])
      lhs = idx([-1, 10, -2_147_483_648])
      rhs = idx([-3, 1, 2_147_483_647])
      r = gq.(x, [lhs], [rhs])
      # lhs -> [2, 2, 0], rhs -> [0, 1, 1]
      assert read(r) == expect(2, 0) ++ expect(2, 1) ++ expect(0, 1)
    end

    test "bad inputs raise ArgumentError naming the op, shapes and dtypes", %{w: w} do
      [wq, scales, biases] = quantized(w)
      gq = gather_qmm_with(wq, scales, biases, w)
      x = f(List.flatten(xs()), [3, 1, 32])
      i = idx([0])

      e =
        assert_raise ArgumentError, fn ->
          gq.(x, [idx([0.0], {:f, 32})], [])
        end

      assert e.message =~ "gather_qmm"
      assert e.message =~ "indices must be integers"
      assert e.message =~ "u32[2][2][4]"

      flat_scales = N.reshape(scales, [4], w)

      e =
        assert_raise ArgumentError, fn ->
          N.gather_qmm(
            x,
            wq,
            flat_scales,
            [flat_scales],
            [i],
            [i],
            true,
            32,
            4,
            :affine,
            false,
            w
          )
        end

      assert e.message =~ ~r/gather_qmm.*scales must have as many dimensions as w/

      e =
        assert_raise ArgumentError, fn ->
          N.gather_qmm(x, wq, scales, [], [i], [i], true, 32, 4, :affine, false, w)
        end

      assert e.message =~ ~r/gather_qmm.*[Bb]iases/

      e =
        assert_raise ArgumentError, fn ->
          gq.(N.astype(x, :f64, w), [i], [i])
        end

      assert e.message =~ ~r/gather_qmm.*float64/
      assert e.message =~ "f64[3][1][32]"

      assert_raise ArgumentError, ~r/gather_qmm.*group_size 16/, fn ->
        N.gather_qmm(x, wq, scales, [biases], [i], [i], true, 16, 4, :affine, false, w)
      end

      assert_raise ArgumentError, ~r/gather_qmm.*at least 2 dimensions/, fn ->
        gq.(f(Enum.at(xs(), 0), [32]), [i], [i])
      end

      assert_raise ArgumentError, ~r/gather_qmm.*does not match/, fn ->
        gq.(f(List.duplicate(1, 16), [1, 16]), [i], [i])
      end

      assert_raise ArgumentError, ~r/gather_qmm.*empty batch/, fn ->
        gq.(N.zeros([0, 1, 32], :f32, w), [i], [i])
      end
    end
  end
end
