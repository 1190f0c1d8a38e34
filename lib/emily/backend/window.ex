if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Window do
    @moduledoc false
    # Window reductions: the padded input is viewed as [out dims..., window dims...] with
    # MLX's as_strided, laid out contiguously, and reduced over the window axes.

    alias Emily.Native, as: N

    alias Emily.Backend.{Core, MX, Shape}
    alias Nx.Tensor, as: T

    import Core, only: [on_device: 3, ref: 3, fit: 3]

    for {op, mlx, init} <- [
          {:window_sum, :sum, :zero},
          {:window_product, :prod, :one},
          {:window_max, :max, :min},
          {:window_min, :min, :max}
        ] do
      def unquote(op)(%T{type: type, shape: out_shape} = out, t, window, opts) do
        on_device([t], out, fn w ->
          x = ref(t, type, w)
          init = init_value(unquote(init), type, w)
          rank = tuple_size(window)
          padding = opts[:padding] || List.duplicate({0, 0}, rank)
          strides = opts[:strides] || List.duplicate(1, rank)
          dilations = opts[:window_dilations] || List.duplicate(1, rank)
          out_dims = Tuple.to_list(out_shape)

          r =
            if Nx.size(out_shape) == 0 or Nx.size(window) == 0 do
              N.broadcast_to(init, out_dims, w)
            else
              padded = Shape.pad(x, init, Enum.map(padding, fn {lo, hi} -> {lo, hi, 0} end), w)
              view = windows(padded, Tuple.to_list(window), strides, dilations, out_dims, w)
              N.unquote(mlx)(view, Enum.to_list(rank..(2 * rank - 1)), false, w)
            end

          fit(r, type, w)
        end)
      end
    end

    defp init_value(:zero, type, w), do: Core.scalar(0, type, w)
    defp init_value(:one, type, w), do: Core.scalar(1, type, w)
    defp init_value(:min, type, w), do: Core.upload(type, {}, Nx.Type.min_binary(type), w)
    defp init_value(:max, type, w), do: Core.upload(type, {}, Nx.Type.max_binary(type), w)

    @doc """
    A view of `padded` (an MLX array) as `out_dims ++ window`: element
    `[o..., k...]` is `padded[o * stride + k * dilation]`.
    """
    def windows(padded, window, strides, dilations, out_dims, w) do
      pdims = N.shape(padded)
      st = Core.strides(pdims)
      outer = Enum.zip_with(strides, st, &(&1 * &2))
      inner = Enum.zip_with(dilations, st, &(&1 * &2))
      view = N.as_strided(MX.contiguous(padded, w), out_dims ++ window, outer ++ inner, 0, w)
      # MLX's reductions misread views whose strides overlap (measured: max over the
      # window axes of such a view shifts rows), so the windows are laid out first.
      MX.contiguous(view, w)
    end

    @doc """
    window_scatter_max/min: for each window of the (padded) input, the position of its
    maximum (minimum; ties go to the last position as in Nx.BinaryBackend) receives the
    matching `source` element; sums land on `init_value`.
    """
    def scatter(
          %T{type: type, shape: out_shape} = out,
          %T{type: ttype, shape: tshape} = t,
          source,
          init,
          window,
          opts,
          kind
        ) do
      on_device([t, source, init], out, fn w ->
        rank = tuple_size(window)
        padding = opts[:padding] || List.duplicate({0, 0}, rank)
        strides = opts[:strides] || List.duplicate(1, rank)
        win = Tuple.to_list(window)
        k = Enum.product(win)

        x = ref(t, ttype, w)
        init_t = ref(init, ttype, w)
        padded = Shape.pad(x, init_t, Enum.map(padding, fn {lo, hi} -> {lo, hi, 0} end), w)
        pdims = N.shape(padded)

        odims =
          Enum.zip_with([pdims, win, strides], fn [p, wd, s] ->
            if p >= wd, do: div(p - wd, s) + 1, else: 0
          end)

        src = ref(source, type, w)
        init_o = ref(init, type, w)

        r =
          if Enum.product(odims) == 0 or k == 0 do
            N.broadcast_to(init_o, Tuple.to_list(out_shape), w)
          else
            view = windows(padded, win, strides, List.duplicate(1, rank), odims, w)
            flat = N.reshape(view, odims ++ [k], w)
            last = length(odims)
            fun = if kind == :max, do: &N.argmax/4, else: &N.argmin/4
            a = fun.(MX.flip(flat, last, w), last, false, w)
            a = N.astype(a, :s64, w)
            sel = N.subtract(Core.scalar(k - 1, {:s, 64}, w), a, w)

            # linear index into the padded array of each selected element
            pst = Core.strides(pdims)
            wst = Core.strides(win)

            lin =
              Enum.reduce(0..(rank - 1), Core.scalar(0, {:s, 64}, w), fn i, acc ->
                o = Shape.iota({:s, 64}, List.to_tuple(odims), i, w)
                off = N.floor_divide(sel, Core.scalar(Enum.at(wst, i), {:s, 64}, w), w)
                off = N.remainder(off, Core.scalar(Enum.at(win, i), {:s, 64}, w), w)

                pos =
                  N.add(N.multiply(o, Core.scalar(Enum.at(strides, i), {:s, 64}, w), w), off, w)

                N.add(acc, N.multiply(pos, Core.scalar(Enum.at(pst, i), {:s, 64}, w), w), w)
              end)

            n = Enum.product(odims)
            total = Enum.product(pdims)
            zeros = N.broadcast_to(Core.scalar(0, type, w), [total], w)
            zeros = MX.contiguous(zeros, w)
            upd = N.reshape(src, [n, 1], w)
            scat = N.scatter_add(zeros, [N.reshape(lin, [n], w)], upd, [0], w)
            scat = N.reshape(scat, pdims, w)
            starts = Enum.map(padding, fn {lo, _} -> lo end)
            stops = Enum.zip_with(starts, Tuple.to_list(tshape), &(&1 + &2))
            inner = N.slice(scat, starts, stops, List.duplicate(1, rank), w)
            N.add(inner, init_o, w)
          end

        fit(r, type, w)
      end)
    end
  end
end
