if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend.Core do
    @moduledoc false
    # Shared plumbing of Emily.Backend: MLX handles in and out of Nx tensors, the storage
    # type of each Nx type, Nx's conversion rules, small constants.

    alias Emily.Native, as: N

    alias Emily.Backend.MX
    alias Nx.Tensor, as: T

    ## Devices and workers

    @doc "The device of a tensor held by Emily.Backend, or nil."
    def device(%T{data: %{__struct__: Emily.Backend, device: d}}), do: d
    def device(_), do: nil

    @doc "The device of the first Emily tensor in `tensors` (:cpu if none)."
    def device_of(tensors) when is_list(tensors) do
      Enum.find_value(tensors, :cpu, &device/1)
    end

    @doc "The worker (MLX stream) for `device`."
    def worker(device) when device in [:cpu, :gpu], do: Emily.Worker.current(device)

    @doc "Validates backend options; returns `[device: d]`."
    def init_opts(opts) do
      {device, rest} = Keyword.pop_lazy(opts, :device, &Emily.Worker.default_device/0)

      if rest != [] do
        raise ArgumentError,
              "Emily.Backend accepts only the :device option, got: #{inspect(opts)}"
      end

      unless device in [:cpu, :gpu] do
        raise ArgumentError,
              "Emily.Backend: :device must be :cpu or :gpu, got: #{inspect(device)}"
      end

      if device == :gpu and not Emily.Native.device_available(:gpu) do
        raise ArgumentError,
              "Emily.Backend: device: :gpu was requested but MLX has no GPU on this machine " <>
                "(this build of MLX runs on: cpu). Use device: :cpu"
      end

      [device: device]
    end

    @doc """
    The device named in backend options, validated (Nx passes `{Emily.Backend, opts}`
    options to creation callbacks without calling init/1 first).
    """
    def opts_device([]), do: Emily.Worker.default_device()
    def opts_device(device: :cpu), do: :cpu
    def opts_device(opts), do: Keyword.fetch!(init_opts(opts), :device)

    ## Types

    @doc "The MLX dtype that stores tensors of Nx `type`."
    def dtype({:u, b}) when b in [2, 4], do: :u8
    def dtype({:s, b}) when b in [2, 4], do: :s8
    def dtype({:f, 8}), do: :f16
    def dtype({:f8_e4m3fn, 8}), do: :f16

    def dtype({:c, 128}) do
      raise ArgumentError,
            "Emily.Backend: type {:c, 128} is not supported (MLX has complex64 only); " <>
              "use {:c, 64}"
    end

    def dtype(type), do: Emily.Dtype.native_type!(type, "Emily.Backend")

    @doc "The Nx type MLX stores a narrow Nx type in (the type itself otherwise)."
    def storage_type({:u, b}) when b in [2, 4], do: {:u, 8}
    def storage_type({:s, b}) when b in [2, 4], do: {:s, 8}
    def storage_type({:f, 8}), do: {:f, 16}
    def storage_type({:f8_e4m3fn, 8}), do: {:f, 16}
    def storage_type(type), do: type

    @doc "True for types MLX lacks and Emily stores in a wider type."
    def narrow?(type), do: storage_type(type) != type

    def float?({k, _}), do: k in [:f, :bf, :f8_e4m3fn]
    def complex?({k, _}), do: k == :c
    def int?({k, _}), do: k in [:s, :u]
    def signed?({k, _}), do: k == :s
    def unsigned?({k, _}), do: k == :u

    @doc "The real type of a complex type (f32 for c64)."
    def real_type({:c, 64}), do: {:f, 32}
    def real_type({:c, 128}), do: {:f, 64}
    def real_type(t), do: t

    ## Tensors in and out

    @doc """
    The bytes of `template` at `offset` in the file at `path`, mapped with `Emily.mmap/4`,
    as a tensor on `device`'s worker.
    """
    def mmap(path, offset, %T{type: type, shape: shape} = template, device) do
      path |> Emily.mmap(offset, Tuple.to_list(shape), type) |> wrap(template, device)
    end

    @doc """
    Wraps an MLX handle as the output tensor `out`. Some MLX ops return a wider dtype
    than their input (sum and prod of 8/16-bit integers give 32-bit ones); such results
    are converted to `out`'s storage type here (integers wrap, as in Nx).
    """
    def wrap(ref, %T{type: type, shape: shape} = out, device) do
      d = dtype(type)

      ref =
        case N.dtype(ref) do
          ^d -> ref
          _ -> N.astype(ref, d, worker(device))
        end

      if N.shape(ref) != Tuple.to_list(shape) do
        raise Emily.Error,
          message:
            "Emily.Backend internal error: MLX produced shape #{inspect(N.shape(ref))} " <>
              "for an Nx output of shape #{inspect(shape)}"
      end

      %{out | data: %{__struct__: Emily.Backend, ref: ref, device: device}}
    end

    @doc """
    The prologue and epilogue of most callbacks: runs `fun.(worker)` on the worker of the
    device `inputs` live on, and wraps the MLX handle it returns as `out` on that device.
    """
    def on_device(inputs, out, fun) do
      device = device_of(inputs)
      wrap(fun.(worker(device)), out, device)
    end

    @doc """
    The MLX handle of `t` (a tensor of any backend), in the storage dtype of `t.type`.
    Tensors of other backends are copied in.
    """
    def ref(%T{data: %{__struct__: Emily.Backend, ref: r}}, _w) when node(r) == node(), do: r

    def ref(%T{data: %{__struct__: Emily.Backend, ref: r}} = t, _w) do
      raise ArgumentError,
            Emily.not_a_tensor(
              "Emily.Backend (a tensor #{Nx.Type.to_string(t.type)}#{inspect(Tuple.to_list(t.shape))})",
              r
            )
    end

    def ref(%T{} = t, w), do: upload(t.type, t.shape, Nx.to_binary(t), w)

    @doc "A handle of `t` converted to Nx `type` with Nx's conversion rules."
    def ref(%T{type: from} = t, type, w), do: convert(ref(t, w), from, type, w)

    @doc "Creates an MLX array from a binary of Nx `type`."
    def upload(type, shape, binary, w) do
      if narrow?(type) do
        wide = storage_type(type)
        bin = bb_convert(binary, shape, type, wide)
        Emily.Native.from_binary(bin, Tuple.to_list(shape), dtype(type), w)
      else
        Emily.Native.from_binary(binary, Tuple.to_list(shape), dtype(type), w)
      end
    end

    @doc "The bytes of `ref` as Nx `type` (zero-copy unless the type is narrow)."
    def download(ref, type, shape) do
      bin = Emily.to_binary(ref)

      cond do
        type == {:f8_e4m3fn, 8} -> e4m3fn_bytes(bin)
        narrow?(type) -> bb_convert(bin, shape, storage_type(type), type)
        true -> bin
      end
    end

    # E4M3FN values are stored as the f16 that upload/4 decodes each byte to: each f16 reads
    # back as the byte it came from (Nx's encoder would write -0.0 as +0.0 and drop a NaN's
    # sign), anything else through Nx's encoder.
    defp e4m3fn_bytes(bin) do
      table = e4m3fn_table()

      for <<h::binary-2 <- bin>>, into: <<>> do
        case table do
          %{^h => byte} -> <<byte>>
          %{} -> bb_convert(h, {}, {:f, 16}, {:f8_e4m3fn, 8})
        end
      end
    end

    defp e4m3fn_table do
      key = {__MODULE__, :e4m3fn_table}

      case :persistent_term.get(key, nil) do
        nil ->
          all = for b <- 0..255, into: <<>>, do: <<b>>
          f16 = bb_convert(all, {256}, {:f8_e4m3fn, 8}, {:f, 16})
          halves = for <<h::binary-2 <- f16>>, do: h

          table =
            halves
            |> Enum.zip(0..255)
            |> Enum.reduce(%{}, fn {h, b}, acc -> Map.put_new(acc, h, b) end)

          :persistent_term.put(key, table)
          table

        table ->
          table
      end
    end

    # Converts a binary between types with Nx.BinaryBackend's own rules (narrow types only).
    defp bb_convert(binary, shape, from, to) do
      names = List.duplicate(nil, tuple_size(shape))
      src = Nx.BinaryBackend.from_binary(%T{type: from, shape: shape, names: names}, binary, [])
      dst = Nx.BinaryBackend.as_type(%T{type: to, shape: shape, names: names}, src)
      Nx.BinaryBackend.to_binary(dst, Nx.size(shape))
    end

    @doc "The binary of a scalar `number` in Nx `type`, as Nx.BinaryBackend writes it."
    def number_binary(number, type) do
      %T{type: type, shape: {}, names: []}
      |> Nx.BinaryBackend.constant(number, [])
      |> Nx.BinaryBackend.to_binary(1)
    end

    @doc "A scalar MLX array holding `number` as Nx `type`."
    def scalar(number, {k, b} = type, w) when is_integer(number) and k in [:s, :u] and b >= 8 do
      # Nx writes integers modulo 2^bits; the NIF takes the two's complement in an i64.
      m = Integer.mod(number, Bitwise.bsl(1, b))

      v =
        if m >= Bitwise.bsl(1, min(b, 64) - 1) and (k == :s or b == 64),
          do: m - Bitwise.bsl(1, b),
          else: m

      Emily.Native.scalar_int(v, dtype(type), w)
    end

    def scalar(number, type, w)
        when type in [{:f, 32}, {:f, 64}] and
               (is_float(number) or (is_integer(number) and abs(number) < 1.0e300)) do
      # (f16 and bf16 take the exact path below: BinaryBackend truncates bf16, and one
      # rounding from the number matters for f16)
      Emily.Native.scalar(number * 1.0, dtype(type), w)
    end

    def scalar(number, type, w), do: upload(type, {}, number_binary(number, type), w)

    @doc "A scalar MLX array of the given MLX dtype (for internal arithmetic)."
    def mx_scalar(number, dtype, w), do: scalar(number, Emily.Dtype.nx_type(dtype), w)

    ## Conversions (Nx.as_type semantics)

    @doc """
    Converts an MLX array holding Nx type `from` to Nx type `to` with Nx's rules:
    float to integer truncates (NaN becomes 0, infinities the type's extremes), complex to
    real keeps the real part, f32/f64 to bf16 truncates the mantissa like
    Nx.BinaryBackend, narrow types wrap (integers) or round (f8).
    """
    def convert(ref, same, same, _w), do: ref

    def convert(ref, from, to, w) do
      cond do
        complex?(from) and not complex?(to) ->
          convert(N.real(ref, w), real_type(from), to, w)

        (float?(from) or narrow_float?(from)) and int?(to) ->
          float_to_int(ref, to, w)

        to == {:bf, 16} and from in [{:f, 32}, {:f, 64}] ->
          f32_to_bf16_trunc(ref, from, w)

        to == {:f8_e4m3fn, 8} ->
          # from the source values, not through f16 (one rounding, as Nx's encoder)
          narrow(ref, to, w)

        narrow?(to) ->
          narrow(N.astype(ref, dtype(to), w), to, w)

        dtype(from) == dtype(to) ->
          ref

        true ->
          N.astype(ref, dtype(to), w)
      end
    end

    defp narrow_float?(t), do: t in [{:f, 8}, {:f8_e4m3fn, 8}]

    @doc "Casts to the storage dtype of `to` with MLX's own astype (no Nx rules)."
    def cast(ref, to, w) do
      d = dtype(to)
      if N.dtype(ref) == d, do: ref, else: N.astype(ref, d, w)
    end

    defp float_to_int(x, to, w) do
      wide =
        case to do
          {:u, 64} ->
            neg = N.less(x, mx_scalar(0, N.dtype(x), w), w)
            via_signed = N.astype(N.astype(x, :s64, w), :u64, w)
            MX.where(neg, via_signed, N.astype(x, :u64, w), w)

          _ ->
            N.astype(x, :s64, w)
        end

      d = dtype(to)
      v = if N.dtype(wide) == d, do: wide, else: N.astype(wide, d, w)
      v = if narrow?(to), do: narrow(v, to, w), else: v

      {min_bin, max_bin} = {Nx.Type.min_finite_binary(to), Nx.Type.max_finite_binary(to)}
      min = upload(to, {}, min_bin, w)
      max = upload(to, {}, max_bin, w)
      zero = scalar(0, to, w)

      v = MX.where(N.isnan(x, w), zero, v, w)
      v = MX.where(N.isposinf(x, w), max, v, w)
      MX.where(N.isneginf(x, w), min, v, w)
    end

    # Nx.BinaryBackend writes bf16 as the top half of the f32 (truncation).
    defp f32_to_bf16_trunc(x, from, w) do
      x = if from == {:f, 64}, do: N.astype(x, :f32, w), else: x
      bits = N.view(x, :u32, w)
      hi = N.right_shift(bits, mx_scalar(16, :u32, w), w)
      isnan = N.isnan(x, w)
      hi = N.astype(hi, :u16, w)
      # keep NaN a quiet NaN (truncation could leave a payload-less Inf pattern)
      nan = mx_scalar(0x7FC0, :u16, w)
      N.view(MX.where(isnan, nan, hi, w), :bf16, w)
    end

    @doc """
    Brings values in the storage of a narrow type back into its range: integers wrap
    (two's complement), E5M2 values truncate to 8 bits (as Nx writes them), E4M3FN values
    go through Nx's own encoder.
    """
    def narrow(ref, {:u, b}, w) do
      N.bitwise_and(ref, mx_scalar(Bitwise.bsl(1, b) - 1, :u8, w), w)
    end

    def narrow(ref, {:s, b}, w) do
      sh = mx_scalar(8 - b, :s8, w)
      N.right_shift(N.left_shift(ref, sh, w), sh, w)
    end

    def narrow(ref, {:f, 8}, w) do
      # e5m2 is the top byte of an f16; Nx writes it by dropping the low byte (truncation).
      bits = N.view(ref, :u16, w)
      out = N.view(N.bitwise_and(bits, mx_scalar(0xFF00, :u16, w), w), :f16, w)
      MX.where(N.isnan(ref, w), ref, out, w)
    end

    def narrow(ref, {:f8_e4m3fn, 8} = type, w) do
      # Rare: through Nx's own encoder (evaluates), from the values in their own float
      # type (integers as f64).
      ref = if N.dtype(ref) in [:f16, :bf16, :f32, :f64], do: ref, else: N.astype(ref, :f64, w)
      from = Emily.Dtype.nx_type(N.dtype(ref))
      shape = List.to_tuple(N.shape(ref))
      bin = Emily.to_binary(ref)
      names = List.duplicate(nil, tuple_size(shape))
      src = Nx.BinaryBackend.from_binary(%T{type: from, shape: shape, names: names}, bin, [])
      dst = Nx.BinaryBackend.as_type(%T{type: type, shape: shape, names: names}, src)
      upload(type, shape, Nx.BinaryBackend.to_binary(dst, Nx.size(shape)), w)
    end

    @doc "Applies `narrow/3` when `type` is narrow (after an op computed in storage)."
    def fit(ref, type, w), do: if(narrow?(type), do: narrow(ref, type, w), else: ref)

    @doc "A u8 array from an MLX bool array (Nx has no boolean type)."
    def from_bool(ref, w), do: N.astype(ref, :u8, w)

    @doc "A bool array that is true where `ref` is non-zero."
    def to_bool(ref, w) do
      if N.dtype(ref) == :bool,
        do: ref,
        else: N.not_equal(ref, mx_scalar(0, N.dtype(ref), w), w)
    end

    ## Shapes

    def shape_list(%T{shape: s}), do: Tuple.to_list(s)
    def shape_list(s) when is_tuple(s), do: Tuple.to_list(s)

    @doc "Row-major strides (in elements) of a shape list."
    def strides(shape) do
      {strides, _} =
        shape
        |> Enum.reverse()
        |> Enum.map_reduce(1, fn d, acc -> {acc, acc * d} end)

      Enum.reverse(strides)
    end

    @doc "Inverse of a permutation."
    def invert_permutation(perm) do
      perm |> Enum.with_index() |> Enum.sort() |> Enum.map(&elem(&1, 1))
    end
  end
end
