if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Block do
    @moduledoc false
    # Native implementations of Nx.Block structs (Nx.block/4). Structs without one, and
    # cases MLX cannot run (complex linear algebra, QR :complete with more rows than
    # columns), run the block's default function, which is itself made of Nx ops on
    # Emily.Backend.

    alias Emily.Native, as: N

    alias Emily.Backend.{Core, MX, Reduce, Elementwise, Index, LinAlg, FFT}
    alias Nx.Tensor, as: T

    import Core, only: [wrap: 3, ref: 2, ref: 3, device_of: 1, worker: 1, fit: 3]

    alias Nx.Block.LinAlg, as: L

    def run(struct, output, args, fun) do
      case native(struct, output, args) do
        :default -> apply(fun, [struct | args])
        result -> result
      end
    end

    defp native(%Nx.Block.LogicalNot{}, %T{} = out, [t]) do
      {device, w} = dw([t])
      x = ref(t, w)
      r = N.equal(x, Core.mx_scalar(0, N.dtype(x), w), w)
      wrap(Core.from_bool(r, w), out, device)
    end

    defp native(%Nx.Block.Phase{}, %T{type: type} = out, [t]) do
      {device, w} = dw([t])

      r =
        if Core.complex?(t.type) do
          x = ref(t, w)
          N.arctan2(N.imag(x, w), N.real(x, w), w)
        else
          x = ref(t, type, w)
          N.arctan2(Core.scalar(0, type, w), x, w)
        end

      wrap(fit(Core.cast(r, type, w), type, w), out, device)
    end

    for {mod, mlx} <- [
          {Nx.Block.CumulativeSum, :cumsum},
          {Nx.Block.CumulativeProduct, :cumprod},
          {Nx.Block.CumulativeMin, :cummin},
          {Nx.Block.CumulativeMax, :cummax}
        ] do
      defp native(%unquote(mod){axis: axis, reverse: reverse}, %T{type: type} = out, [t]) do
        {device, w} = dw([t])
        x = ref(t, type, w)

        r =
          cond do
            t.shape == {} ->
              x

            unquote(mlx) in [:cummax, :cummin] and Core.float?(type) ->
              nan_propagating_cumulative(unquote(mlx), x, type, axis, reverse, w)

            true ->
              N.unquote(mlx)(x, axis, reverse, true, w)
          end

        wrap(fit(r, type, w), out, device)
      end
    end

    defp native(%Nx.Block.Take{axis: axis}, %T{} = out, [t, idx]) do
      {device, w} = dw([t, idx])
      r = Index.take(ref(t, w), t.shape, ref(idx, w), idx.shape, axis, w)
      wrap(r, out, device)
    end

    defp native(%Nx.Block.TakeAlongAxis{axis: axis}, %T{} = out, [t, idx]) do
      {device, w} = dw([t, idx])

      if Nx.size(out) == 0 do
        wrap(
          N.broadcast_to(Core.scalar(0, out.type, w), Tuple.to_list(out.shape), w),
          out,
          device
        )
      else
        wrap(Index.take_along_axis(ref(t, w), t.shape, ref(idx, w), axis, w), out, device)
      end
    end

    defp native(%Nx.Block.TopK{k: k}, {%T{} = vout, %T{} = iout}, [t]) do
      if t.shape == {} or Nx.size(t) == 0 do
        :default
      else
        {device, w} = dw([t])
        {vals, idx} = Reduce.top_k(ref(t, w), t.type, k, w)
        {wrap(vals, vout, device), wrap(Core.cast(idx, iout.type, w), iout, device)}
      end
    end

    defp native(%Nx.Block.AllClose{} = o, %T{} = out, [a, b]) do
      {device, w} = dw([a, b])
      wrap(all_close(a, b, o, w), out, device)
    end

    defp native(%Nx.Block.FFT2{eps: eps, lengths: lengths, axes: axes}, %T{type: type} = out, [t]) do
      {device, w} = dw([t])
      r = MX.fftn(ref(t, type, w), lengths, axes, w)
      wrap(FFT.apply_eps(r, eps, w), out, device)
    end

    defp native(%Nx.Block.IFFT2{eps: eps, lengths: lengths, axes: axes}, %T{type: type} = out, [t]) do
      {device, w} = dw([t])
      r = MX.ifftn(ref(t, type, w), lengths, axes, w)
      wrap(FFT.apply_eps(r, eps, w), out, device)
    end

    defp native(%Nx.Block.RFFT{eps: eps, length: n, axis: axis}, %T{type: type} = out, [t]) do
      if Core.complex?(t.type) do
        :default
      else
        {device, w} = dw([t])
        r = MX.rfft(ref(t, Core.real_type(type), w), n, axis, w)
        wrap(FFT.apply_eps(r, eps, w), out, device)
      end
    end

    defp native(%Nx.Block.IRFFT{eps: eps, length: n, axis: axis}, %T{type: type} = out, [t]) do
      {device, w} = dw([t])
      r = MX.irfft(ref(t, {:c, 64}, w), n, axis, w)
      r = FFT.apply_eps(r, eps, w)
      wrap(Core.cast(r, type, w), out, device)
    end

    ## Linear algebra (MLX runs it on the CPU, in f32 or f64)

    defp native(%L.Cholesky{}, %T{type: type} = out, [t]) do
      with_real([t], type, fn w, ct ->
        l = N.cholesky(ref(t, ct, w), false, w)
        wrap(Core.cast(l, type, w), out, device_of([t]))
      end)
    end

    defp native(%L.QR{}, {%T{type: type} = qo, %T{} = ro}, [t]) do
      with_real([t], type, fn w, ct ->
        [q, r] = N.qr(ref(t, ct, w), w)
        {q, r} = {plus_zero(q, w), plus_zero(r, w)}

        if N.shape(q) == Tuple.to_list(qo.shape) and N.shape(r) == Tuple.to_list(ro.shape) do
          d = device_of([t])
          {wrap(Core.cast(q, type, w), qo, d), wrap(Core.cast(r, ro.type, w), ro, d)}
        else
          :default
        end
      end)
    end

    defp native(%L.Eigh{}, {%T{type: type} = vo, %T{} = eo}, [t]) do
      with_real([t], type, fn w, ct ->
        [vals, vecs] = MX.eigh(ref(t, ct, w), w)
        # Nx orders eigenvalues from the largest down; MLX from the smallest up.
        rank = tuple_size(t.shape)
        vals = MX.flip(vals, rank - 2, w)
        vecs = MX.flip(vecs, rank - 1, w)
        vecs = normalize_columns(vecs, w) |> plus_zero(w)
        d = device_of([t])
        {wrap(Core.cast(vals, type, w), vo, d), wrap(Core.cast(vecs, eo.type, w), eo, d)}
      end)
    end

    defp native(%L.SVD{full_matrices?: full?}, {%T{type: type} = uo, %T{} = so, %T{} = vo}, [t]) do
      with_real([t], type, fn w, ct ->
        [u, s, vt] = MX.svd(ref(t, ct, w), w)
        dims = Tuple.to_list(t.shape)
        rank = length(dims)
        [m, n] = Enum.take(dims, -2)
        k = min(m, n)

        {u, vt} =
          if full? do
            {u, vt}
          else
            ones = List.duplicate(1, rank)
            zeros = List.duplicate(0, rank)

            {N.slice(u, zeros, List.replace_at(N.shape(u), rank - 1, k), ones, w),
             N.slice(vt, zeros, List.replace_at(N.shape(vt), rank - 2, k), ones, w)}
          end

        if N.shape(u) == Tuple.to_list(uo.shape) and N.shape(vt) == Tuple.to_list(vo.shape) do
          d = device_of([t])

          {wrap(Core.cast(plus_zero(u, w), type, w), uo, d),
           wrap(Core.cast(s, so.type, w), so, d),
           wrap(Core.cast(plus_zero(vt, w), vo.type, w), vo, d)}
        else
          :default
        end
      end)
    end

    defp native(%L.LU{}, {%T{type: ptype} = po, %T{type: type} = lo, %T{} = uo}, [t]) do
      with_real([t], type, fn w, ct ->
        [piv, l, u] = N.lu(ref(t, ct, w), w)
        # A = L[piv] U, so P is the identity's rows gathered by piv: P[i, piv[i]] = 1.
        m = List.last(N.shape(l))
        rows = N.arange(0.0, m * 1.0, 1.0, :s64, w)
        p = N.equal(N.expand_dims(N.astype(piv, :s64, w), [-1], w), rows, w)
        d = device_of([t])

        {wrap(Core.convert(N.astype(p, :u8, w), {:u, 8}, ptype, w), po, d),
         wrap(Core.cast(l, type, w), lo, d), wrap(Core.cast(u, uo.type, w), uo, d)}
      end)
    end

    defp native(%L.Solve{}, %T{type: type} = out, [a, b]) do
      with_real([a, b], type, fn w, ct ->
        am = ref(a, ct, w)
        bm = ref(b, ct, w)

        x =
          if tuple_size(b.shape) == tuple_size(a.shape) - 1 do
            N.squeeze(N.solve(am, N.expand_dims(bm, [-1], w), w), [-1], w)
          else
            N.solve(am, bm, w)
          end

        wrap(Core.cast(x, type, w), out, device_of([a, b]))
      end)
    end

    # 2x2 and 3x3 use Nx's closed formulas (its default function, on MLX).
    defp native(%L.Determinant{}, %T{type: type} = out, [%T{shape: shape} = t]) do
      n = elem(shape, tuple_size(shape) - 1)

      if n <= 3 do
        :default
      else
        with_real([t], type, fn w, ct ->
          det = plus_zero(determinant(ref(t, ct, w), w), w)
          wrap(Core.cast(det, type, w), out, device_of([t]))
        end)
      end
    end

    # Emily.Quantized: MLX's quantized matmul and dequantize, in the result's float type.
    defp native(%Emily.Quantized.Matmul{} = q, %T{type: type} = out, [x, wq, scales, biases])
         when type != {:f, 64} do
      {device, w} = dw([x, wq, scales, biases])

      r =
        N.quantized_matmul(
          ref(x, type, w),
          ref(wq, w),
          ref(scales, type, w),
          [ref(biases, type, w)],
          true,
          q.group_size,
          q.bits,
          :affine,
          w
        )

      wrap(r, out, device)
    end

    defp native(%Emily.Quantized.Dequantize{} = q, %T{type: type} = out, [wq, scales, biases])
         when type != {:f, 64} do
      {device, w} = dw([wq, scales, biases])

      r =
        N.dequantize(
          ref(wq, w),
          ref(scales, type, w),
          [ref(biases, type, w)],
          q.group_size,
          q.bits,
          :affine,
          w
        )

      wrap(r, out, device)
    end

    defp native(_struct, _output, _args), do: :default

    # Nx's cumulative max/min propagate NaN from where it appears on (MLX's cummax and
    # cummin do not): run them with NaN as the identity extreme, then put NaN back from
    # the first NaN on.
    defp nan_propagating_cumulative(op, x, type, axis, reverse, w) do
      nan = N.isnan(x, w)
      fill = if op == :cummax, do: :neg_infinity, else: :infinity
      clean = MX.where(nan, Core.scalar(fill, type, w), x, w)
      r = apply(N, op, [clean, axis, reverse, true, w])
      seen = N.cummax(N.astype(nan, :u8, w), axis, reverse, true, w)
      MX.where(Core.to_bool(seen, w), Core.scalar(:nan, type, w), r, w)
    end

    # {device, worker} of the inputs
    defp dw(tensors) do
      device = device_of(tensors)
      {device, worker(device)}
    end

    # Runs `fun.(worker, compute_type)` for real inputs; complex inputs or outputs take the
    # default path. The factorizations run on the CPU, but through the device's own worker
    # (its linalg NIFs build on the worker's CPU stream): a graph, or a compiled program,
    # then never mixes nodes of two workers.
    defp with_real(tensors, type, fun) do
      if Core.complex?(type) or Enum.any?(tensors, &Core.complex?(&1.type)) do
        :default
      else
        fun.(worker(device_of(tensors)), LinAlg.compute_type(type))
      end
    end

    # x + 0.0 turns -0.0 into 0.0 (LAPACK leaves signed zeros that print as "-0.0").
    defp plus_zero(x, w), do: N.add(x, Core.mx_scalar(0, N.dtype(x), w), w)

    # Flips each column so its largest-magnitude entry is positive (a deterministic sign
    # convention for eigenvectors).
    defp normalize_columns(v, w) do
      rank = length(N.shape(v))
      absv = N.abs(v, w)
      idx = N.argmax(absv, rank - 2, true, w)
      pick = N.take_along_axis(v, idx, rank - 2, w)
      dt = N.dtype(v)

      sign =
        MX.where(
          N.less(pick, Core.mx_scalar(0, dt, w), w),
          Core.mx_scalar(-1, dt, w),
          Core.mx_scalar(1, dt, w),
          w
        )

      N.multiply(v, sign, w)
    end

    # det = prod(diag(U)) * sign of the permutation (parity of its inversions).
    defp determinant(a, w) do
      [piv, _l, u] = N.lu(a, w)
      dims = N.shape(u)
      rank = length(dims)
      m = List.last(dims)
      dt = N.dtype(u)
      eye = N.eye(m, m, 0, dt, w)
      diag = N.sum(N.multiply(u, eye, w), [rank - 1], false, w)
      prod = N.prod(diag, [rank - 2], false, w)
      p = N.astype(piv, :s64, w)
      gt = N.greater(N.expand_dims(p, [-1], w), N.expand_dims(p, [-2], w), w)
      i = N.expand_dims(rows(m, w), [-1], w)
      j = N.expand_dims(rows(m, w), [0], w)
      # pairs i < j with p[i] > p[j]
      inv = N.logical_and(gt, N.less(i, j, w), w)
      count = N.sum(N.astype(inv, :s64, w), [rank - 2, rank - 1], false, w)

      odd =
        N.equal(
          N.remainder(count, Core.mx_scalar(2, :s64, w), w),
          Core.mx_scalar(1, :s64, w),
          w
        )

      sign = MX.where(odd, Core.mx_scalar(-1, dt, w), Core.mx_scalar(1, dt, w), w)
      N.multiply(prod, sign, w)
    end

    defp rows(m, w), do: N.arange(0.0, m * 1.0, 1.0, :s64, w)

    # Nx.all_close's formula (see Nx's default implementation).
    defp all_close(a, b, %Nx.Block.AllClose{equal_nan: equal_nan, rtol: rtol, atol: atol}, w) do
      merged = Nx.Type.merge(a.type, b.type)
      ints? = Core.int?(a.type) and Core.int?(b.type)
      x = ref(a, merged, w)
      y = ref(b, merged, w)
      ft = if ints?, do: {:f, 64}, else: Nx.Type.to_floating(merged) |> Core.real_type()
      ft = if Core.complex?(merged), do: Core.real_type(merged), else: ft
      d = N.abs(N.subtract(x, y, w), w)
      d = Core.cast(d, ft, w)
      absb = Core.cast(N.abs(y, w), ft, w)
      absb = if ints?, do: N.abs(ref(b, {:f, 64}, w), w), else: absb
      tol = N.add(Core.scalar(atol, ft, w), N.multiply(Core.scalar(rtol, ft, w), absb, w), w)
      finite = N.less_equal(d, tol, w)

      entries =
        if ints? do
          finite
        else
          inf_a = Elementwise.complex_test(x, merged, &N.isinf/2, w)
          inf_b = Elementwise.complex_test(y, merged, &N.isinf/2, w)
          e = MX.where(N.logical_or(inf_a, inf_b, w), N.equal(x, y, w), finite, w)

          if equal_nan do
            nan_a = Elementwise.complex_test(x, merged, &N.isnan/2, w)
            nan_b = Elementwise.complex_test(y, merged, &N.isnan/2, w)
            N.logical_or(N.logical_and(nan_a, nan_b, w), e, w)
          else
            e
          end
        end

      axes = Enum.to_list(0..(length(N.shape(entries)) - 1)//1)
      all = if axes == [], do: entries, else: N.all(entries, axes, false, w)
      Core.from_bool(all, w)
    end
  end
end
