if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Shape do
    @moduledoc false
    # Creation and data-movement ops of Emily.Backend over MLX handles.

    alias Emily.Native, as: N

    alias Emily.Backend.{Core, MX}
    alias Nx.Tensor, as: T

    @doc "iota: counts along `axis` (or over the flattened shape when nil)."
    def iota(type, shape, axis, w) do
      dims = Tuple.to_list(shape)

      case axis do
        nil ->
          n = Nx.size(shape)
          N.reshape(arange(n, type, w), dims, w)

        axis ->
          n = elem(shape, axis)
          a = arange(n, type, w)

          view =
            dims |> Enum.with_index() |> Enum.map(fn {d, i} -> if i == axis, do: d, else: 1 end)

          N.broadcast_to(N.reshape(a, view, w), dims, w)
      end
    end

    # 0..n-1 in Nx `type`, each value converted with Nx's rules (integers wrap, bf16
    # truncates).
    defp arange(n, type, w) do
      base =
        cond do
          Core.int?(type) -> {:s, 64}
          type == {:f, 64} -> {:f, 64}
          true -> {:f, 32}
        end

      a = N.arange(0.0, n * 1.0, 1.0, Core.dtype(base), w)
      Core.convert(a, base, type, w)
    end

    @doc "Nx broadcast: `axes` maps each input axis to an output axis."
    def broadcast(ref, tshape, shape, axes, w) do
      dims = Tuple.to_list(shape)
      in_dims = Tuple.to_list(tshape)
      map = Enum.zip(axes, in_dims) |> Map.new()

      view =
        for i <- 0..(length(dims) - 1)//1, do: Map.get(map, i, 1)

      r = if view == in_dims, do: ref, else: N.reshape(ref, view, w)
      if view == dims, do: r, else: N.broadcast_to(r, dims, w)
    end

    @doc """
    Nx pad: `config` is `[{low, high, interior}]` per axis; low/high may be negative
    (cropping), interior inserts `interior` pad values between elements.
    """
    def pad(ref, value, config, w) do
      dims = N.shape(ref)

      if dims == [] do
        ref
      else
        {ref, dims} = interior_pad(ref, dims, value, config, w)
        lows = Enum.map(config, fn {lo, _, _} -> max(lo, 0) end)
        highs = Enum.map(config, fn {_, hi, _} -> max(hi, 0) end)
        axes = Enum.to_list(0..(length(dims) - 1))

        ref =
          if Enum.all?(lows, &(&1 == 0)) and Enum.all?(highs, &(&1 == 0)),
            do: ref,
            else: MX.pad(ref, axes, lows, highs, value, w)

        dims = Enum.zip_with([dims, lows, highs], fn [d, l, h] -> d + l + h end)

        if Enum.any?(config, fn {lo, hi, _} -> lo < 0 or hi < 0 end) do
          starts = Enum.map(config, fn {lo, _, _} -> max(-lo, 0) end)

          stops =
            Enum.zip_with(dims, config, fn d, {_, hi, _} -> max(d - max(-hi, 0), 0) end)

          stops = Enum.zip_with(starts, stops, &max/2)
          N.slice(ref, starts, stops, List.duplicate(1, length(dims)), w)
        else
          ref
        end
      end
    end

    defp interior_pad(ref, dims, value, config, w) do
      config
      |> Enum.with_index()
      |> Enum.reduce({ref, dims}, fn
        {{_, _, 0}, _axis}, acc ->
          acc

        {{_, _, _}, axis}, {ref, dims} when is_integer(axis) and axis >= 0 ->
          case Enum.at(dims, axis) do
            0 ->
              {ref, dims}

            n ->
              {_, _, interior} = Enum.at(config, axis)
              # [.., n, ..] -> [.., n, 1, ..] -> pad the new axis to interior + 1 ->
              # [.., n * (interior + 1), ..] -> drop the trailing `interior`.
              {before, after_} = Enum.split(dims, axis + 1)
              r = N.reshape(ref, before ++ [1 | after_], w)
              r = MX.pad(r, [axis + 1], [0], [interior], value, w)
              long = n * (interior + 1)
              merged = Enum.take(dims, axis) ++ [long | Enum.drop(dims, axis + 1)]
              r = N.reshape(r, merged, w)
              final = n + (n - 1) * interior
              starts = List.duplicate(0, length(dims))
              stops = List.replace_at(merged, axis, final)
              r = N.slice(r, starts, stops, List.duplicate(1, length(dims)), w)
              {r, List.replace_at(dims, axis, final)}
          end
      end)
    end

    @doc "Reverses `axes`."
    def reverse(ref, _shape, [], _w), do: ref

    def reverse(ref, shape, axes, w) do
      dims = Tuple.to_list(shape)

      if Enum.any?(axes, &(Enum.at(dims, &1) == 0)) do
        ref
      else
        Enum.reduce(axes, ref, fn axis, r -> MX.flip(r, axis, w) end)
      end
    end

    @doc """
    Nx slice: a window of `lengths` elements from `starts` (integers or scalar tensors,
    clamped to fit), taking every `strides`-th element.
    """
    def slice(ref, shape, starts, lengths, strides, w) do
      dims = Tuple.to_list(shape)
      ones = List.duplicate(1, length(dims))

      if Enum.all?(starts, &is_integer/1) do
        starts = Enum.zip_with([starts, dims, lengths], fn [s, d, l] -> min(max(s, 0), d - l) end)
        stops = Enum.zip_with(starts, lengths, &(&1 + &2))

        if stops == dims and Enum.all?(starts, &(&1 == 0)) and strides == ones do
          ref
        else
          N.slice(ref, starts, stops, strides, w)
        end
      else
        # Dynamic: MLX clamps the starts like Nx; take the window, then stride it.
        start = dynamic_starts(starts, dims, lengths, w)
        axes = Enum.to_list(0..(length(dims) - 1))
        r = N.slice_dynamic(ref, start, axes, lengths, w)

        if strides == ones do
          r
        else
          N.slice(r, List.duplicate(0, length(dims)), lengths, strides, w)
        end
      end
    end

    @doc "Nx put_slice with clamped start indices (integers or scalar tensors)."
    def put_slice(ref, shape, starts, upd, upd_shape, w) do
      dims = Tuple.to_list(shape)
      lengths = Tuple.to_list(upd_shape)

      cond do
        dims == [] ->
          upd

        Enum.any?(lengths, &(&1 == 0)) ->
          ref

        Enum.all?(starts, &is_integer/1) ->
          starts =
            Enum.zip_with([starts, dims, lengths], fn [s, d, l] -> min(max(s, 0), d - l) end)

          stops = Enum.zip_with(starts, lengths, &(&1 + &2))
          N.slice_update(ref, upd, starts, stops, List.duplicate(1, length(dims)), w)

        true ->
          start = dynamic_starts(starts, dims, lengths, w)
          axes = Enum.to_list(0..(length(dims) - 1))
          N.slice_update_dynamic(ref, upd, start, axes, w)
      end
    end

    # A 1-D s64 array of the start indices, each clamped to [0, dim - len].
    defp dynamic_starts(starts, dims, lengths, w) do
      parts =
        Enum.zip_with([starts, dims, lengths], fn [s, d, l] ->
          hi = max(d - l, 0)

          case s do
            s when is_integer(s) ->
              Core.scalar(min(max(s, 0), hi), {:s, 64}, w)

            %T{} = t ->
              x = Core.ref(t, {:s, 64}, w)
              x = N.maximum(x, Core.scalar(0, {:s, 64}, w), w)
              N.minimum(x, Core.scalar(hi, {:s, 64}, w), w)
          end
        end)

      N.stack(parts, 0, w)
    end
  end
end
