if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Index do
    @moduledoc false
    # gather, indexed_add, indexed_put, take and take_along_axis on MLX's gather/scatter.
    #
    # MLX does not check indices (an out-of-range one reads or writes outside the array),
    # so indices are always clamped into range first, as XLA does for gathers; scatters
    # drop the updates of out-of-range rows (indexed_add adds zero, indexed_put writes the
    # element's current value). `config :emily, debug_bounds_check: true` (compile time)
    # makes every op here raise ArgumentError on a negative or out-of-range index instead;
    # with the default (false) those checks are not compiled in.

    alias Emily.Native, as: N

    alias Emily.Backend.{Core, MX}
    alias Nx.Tensor, as: T

    import Core, only: [wrap: 3, ref: 2, ref: 3, device_of: 1, worker: 1, fit: 3]

    require Emily.Config
    @bounds_check Emily.Config.compile_env(:debug_bounds_check)

    @doc false
    def bounds_check?, do: @bounds_check

    @doc "Nx gather: `indices` is `[..., k]`, each row indexes `opts[:axes]`."
    def gather(
          %T{shape: out_shape} = out,
          %T{shape: shape} = t,
          %T{shape: ishape} = indices,
          opts
        ) do
      device = device_of([t, indices])
      w = worker(device)
      x = ref(t, w)
      dims = Tuple.to_list(shape)
      k = elem(ishape, tuple_size(ishape) - 1)
      axes = opts[:axes] || Enum.to_list(0..(k - 1)//1)
      parts = split_indices(ref(indices, w), ishape, w)

      if @bounds_check do
        check_bounds!(:gather, parts, Enum.map(axes, &Enum.at(dims, &1)), w)
      end

      parts = clamp_all(parts, Enum.map(axes, &Enum.at(dims, &1)), w)

      out_dims = Tuple.to_list(out_shape)

      r =
        if Nx.size(out_shape) == 0 do
          N.broadcast_to(Core.scalar(0, t.type, w), out_dims, w)
        else
          sizes = for {d, i} <- Enum.with_index(dims), do: if(i in axes, do: 1, else: d)
          N.reshape(N.gather(x, parts, axes, sizes, w), out_dims, w)
        end

      wrap(r, out, device)
    end

    @doc "Nx indexed_add (kind :add) and indexed_put (kind :put)."
    def indexed(
          %T{type: type} = out,
          %T{shape: shape} = t,
          %T{shape: ishape} = indices,
          updates,
          opts,
          kind
        ) do
      device = device_of([t, indices, updates])
      w = worker(device)
      x = ref(t, type, w)
      dims = Tuple.to_list(shape)
      k = elem(ishape, tuple_size(ishape) - 1)
      axes = opts[:axes] || Enum.to_list(0..(k - 1)//1)
      parts = split_indices(ref(indices, w), ishape, w)

      if @bounds_check do
        check_bounds!(kind_name(kind), parts, Enum.map(axes, &Enum.at(dims, &1)), w)
      end

      adims = Enum.map(axes, &Enum.at(dims, &1))
      valid = valid_rows(parts, adims, w)
      parts = clamp_all(parts, adims, w)

      batch = ishape |> Tuple.delete_at(tuple_size(ishape) - 1) |> Tuple.to_list()

      r =
        if Enum.product(batch) == 0 do
          x
        else
          sizes = for {d, i} <- Enum.with_index(dims), do: if(i in axes, do: 1, else: d)
          u = N.reshape(ref(updates, type, w), batch ++ sizes, w)
          u = drop_invalid(u, valid, x, parts, axes, sizes, kind, w)

          case kind do
            :add when type in [{:f, 16}, {:bf, 16}] ->
              # accumulate repeated indices in f32, round once (as BinaryBackend sums
              # the updates before adding)
              N.scatter_add(N.astype(x, :f32, w), parts, N.astype(u, :f32, w), axes, w)
              |> Core.cast(type, w)

            :add ->
              N.scatter_add(x, parts, u, axes, w)

            :put ->
              N.scatter(x, parts, u, axes, w)
          end
        end

      wrap(fit(r, type, w), out, device)
    end

    # Index arrays into axes of these sizes, clamped into range.
    defp clamp_all(parts, dims, w), do: Enum.zip_with(parts, dims, &clamp(&1, &2, w))

    @doc false
    def clamp(idx, dim, w) do
      dt = N.dtype(idx)
      hi = N.minimum(idx, Core.mx_scalar(dim - 1, dt, w), w)

      if dt in [:u8, :u16, :u32, :u64],
        do: hi,
        else: N.maximum(hi, Core.mx_scalar(0, dt, w), w)
    end

    # A bool array over the index batch: true where every index of the row is in range.
    defp valid_rows(parts, dims, w) do
      parts
      |> Enum.zip_with(dims, fn p, d ->
        p = N.astype(p, :s64, w)
        lo = N.greater_equal(p, Core.scalar(0, {:s, 64}, w), w)
        N.logical_and(lo, N.less(p, Core.scalar(d, {:s, 64}, w), w), w)
      end)
      |> Enum.reduce(&N.logical_and(&1, &2, w))
    end

    # Updates of out-of-range rows become no-ops: zero for an add, the element's current
    # value for a put (the row's indices are clamped, so that element exists).
    defp drop_invalid(u, valid, x, parts, axes, sizes, kind, w) do
      ushape = N.shape(u)
      vshape = N.shape(valid) ++ List.duplicate(1, length(ushape) - length(N.shape(valid)))
      valid = N.reshape(valid, vshape, w)

      keep =
        case kind do
          :add -> Core.mx_scalar(0, N.dtype(u), w)
          :put -> N.reshape(N.gather(x, parts, axes, sizes, w), ushape, w)
        end

      MX.where(valid, u, keep, w)
    end

    defp kind_name(:add), do: :indexed_add
    defp kind_name(:put), do: :indexed_put

    @doc "Nx.take along `axis` (the Nx.Block.Take block)."
    def take(x, shape, idx, idx_shape, axis, w) do
      if @bounds_check do
        check_bounds!(:take, [idx], [elem(shape, axis)], w)
      end

      idx = clamp(idx, elem(shape, axis), w)

      if Nx.size(idx_shape) == 0 or Nx.size(shape) == 0 do
        {before, [_ | after_]} = Enum.split(Tuple.to_list(shape), axis)
        dims = before ++ Tuple.to_list(idx_shape) ++ after_
        N.broadcast_to(N.astype(Core.mx_scalar(0, :s32, w), N.dtype(x), w), dims, w)
      else
        MX.take(x, idx, axis, w)
      end
    end

    @doc "Nx.take_along_axis (the Nx.Block.TakeAlongAxis block)."
    def take_along_axis(x, shape, idx, axis, w) do
      if @bounds_check do
        check_bounds!(:take_along_axis, [idx], [elem(shape, axis)], w)
      end

      N.take_along_axis(x, clamp(idx, elem(shape, axis), w), axis, w)
    end

    # [..., k] -> k arrays of shape [...]
    defp split_indices(idx, ishape, w), do: N.unstack(idx, tuple_size(ishape) - 1, w)

    @doc false
    def check_bounds!(op, parts, dims, w) do
      Enum.zip_with(parts, dims, fn p, d ->
        p = N.astype(p, :s64, w)
        low = N.less(p, Core.scalar(0, {:s, 64}, w), w)
        high = N.greater_equal(p, Core.scalar(d, {:s, 64}, w), w)

        bad =
          N.any(
            N.logical_or(low, high, w),
            Enum.to_list(0..(length(N.shape(p)) - 1)//1),
            false,
            w
          )

        if Emily.to_binary(bad) != <<0>> do
          raise ArgumentError,
                "#{op}: index out of bounds for an axis of size #{d} " <>
                  "(Emily debug_bounds_check)"
        end
      end)

      :ok
    end
  end
end
