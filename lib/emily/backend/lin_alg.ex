if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.LinAlg do
    @moduledoc false
    # dot, conv, triangular_solve, FFTs and the linear-algebra blocks.
    #
    # `config :emily, debug_detect_nan_inf: true` (compile time) makes dot raise
    # ArgumentError when its result holds NaN or Inf; not compiled in by default.

    alias Emily.Backend.{Core, MX, Shape}
    alias Nx.Tensor, as: T

    import Core, only: [wrap: 3, ref: 3, device_of: 1, worker: 1, fit: 3]

    @nan_inf_check Application.compile_env(:emily, :debug_detect_nan_inf, false)

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
            MX.broadcast_to(Core.scalar(0, type, w), out_dims, w)

          k == 0 ->
            MX.broadcast_to(Core.scalar(0, type, w), out_dims, w)

          true ->
            # Without batch axes, a 2-D matmul: for the common [m, k] x [k, n] product every
            # reshape below keeps the shape, and MLX adds no node for it.
            {ashape, bshape} =
              if lb == [] and mlx_matmul?(type),
                do: {[m, k], [k, n]},
                else: {[bsz, m, k], [bsz, k, n]}

            a = permute(a, lb ++ lfree ++ lc, w) |> MX.reshape(ashape, w)
            b = permute(b, rb ++ rc ++ rfree, w) |> MX.reshape(bshape, w)
            c = matmul(a, b, type, w)
            MX.reshape(c, out_dims, w)
        end

      res = fit(res, type, w)

      if @nan_inf_check do
        check_finite!(:dot, res, w)
      end

      wrap(res, out, device)
    end

    defp permute(x, perm, w) do
      if perm == Enum.to_list(0..(length(perm) - 1)//1), do: x, else: MX.transpose(x, perm, w)
    end

    # [b, m, k] x [b, k, n]. MLX's matmul takes floating-point and complex types: integer
    # products are a broadcast multiply and a sum, exact with integer wrap-around.
    defp mlx_matmul?(type) do
      (Core.float?(type) or Core.complex?(type)) and type != {:f, 8} and
        type != {:f8_e4m3fn, 8}
    end

    defp matmul(a, b, type, w) do
      if mlx_matmul?(type) do
        MX.matmul(a, b, w)
      else
        [bs, m, k] = MX.shape(a)
        [_, _, n] = MX.shape(b)
        prod = MX.multiply(MX.reshape(a, [bs, m, k, 1], w), MX.reshape(b, [bs, 1, k, n], w), w)
        MX.sum(prod, [2], false, w)
      end
    end

    @doc false
    def check_finite!(op, res, w) do
      dt = MX.dtype(res)

      if dt in [:f16, :bf16, :f32, :f64, :c64] do
        bad = MX.logical_not(MX.isfinite(abs_if_complex(res, w), w), w)
        axes = Enum.to_list(0..(length(MX.shape(res)) - 1)//1)
        bad = if axes == [], do: bad, else: MX.any(bad, axes, false, w)

        if Emily.to_binary(bad) != <<0>> do
          raise ArgumentError, "#{op}: result holds NaN or Inf (Emily debug_detect_nan_inf)"
        end
      end

      :ok
    end

    defp abs_if_complex(x, w) do
      if MX.dtype(x) == :c64,
        do: MX.add(MX.abs(MX.real(x, w), w), MX.abs(MX.imag(x, w), w), w),
        else: x
    end

    ## conv

    @doc """
    Nx conv. f32/f16/bf16 with 1 to 3 spatial axes run on MLX's convolution (grouped
    ones with 1 or 2); other types (f64, c64), grouped 3-D and more spatial axes run as
    windows (as_strided) times the kernel (matmul), on MLX as well.
    """
    def conv(%T{type: type} = out, %T{shape: shape} = t, k, opts) do
      device = device_of([t, k])
      w = worker(device)
      rank = tuple_size(shape)
      x = permute(ref(t, type, w), opts[:input_permutation] || Enum.to_list(0..(rank - 1)), w)
      kk = permute(ref(k, type, w), opts[:kernel_permutation] || Enum.to_list(0..(rank - 1)), w)
      fg = opts[:feature_group_size] || 1
      bg = opts[:batch_group_size] || 1

      # Batch groups become feature groups: [bg * n, c, ...] -> [n, bg * c, ...]
      {x, groups} =
        if bg > 1 do
          [nb, c | sp] = MX.shape(x)
          x = MX.reshape(x, [bg, div(nb, bg), c | sp], w)
          x = MX.transpose(x, [1, 0 | Enum.to_list(2..rank)], w)
          {MX.reshape(x, [div(nb, bg), bg * c | sp], w), bg}
        else
          {x, fg}
        end

      conv_opts = {opts[:strides], opts[:padding], opts[:input_dilation], opts[:kernel_dilation]}

      # (MLX's convolution takes groups in 1-D and 2-D only)
      y =
        if type in [{:f, 32}, {:f, 16}, {:bf, 16}] and (rank - 2) in 1..3 and
             (groups == 1 or rank - 2 <= 2) do
          mlx_conv(x, kk, conv_opts, groups, type, w)
        else
          im2col_conv(x, kk, conv_opts, groups, type, w)
        end

      # y is [n, out channels, spatial...]; Nx applies the output permutation to it.
      perm = opts[:output_permutation] || Enum.to_list(0..(rank - 1))
      y = permute(y, Core.invert_permutation(perm), w)
      wrap(fit(y, type, w), out, device)
    end

    # MLX's convolution is channels-last.
    defp mlx_conv(x, kk, {strides, padding, idil, kdil}, groups, type, w) do
      rank = length(MX.shape(x))
      last = Enum.to_list(2..(rank - 1)//1)
      x = MX.transpose(x, [0 | last] ++ [1], w)
      kk = MX.transpose(kk, [0 | last] ++ [1], w)

      {x, lo, hi, idil} =
        if Enum.any?(padding, fn {l, h} -> l < 0 or h < 0 end) do
          zero = Core.scalar(0, type, w)

          config =
            [{0, 0, 0}] ++
              Enum.zip_with(padding, idil, fn {l, h}, d -> {l, h, d - 1} end) ++ [{0, 0, 0}]

          zeros = List.duplicate(0, rank - 2)
          {Shape.pad(x, zero, config, w), zeros, zeros, List.duplicate(1, rank - 2)}
        else
          {x, Enum.map(padding, &elem(&1, 0)), Enum.map(padding, &elem(&1, 1)), idil}
        end

      y = MX.conv_general(x, kk, strides, lo, hi, kdil, idil, groups, false, w)
      MX.transpose(y, [0, rank - 1 | Enum.to_list(1..(rank - 2)//1)], w)
    end

    # x [n, c, s...], kk [o, c / groups, k...]: the (dilated, padded) input's windows,
    # [groups, n * prod(out), c / groups * prod(k)], times the kernel,
    # [groups, c / groups * prod(k), o / groups].
    defp im2col_conv(x, kk, {strides, padding, idil, kdil}, groups, type, w) do
      [n, c | _] = MX.shape(x)
      [o, cg | ks] = MX.shape(kk)
      sp = length(ks)
      zero = Core.scalar(0, type, w)

      config =
        [{0, 0, 0}, {0, 0, 0}] ++ Enum.zip_with(padding, idil, fn {l, h}, d -> {l, h, d - 1} end)

      xp = Shape.pad(x, zero, config, w)
      [_, _ | ps] = MX.shape(xp)

      outs =
        Enum.zip_with([ps, ks, kdil, strides], fn [p, kd, d, s] ->
          eff = (kd - 1) * d + 1
          if p >= eff, do: div(p - eff, s) + 1, else: 0
        end)

      [sn, sc | st] = Core.strides(MX.shape(xp))
      outer = Enum.zip_with(strides, st, &(&1 * &2))
      inner = Enum.zip_with(kdil, st, &(&1 * &2))

      view =
        MX.as_strided(
          MX.contiguous(xp, w),
          [n, c] ++ outs ++ ks,
          [sn, sc] ++ outer ++ inner,
          0,
          w
        )

      view = MX.contiguous(view, w)

      pout = Enum.product(outs)
      pk = Enum.product(ks)
      og = div(o, groups)

      # [n, g, cg, outs..., ks...] -> [g, n, outs..., cg, ks...]
      view = MX.reshape(view, [n, groups, cg] ++ outs ++ ks, w)
      o_axes = Enum.to_list(3..(2 + sp)//1)
      k_axes = Enum.to_list((3 + sp)..(2 + 2 * sp)//1)
      view = MX.transpose(view, [1, 0] ++ o_axes ++ [2] ++ k_axes, w)
      cols = MX.reshape(view, [groups, n * pout, cg * pk], w)

      kmat = MX.reshape(kk, [groups, og, cg * pk], w)
      kmat = MX.transpose(kmat, [0, 2, 1], w)

      y = matmul(cols, kmat, type, w)
      # [g, n * pout, og] -> [n, g, og, outs...]
      y = MX.reshape(y, [groups, n] ++ outs ++ [og], w)
      y = MX.transpose(y, [1, 0, 2 + sp] ++ Enum.to_list(2..(1 + sp)//1), w)
      MX.reshape(y, [n, o] ++ outs, w)
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
              bcol = MX.expand_dims(bm, [-1], w)
              MX.squeeze(solve_tri(am, bcol, lower, w), [-1], w)

            left ->
              solve_tri(am, bm, lower, w)

            vector? ->
              # x a = b  <=>  a^T x^T = b^T
              bcol = MX.expand_dims(bm, [-1], w)
              MX.squeeze(solve_tri(swap_last(am, w), bcol, not lower, w), [-1], w)

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
      device = device_of([a, b])
      w = worker(device)
      am = ref(a, type, w)
      bm = ref(b, type, w)

      am =
        case opts[:transform_a] do
          :transpose -> swap_last(am, w)
          # Nx's :conjugate conjugates the elements (no transpose)
          :conjugate -> MX.conjugate(am, w)
          _ -> am
        end

      check_nonsingular!(am, w)
      vector? = tuple_size(b.shape) == tuple_size(a.shape) - 1
      bm = if vector?, do: MX.expand_dims(bm, [-1], w), else: bm

      # x a = b  <=>  a^T x^T = b^T
      {am, bm} =
        if Keyword.get(opts, :left_side, true),
          do: {am, bm},
          else: {swap_last(am, w), swap_last(bm, w)}

      n = List.last(MX.shape(am))
      ar = MX.real(am, w)
      ai = MX.imag(am, w)
      top = MX.concatenate([ar, MX.negative(ai, w)], -1, w)
      bottom = MX.concatenate([ai, ar], -1, w)
      m = MX.concatenate([top, bottom], -2, w)
      rhs = MX.concatenate([MX.real(bm, w), MX.imag(bm, w)], -2, w)
      y = MX.solve(m, rhs, w)
      dims = MX.shape(y)
      rank = length(dims)
      zeros = List.duplicate(0, rank)
      ones = List.duplicate(1, rank)
      xr = MX.slice(y, zeros, List.replace_at(dims, rank - 2, n), ones, w)
      xi = MX.slice(y, List.replace_at(zeros, rank - 2, n), dims, ones, w)
      i = Core.scalar(Complex.new(0.0, 1.0), {:c, 64}, w)
      x = MX.add(MX.astype(xr, :c64, w), MX.multiply(MX.astype(xi, :c64, w), i, w), w)

      x = if Keyword.get(opts, :left_side, true), do: x, else: swap_last(x, w)
      x = if vector?, do: MX.squeeze(x, [-1], w), else: x
      wrap(x, out, device)
    end

    # Nx.BinaryBackend raises for a zero on the diagonal; so do we (this evaluates `a`).
    defp check_nonsingular!(a, w) do
      dims = MX.shape(a)
      m = List.last(dims)
      dt = MX.dtype(a)
      diag = MX.sum(MX.multiply(a, MX.eye(m, m, 0, dt, w), w), [length(dims) - 1], false, w)
      zero = MX.equal(diag, Core.mx_scalar(0, dt, w), w)
      any = MX.any(zero, Enum.to_list(0..(length(dims) - 2)), false, w)

      if Emily.to_binary(any) != <<0>> do
        raise ArgumentError, "can't solve for singular matrix"
      end

      :ok
    end

    # MLX's linear algebra runs in f32/f64 only.
    def compute_type({:f, 64}), do: {:f, 64}
    def compute_type(_), do: {:f, 32}

    def swap_last(x, w) do
      r = length(MX.shape(x))
      perm = Enum.to_list(0..(r - 3)//1) ++ [r - 1, r - 2]
      MX.transpose(x, perm, w)
    end

    defp solve_tri(a, b, lower, w), do: MX.solve_triangular(a, b, not lower, w)

    ## FFT

    def fft(%T{type: type} = out, t, opts, kind) do
      device = device_of([t])
      w = worker(device)
      x = ref(t, type, w)
      n = opts[:length]
      axis = opts[:axis]
      r = if kind == :fft, do: MX.fft(x, n, axis, w), else: MX.ifft(x, n, axis, w)
      wrap(apply_eps(r, opts[:eps], w), out, device)
    end

    @doc "Zeroes the real and imaginary parts whose magnitude is at most `eps` (Nx's fft)."
    def apply_eps(r, nil, _w), do: r

    def apply_eps(r, eps, w) do
      case MX.dtype(r) do
        :c64 ->
          re = zero_small(MX.real(r, w), eps, w)
          im = zero_small(MX.imag(r, w), eps, w)
          i = Core.scalar(Complex.new(0.0, 1.0), {:c, 64}, w)
          MX.add(MX.astype(re, :c64, w), MX.multiply(MX.astype(im, :c64, w), i, w), w)

        _ ->
          zero_small(r, eps, w)
      end
    end

    defp zero_small(x, eps, w) do
      dt = MX.dtype(x)
      small = MX.less_equal(MX.abs(x, w), Core.mx_scalar(eps, dt, w), w)
      MX.where(small, Core.mx_scalar(0, dt, w), x, w)
    end
  end
end
