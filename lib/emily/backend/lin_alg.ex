if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.LinAlg do
    @moduledoc false
    # dot, triangular_solve and the helpers of the linear-algebra blocks.
    #
    # `config :emily, debug_detect_nan_inf: true` (compile time) makes dot raise
    # ArgumentError when its result holds NaN or Inf; not compiled in by default.

    alias Emily.Native, as: N

    alias Emily.Backend.{Core}
    alias Nx.Tensor, as: T

    import Core, only: [on_device: 3, wrap: 3, ref: 3, device_of: 1, worker: 1, fit: 3]

    require Emily.Config
    @nan_inf_check Emily.Config.compile_env(:debug_detect_nan_inf)

    @doc false
    def nan_inf_check?, do: @nan_inf_check

    ## dot

    def dot(%T{type: type, shape: out_shape} = out, l, lc, lb, r, rc, rb) do
      device = device_of([l, r])
      w = worker(device)
      a = ref(l, type, w)
      b = ref(r, type, w)
      ldims = Tuple.to_list(l.shape)
      rdims = Tuple.to_list(r.shape)
      lfree = Enum.to_list(0..(length(ldims) - 1)//1) -- (lc ++ lb)
      rfree = Enum.to_list(0..(length(rdims) - 1)//1) -- (rc ++ rb)
      size = fn dims, axes -> Enum.reduce(axes, 1, &(Enum.at(dims, &1) * &2)) end
      bsz = size.(ldims, lb)
      m = size.(ldims, lfree)
      k = size.(ldims, lc)
      n = size.(rdims, rfree)
      out_dims = Tuple.to_list(out_shape)

      res =
        cond do
          Nx.size(out_shape) == 0 ->
            N.broadcast_to(Core.scalar(0, type, w), out_dims, w)

          k == 0 ->
            N.broadcast_to(Core.scalar(0, type, w), out_dims, w)

          true ->
            # Without batch axes, a 2-D matmul: for the common [m, k] x [k, n] product every
            # reshape below keeps the shape, and MLX adds no node for it.
            {ashape, bshape} =
              if lb == [] and mlx_matmul?(type),
                do: {[m, k], [k, n]},
                else: {[bsz, m, k], [bsz, k, n]}

            a = permute(a, lb ++ lfree ++ lc, w) |> N.reshape(ashape, w)
            b = permute(b, rb ++ rc ++ rfree, w) |> N.reshape(bshape, w)
            c = matmul(a, b, type, w)
            N.reshape(c, out_dims, w)
        end

      res = fit(res, type, w)

      if @nan_inf_check do
        check_finite!(:dot, res, w)
      end

      wrap(res, out, device)
    end

    def permute(x, perm, w) do
      if perm == Enum.to_list(0..(length(perm) - 1)//1), do: x, else: N.transpose(x, perm, w)
    end

    # [b, m, k] x [b, k, n]. MLX's matmul takes floating-point and complex types: integer
    # products are a broadcast multiply and a sum, exact with integer wrap-around.
    defp mlx_matmul?(type) do
      (Core.float?(type) or Core.complex?(type)) and type != {:f, 8} and
        type != {:f8_e4m3fn, 8}
    end

    def matmul(a, b, type, w) do
      if mlx_matmul?(type) do
        N.matmul(a, b, w)
      else
        [bs, m, k] = N.shape(a)
        [_, _, n] = N.shape(b)
        prod = N.multiply(N.reshape(a, [bs, m, k, 1], w), N.reshape(b, [bs, 1, k, n], w), w)
        N.sum(prod, [2], false, w)
      end
    end

    @doc false
    def check_finite!(op, res, w) do
      dt = N.dtype(res)

      if dt in [:f16, :bf16, :f32, :f64, :c64] do
        bad = N.logical_not(N.isfinite(abs_if_complex(res, w), w), w)
        axes = Enum.to_list(0..(length(N.shape(res)) - 1)//1)
        bad = if axes == [], do: bad, else: N.any(bad, axes, false, w)

        if Emily.to_binary(bad) != <<0>> do
          raise ArgumentError, "#{op}: result holds NaN or Inf (Emily debug_detect_nan_inf)"
        end
      end

      :ok
    end

    defp abs_if_complex(x, w) do
      if N.dtype(x) == :c64,
        do: N.add(N.abs(N.real(x, w), w), N.abs(N.imag(x, w), w), w),
        else: x
    end

    ## triangular_solve

    def triangular_solve(%T{type: type} = out, a, b, opts) do
      if Core.complex?(type) do
        complex_triangular_solve(out, a, b, opts)
      else
        device = device_of([a, b])
        # (the triangular solve NIFs build on the worker's CPU stream)
        w = worker(device)
        ct = compute_type(type)
        am = ref(a, ct, w)
        bm = ref(b, ct, w)
        lower = Keyword.get(opts, :lower, true)
        left = Keyword.get(opts, :left_side, true)

        # :conjugate conjugates the elements (a no-op for real matrices); :transpose
        # solves with a's transpose.
        {am, lower} =
          case opts[:transform_a] do
            :transpose -> {swap_last(am, w), not lower}
            _ -> {am, lower}
          end

        check_nonsingular!(am, w)

        vector? = tuple_size(b.shape) == tuple_size(a.shape) - 1

        x =
          cond do
            left and vector? ->
              bcol = N.expand_dims(bm, [-1], w)
              N.squeeze(solve_tri(am, bcol, lower, w), [-1], w)

            left ->
              solve_tri(am, bm, lower, w)

            vector? ->
              # x a = b  <=>  a^T x^T = b^T
              bcol = N.expand_dims(bm, [-1], w)
              N.squeeze(solve_tri(swap_last(am, w), bcol, not lower, w), [-1], w)

            true ->
              xt = solve_tri(swap_last(am, w), swap_last(bm, w), not lower, w)
              swap_last(xt, w)
          end

        wrap(Core.cast(x, type, w), out, device)
      end
    end

    # MLX's linear algebra is real-only: a complex system A x = B is the real system
    # [[Ar, -Ai], [Ai, Ar]] [xr; xi] = [Br; Bi] (not triangular any more: LU solve).
    defp complex_triangular_solve(%T{type: type} = out, a, b, opts) do
      on_device([a, b], out, fn w ->
        am = ref(a, type, w)
        bm = ref(b, type, w)

        am =
          case opts[:transform_a] do
            :transpose -> swap_last(am, w)
            # Nx's :conjugate conjugates the elements (no transpose)
            :conjugate -> N.conjugate(am, w)
            _ -> am
          end

        check_nonsingular!(am, w)
        vector? = tuple_size(b.shape) == tuple_size(a.shape) - 1
        bm = if vector?, do: N.expand_dims(bm, [-1], w), else: bm

        # x a = b  <=>  a^T x^T = b^T
        {am, bm} =
          if Keyword.get(opts, :left_side, true),
            do: {am, bm},
            else: {swap_last(am, w), swap_last(bm, w)}

        n = List.last(N.shape(am))
        ar = N.real(am, w)
        ai = N.imag(am, w)
        top = N.concatenate([ar, N.negative(ai, w)], -1, w)
        bottom = N.concatenate([ai, ar], -1, w)
        m = N.concatenate([top, bottom], -2, w)
        rhs = N.concatenate([N.real(bm, w), N.imag(bm, w)], -2, w)
        y = N.solve(m, rhs, w)
        dims = N.shape(y)
        rank = length(dims)
        zeros = List.duplicate(0, rank)
        ones = List.duplicate(1, rank)
        xr = N.slice(y, zeros, List.replace_at(dims, rank - 2, n), ones, w)
        xi = N.slice(y, List.replace_at(zeros, rank - 2, n), dims, ones, w)
        i = Core.scalar(Complex.new(0.0, 1.0), {:c, 64}, w)
        x = N.add(N.astype(xr, :c64, w), N.multiply(N.astype(xi, :c64, w), i, w), w)

        x = if Keyword.get(opts, :left_side, true), do: x, else: swap_last(x, w)
        x = if vector?, do: N.squeeze(x, [-1], w), else: x
        x
      end)
    end

    # Nx.BinaryBackend raises for a zero on the diagonal; so do we (this evaluates `a`).
    defp check_nonsingular!(a, w) do
      dims = N.shape(a)
      m = List.last(dims)
      dt = N.dtype(a)
      diag = N.sum(N.multiply(a, N.eye(m, m, 0, dt, w), w), [length(dims) - 1], false, w)
      zero = N.equal(diag, Core.mx_scalar(0, dt, w), w)
      any = N.any(zero, Enum.to_list(0..(length(dims) - 2)), false, w)

      if Emily.to_binary(any) != <<0>> do
        raise ArgumentError, "can't solve for singular matrix"
      end

      :ok
    end

    # MLX's linear algebra runs in f32/f64 only.
    def compute_type({:f, 64}), do: {:f, 64}
    def compute_type(_), do: {:f, 32}

    def swap_last(x, w) do
      r = length(N.shape(x))
      perm = Enum.to_list(0..(r - 3)//1) ++ [r - 1, r - 2]
      N.transpose(x, perm, w)
    end

    defp solve_tri(a, b, lower, w), do: N.solve_triangular(a, b, not lower, w)
  end
end
