defmodule Emily.OpsLinalgTest do
  use ExUnit.Case, async: true
  import Emily.Case
  alias Emily.Native, as: N

  setup do
    {:ok, w: Emily.Worker.current()}
  end

  # Row-major product of two matrices given as flat lists.
  defp mm(a, {m, k}, b, n) do
    for i <- 0..(m - 1), j <- 0..(n - 1) do
      Enum.sum(for l <- 0..(k - 1), do: Enum.at(a, i * k + l) * Enum.at(b, l * n + j))
    end
  end

  test "matmul, tensordot, addmm", %{w: w} do
    a = f([1, 2, 3, 4], [2, 2])
    b = f([5, 6, 7, 8], [2, 2])
    assert read(N.matmul(a, b, w)) == [19.0, 22.0, 43.0, 50.0]

    a23 = f([1, 2, 3, 4, 5, 6], [2, 3])
    b32 = f([1, 2, 3, 4, 5, 6], [3, 2])
    r = N.tensordot(a23, b32, [1], [0], w)
    assert Emily.shape(r) == [2, 2]
    assert read(r) == [22.0, 28.0, 49.0, 64.0]
    # contracting both axes: sum of a .* b^T
    assert read(N.tensordot(a23, f([1, 2, 3, 4, 5, 6], [2, 3]), [0, 1], [0, 1], w)) == [91.0]

    c = f([1, 1, 1, 1], [2, 2])
    assert read(N.addmm(c, a, b, 2.0, 0.5, w)) == [38.5, 44.5, 86.5, 100.5]
  end

  test "matmul broadcasts batches and promotes integer inputs", %{w: w} do
    a = f([1, 0, 0, 1, 2, 0, 0, 2], [2, 2, 2])
    b = f([1, 2, 3, 4], [2, 2])
    r = N.matmul(a, b, w)
    assert Emily.shape(r) == [2, 2, 2]
    assert read(r) == [1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 6.0, 8.0]
  end

  test "inner, outer, cross", %{w: w} do
    r = N.inner(f([1, 2, 3], [3]), f([4, 5, 6], [3]), w)
    assert Emily.shape(r) == []
    assert read(r) == [32.0]

    r = N.outer(f([1, 2], [2]), f([3, 4, 5], [3]), w)
    assert Emily.shape(r) == [2, 3]
    assert read(r) == [3.0, 4.0, 5.0, 6.0, 8.0, 10.0]

    assert read(N.cross(f([1, 0, 0], [3]), f([0, 1, 0], [3]), -1, w)) == [0.0, 0.0, 1.0]
    assert read(N.cross(f([1, 2, 3], [3]), f([4, 5, 6], [3]), 0, w)) == [-3.0, 6.0, -3.0]
    # size-2 vectors are padded with a zero; batches broadcast
    r = N.cross(f([1, 0, 0, 1], [2, 2]), f([0, 1], [2]), -1, w)
    assert Emily.shape(r) == [2, 3]
    assert read(r) == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    assert_raise ArgumentError, ~r/cross/, fn -> N.cross(f([1], [1]), f([1], [1]), 0, w) end
  end

  test "norm: default, p, inf, Frobenius, nuclear, along an axis", %{w: w} do
    v = f([3, -4], [2])
    assert_close(read(N.norm(v, :default, 0.0, [], false, w)), [5.0])
    assert_close(read(N.norm(v, :p, 1.0, [], false, w)), [7.0])
    assert_close(read(N.norm(v, :inf, 0.0, [], false, w)), [4.0])
    assert_close(read(N.norm(v, :neg_inf, 0.0, [], false, w)), [3.0])

    m = f([1, 2, 3, 4], [2, 2])
    assert_close(read(N.norm(m, :fro, 0.0, [], false, w)), [:math.sqrt(30)])
    assert_close(read(N.norm(f([3, 0, 0, -4], [2, 2]), :nuc, 0.0, [], false, w)), [7.0])

    r = N.norm(f([3, 4, 6, 8], [2, 2]), :default, 0.0, [1], true, w)
    assert Emily.shape(r) == [2, 1]
    assert_close(read(r), [5.0, 10.0])

    assert_raise ArgumentError, ~r/norm/, fn -> N.norm(v, :bogus, 0.0, [], false, w) end
  end

  test "cholesky, cholesky_inv, inv, tri_inv, pinv", %{w: w} do
    s2 = :math.sqrt(2)
    a = f([4, 2, 2, 3], [2, 2])
    assert_close(read(N.cholesky(a, false, w)), [2.0, 0.0, 1.0, s2])
    assert_close(read(N.cholesky(a, true, w)), [2.0, 1.0, 0.0, s2])

    # not positive definite: NaN, not a partial factor (MLX ignored LAPACK's failure);
    # a batch keeps its positive definite matrices
    b = f([4, 2, 2, 3, 1, 2, 2, 1], [2, 2, 2])
    [l1, l2] = b |> N.cholesky(false, w) |> read() |> Enum.chunk_every(4)
    assert_close(l1, [2.0, 0.0, 1.0, s2])
    assert Enum.all?(l2, &(&1 == :nan))

    # cholesky_inv takes the factor L of A = L L^T and returns A^-1
    l = f([2, 0, 1, s2], [2, 2])
    assert_close(read(N.cholesky_inv(l, false, w)), [0.375, -0.25, -0.25, 0.5])

    assert_close(read(N.inv(f([4, 7, 2, 6], [2, 2]), w)), [0.6, -0.7, -0.2, 0.4])
    assert_close(read(N.tri_inv(f([2, 0, 1, 4], [2, 2]), false, w)), [0.5, 0.0, -0.125, 0.25])
    assert_close(read(N.tri_inv(f([2, 1, 0, 4], [2, 2]), true, w)), [0.5, -0.125, 0.0, 0.25])

    assert_close(read(N.pinv(f([1, 0, 0, 2], [2, 2]), w)), [1.0, 0.0, 0.0, 0.5])
    r = N.pinv(f([1, 2], [1, 2]), w)
    assert Emily.shape(r) == [2, 1]
    assert_close(read(r), [0.2, 0.4])
  end

  test "solve and solve_triangular", %{w: w} do
    assert_close(read(N.solve(f([3, 1, 1, 2], [2, 2]), f([9, 8], [2]), w)), [2.0, 3.0])

    lower = f([2, 0, 1, 1], [2, 2])
    assert_close(read(N.solve_triangular(lower, f([4, 5], [2]), false, w)), [2.0, 3.0])
    upper = f([2, 1, 0, 1], [2, 2])
    assert_close(read(N.solve_triangular(upper, f([7, 3], [2]), true, w)), [2.0, 3.0])
  end

  test "eigvalsh, eigh, eigvals, eig", %{w: w} do
    a = f([2, 1, 1, 2], [2, 2])
    assert_close(read(N.eigvalsh(a, false, w)), [1.0, 3.0])
    assert_close(read(N.eigvalsh(a, true, w)), [1.0, 3.0])

    [vals, vecs] = N.eigh(a, false, w)
    assert_close(read(vals), [1.0, 3.0])
    # columns: ±[1, -1]/√2 for 1, ±[1, 1]/√2 for 3
    [v00, v01, v10, v11] = read(vecs)
    h = 1 / :math.sqrt(2)
    assert_close(Enum.map([v00, v01, v10, v11], &abs/1), [h, h, h, h])
    assert v00 * v10 < 0 and v01 * v11 > 0

    # triangular: eigenvalues are the diagonal (complex results)
    ev = N.eigvals(f([1, 2, 0, 3], [2, 2]), w)
    assert Emily.dtype(ev) == {:c, 64}
    {re, im} = read(ev) |> Enum.unzip()
    assert_close(Enum.sort(re), [1.0, 3.0])
    assert_close(im, [0.0, 0.0])

    [vals, vecs] = N.eig(f([2, 0, 0, 3], [2, 2]), w)
    {re, _} = read(vals) |> Enum.unzip()
    assert_close(Enum.sort(re), [2.0, 3.0])
    assert Emily.shape(vecs) == [2, 2]
  end

  test "det and slogdet", %{w: w} do
    assert_close(read(N.det(f([1, 2, 3, 4], [2, 2]), w)), [-2.0])
    [sign, logabs] = N.slogdet(f([1, 2, 3, 4], [2, 2]), w)
    assert_close(read(sign), [-1.0])
    assert_close(read(logabs), [:math.log(2)])
  end

  test "qr reconstructs A with orthonormal Q and upper R", %{w: w} do
    av = [3, 0, 4, 5]
    [q, r] = N.qr(f(av, [2, 2]), w)
    qv = read(q)
    rv = read(r)
    assert_close(Enum.map(qv, &abs/1), [0.6, 0.8, 0.8, 0.6])
    assert_close(Enum.map(rv, &abs/1), [5.0, 4.0, 0.0, 3.0])
    assert_close(mm(qv, {2, 2}, rv, 2), [3.0, 0.0, 4.0, 5.0])
  end

  test "svd: singular values, and u s vt reconstructs A", %{w: w} do
    av = [3, 0, 0, -4]
    [s] = N.svd(f(av, [2, 2]), false, w)
    assert_close(read(s), [4.0, 3.0])

    [u, s, vt] = N.svd(f(av, [2, 2]), true, w)
    [s0, s1] = read(s)
    us = mm(read(u), {2, 2}, [s0, 0, 0, s1], 2)
    assert_close(mm(us, {2, 2}, read(vt), 2), [3.0, 0.0, 0.0, -4.0])
  end

  test "lu and lu_factor with partial pivoting", %{w: w} do
    [p, l, u] = N.lu(f([1, 2, 3, 4], [2, 2]), w)
    # the larger pivot 3 comes first: A = L[p] U ... rows swapped
    assert read(p) == [1, 0]
    assert_close(read(l), [1.0, 0.0, 1 / 3, 1.0])
    assert_close(read(u), [3.0, 4.0, 0.0, 2 / 3])

    [lu, piv] = N.lu_factor(f([1, 2, 3, 4], [2, 2]), w)
    assert_close(read(lu), [3.0, 4.0, 1 / 3, 2 / 3])
    # LAPACK-style: row 0 was swapped with row 1, then row 1 stayed
    assert read(piv) == [1, 1]
  end

  test "bad shapes raise ArgumentError; numerical failures raise, never crash", %{w: w} do
    assert_raise ArgumentError, ~r/inv/, fn -> N.inv(f([1, 2, 3, 4, 5, 6], [2, 3]), w) end

    assert_raise ArgumentError, ~r/matmul/, fn ->
      N.matmul(f([1, 2], [2]), f([1, 2, 3], [3]), w)
    end

    # LAPACK's failures show at evaluation: Emily.Error of kind :runtime, not ArgumentError
    singular = f([1, 2, 2, 4], [2, 2])
    e = assert_raise Emily.Error, fn -> Emily.eval(N.inv(singular, w)) end
    assert e.kind == :runtime
    assert e.message =~ "LU factorization failed with error code"

    e =
      assert_raise Emily.Error, fn ->
        Emily.to_binary(N.tri_inv(f([0, 0, 1, 0], [2, 2]), false, w))
      end

    assert e.kind == :runtime
    assert e.message =~ "triangular inversion failed"
    e = assert_raise Emily.Error, fn -> Emily.eval(N.solve(singular, f([1, 1], [2]), w)) end
    assert e.kind == :runtime

    e =
      assert_raise Emily.Error, fn ->
        Emily.eval(N.cholesky_inv(f([0, 0, 0, 0], [2, 2]), false, w))
      end

    assert e.kind == :runtime
    [_u, s, _vt] = N.svd(f([:nan, 1, 1, 1], [2, 2]), true, w)
    e = assert_raise Emily.Error, fn -> Emily.eval(s) end
    assert e.kind == :runtime
    assert e.message =~ "SVD failed"

    # the worker survives
    assert read(N.det(f([2, 0, 0, 2], [2, 2]), w)) == [4.0]
  end

  test "eig of matrices with NaN or infinity gives NaN for those matrices only", %{w: w} do
    # (MLX wrote an eigenvector column past its output for them)
    a =
      t([:nan, 1.0, 1.0, :nan, 2.0, 0.0, 0.0, 3.0, :infinity, 0.0, 0.0, 1.0], [3, 2, 2], {:f, 32})

    for _ <- 1..20 do
      [vals, vecs] = N.eig(a, w)
      v = read(vals)
      assert Enum.slice(v, 0, 2) == [{:nan, :nan}, {:nan, :nan}]
      assert Enum.slice(v, 4, 2) == [{:nan, :nan}, {:nan, :nan}]
      {re, im} = v |> Enum.slice(2, 2) |> Enum.unzip()
      assert_close(Enum.sort(re), [2.0, 3.0])
      assert im == [0.0, 0.0]
      vs = read(vecs)
      assert Enum.all?(Enum.slice(vs, 0, 4), &(&1 == {:nan, :nan}))
      assert Enum.all?(Enum.slice(vs, 4, 4), &(&1 != {:nan, :nan}))

      # eigvals alike (LAPACK refused the batch, printing to stderr)
      v = read(N.eigvals(a, w))
      assert Enum.slice(v, 0, 2) ++ Enum.slice(v, 4, 2) == List.duplicate({:nan, :nan}, 4)
      assert_close(v |> Enum.slice(2, 2) |> Enum.map(&elem(&1, 0)) |> Enum.sort(), [2.0, 3.0])
    end
  end

  test "empty matrices and batches are refused by the factorizations", %{w: w} do
    # MLX divided by the matrix size (SIGFPE)
    for shape <- [[0, 0], [0, 2, 2]], e = N.zeros(shape, :f32, w) do
      for op <- [:cholesky, :cholesky_inv, :tri_inv, :eigvalsh, :svd, :eigh] do
        assert_raise ArgumentError, ~r/#{op}.*non-empty/, fn -> apply(N, op, [e, false, w]) end
      end

      for op <- [:inv, :pinv, :eigvals, :det, :qr, :eig, :lu, :lu_factor, :slogdet] do
        assert_raise ArgumentError, ~r/#{op}.*non-empty/, fn -> apply(N, op, [e, w]) end
      end

      assert_raise ArgumentError, ~r/solve.*non-empty/, fn -> N.solve(e, e, w) end

      assert_raise ArgumentError, ~r/solve_triangular.*non-empty/, fn ->
        N.solve_triangular(e, e, true, w)
      end

      assert_raise ArgumentError, ~r/norm.*non-empty/, fn ->
        N.norm(e, :nuc, 0.0, [], false, w)
      end
    end

    # the Frobenius norm of an empty matrix is 0
    assert read(N.norm(N.zeros([0, 0], :f32, w), :fro, 0.0, [], false, w)) == [0.0]
  end

  test "factorizations on a GPU worker run on its CPU stream" do
    if Emily.Native.device_available(:gpu) do
      g = Emily.Worker.start(:gpu)
      a = Emily.Native.from_binary(bin([4, 2, 2, 3], {:f, 32}), [2, 2], :f32, g)
      assert_close(read(N.cholesky(a, false, g)), [2.0, 0.0, 1.0, :math.sqrt(2)])
      [s] = N.svd(a, false, g)
      assert length(read(s)) == 2
      Emily.Worker.stop(g)
    end
  end

  describe "gather_mm" do
    # a: A0 = I, A1 = [[1, 2], [3, 4]], A2 = 2I; b: B0 = [[1, 1], [0, 1]], B1 = [[0, 1], [1, 0]]
    defp gm_a(type), do: t([1, 0, 0, 1, 1, 2, 3, 4, 2, 0, 0, 2], [3, 2, 2], type)
    defp gm_b(type), do: t([1, 1, 0, 1, 0, 1, 1, 0], [2, 2, 2], type)
    defp idx(values, type \\ {:s, 32}), do: t(values, [length(values)], type)

    test "picks a matrix of each operand per index pair, in every float type", %{w: w} do
      for type <- [{:f, 32}, {:f, 16}, {:bf, 16}, {:f, 64}] do
        r = N.gather_mm(gm_a(type), gm_b(type), [idx([2, 1, 0])], [idx([1, 0, 1])], false, w)
        assert Emily.shape(r) == [3, 2, 2]
        assert Emily.dtype(r) == type
        # A2 B1, A1 B0, A0 B1
        assert read(r) == [0.0, 2.0, 2.0, 0.0, 1.0, 3.0, 3.0, 7.0, 0.0, 1.0, 1.0, 0.0]
      end
    end

    test "indices broadcast; an absent list means every matrix in order", %{w: w} do
      lhs = t([1, 0], [2, 1], {:s, 64})
      r = N.gather_mm(gm_a({:f, 32}), gm_b({:f, 32}), [lhs], [], true, w)
      assert Emily.shape(r) == [2, 2, 2, 2]
      # A1 B0, A1 B1, A0 B0, A0 B1
      assert read(r) == [
               1.0,
               3.0,
               3.0,
               7.0,
               2.0,
               1.0,
               4.0,
               3.0,
               1.0,
               1.0,
               0.0,
               1.0,
               0.0,
               1.0,
               1.0,
               0.0
             ]

      # no indices at all: the batched product
      r = N.gather_mm(gm_b({:f, 32}), gm_b({:f, 32}), [], [], false, w)
      assert read(r) == [1.0, 2.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]

      # a vector operand is one row: [1, 2] B1 = [2, 1], [1, 2] B0 = [1, 3]
      for type <- [{:f, 32}, {:f, 64}] do
        r = N.gather_mm(t([1, 2], [2], type), gm_b(type), [], [idx([1, 0])], false, w)
        assert Emily.shape(r) == [2, 2]
        assert read(r) == [2.0, 1.0, 1.0, 3.0]
      end
    end

    test "out-of-range indices are clamped, negatives count from the end (never read outside)", %{
      w: w
    } do
      for type <- [{:f, 32}, {:f, 64}] do
        r =
          N.gather_mm(
            gm_a(type),
            gm_b(type),
            [idx([-1, 5, -7, 2_147_483_647])],
            [idx([0, -2, 9, -2_147_483_648])],
            false,
            w
          )

        # lhs -> [2, 2, 0, 2], rhs -> [0, 0, 1, 0]: A2 B0, A2 B0, A0 B1, A2 B0
        a2b0 = [2.0, 2.0, 0.0, 2.0]
        assert read(r) == a2b0 ++ a2b0 ++ [0.0, 1.0, 1.0, 0.0] ++ a2b0
      end

      r =
        N.gather_mm(
          gm_a({:f, 32}),
          gm_b({:f, 32}),
          [idx([4_000_000_000], {:u, 32})],
          [idx([255], {:u, 8})],
          false,
          w
        )

      # A2 B1
      assert read(r) == [0.0, 2.0, 2.0, 0.0]
    end

    test "bad inputs raise ArgumentError naming the op, shapes and dtypes", %{w: w} do
      a = gm_a({:f, 32})
      b = gm_b({:f, 32})
      i = idx([0])

      e =
        assert_raise ArgumentError, fn ->
          N.gather_mm(a, b, [idx([0.5], {:f, 32})], [], false, w)
        end

      assert e.message =~ "gather_mm"
      assert e.message =~ "indices must be integers"
      assert e.message =~ "f32[3][2][2]"

      e = assert_raise ArgumentError, fn -> N.gather_mm(a, b, [idx([1], :bool)], [], false, w) end
      assert e.message =~ "indices must be integers"

      e =
        assert_raise ArgumentError, fn ->
          N.gather_mm(a, f([1, 2, 3, 4, 5, 6], [1, 3, 2]), [i], [], false, w)
        end

      assert e.message =~ "gather_mm"
      assert e.message =~ "f32[1][3][2]"

      e =
        assert_raise ArgumentError, fn ->
          N.gather_mm(
            t(Enum.to_list(1..12), [3, 2, 2], {:s, 32}),
            t(Enum.to_list(1..8), [2, 2, 2], {:s, 32}),
            [i],
            [],
            false,
            w
          )
        end

      assert e.message =~ ~r/gather_mm.*floating/
      assert e.message =~ "s32[3][2][2]"

      assert_raise ArgumentError, ~r/gather_mm.*broadcast/i, fn ->
        N.gather_mm(a, b, [idx([0, 1])], [idx([0, 1, 0])], false, w)
      end

      assert_raise ArgumentError,
                   ~r/gather_mm.*lhs_indices must be a list of 0 or 1 arrays/,
                   fn ->
                     N.gather_mm(a, b, [i, i], [], false, w)
                   end

      assert_raise ArgumentError, ~r/gather_mm.*empty batch/, fn ->
        N.gather_mm(N.zeros([0, 2, 2], :f32, w), b, [i], [], false, w)
      end

      assert_raise ArgumentError, ~r/gather_mm.*at least one dimension/, fn ->
        N.gather_mm(N.scalar(1.0, :f32, w), b, [i], [], false, w)
      end

      # no indices into an empty batch: an empty result
      r = N.gather_mm(N.zeros([0, 2, 2], :f32, w), b, [idx([])], [idx([])], false, w)
      assert Emily.shape(r) == [0, 2, 2]
      assert read(r) == []
    end
  end
end
