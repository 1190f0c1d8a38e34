defmodule Emily.OpsCreationTest do
  use ExUnit.Case, async: true
  import Emily.OpsCase
  alias Emily.Native, as: N

  describe "full, zeros, ones, scalars" do
    test "full fills every type with the value converted" do
      for type <- types() do
        expected = if type == :bool, do: true, else: 3
        t = N.full([2, 3], 3.0, nat(type), w())
        assert_tensor(t, [2, 3], type, List.duplicate(expected, 6))
      end
    end

    test "full keeps fractions in float types and truncates toward zero in integer types" do
      for type <- float_types(),
          do: assert_tensor(N.full([2], -2.5, nat(type), w()), [2], type, [-2.5, -2.5])

      for type <- [{:s, 8}, {:s, 16}, {:s, 32}, {:s, 64}],
          do: assert_tensor(N.full([1], -2.75, nat(type), w()), [1], type, [-2])

      assert_tensor(N.full([2], 0.0, :bool, w()), [2], :bool, [false, false])
    end

    test "full_int is exact for 64-bit values; u64 takes the two's complement bits" do
      assert_tensor(N.full_int([2], 9_007_199_254_740_993, :s64, w()), [2], {:s, 64}, [
        9_007_199_254_740_993,
        9_007_199_254_740_993
      ])

      assert_tensor(N.full_int([1], -1, :u64, w()), [1], {:u, 64}, [18_446_744_073_709_551_615])
      assert_tensor(N.full_int([1], -128, :s8, w()), [1], {:s, 8}, [-128])
      assert_tensor(N.full_int([1], 4_294_967_295, :u32, w()), [1], {:u, 32}, [4_294_967_295])
      assert_tensor(N.full_int([1], 7, :f32, w()), [1], {:f, 32}, [7.0])
      assert_tensor(N.full_int([1], 7, :c64, w()), [1], {:c, 64}, [{7.0, 0.0}])
    end

    test "full_complex; a real type takes the real part" do
      assert_tensor(N.full_complex([2], 1.5, -2.0, :c64, w()), [2], {:c, 64}, [
        {1.5, -2.0},
        {1.5, -2.0}
      ])

      assert_tensor(N.full_complex([1], 1.5, -2.0, :f32, w()), [1], {:f, 32}, [1.5])
      assert_tensor(N.full_complex([1], 1.5, -2.0, :s32, w()), [1], {:s, 32}, [1])
    end

    test "scalars are 0-d and already evaluated values" do
      for type <- numeric_types() do
        assert_tensor(N.scalar(5.0, nat(type), w()), [], type, [5])
      end

      assert_tensor(N.scalar(1.0, :bool, w()), [], :bool, [true])
      assert_tensor(N.scalar_int(-5, :s16, w()), [], {:s, 16}, [-5])
      assert_tensor(N.scalar_int(-1, :u8, w()), [], {:u, 8}, [255])
      assert_tensor(N.scalar_complex(0.5, 0.25, :c64, w()), [], {:c, 64}, [{0.5, 0.25}])
    end

    test "NaN-free checks: integer full of a huge float is refused only when out of range of int64" do
      # 2^62 fits s64 exactly as a double.
      assert_tensor(N.full([1], 4.611686018427388e18, :s64, w()), [1], {:s, 64}, [
        4_611_686_018_427_387_904
      ])
    end

    test "zeros and ones in every type, and the _like variants keep shape and type" do
      for type <- types() do
        {z, o} = if type == :bool, do: {false, true}, else: {0, 1}
        assert_tensor(N.zeros([3, 1], nat(type), w()), [3, 1], type, [z, z, z])
        assert_tensor(N.ones([2], nat(type), w()), [2], type, [o, o])
        src = N.full([1, 2], 7.0, nat(type), w())
        assert_tensor(N.zeros_like(src, w()), [1, 2], type, [z, z])
        assert_tensor(N.ones_like(src, w()), [1, 2], type, [o, o])
      end
    end

    test "empty and 0-d shapes" do
      assert_tensor(N.zeros([0, 3], :f32, w()), [0, 3], {:f, 32}, [])
      assert_tensor(N.ones([], :s32, w()), [], {:s, 32}, [1])
    end

    test "bad shapes raise" do
      assert_raise ArgumentError, ~r/Negative dimensions/, fn -> N.zeros([-1], :f32, w()) end
      assert_raise ArgumentError, ~r/32-bit range/, fn -> N.zeros([2 ** 40], :f32, w()) end

      assert_raise ArgumentError, ~r/too large|would need more than/, fn ->
        N.ones([1_000_000, 1_000_000], :f32, w())
      end

      assert_raise ArgumentError, ~r/would need more than/, fn ->
        N.zeros([2_147_483_647, 2_147_483_647, 2_147_483_647], :u8, w())
      end

      assert_raise ArgumentError, ~r/zeros: dtype must be a dtype atom.*:f99/, fn ->
        N.zeros([1], :f99, w())
      end
    end
  end

  describe "ranges" do
    test "arange in float and integer types, up and down" do
      assert_tensor(N.arange(0.0, 1.0, 0.25, :f32, w()), [4], {:f, 32}, [0.0, 0.25, 0.5, 0.75])
      assert_tensor(N.arange(10.0, 0.0, -3.0, :s32, w()), [4], {:s, 32}, [10, 7, 4, 1])
      assert_tensor(N.arange(0.0, 3.0, 1.0, :u8, w()), [3], {:u, 8}, [0, 1, 2])
      assert_tensor(N.arange(-1.0, 1.0, 0.5, :f64, w()), [4], {:f, 64}, [-1.0, -0.5, 0.0, 0.5])
      assert_tensor(N.arange(-2.0, 1.0, 1.0, :s64, w()), [3], {:s, 64}, [-2, -1, 0])
      assert_tensor(N.arange(0.0, 2.0, 1.0, :bf16, w()), [2], {:bf, 16}, [0.0, 1.0])
      assert_tensor(N.arange(5.0, 0.0, 1.0, :f32, w()), [0], {:f, 32}, [])
    end

    test "arange refuses a zero step and huge lengths" do
      assert_raise ArgumentError, ~r/step must not be zero/, fn ->
        N.arange(0.0, 1.0, 0.0, :f32, w())
      end

      assert_raise ArgumentError, ~r/2\^31/, fn -> N.arange(0.0, 1.0e12, 1.0, :s64, w()) end
    end

    test "linspace with and without the endpoint" do
      assert_tensor(N.linspace(0.0, 1.0, 5, true, :f32, w()), [5], {:f, 32}, [
        0.0,
        0.25,
        0.5,
        0.75,
        1.0
      ])

      assert_tensor(N.linspace(0.0, 1.0, 4, false, :f64, w()), [4], {:f, 64}, [
        0.0,
        0.25,
        0.5,
        0.75
      ])

      assert_tensor(N.linspace(2.0, -2.0, 3, true, :f16, w()), [3], {:f, 16}, [2.0, 0.0, -2.0])

      assert_raise ArgumentError, ~r/non-negative/, fn ->
        N.linspace(0.0, 1.0, -1, true, :f32, w())
      end
    end
  end

  describe "eye, identity, tri, tril, triu" do
    test "eye with offsets, every type" do
      for type <- types() do
        {z, o} = if type == :bool, do: {false, true}, else: {0, 1}
        assert_tensor(N.eye(2, 3, 1, nat(type), w()), [2, 3], type, [z, o, z, z, z, o])
      end

      assert_tensor(N.eye(3, 2, -1, :s32, w()), [3, 2], {:s, 32}, [0, 0, 1, 0, 0, 1])
      assert_tensor(N.identity(2, :f64, w()), [2, 2], {:f, 64}, [1.0, 0.0, 0.0, 1.0])
    end

    test "tri is ones on and below diagonal k" do
      assert_tensor(N.tri(3, 3, 0, :s32, w()), [3, 3], {:s, 32}, [1, 0, 0, 1, 1, 0, 1, 1, 1])

      assert_tensor(N.tri(2, 3, 1, :bool, w()), [2, 3], :bool, [
        true,
        true,
        false,
        true,
        true,
        true
      ])

      assert_tensor(N.tri(3, 2, -1, :f32, w()), [3, 2], {:f, 32}, [0, 0, 1, 0, 1, 1])
    end

    test "tril and triu keep a triangle" do
      x = tensor(Enum.to_list(1..9), [3, 3], {:s, 32})
      assert_tensor(N.tril(x, 0, w()), [3, 3], {:s, 32}, [1, 0, 0, 4, 5, 0, 7, 8, 9])
      assert_tensor(N.tril(x, -1, w()), [3, 3], {:s, 32}, [0, 0, 0, 4, 0, 0, 7, 8, 0])
      assert_tensor(N.triu(x, 0, w()), [3, 3], {:s, 32}, [1, 2, 3, 0, 5, 6, 0, 0, 9])
      assert_tensor(N.triu(x, 1, w()), [3, 3], {:s, 32}, [0, 2, 3, 0, 0, 6, 0, 0, 0])
      f = tensor([1.5, 2.5, 3.5, 4.5], [2, 2], {:f, 64})
      assert_tensor(N.triu(f, 0, w()), [2, 2], {:f, 64}, [1.5, 2.5, 0.0, 4.5])
    end

    test "diagonals past either corner, up to the 64-bit extremes" do
      x = tensor(Enum.to_list(1..6), [2, 3], {:s, 32})
      assert_tensor(N.tril(x, 2 ** 62, w()), [2, 3], {:s, 32}, [1, 2, 3, 4, 5, 6])
      assert_tensor(N.tril(x, -(2 ** 63), w()), [2, 3], {:s, 32}, [0, 0, 0, 0, 0, 0])
      assert_tensor(N.triu(x, -(2 ** 63), w()), [2, 3], {:s, 32}, [1, 2, 3, 4, 5, 6])
      assert_tensor(N.triu(x, 2 ** 63 - 1, w()), [2, 3], {:s, 32}, [0, 0, 0, 0, 0, 0])
      assert_tensor(N.eye(2, 3, 2 ** 40, :s8, w()), [2, 3], {:s, 8}, [0, 0, 0, 0, 0, 0])
      assert_tensor(N.eye(2, 3, -3, :s8, w()), [2, 3], {:s, 8}, [0, 0, 0, 0, 0, 0])
      assert_tensor(N.eye(2, 3, 2, :s8, w()), [2, 3], {:s, 8}, [0, 0, 1, 0, 0, 0])
      assert_tensor(N.tri(2, 3, -(2 ** 63), :s8, w()), [2, 3], {:s, 8}, [0, 0, 0, 0, 0, 0])
      assert_tensor(N.tri(2, 3, 2 ** 63 - 1, :s8, w()), [2, 3], {:s, 8}, [1, 1, 1, 1, 1, 1])
      assert_tensor(N.tri(2, 3, -1, :s8, w()), [2, 3], {:s, 8}, [0, 0, 0, 1, 0, 0])
    end

    test "empty results, however long the other side" do
      assert_tensor(N.eye(0, 2_147_483_647, 0, :f32, w()), [0, 2_147_483_647], {:f, 32}, [])
      assert_tensor(N.tri(2_147_483_647, 0, 0, :s8, w()), [2_147_483_647, 0], {:s, 8}, [])
    end

    test "bad sizes raise" do
      assert_raise ArgumentError, fn -> N.eye(-2, 3, 0, :f32, w()) end
      assert_raise ArgumentError, ~r/32-bit range/, fn -> N.eye(2 ** 33, 1, 0, :f32, w()) end

      assert_raise ArgumentError, ~r/would need more than/, fn ->
        # 32 TB: more than any machine here has (80 GB fitted the 128 GiB device host)
        N.eye(2_000_000, 2_000_000, 0, :f64, w())
      end
    end
  end

  describe "astype, view, contiguous" do
    test "astype from f32 to every type" do
      x = tensor([1.5, -2.5, 0.0], [3], {:f, 32})

      expected = %{
        :bool => [true, true, false],
        {:s, 8} => [1, -2, 0],
        {:s, 16} => [1, -2, 0],
        {:s, 32} => [1, -2, 0],
        {:s, 64} => [1, -2, 0],
        {:f, 16} => [1.5, -2.5, 0.0],
        {:bf, 16} => [1.5, -2.5, 0.0],
        {:f, 32} => [1.5, -2.5, 0.0],
        {:f, 64} => [1.5, -2.5, 0.0],
        {:c, 64} => [{1.5, 0.0}, {-2.5, 0.0}, {0.0, 0.0}]
      }

      for {type, values} <- expected,
          do: assert_tensor(N.astype(x, nat(type), w()), [3], type, values)

      pos = tensor([1.5, 200.0, 0.0], [3], {:f, 32})

      for type <- [{:u, 8}, {:u, 16}, {:u, 32}, {:u, 64}],
          do: assert_tensor(N.astype(pos, nat(type), w()), [3], type, [1, 200, 0])
    end

    test "astype between integer types wraps, bool maps to 0/1, complex keeps the real part" do
      assert_tensor(N.astype(tensor([300, -1], [2], {:s, 32}), :u8, w()), [2], {:u, 8}, [44, 255])
      assert_tensor(N.astype(tensor([true, false], [2], :bool), :s64, w()), [2], {:s, 64}, [1, 0])

      assert_tensor(N.astype(tensor([{2.5, 1.0}], [1], {:c, 64}), :f32, w()), [1], {:f, 32}, [2.5])

      assert_tensor(
        N.astype(tensor([{0.0, 1.0}, {0.0, 0.0}], [2], {:c, 64}), :bool, w()),
        [2],
        :bool,
        [true, false]
      )
    end

    test "view reinterprets bytes" do
      one = <<1.0::float-32-native>>

      assert_tensor(
        N.view(tensor([1.0], [1], {:f, 32}), :u8, w()),
        [4],
        {:u, 8},
        :binary.bin_to_list(one)
      )

      <<bits::unsigned-32-native>> = one
      assert_tensor(N.view(tensor([1.0], [1], {:f, 32}), :u32, w()), [1], {:u, 32}, [bits])

      assert_tensor(N.view(tensor([-1, 2], [2], {:s, 32}), :u32, w()), [2], {:u, 32}, [
        4_294_967_295,
        2
      ])

      assert_tensor(N.view(tensor([1.0, 2.0], [2], {:f, 32}), :c64, w()), [1], {:c, 64}, [
        {1.0, 2.0}
      ])

      assert_tensor(N.view(tensor([1, 0], [2], {:u, 8}), :bool, w()), [2], :bool, [true, false])

      assert_raise ArgumentError, ~r/view/, fn ->
        N.view(tensor([1.0], [1], {:f, 32}), :f64, w())
      end
    end

    test "contiguous lays out a transposed view in row-major order" do
      x = tensor(Enum.to_list(0..5), [2, 3], {:s, 16})
      tt = N.transpose(x, [1, 0], w())
      assert_tensor(N.contiguous(tt, false, w()), [3, 2], {:s, 16}, [0, 3, 1, 4, 2, 5])
      # and to_binary of the view itself is the same
      assert_tensor(tt, [3, 2], {:s, 16}, [0, 3, 1, 4, 2, 5])
    end
  end
end
