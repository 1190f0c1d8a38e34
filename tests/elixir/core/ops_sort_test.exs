defmodule Emily.OpsSortTest do
  use ExUnit.Case, async: true
  import Emily.OpsCase
  alias Emily.Native, as: N

  defp read(t), do: Emily.Case.read(t)

  describe "sort, argsort" do
    test "1-d, stable, every real type" do
      for type <- real_types() do
        t = tensor([3, 1, 2, 1], [4], type)
        assert_tensor(N.sort(t, 0, w()), [4], type, [1, 1, 2, 3])
        assert_tensor(N.argsort(t, 0, w()), [4], {:u, 32}, [1, 3, 2, 0])
      end

      b = tensor([1, 0, 1, 0], [4], :bool)
      assert_tensor(N.sort(b, 0, w()), [4], :bool, [false, false, true, true])
      assert_tensor(N.argsort(b, 0, w()), [4], {:u, 32}, [1, 3, 0, 2])
    end

    test "negative values and 64-bit extremes" do
      for type <- [{:s, 8}, {:s, 16}, {:s, 32}, {:s, 64}, {:f, 16}, {:bf, 16}, {:f, 32}, {:f, 64}] do
        t = tensor([0, -3, 2, -1], [4], type)
        assert_tensor(N.sort(t, 0, w()), [4], type, [-3, -1, 0, 2])
      end

      big = tensor([9_223_372_036_854_775_807, -9_223_372_036_854_775_808, 0], [3], {:s, 64})

      assert_tensor(N.sort(big, 0, w()), [3], {:s, 64}, [
        -9_223_372_036_854_775_808,
        0,
        9_223_372_036_854_775_807
      ])

      ubig = tensor([18_446_744_073_709_551_615, 0, 9_223_372_036_854_775_808], [3], {:u, 64})

      assert_tensor(N.sort(ubig, 0, w()), [3], {:u, 64}, [
        0,
        9_223_372_036_854_775_808,
        18_446_744_073_709_551_615
      ])
    end

    test "along either axis of a matrix" do
      for type <- real_types() do
        m = tensor([3, 1, 2, 0, 5, 4], [2, 3], type)
        assert_tensor(N.sort(m, 1, w()), [2, 3], type, [1, 2, 3, 0, 4, 5])
        assert_tensor(N.sort(m, -1, w()), [2, 3], type, [1, 2, 3, 0, 4, 5])
        assert_tensor(N.sort(m, 0, w()), [2, 3], type, [0, 1, 2, 3, 5, 4])
        assert_tensor(N.argsort(m, 0, w()), [2, 3], {:u, 32}, [1, 0, 0, 0, 1, 1])
        assert_tensor(N.argsort(m, 1, w()), [2, 3], {:u, 32}, [1, 2, 0, 0, 2, 1])
      end
    end

    test "NaN sorts last, infinities in order" do
      for type <- float_types() do
        t = tensor([:nan, 1.0, :neg_infinity, 0.0, :infinity], [5], type)
        assert_tensor(N.sort(t, 0, w()), [5], type, [:neg_infinity, 0.0, 1.0, :infinity, :nan])
        assert_tensor(N.argsort(t, 0, w()), [5], {:u, 32}, [2, 3, 1, 4, 0])
      end
    end

    test "complex numbers sort by real part, then imaginary part" do
      c = tensor([{2.0, 0.0}, {1.0, 5.0}, {1.0, -1.0}], [3], {:c, 64})
      assert_tensor(N.sort(c, 0, w()), [3], {:c, 64}, [{1.0, -1.0}, {1.0, 5.0}, {2.0, 0.0}])
    end
  end

  describe "partition, argpartition, topk" do
    test "the kth element lands in place, smaller before, larger after" do
      for type <- real_types() do
        t = tensor([5, 1, 4, 2, 3], [5], type)
        [a, b, c, d, e] = read(N.partition(t, 2, 0, w()))
        assert Enum.sort([a, b]) == [1, 2]
        assert c == 3
        assert Enum.sort([d, e]) == [4, 5]

        idx = read(N.argpartition(t, 2, 0, w()))
        assert Enum.sort(Enum.take(idx, 2)) == [1, 3]
        assert Enum.at(idx, 2) == 4
        assert Enum.sort(Enum.drop(idx, 3)) == [0, 2]

        # kth = -1 is the last position: the maximum
        assert List.last(read(N.partition(t, -1, 0, w()))) == 5
      end
    end

    test "partition along axis 0 of a matrix" do
      m = tensor([3, 1, 2, 0, 5, 4], [2, 3], {:s, 32})
      assert_tensor(N.partition(m, 0, 0, w()), [2, 3], {:s, 32}, [0, 1, 2, 3, 5, 4])
    end

    test "topk gives the k largest (in no particular order)" do
      for type <- real_types() do
        t = tensor([5, 1, 4, 2, 3], [5], type)
        top = N.topk(t, 2, 0, w())
        assert Emily.shape(top) == [2]
        assert Emily.dtype(top) == type
        assert Enum.sort(read(top)) == [4, 5]

        m = tensor([3, 1, 2, 0, 5, 4], [2, 3], type)
        rows = read(N.topk(m, 2, 1, w())) |> Enum.chunk_every(2) |> Enum.map(&Enum.sort/1)
        assert rows == [[2, 3], [4, 5]]
        assert Emily.shape(N.topk(m, 0, 1, w())) == [2, 0]
      end
    end

    test "bad k, kth and axes raise" do
      t = tensor([5.0, 1.0, 4.0], [3], {:f, 32})
      assert_raise ArgumentError, ~r/invalid kth/, fn -> N.partition(t, 3, 0, w()) end
      assert_raise ArgumentError, ~r/invalid k=4/, fn -> N.topk(t, 4, 0, w()) end
      assert_raise ArgumentError, ~r/invalid k=-1/, fn -> N.topk(t, -1, 0, w()) end
      assert_raise ArgumentError, ~r/out of bounds/, fn -> N.sort(t, 1, w()) end

      assert_raise ArgumentError, ~r/out of bounds/, fn ->
        N.argsort(N.scalar(1.0, :f32, w()), 0, w())
      end

      assert_raise ArgumentError, ~r/32-bit range/, fn -> N.topk(t, 2 ** 31, 0, w()) end
    end
  end
end
