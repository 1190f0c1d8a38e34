if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Reduce do
    @moduledoc false
    # Reductions, sorting and element-wise ops that need more than one MLX op to follow
    # Nx's semantics.

    alias Emily.Backend.{Core, MX}
    alias Nx.Tensor, as: T

    import Core, only: [wrap: 3, ref: 2, ref: 3, device_of: 1, worker: 1, fit: 3]

    ## Aggregates

    for {op, mlx} <- [sum: :sum, product: :prod, reduce_max: :max, reduce_min: :min] do
      def unquote(op)(%T{type: type} = out, %T{shape: shape} = t, opts) do
        device = device_of([t])
        w = worker(device)
        x = ref(t, type, w)
        axes = opts[:axes] || Enum.to_list(0..(tuple_size(shape) - 1)//1)
        keep = opts[:keep_axes] || false
        r = if axes == [], do: x, else: MX.unquote(mlx)(x, axes, keep, w)
        wrap(fit(r, type, w), out, device)
      end
    end

    for {op, mlx} <- [all: :all, any: :any] do
      def unquote(op)(out, %T{shape: shape} = t, opts) do
        device = device_of([t])
        w = worker(device)
        x = Core.to_bool(ref(t, w), w)
        axes = opts[:axes] || Enum.to_list(0..(tuple_size(shape) - 1)//1)
        keep = opts[:keep_axes] || false
        r = if axes == [], do: x, else: MX.unquote(mlx)(x, axes, keep, w)
        wrap(Core.from_bool(r, w), out, device)
      end
    end

    @doc """
    argmax/argmin with Nx's rules: ties go to the lowest (`tie_break: :low`) or highest
    index; a NaN counts as the extreme and the last NaN wins.
    """
    def arg_extreme(%T{type: out_type} = out, %T{type: type, shape: shape} = t, opts, kind) do
      device = device_of([t])
      w = worker(device)
      x = ref(t, w)

      {x, axis} =
        case opts[:axis] do
          nil -> {MX.reshape(x, [Nx.size(shape)], w), 0}
          axis -> {x, axis}
        end

      n = Enum.at(MX.shape(x), axis)
      high? = opts[:tie_break] == :high
      fun = if kind == :max, do: &MX.argmax/4, else: &MX.argmin/4

      idx =
        if high? do
          rev = fun.(MX.flip(x, axis, w), axis, false, w)
          MX.subtract(Core.mx_scalar(n - 1, MX.dtype(rev), w), rev, w)
        else
          fun.(x, axis, false, w)
        end

      idx = MX.astype(idx, :s64, w)

      idx =
        if Core.float?(type) do
          nan = MX.astype(MX.isnan(x, w), :u8, w)
          has = MX.any(MX.astype(nan, :bool, w), [axis], false, w)
          last = MX.argmax(MX.flip(nan, axis, w), axis, false, w)
          last = MX.subtract(Core.mx_scalar(n - 1, :s64, w), MX.astype(last, :s64, w), w)
          MX.where(has, last, idx, w)
        else
          idx
        end

      idx = Core.cast(idx, out_type, w)

      idx =
        if opts[:keep_axis] && opts[:axis] != nil, do: MX.expand_dims(idx, [axis], w), else: idx

      idx =
        if opts[:keep_axis] && opts[:axis] == nil,
          do: MX.reshape(idx, Tuple.to_list(out.shape), w),
          else: idx

      wrap(idx, out, device)
    end

    ## Sorting

    @doc """
    sort/argsort along `opts[:axis]`, stable, NaN last in ascending order and first in
    descending order (as Nx.BinaryBackend).
    """
    def sort(%T{type: out_type} = out, %T{shape: shape} = t, opts, indices?) do
      device = device_of([t])
      w = worker(device)
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
                  idx = MX.astype(idx, :s64, w)
                  MX.subtract(Core.scalar(n - 1, {:s, 64}, w), idx, w)
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
      wrap(r, out, device)
    end

    # MLX's sort is stable and puts NaN last (checked by the backend's tests).
    defp stable_sort(x, _type, axis, w), do: MX.sort(x, axis, w)
    defp stable_argsort(x, _type, axis, w), do: MX.argsort(x, axis, w)

    @doc "Sorted values and indices (descending, stable) along the last axis, first `k`."
    def top_k(x, type, k, w) do
      dims = MX.shape(x)
      axis = length(dims) - 1
      n = List.last(dims)
      xr = MX.flip(x, axis, w)
      idx = MX.flip(stable_argsort(xr, type, axis, w), axis, w)
      idx = MX.subtract(Core.scalar(n - 1, {:s, 64}, w), MX.astype(idx, :s64, w), w)
      starts = List.duplicate(0, length(dims))
      stops = List.replace_at(dims, axis, k)
      idx = MX.slice(idx, starts, stops, List.duplicate(1, length(dims)), w)
      {MX.take_along_axis(x, idx, axis, w), idx}
    end

    ## Element-wise helpers

    @doc "Remainder with the sign of the dividend (Elixir's rem/2, C's fmod)."
    def trunc_remainder(a, b, type, w) do
      r = MX.remainder(a, b, w)

      if Core.unsigned?(type) do
        r
      else
        zero = Core.scalar(0, type, w)
        nz = MX.not_equal(r, zero, w)
        differ = MX.not_equal(MX.less(r, zero, w), MX.less(a, zero, w), w)
        MX.where(MX.logical_and(nz, differ, w), MX.subtract(r, b, w), r, w)
      end
    end

    @doc "Integer division truncating toward zero (Elixir's div/2)."
    def trunc_quotient(a, b, type, w) do
      q = MX.floor_divide(a, b, w)

      if Core.unsigned?(type) do
        q
      else
        zero = Core.scalar(0, type, w)
        r = MX.remainder(a, b, w)
        nz = MX.not_equal(r, zero, w)
        differ = MX.not_equal(MX.less(a, zero, w), MX.less(b, zero, w), w)
        fix = MX.logical_and(nz, differ, w)
        MX.where(fix, MX.add(q, Core.scalar(1, type, w), w), q, w)
      end
    end

    @doc "Cube root (MLX has none): sign(x) * |x|^(1/3) for reals, x^(1/3) for complex."
    def cbrt(x, type, w) do
      third = Core.scalar(1 / 3, type, w)

      if Core.complex?(type) do
        MX.power(x, third, w)
      else
        MX.multiply(MX.sign(x, w), MX.power(MX.abs(x, w), third, w), w)
      end
    end

    @doc "Rounds half away from zero (Erlang's round/1)."
    def round_half_away(x, type, w) do
      zero = Core.scalar(0, type, w)
      t = MX.where(MX.less(x, zero, w), MX.ceil(x, w), MX.floor(x, w), w)
      d = MX.abs(MX.subtract(x, t, w), w)
      up = MX.greater_equal(d, Core.scalar(0.5, type, w), w)
      MX.where(up, MX.add(t, MX.sign(x, w), w), t, w)
    end

    @doc "isnan/isinf that treats a complex number as NaN/Inf when either part is."
    def complex_test(x, type, fun, w) do
      if Core.complex?(type) do
        MX.logical_or(fun.(MX.real(x, w), w), fun.(MX.imag(x, w), w), w)
      else
        fun.(x, w)
      end
    end

    # The unsigned MLX dtype of the same width as the storage of `type`, and its bits.
    defp unsigned_view({_, b} = type) do
      storage_bits = if Core.narrow?(type), do: 8, else: b
      {:"u#{storage_bits}", storage_bits}
    end

    defp as_unsigned(x, type, w) do
      {ud, _} = unsigned_view(type)
      u = if MX.dtype(x) == ud, do: x, else: MX.view(x, ud, w)

      if Core.narrow?(type) do
        {_, b} = type
        MX.bitwise_and(u, Core.mx_scalar(Bitwise.bsl(1, b) - 1, ud, w), w)
      else
        u
      end
    end

    defp pattern(byte, bits),
      do: Enum.reduce(1..div(bits, 8), 0, fn _, acc -> acc * 256 + byte end)

    @doc "Number of set bits of each element (SWAR bit counting)."
    def population_count(x, type, w) do
      {ud, bits} = unsigned_view(type)
      c = fn v -> Core.mx_scalar(v, ud, w) end
      u = as_unsigned(x, type, w)
      sh = fn v, n -> MX.right_shift(v, c.(n), w) end
      and_ = fn v, m -> MX.bitwise_and(v, m, w) end
      m1 = c.(pattern(0x55, bits))
      m2 = c.(pattern(0x33, bits))
      m4 = c.(pattern(0x0F, bits))
      u = MX.subtract(u, and_.(sh.(u, 1), m1), w)
      u = MX.add(and_.(u, m2), and_.(sh.(u, 2), m2), w)
      u = and_.(MX.add(u, sh.(u, 4), w), m4)

      u =
        if bits > 8 do
          sh.(MX.multiply(u, c.(pattern(0x01, bits)), w), bits - 8)
        else
          u
        end

      MX.astype(u, Core.dtype(type), w)
    end

    @doc "Number of leading zero bits of each element (binary search over shifts)."
    def count_leading_zeros(x, type, w) do
      {ud, bits} = unsigned_view(type)
      c = fn v -> Core.mx_scalar(v, ud, w) end
      u = as_unsigned(x, type, w)
      zero = c.(0)

      {n, _} =
        Stream.iterate(div(bits, 2), &div(&1, 2))
        |> Enum.take_while(&(&1 > 0))
        |> Enum.reduce({c.(0), u}, fn s, {n, v} ->
          top_zero = MX.equal(MX.right_shift(v, c.(bits - s), w), zero, w)
          n = MX.where(top_zero, MX.add(n, c.(s), w), n, w)
          v = MX.where(top_zero, MX.left_shift(v, c.(s), w), v, w)
          {n, v}
        end)

      n = MX.where(MX.equal(u, zero, w), c.(bits), n, w)

      n =
        case type do
          {_, b} when b < bits -> MX.subtract(n, c.(bits - b), w)
          _ -> n
        end

      MX.astype(n, Core.dtype(type), w)
    end
  end
end
