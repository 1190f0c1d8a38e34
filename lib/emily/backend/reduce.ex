if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Reduce do
    @moduledoc false
    # Reductions, arg-reductions, sorting and top-k with Nx's semantics.

    alias Emily.Native, as: N

    alias Emily.Backend.{Core, MX}
    alias Nx.Tensor, as: T

    import Core, only: [on_device: 3, ref: 2, ref: 3, fit: 3]

    ## Aggregates

    for {op, mlx} <- [sum: :sum, product: :prod, reduce_max: :max, reduce_min: :min] do
      def unquote(op)(%T{type: type} = out, %T{shape: shape} = t, opts) do
        on_device([t], out, fn w ->
          x = ref(t, type, w)
          axes = opts[:axes] || Enum.to_list(0..(tuple_size(shape) - 1)//1)
          keep = opts[:keep_axes] || false
          r = if axes == [], do: x, else: N.unquote(mlx)(x, axes, keep, w)
          fit(r, type, w)
        end)
      end
    end

    for {op, mlx} <- [all: :all, any: :any] do
      def unquote(op)(out, %T{shape: shape} = t, opts) do
        on_device([t], out, fn w ->
          x = Core.to_bool(ref(t, w), w)
          axes = opts[:axes] || Enum.to_list(0..(tuple_size(shape) - 1)//1)
          keep = opts[:keep_axes] || false
          r = if axes == [], do: x, else: N.unquote(mlx)(x, axes, keep, w)
          Core.from_bool(r, w)
        end)
      end
    end

    @doc """
    argmax/argmin with Nx's rules: ties go to the lowest (`tie_break: :low`) or highest
    index; a NaN counts as the extreme and the last NaN wins.
    """
    def arg_extreme(%T{type: out_type} = out, %T{type: type, shape: shape} = t, opts, kind) do
      on_device([t], out, fn w ->
        x = ref(t, w)

        {x, axis} =
          case opts[:axis] do
            nil -> {N.reshape(x, [Nx.size(shape)], w), 0}
            axis -> {x, axis}
          end

        n = Enum.at(N.shape(x), axis)
        high? = opts[:tie_break] == :high
        fun = if kind == :max, do: &N.argmax/4, else: &N.argmin/4

        idx =
          if high? do
            rev = fun.(MX.flip(x, axis, w), axis, false, w)
            N.subtract(Core.mx_scalar(n - 1, N.dtype(rev), w), rev, w)
          else
            fun.(x, axis, false, w)
          end

        idx = N.astype(idx, :s64, w)

        idx =
          if Core.float?(type) do
            nan = N.astype(N.isnan(x, w), :u8, w)
            has = N.any(N.astype(nan, :bool, w), [axis], false, w)
            last = N.argmax(MX.flip(nan, axis, w), axis, false, w)
            last = N.subtract(Core.mx_scalar(n - 1, :s64, w), N.astype(last, :s64, w), w)
            MX.where(has, last, idx, w)
          else
            idx
          end

        idx = Core.cast(idx, out_type, w)

        idx =
          if opts[:keep_axis] && opts[:axis] != nil, do: N.expand_dims(idx, [axis], w), else: idx

        idx =
          if opts[:keep_axis] && opts[:axis] == nil,
            do: N.reshape(idx, Tuple.to_list(out.shape), w),
            else: idx

        idx
      end)
    end

    ## Sorting

    @doc """
    sort/argsort along `opts[:axis]`, stable, NaN last in ascending order and first in
    descending order (as Nx.BinaryBackend).
    """
    def sort(%T{type: out_type} = out, %T{shape: shape} = t, opts, indices?) do
      on_device([t], out, fn w ->
        x = ref(t, w)
        axis = opts[:axis] || 0

        r =
          cond do
            shape == {} and indices? ->
              Core.scalar(0, out_type, w)

            shape == {} ->
              x

            true ->
              n = elem(shape, axis)

              case opts[:direction] do
                :desc ->
                  xr = MX.flip(x, axis, w)

                  if indices? do
                    idx = MX.flip(stable_argsort(xr, t.type, axis, w), axis, w)
                    idx = N.astype(idx, :s64, w)
                    N.subtract(Core.scalar(n - 1, {:s, 64}, w), idx, w)
                  else
                    MX.flip(stable_sort(xr, t.type, axis, w), axis, w)
                  end

                _ ->
                  if indices?,
                    do: stable_argsort(x, t.type, axis, w),
                    else: stable_sort(x, t.type, axis, w)
              end
          end

        r = if indices?, do: Core.cast(r, out_type, w), else: r
        r
      end)
    end

    # MLX's sort is stable and puts NaN last (checked by the backend's tests).
    defp stable_sort(x, _type, axis, w), do: N.sort(x, axis, w)
    defp stable_argsort(x, _type, axis, w), do: N.argsort(x, axis, w)

    @doc "Sorted values and indices (descending, stable) along the last axis, first `k`."
    def top_k(x, type, k, w) do
      dims = N.shape(x)
      axis = length(dims) - 1
      n = List.last(dims)
      xr = MX.flip(x, axis, w)
      idx = MX.flip(stable_argsort(xr, type, axis, w), axis, w)
      idx = N.subtract(Core.scalar(n - 1, {:s, 64}, w), N.astype(idx, :s64, w), w)
      starts = List.duplicate(0, length(dims))
      stops = List.replace_at(dims, axis, k)
      idx = N.slice(idx, starts, stops, List.duplicate(1, length(dims)), w)
      {N.take_along_axis(x, idx, axis, w), idx}
    end
  end
end
