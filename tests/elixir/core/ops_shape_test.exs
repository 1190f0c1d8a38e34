defmodule Emily.OpsShapeTest do
  use ExUnit.Case, async: true
  import Emily.OpsCase
  alias Emily.Native, as: N

  # A tensor from non-negative ints (bool: odd is true), and the values expected back.
  defp mk(ints, shape, type), do: tensor(ex(ints, type), shape, type)
  defp ex(ints, :bool), do: Enum.map(ints, &(rem(&1, 2) == 1))
  defp ex(ints, _), do: ints

  # [[0, 1, 2], [3, 4, 5]]
  defp x(type), do: mk([0, 1, 2, 3, 4, 5], [2, 3], type)

  defp check(t, shape, type, ints), do: assert_tensor(t, shape, type, ex(ints, type))

  describe "reshape, transpose, squeeze, expand_dims, broadcast_to, flatten, unflatten" do
    test "in every type" do
      for type <- types() do
        check(N.reshape(x(type), [3, 2], w()), [3, 2], type, [0, 1, 2, 3, 4, 5])
        check(N.reshape(x(type), [-1], w()), [6], type, [0, 1, 2, 3, 4, 5])
        check(N.transpose(x(type), [1, 0], w()), [3, 2], type, [0, 3, 1, 4, 2, 5])
        e = N.expand_dims(x(type), [0, 2], w())
        check(e, [1, 2, 1, 3], type, [0, 1, 2, 3, 4, 5])
        check(N.squeeze(e, [0, 2], w()), [2, 3], type, [0, 1, 2, 3, 4, 5])
        check(N.squeeze(e, [], w()), [1, 2, 1, 3], type, [0, 1, 2, 3, 4, 5])

        check(N.broadcast_to(mk([0, 1, 2], [3], type), [2, 3], w()), [2, 3], type, [
          0,
          1,
          2,
          0,
          1,
          2
        ])

        check(N.broadcast_to(mk([0, 1], [2, 1], type), [2, 2, 3], w()), [2, 2, 3], type, [
          0,
          0,
          0,
          1,
          1,
          1,
          0,
          0,
          0,
          1,
          1,
          1
        ])

        x3 = N.reshape(x(type), [1, 2, 3], w())
        check(N.flatten(x3, 1, 2, w()), [1, 6], type, [0, 1, 2, 3, 4, 5])
        check(N.flatten(x3, 0, -1, w()), [6], type, [0, 1, 2, 3, 4, 5])
        check(N.unflatten(x(type), 1, [3, 1], w()), [2, 3, 1], type, [0, 1, 2, 3, 4, 5])
        check(N.unflatten(x(type), 0, [-1, 1], w()), [2, 1, 3], type, [0, 1, 2, 3, 4, 5])
      end
    end

    test "transposes of 3-d arrays" do
      t = mk(Enum.to_list(0..23), [2, 3, 4], {:s, 32})
      tt = N.transpose(t, [2, 0, 1], w())
      assert Emily.shape(tt) == [4, 2, 3]
      # element [k][i][j] = t[i][j][k] = 12i + 4j + k
      expected = for k <- 0..3, i <- 0..1, j <- 0..2, do: 12 * i + 4 * j + k
      check(tt, [4, 2, 3], {:s, 32}, expected)

      check(
        N.swapaxes(t, 0, 2, w()),
        [4, 3, 2],
        {:s, 32},
        for(k <- 0..3, j <- 0..2, i <- 0..1, do: 12 * i + 4 * j + k)
      )

      check(
        N.moveaxis(t, 0, 2, w()),
        [3, 4, 2],
        {:s, 32},
        for(j <- 0..2, k <- 0..3, i <- 0..1, do: 12 * i + 4 * j + k)
      )
    end

    test "bad shapes and axes raise" do
      t = x({:f, 32})
      assert_raise ArgumentError, ~r/Cannot reshape/, fn -> N.reshape(t, [4, 2], w()) end
      assert_raise ArgumentError, ~r/infer one/, fn -> N.reshape(t, [-1, -1], w()) end
      assert_raise ArgumentError, ~r/Repeat axes/, fn -> N.transpose(t, [0, 0], w()) end
      assert_raise ArgumentError, ~r/size 3/, fn -> N.squeeze(t, [1], w()) end

      assert_raise ArgumentError, ~r/cannot be broadcast/, fn ->
        N.broadcast_to(t, [3, 3], w())
      end

      assert_raise ArgumentError, ~r/would need more than/, fn ->
        N.broadcast_to(t, [2_000_000, 100_000, 2, 3], w())
      end

      assert_raise ArgumentError, ~r/Invalid axis/, fn -> N.moveaxis(t, 0, 9, w()) end

      # -1 beside a 0 (MLX would divide by zero), other negative sizes, wrapping products
      assert_raise ArgumentError, ~r/reshape.*beside a dimension of size 0/, fn ->
        N.reshape(N.zeros([0, 3], :f32, w()), [0, -1], w())
      end

      assert_raise ArgumentError, ~r/unflatten.*beside a dimension of size 0/, fn ->
        N.unflatten(N.zeros([0, 3], :f32, w()), 0, [0, -1], w())
      end

      assert_raise ArgumentError, ~r/reshape.*-2 is negative/, fn ->
        N.reshape(t, [-2, -3], w())
      end

      assert_raise ArgumentError, ~r/unflatten.*more than 2\^62/, fn ->
        N.unflatten(t, 1, [65_536, 65_536, 65_536, 65_536, -1], w())
      end

      assert_raise ArgumentError, ~r/unflatten.*axis 5/, fn -> N.unflatten(t, 5, [3], w()) end
    end
  end

  describe "pad" do
    test "constant and edge padding in every type" do
      for type <- types() do
        nine = N.astype(N.scalar(9.0, :f32, w()), nat(type), w())

        check(N.pad(x(type), [0, 1], [1, 0], [0, 1], nine, :constant, w()), [3, 4], type, [
          9,
          9,
          9,
          9,
          0,
          1,
          2,
          9,
          3,
          4,
          5,
          9
        ])

        check(N.pad(x(type), [1], [1], [2], nine, :edge, w()), [2, 6], type, [
          0,
          0,
          1,
          2,
          2,
          2,
          3,
          3,
          4,
          5,
          5,
          5
        ])
      end
    end

    test "bad padding raises" do
      t = x({:f, 32})
      zero = N.scalar(0.0, :f32, w())

      assert_raise ArgumentError, ~r/non-negative/, fn ->
        N.pad(t, [0], [-1], [0], zero, :constant, w())
      end

      assert_raise ArgumentError,
                   ~r/pad: mode must be a pad_mode atom, one of :constant, :edge, got: :bogus/,
                   fn ->
                     N.pad(t, [0], [1], [0], zero, :bogus, w())
                   end

      # MLX indexes the shape by each axis unchecked
      assert_raise ArgumentError, ~r/pad.*axis 7 is out of range/, fn ->
        N.pad(t, [7], [1], [0], zero, :constant, w())
      end

      assert_raise ArgumentError, ~r/pad.*repeated axis/, fn ->
        N.pad(t, [0, -2], [1, 1], [0, 0], zero, :constant, w())
      end

      assert_raise ArgumentError, ~r/one element/, fn ->
        N.pad(t, [0], [1], [0], N.zeros([0], :f32, w()), :constant, w())
      end

      assert_raise ArgumentError, ~r/would need more than/, fn ->
        N.pad(t, [0, 1], [2_000_000_000, 2_000_000_000], [0, 0], zero, :constant, w())
      end
    end
  end

  describe "concatenate, stack" do
    test "along each axis in every type" do
      for type <- types() do
        check(N.concatenate([x(type), x(type)], 1, w()), [2, 6], type, [
          0,
          1,
          2,
          0,
          1,
          2,
          3,
          4,
          5,
          3,
          4,
          5
        ])

        check(
          N.concatenate([x(type), mk([6, 7, 8], [1, 3], type)], 0, w()),
          [3, 3],
          type,
          Enum.to_list(0..8)
        )

        check(N.stack([x(type), x(type)], 0, w()), [2, 2, 3], type, [
          0,
          1,
          2,
          3,
          4,
          5,
          0,
          1,
          2,
          3,
          4,
          5
        ])

        check(N.stack([x(type), x(type)], 2, w()), [2, 3, 2], type, [
          0,
          0,
          1,
          1,
          2,
          2,
          3,
          3,
          4,
          4,
          5,
          5
        ])
      end
    end

    test "mixed types promote" do
      t = N.concatenate([tensor([1], [1], {:s, 32}), tensor([2.5], [1], {:f, 32})], 0, w())
      assert_tensor(t, [2], {:f, 32}, [1.0, 2.5])
    end

    test "mismatched or missing inputs raise" do
      assert_raise ArgumentError, ~r/No arrays/, fn -> N.concatenate([], 0, w()) end

      assert_raise ArgumentError, ~r/same number of dimensions/, fn ->
        N.concatenate([x({:f, 32}), mk([1], [1], {:f, 32})], 0, w())
      end

      assert_raise ArgumentError, ~r/same shape/, fn ->
        N.stack([x({:f, 32}), mk([1], [1], {:f, 32})], 0, w())
      end
    end
  end

  describe "slices" do
    test "static slices with strides, negative strides and clamping, in every type" do
      for type <- types() do
        check(N.slice(x(type), [0, 1], [2, 3], [1, 1], w()), [2, 2], type, [1, 2, 4, 5])
        check(N.slice(x(type), [0, 0], [2, 3], [1, 2], w()), [2, 2], type, [0, 2, 3, 5])
        check(N.slice(x(type), [1, 2], [-3, -4], [-1, -1], w()), [2, 3], type, [5, 4, 3, 2, 1, 0])
        check(N.slice(x(type), [-1, 0], [100, 100], [1, 1], w()), [1, 3], type, [3, 4, 5])
        check(N.slice(x(type), [5, 0], [9, 3], [1, 1], w()), [0, 3], type, [])
      end
    end

    test "huge strides and bounds are clamped, not overflowed" do
      t = x({:s, 32})
      check(N.slice(t, [0, 0], [2, 3], [1, 2_147_483_647], w()), [2, 1], {:s, 32}, [0, 3])

      check(
        N.slice(
          t,
          [2_147_483_647, 2],
          [-2_147_483_648, -2_147_483_648],
          [-2_147_483_648, -1],
          w()
        ),
        [1, 3],
        {:s, 32},
        [5, 4, 3]
      )
    end

    test "dynamic slices clamp their start so the window fits" do
      for type <- types() do
        start = fn list -> tensor(list, [length(list)], {:s, 32}) end
        check(N.slice_dynamic(x(type), start.([1, 1]), [0, 1], [1, 2], w()), [1, 2], type, [4, 5])
        check(N.slice_dynamic(x(type), start.([5, 5]), [0, 1], [1, 2], w()), [1, 2], type, [4, 5])

        check(N.slice_dynamic(x(type), start.([-3, -3]), [0, 1], [1, 2], w()), [1, 2], type, [
          0,
          1
        ])

        check(N.slice_dynamic(x(type), start.([1]), [-1], [2, 2], w()), [2, 2], type, [1, 2, 4, 5])
      end

      # start indices of other integer types
      for itype <- [{:u, 8}, {:s, 64}, {:u, 64}] do
        check(
          N.slice_dynamic(x({:s, 32}), tensor([1], [1], itype), [1], [2, 2], w()),
          [2, 2],
          {:s, 32},
          [1, 2, 4, 5]
        )
      end
    end

    test "slice_update replaces a (strided) window, in every type" do
      for type <- types() do
        upd = mk([7, 8], [1, 2], type)

        check(N.slice_update(x(type), upd, [1, 1], [2, 3], [1, 1], w()), [2, 3], type, [
          0,
          1,
          2,
          3,
          7,
          8
        ])

        upd4 = mk([7, 8, 9, 10], [2, 2], type)

        check(N.slice_update(x(type), upd4, [0, 0], [2, 3], [1, 2], w()), [2, 3], type, [
          7,
          1,
          8,
          9,
          4,
          10
        ])
      end
    end

    test "slice_update_add, _prod, _max, _min combine with the window" do
      for type <- real_types() do
        check(
          N.slice_update_add(x(type), mk([10, 20], [1, 2], type), [1, 1], [2, 3], [1, 1], w()),
          [2, 3],
          type,
          [0, 1, 2, 3, 14, 25]
        )

        check(
          N.slice_update_prod(x(type), mk([10, 20], [1, 2], type), [1, 1], [2, 3], [1, 1], w()),
          [2, 3],
          type,
          [0, 1, 2, 3, 40, 100]
        )

        check(
          N.slice_update_max(x(type), mk([9, 1], [1, 2], type), [1, 1], [2, 3], [1, 1], w()),
          [2, 3],
          type,
          [0, 1, 2, 3, 9, 5]
        )

        check(
          N.slice_update_min(x(type), mk([9, 1], [1, 2], type), [1, 1], [2, 3], [1, 1], w()),
          [2, 3],
          type,
          [0, 1, 2, 3, 4, 1]
        )
      end
    end

    test "dynamic slice_update clamps its start so the update fits" do
      for type <- types() do
        upd = mk([7, 8], [1, 2], type)
        start = fn list -> tensor(list, [length(list)], {:s, 64}) end

        check(N.slice_update_dynamic(x(type), upd, start.([1, 1]), [0, 1], w()), [2, 3], type, [
          0,
          1,
          2,
          3,
          7,
          8
        ])

        check(N.slice_update_dynamic(x(type), upd, start.([1, 2]), [0, 1], w()), [2, 3], type, [
          0,
          1,
          2,
          3,
          7,
          8
        ])

        check(N.slice_update_dynamic(x(type), upd, start.([-1, 0]), [0, 1], w()), [2, 3], type, [
          7,
          8,
          2,
          3,
          4,
          5
        ])

        check(
          N.slice_update_dynamic(x(type), upd, start.([99, -99]), [0, 1], w()),
          [2, 3],
          type,
          [0, 1, 2, 7, 8, 5]
        )
      end
    end

    test "bad slices raise" do
      t = x({:f, 32})
      i = fn list -> tensor(list, [length(list)], {:s, 32}) end

      assert_raise ArgumentError, ~r/must not be zero/, fn ->
        N.slice(t, [0, 0], [2, 3], [0, 1], w())
      end

      assert_raise ArgumentError, ~r/one start, stop and stride per axis/, fn ->
        N.slice(t, [0], [2], [1], w())
      end

      assert_raise ArgumentError, ~r/does not fit/, fn ->
        N.slice_dynamic(t, i.([0, 0]), [0, 1], [3, 1], w())
      end

      assert_raise ArgumentError, ~r/does not fit/, fn ->
        N.slice_dynamic(t, i.([0, 0]), [0, 1], [-1, 1], w())
      end

      assert_raise ArgumentError, ~r/must be integers/, fn ->
        N.slice_dynamic(t, tensor([0.0], [1], {:f, 32}), [0], [1, 1], w())
      end

      assert_raise ArgumentError, ~r/one start index per axis/, fn ->
        N.slice_dynamic(t, i.([0, 0, 0]), [0, 1], [1, 1], w())
      end

      assert_raise ArgumentError, ~r/repeated axis/, fn ->
        N.slice_dynamic(t, i.([0, 0]), [0, 0], [1, 1], w())
      end

      assert_raise ArgumentError, ~r/out of range/, fn ->
        N.slice_dynamic(t, i.([0]), [2], [1, 1], w())
      end

      assert_raise ArgumentError, ~r/more dimensions/, fn ->
        N.slice_update_dynamic(t, N.zeros([1, 1, 1], :f32, w()), i.([0]), [0], w())
      end

      assert_raise ArgumentError, ~r/does not fit/, fn ->
        N.slice_update_dynamic(t, N.zeros([3, 3], :f32, w()), i.([0]), [0], w())
      end

      assert_raise ArgumentError, ~r/broadcast/, fn ->
        N.slice_update(t, N.zeros([1, 3], :f32, w()), [1, 1], [2, 3], [1, 1], w())
      end
    end
  end

  describe "flip, tile, repeat" do
    test "in every type" do
      for type <- types() do
        check(N.flip(x(type), [0], w()), [2, 3], type, [3, 4, 5, 0, 1, 2])
        check(N.flip(x(type), [1], w()), [2, 3], type, [2, 1, 0, 5, 4, 3])
        check(N.flip(x(type), [0, 1], w()), [2, 3], type, [5, 4, 3, 2, 1, 0])
        check(N.tile(x(type), [1, 2], w()), [2, 6], type, [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
        check(N.tile(x(type), [2, 1], w()), [4, 3], type, [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5])
        check(N.tile(mk([0, 1], [2], type), [2, 2], w()), [2, 4], type, [0, 1, 0, 1, 0, 1, 0, 1])
        check(N.repeat(x(type), 2, 1, w()), [2, 6], type, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
        check(N.repeat(x(type), 2, 0, w()), [4, 3], type, [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
      end
    end

    test "bad counts raise" do
      t = x({:f, 32})
      assert_raise ArgumentError, ~r/negative/, fn -> N.repeat(t, -1, 0, w()) end
      assert_raise ArgumentError, ~r/32-bit range/, fn -> N.repeat(t, 2_000_000_000, 1, w()) end
      assert_raise ArgumentError, ~r/out of range/, fn -> N.repeat(t, 2, 2, w()) end
      assert_raise ArgumentError, ~r/negative/, fn -> N.tile(t, [-1, 1], w()) end
      assert_raise ArgumentError, ~r/32-bit range/, fn -> N.tile(t, [1, 2_000_000_000], w()) end
      assert_raise ArgumentError, ~r/out of bounds/, fn -> N.flip(t, [2], w()) end
    end
  end

  describe "select, clip" do
    test "select broadcasts and promotes" do
      cond = tensor([1, 0, 1, 0, 1, 0], [2, 3], :bool)

      for type <- types() do
        y = N.astype(N.scalar(9.0, :f32, w()), nat(type), w())
        check(N.select(cond, x(type), y, w()), [2, 3], type, [0, 9, 2, 9, 4, 9])
      end

      t =
        N.select(
          tensor([1, 0], [2], :bool),
          tensor([1, 2], [2], {:s, 32}),
          tensor([9.5], [1], {:f, 32}),
          w()
        )

      assert_tensor(t, [2], {:f, 32}, [1.0, 9.5])
    end

    test "clip with a lower bound, an upper bound, or both" do
      for type <- real_types() do
        lo = N.astype(N.scalar(1.0, :f32, w()), nat(type), w())
        hi = N.astype(N.scalar(4.0, :f32, w()), nat(type), w())
        check(N.clip(x(type), [lo], [], w()), [2, 3], type, [1, 1, 2, 3, 4, 5])
        check(N.clip(x(type), [], [hi], w()), [2, 3], type, [0, 1, 2, 3, 4, 4])
        check(N.clip(x(type), [lo], [hi], w()), [2, 3], type, [1, 1, 2, 3, 4, 4])
      end

      assert_raise ArgumentError, ~r/a_min and a_max/, fn -> N.clip(x({:f, 32}), [], [], w()) end

      assert_raise ArgumentError, ~r/at most one/, fn ->
        N.clip(x({:f, 32}), [x({:f, 32}), x({:f, 32})], [], w())
      end
    end
  end

  describe "split, split_indices, unstack (any number of outputs)" do
    test "in every type" do
      for type <- types() do
        [a, b, c] = N.split(x(type), 3, 1, w())
        check(a, [2, 1], type, [0, 3])
        check(b, [2, 1], type, [1, 4])
        check(c, [2, 1], type, [2, 5])
        [top, bottom] = N.split(x(type), 2, -2, w())
        check(top, [1, 3], type, [0, 1, 2])
        check(bottom, [1, 3], type, [3, 4, 5])

        [a, b] = N.split_indices(x(type), [1], 1, w())
        check(a, [2, 1], type, [0, 3])
        check(b, [2, 2], type, [1, 2, 4, 5])

        [a, b] = N.unstack(x(type), 0, w())
        check(a, [3], type, [0, 1, 2])
        check(b, [3], type, [3, 4, 5])
        [a, b, c] = N.unstack(x(type), 1, w())
        check(a, [2], type, [0, 3])
        check(b, [2], type, [1, 4])
        check(c, [2], type, [2, 5])
      end
    end

    test "many more outputs than the old limit of 4" do
      v = mk(Enum.to_list(0..99), [100], {:s, 32})
      parts = N.split(v, 100, 0, w())
      assert length(parts) == 100

      for {p, i} <- Enum.with_index(parts) do
        assert Emily.shape(p) == [1]
        assert Emily.Case.read(p) == [i]
      end

      rows = N.unstack(N.reshape(v, [50, 2], w()), 0, w())
      assert length(rows) == 50
      assert Enum.map(rows, &Emily.Case.read/1) == Enum.chunk_every(Enum.to_list(0..99), 2)

      cuts = Enum.to_list(1..99)
      parts = N.split_indices(v, cuts, 0, w())
      assert length(parts) == 100
      assert Enum.map(parts, &Emily.Case.read/1) == Enum.map(0..99, &[&1])

      # the outputs of one op evaluate together
      :ok = Emily.eval(parts)
    end

    test "split_indices: negative, out-of-range and decreasing boundaries (numpy's)" do
      v = mk([0, 1, 2, 3, 4, 5], [6], {:s, 64})
      parts = fn idx -> Enum.map(N.split_indices(v, idx, 0, w()), &Emily.Case.read/1) end
      assert parts.([2, 4]) == [[0, 1], [2, 3], [4, 5]]
      assert parts.([-2]) == [[0, 1, 2, 3], [4, 5]]
      assert parts.([0, 9]) == [[], [0, 1, 2, 3, 4, 5], []]
      assert parts.([-(2 ** 31), 2 ** 31 - 1]) == [[], [0, 1, 2, 3, 4, 5], []]
      assert parts.([4, 2]) == [[0, 1, 2, 3], [], [2, 3, 4, 5]]
      assert parts.([]) == [[0, 1, 2, 3, 4, 5]]
    end

    test "empty axes" do
      e = N.zeros([0, 3], :f32, w())
      parts = N.split(e, 5, 0, w())
      assert length(parts) == 5
      assert Enum.all?(parts, &(Emily.shape(&1) == [0, 3]))
      assert N.unstack(e, 0, w()) == []
      assert length(N.unstack(e, 1, w())) == 3
    end

    test "bad splits raise ArgumentError naming the op" do
      t = x({:f, 32})

      assert_raise ArgumentError, ~r/split.*does not split into 2 equal parts/, fn ->
        N.split(t, 2, 1, w())
      end

      assert_raise ArgumentError, ~r/split.*at least 1/, fn -> N.split(t, 0, 1, w()) end
      assert_raise ArgumentError, ~r/split.*at least 1/, fn -> N.split(t, -3, 1, w()) end
      assert_raise ArgumentError, ~r/split.*out of range/, fn -> N.split(t, 1, 2, w()) end

      assert_raise ArgumentError, ~r/split_indices.*out of range/, fn ->
        N.split_indices(t, [1], -3, w())
      end

      assert_raise ArgumentError, ~r/unstack.*out of range/, fn -> N.unstack(t, 2, w()) end

      assert_raise ArgumentError, ~r/unstack.*out of range/, fn ->
        N.unstack(N.scalar(1.0, :f32, w()), 0, w())
      end

      assert_raise ArgumentError, ~r/split_indices.*32-bit range/, fn ->
        N.split_indices(t, [2 ** 40], 0, w())
      end

      e = assert_raise ArgumentError, fn -> N.split(t, 4, 0, w()) end
      assert e.message =~ "f32[2][3]"
    end

    test "more outputs than handles could fit are refused before they are made" do
      # a lazy broadcast: no memory, but 2^31 - 1 rows
      huge = N.broadcast_to(N.scalar(1.0, :f32, w()), [2_147_483_647, 1], w())

      assert_raise ArgumentError, ~r/unstack.*would return 2147483647 arrays/, fn ->
        N.unstack(huge, 0, w())
      end

      assert_raise ArgumentError, ~r/split.*would return/, fn ->
        N.split(huge, 2_147_483_647, 0, w())
      end

      empty = N.zeros([0], :f32, w())

      assert_raise ArgumentError, ~r/split.*would return/, fn ->
        N.split(empty, 2_000_000_000, 0, w())
      end
    end
  end
end
