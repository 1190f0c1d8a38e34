if Code.ensure_loaded?(Nx) do
  defmodule Emily.QuantizedTest do
    @moduledoc """
    Emily.Quantized: MLX's quantize, Emily's quantized matmul kernel (CPU streams) and MLX's
    dequantize against the same matrices as Nx ops on Nx.BinaryBackend, on every lane.
    """
    use ExUnit.Case, async: true
    @moduletag :nx

    import Emily.CompilerCase

    alias Emily.Quantized, as: Q

    defp matrix(rows, cols, seed) do
      Nx.iota({rows, cols}, type: :f32, backend: Emily.Backend)
      |> Nx.multiply(0.37 + seed)
      |> Nx.sin()
      |> Nx.multiply(Nx.iota({rows, 1}, type: :f32) |> Nx.add(1) |> Nx.rsqrt())
    end

    defp input(shape, type, seed) do
      Nx.iota(shape, type: :f32, backend: Emily.Backend)
      |> Nx.multiply(0.011 + seed)
      |> Nx.cos()
      |> Nx.as_type(type)
    end

    defp to_binary(%Q{} = q) do
      %{
        q
        | weight: Nx.backend_copy(q.weight, Nx.BinaryBackend),
          scales: Nx.backend_copy(q.scales, Nx.BinaryBackend),
          biases: Nx.backend_copy(q.biases, Nx.BinaryBackend)
      }
    end

    for bits <- [4, 8], gs <- [32, 64, 128] do
      @bits bits
      @gs gs
      test "#{bits} bits, groups of #{gs}: dequantize is MLX's, Nx's unpacking agrees" do
        w = matrix(48, 256, @bits / 10)
        q = Q.quantize(w, bits: @bits, group_size: @gs)
        assert q.weight.shape == {48, div(256 * @bits, 32)}
        assert q.scales.shape == {48, div(256, @gs)}

        native = Q.dequantize(q)
        binary = Q.dequantize(to_binary(q))
        assert Nx.to_binary(native) == Nx.to_binary(binary)

        # MLX makes a group's edge a code exactly (the step then moves), so the error is
        # within one step of each group
        step = q.scales |> Nx.abs() |> Nx.new_axis(-1)
        err = Nx.subtract(native, w) |> Nx.abs() |> Nx.reshape({48, div(256, @gs), @gs})
        assert Nx.to_number(Nx.all(Nx.less_equal(err, Nx.multiply(step, 1.0001)))) == 1
      end

      test "#{bits} bits, groups of #{gs}: dot on every lane is x . dequantize(w)^T" do
        # 576 columns end in a part of the kernel's 128-column block (SmolLM2's width)
        cols = if @gs == 128, do: 640, else: 576
        q = Q.quantize(matrix(200, cols, @gs / 100), bits: @bits, group_size: @gs)
        deq = Q.dequantize(q)

        # rows of x on both sides of the kernel's decode/sgemm split, and a 3-D input
        for lead <- [{1}, {2}, {3}, {4}, {9}, {40}, {2, 5}] do
          shape = Tuple.insert_at(lead, tuple_size(lead), cols)
          x = input(shape, :f32, @bits / 7)
          want = Nx.dot(Nx.backend_copy(x, Nx.BinaryBackend), [-1], Nx.backend_copy(deq), [1])

          check_lanes(&Q.dot/2, [x, q],
            expected: want,
            atol: 1.0e-4,
            rtol: 1.0e-5,
            identical: true
          )

          # the Nx definition (block default) on Nx.BinaryBackend
          got = Q.dot(Nx.backend_copy(x, Nx.BinaryBackend), to_binary(q))
          assert_close(got, want, 1.0e-4, 1.0e-5, "Nx.BinaryBackend, x #{inspect(shape)}")
        end
      end
    end

    test "bf16 and f16 inputs compute in f32 and return their own type" do
      q = Q.quantize(matrix(64, 128, 0.2), bits: 4, group_size: 32)
      deq = Nx.backend_copy(Q.dequantize(q), Nx.BinaryBackend)

      for type <- [:bf16, :f16], shape <- [{1, 128}, {3, 2, 128}, {33, 128}] do
        x = input(shape, type, 0.3)
        got = Q.dot(x, q)
        assert got.type == Nx.Type.normalize!(type)
        assert got.shape == put_elem(shape, tuple_size(shape) - 1, 64)

        want =
          Nx.dot(Nx.backend_copy(x, Nx.BinaryBackend) |> Nx.as_type(:f32), [-1], deq, [1])
          |> Nx.as_type(type)

        assert_close(Nx.backend_copy(got, Nx.BinaryBackend), want, 2.0e-2, 1.0e-2, "#{type}")
      end
    end

    test "special values pass through the kernel as through the dequantized product" do
      q = Q.quantize(matrix(16, 64, 0.5), bits: 8, group_size: 64)
      x = Nx.tensor([List.duplicate(0.0, 63) ++ [:nan], List.duplicate(:infinity, 64)])
      x = Nx.backend_transfer(x, Emily.Backend)
      got = Q.dot(x, q) |> Nx.backend_copy(Nx.BinaryBackend)
      assert got[0] |> Nx.is_nan() |> Nx.all() |> Nx.to_number() == 1
      want = Q.dot(Nx.backend_copy(x, Nx.BinaryBackend), to_binary(q))
      assert Nx.to_binary(Nx.is_nan(got[1])) == Nx.to_binary(Nx.is_nan(want[1]))
    end

    test "bad arguments raise ArgumentError naming the op, the shapes and the types" do
      q = Q.quantize(matrix(8, 64, 0.1), bits: 4, group_size: 32)

      assert_raise ArgumentError,
                   ~r/Emily.Quantized.dot: x's last axis must be .*\{2, 32\}/,
                   fn ->
                     Q.dot(input({2, 32}, :f32, 0), q)
                   end

      assert_raise ArgumentError, ~r/Emily.Quantized.dot: expected a float tensor, got s32/, fn ->
        Q.dot(Nx.iota({2, 64}, backend: Emily.Backend), q)
      end

      assert_raise ArgumentError,
                   ~r/quantize: expected a matrix whose last axis is a multiple/,
                   fn ->
                     Q.quantize(matrix(4, 48, 0.1), group_size: 32)
                   end

      assert_raise ArgumentError, ~r/Emily.Quantized.dot: inconsistent quantized matrix/, fn ->
        Q.dot(input({1, 64}, :f32, 0), %{q | scales: q.scales[[.., 0..0]]})
      end

      assert_raise ArgumentError,
                   ~r/Emily.Quantized.new: weight \{8, 8\} and scales \{8, 3\}/,
                   fn ->
                     three = fn t -> Nx.concatenate([t, t[[.., 0..0]]], axis: 1) end
                     Q.new(q.weight, three.(q.scales), three.(q.biases), 64)
                   end
    end

    test "new/4 finds bits and the group size from the shapes" do
      for bits <- [4, 8], gs <- [32, 64] do
        q = Q.quantize(matrix(8, 128, 0.1), bits: bits, group_size: gs)
        assert %Q{bits: ^bits, group_size: ^gs} = Q.new(q.weight, q.scales, q.biases, 128)
      end
    end
  end
end
