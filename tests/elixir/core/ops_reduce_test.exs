defmodule Emily.OpsReduceTest do
  use ExUnit.Case, async: true
  import Emily.OpsCase
  alias Emily.Native, as: N

  # [[1, 2, 3], [4, 5, 6]] in `type` ([[1, 0, 1], [0, 1, 0]] for bool).
  defp x(:bool), do: tensor([1, 0, 1, 0, 1, 0], [2, 3], :bool)
  defp x(type), do: tensor([1, 2, 3, 4, 5, 6], [2, 3], type)

  # MLX's accumulator type for sum and prod.
  defp sum_type(:bool), do: {:s, 32}
  defp sum_type({:u, b}) when b < 64, do: {:u, 32}
  defp sum_type({:s, b}) when b < 64, do: {:s, 32}
  defp sum_type(t), do: t

  # mean, var, median: float types keep theirs, others become f32.
  defp mean_type(t) when t in [{:f, 16}, {:bf, 16}, {:f, 64}], do: t
  defp mean_type(_), do: {:f, 32}

  describe "sum, prod, max, min" do
    test "over each axis, both axes, no axis, with keepdims, in every numeric type" do
      for type <- numeric_types() do
        st = sum_type(type)
        assert_tensor(N.sum(x(type), [0], false, w()), [3], st, [5, 7, 9])
        assert_tensor(N.sum(x(type), [1], false, w()), [2], st, [6, 15])
        assert_tensor(N.sum(x(type), [-1], true, w()), [2, 1], st, [6, 15])
        assert_tensor(N.sum(x(type), [0, 1], false, w()), [], st, [21])
        assert_tensor(N.sum(x(type), [], false, w()), [2, 3], type, [1, 2, 3, 4, 5, 6])
        assert_tensor(N.prod(x(type), [0], false, w()), [3], st, [4, 10, 18])
        assert_tensor(N.prod(x(type), [1], true, w()), [2, 1], st, [6, 120])
      end
    end

    test "max and min keep the type" do
      for type <- real_types() do
        assert_tensor(N.max(x(type), [0], false, w()), [3], type, [4, 5, 6])
        assert_tensor(N.min(x(type), [1], false, w()), [2], type, [1, 4])
        assert_tensor(N.max(x(type), [0, 1], true, w()), [1, 1], type, [6])
      end

      for type <- [{:s, 8}, {:s, 16}, {:s, 32}, {:s, 64}, {:f, 16}, {:f, 32}, {:f, 64}] do
        signed = tensor([-1, 5, 3, -7], [2, 2], type)
        assert_tensor(N.min(signed, [1], false, w()), [2], type, [-1, -7])
        assert_tensor(N.max(signed, [0], false, w()), [2], type, [3, 5])
      end

      assert_tensor(N.max(x(:bool), [0], false, w()), [3], :bool, [true, true, true])
      assert_tensor(N.min(x(:bool), [0], false, w()), [3], :bool, [false, false, false])
    end

    test "extremes of 64-bit types are exact" do
      big = tensor([9_223_372_036_854_775_807, -9_223_372_036_854_775_808], [2], {:s, 64})
      assert_tensor(N.max(big, [0], false, w()), [], {:s, 64}, [9_223_372_036_854_775_807])
      assert_tensor(N.min(big, [0], false, w()), [], {:s, 64}, [-9_223_372_036_854_775_808])
      ubig = tensor([18_446_744_073_709_551_615, 1], [2], {:u, 64})
      assert_tensor(N.max(ubig, [0], false, w()), [], {:u, 64}, [18_446_744_073_709_551_615])
    end

    test "sums of small integer types do not overflow their input type" do
      assert_tensor(N.sum(tensor([200, 100], [2], {:u, 8}), [0], false, w()), [], {:u, 32}, [300])

      assert_tensor(N.sum(tensor([-100, -100], [2], {:s, 8}), [0], false, w()), [], {:s, 32}, [
        -200
      ])
    end

    test "complex sums and products" do
      c = tensor([{1.0, 1.0}, {2.0, -1.0}], [2], {:c, 64})
      assert_tensor(N.sum(c, [0], false, w()), [], {:c, 64}, [{3.0, 0.0}])
      # (1 + i)(2 - i) = 2 - i + 2i + 1 = 3 + i
      assert_tensor(N.prod(c, [0], false, w()), [], {:c, 64}, [{3.0, 1.0}])
    end

    test "NaN propagates through max" do
      t = tensor([1.0, :nan, 3.0], [3], {:f, 32})
      assert_tensor(N.max(t, [0], false, w()), [], {:f, 32}, [:nan])
    end
  end

  describe "all, any" do
    test "on bools and on numbers (non-zero is true)" do
      b = tensor([0, 0, 0, 1], [2, 2], :bool)
      assert_tensor(N.any(b, [1], false, w()), [2], :bool, [false, true])
      assert_tensor(N.all(b, [1], false, w()), [2], :bool, [false, false])
      assert_tensor(N.any(b, [0, 1], false, w()), [], :bool, [true])

      for type <- numeric_types() do
        t = tensor([0, 2, 3, 4], [2, 2], type)
        assert_tensor(N.all(t, [1], false, w()), [2], :bool, [false, true])
        assert_tensor(N.any(t, [0], true, w()), [1, 2], :bool, [true, true])
      end
    end
  end

  describe "mean, var, std, median, logsumexp" do
    test "mean, var and std with ddof" do
      for type <- real_types() do
        mt = mean_type(type)
        assert_tensor(N.mean(x(type), [1], false, w()), [2], mt, [2, 5])
        assert_tensor(N.mean(x(type), [0, 1], false, w()), [], mt, [3.5])
        assert_tensor(N.var(x(type), [1], false, 0, w()), [2], mt, [2 / 3, 2 / 3])
        assert_tensor(N.var(x(type), [1], false, 1, w()), [2], mt, [1, 1])
        assert_tensor(N.std(x(type), [1], true, 1, w()), [2, 1], mt, [1, 1])
        assert_tensor(N.var(x(type), [0, 1], false, 0, w()), [], mt, [17.5 / 6])
      end
    end

    test "var with ddof >= n is infinite" do
      t = tensor([1.0, 2.0], [2], {:f, 32})
      assert_tensor(N.var(t, [0], false, 2, w()), [], {:f, 32}, [:infinity])
    end

    test "median of odd and even counts" do
      assert_tensor(N.median(tensor([3, 1, 2], [3], {:s, 32}), [0], false, w()), [], {:f, 32}, [
        2.0
      ])

      assert_tensor(
        N.median(tensor([4.0, 1.0, 3.0, 2.0], [4], {:f, 64}), [0], false, w()),
        [],
        {:f, 64},
        [2.5]
      )
    end

    test "logsumexp in float types and (converted) integer and bool types" do
      ln2 = :math.log(2)

      for type <- float_types(),
          do:
            assert_tensor(N.logsumexp(tensor([0, 0], [2], type), [0], false, w()), [], type, [ln2])

      expected = :math.log(:math.exp(1) + :math.exp(2) + :math.exp(3))

      for type <- int_types() do
        t = tensor([1, 2, 3], [3], type)
        assert_tensor(N.logsumexp(t, [0], false, w()), [], {:f, 32}, [expected])
      end

      assert_tensor(
        N.logsumexp(x(:bool), [0], false, w()),
        [3],
        {:f, 32},
        List.duplicate(:math.log(:math.exp(1) + 1), 3)
      )
    end
  end

  describe "argmax, argmin" do
    test "first index on ties, along each axis, in every real type" do
      for type <- real_types() do
        t = tensor([1, 3, 3, 0], [4], type)
        assert_tensor(N.argmax(t, 0, false, w()), [], {:u, 32}, [1])
        assert_tensor(N.argmin(t, 0, true, w()), [1], {:u, 32}, [3])
        m = tensor([1, 6, 3, 4, 5, 2], [2, 3], type)
        assert_tensor(N.argmax(m, 0, false, w()), [3], {:u, 32}, [1, 0, 0])
        assert_tensor(N.argmin(m, -1, false, w()), [2], {:u, 32}, [0, 2])
      end

      assert_tensor(N.argmax(tensor([0, 1, 1], [3], :bool), 0, false, w()), [], {:u, 32}, [1])
    end
  end

  describe "cumulative ops" do
    test "cumsum and cumprod, forward and reverse, inclusive and exclusive" do
      for type <- numeric_types() do
        t = tensor([1, 2, 3, 4], [4], type)
        assert_tensor(N.cumsum(t, 0, false, true, w()), [4], type, [1, 3, 6, 10])
        assert_tensor(N.cumsum(t, 0, false, false, w()), [4], type, [0, 1, 3, 6])
        assert_tensor(N.cumsum(t, 0, true, true, w()), [4], type, [10, 9, 7, 4])
        assert_tensor(N.cumsum(t, 0, true, false, w()), [4], type, [9, 7, 4, 0])
        assert_tensor(N.cumprod(t, 0, false, true, w()), [4], type, [1, 2, 6, 24])
        assert_tensor(N.cumprod(t, 0, false, false, w()), [4], type, [1, 1, 2, 6])
        assert_tensor(N.cumprod(t, 0, true, true, w()), [4], type, [24, 24, 12, 4])
        assert_tensor(N.cumprod(t, 0, true, false, w()), [4], type, [24, 12, 4, 1])
      end
    end

    test "cummax and cummin, and along axis 0 of a matrix" do
      for type <- real_types() do
        t = tensor([3, 1, 4, 1], [4], type)
        assert_tensor(N.cummax(t, 0, false, true, w()), [4], type, [3, 3, 4, 4])
        assert_tensor(N.cummax(t, 0, true, true, w()), [4], type, [4, 4, 4, 1])
        assert_tensor(N.cummin(t, 0, false, true, w()), [4], type, [3, 1, 1, 1])
        assert_tensor(N.cummin(t, 0, true, true, w()), [4], type, [1, 1, 1, 1])
        assert_tensor(N.cumsum(x(type), 0, false, true, w()), [2, 3], type, [1, 2, 3, 5, 7, 9])
      end
    end

    test "cumsum of bool counts in s32" do
      assert_tensor(
        N.cumsum(tensor([1, 1, 0, 1], [4], :bool), 0, false, true, w()),
        [4],
        {:s, 32},
        [1, 2, 2, 3]
      )
    end

    test "logcumsumexp" do
      for type <- [{:f, 32}, {:f, 64}] do
        t = tensor([0, 0, 0], [3], type)

        assert_tensor(N.logcumsumexp(t, 0, false, true, w()), [3], type, [
          0,
          :math.log(2),
          :math.log(3)
        ])

        assert_tensor(N.logcumsumexp(t, 0, true, true, w()), [3], type, [
          :math.log(3),
          :math.log(2),
          0
        ])
      end

      assert_tensor(
        N.logcumsumexp(tensor([0, 0], [2], {:s, 32}), 0, false, true, w()),
        [2],
        {:f, 32},
        [0, :math.log(2)]
      )
    end
  end

  describe "bad arguments" do
    test "raise ArgumentError naming the op" do
      t = x({:f, 32})
      assert_raise ArgumentError, ~r/^sum: .*Invalid axis 5/, fn -> N.sum(t, [5], false, w()) end
      assert_raise ArgumentError, ~r/Duplicate axes/, fn -> N.sum(t, [0, 0], false, w()) end
      assert_raise ArgumentError, ~r/32-bit range/, fn -> N.mean(t, [2 ** 32], false, w()) end

      assert_raise ArgumentError, ~r/zero size/, fn ->
        N.argmax(N.zeros([0], :f32, w()), 0, false, w())
      end

      assert_raise ArgumentError, ~r/size 0/, fn ->
        N.max(N.zeros([0], :f32, w()), [0], false, w())
      end

      assert_raise ArgumentError, ~r/out of bounds/, fn -> N.cumsum(t, 2, false, true, w()) end
      assert_raise ArgumentError, fn -> N.var(t, [0], false, 2 ** 40, w()) end
      assert_raise ArgumentError, fn -> N.sum(t, [0], :yes, w()) end
    end
  end
end
