if Code.ensure_loaded?(Nx) do
  defmodule Emily.GGUF do
    @moduledoc """
    Reads GGUF files (llama.cpp's model container, version 2 and 3): the metadata, the
    tensor table, and each tensor as an `Nx` tensor on `Emily.Backend`.

        gguf = Emily.GGUF.read!("SmolLM2-135M-Instruct.Q4_1.gguf")
        gguf.metadata["llama.block_count"]
        #=> 30
        Emily.GGUF.tensor(gguf, "blk.0.attn_q.weight")
        #=> #Nx.Tensor<f32[576][576] ...>

    The header (metadata and tensor table) is parsed in Elixir. A tensor's bytes are mapped
    from the file with `Emily.mmap/4` (no copy, no read until used) and, for quantized
    types, dequantized by MLX ops on the tensor's worker:

    | type | block | bytes | value of element `i` of a block |
    |---|---|---|---|
    | `F32`, `F16`, `BF16` | 1 | 4, 2, 2 | the element (f16 and bf16 are widened to f32 unless `type:` says otherwise) |
    | `Q8_0` | 32 | 34: f16 `d`, 32 x s8 `q` | `d * q[i]` |
    | `Q4_0` | 32 | 18: f16 `d`, 16 bytes `qs` | `d * (n[i] - 8)` |
    | `Q4_1` | 32 | 20: f16 `d`, f16 `m`, 16 bytes `qs` | `d * n[i] + m` |

    where `n[i]` is the low nibble of `qs[i]` for `i < 16` and the high nibble of
    `qs[i - 16]` otherwise (ggml's `dequantize_row_q4_0/q4_1`). Other types raise
    `ArgumentError` naming the tensor and its type.

    Shapes are row-major, as Nx has them: GGUF lists a tensor's dimensions fastest first
    (ggml's `ne`), so a `[576, 1536]` GGUF tensor is an Nx tensor of shape `{1536, 576}`.
    For a weight matrix that is PyTorch's `[out, in]` layout.
    """

    defstruct [:path, :version, :metadata, :tensors, :data_offset, :alignment]

    @type tensor_info :: %{
            name: String.t(),
            shape: tuple(),
            type: atom(),
            offset: non_neg_integer(),
            byte_size: non_neg_integer()
          }
    @type t :: %__MODULE__{
            path: String.t(),
            version: pos_integer(),
            metadata: %{String.t() => term()},
            tensors: %{String.t() => tensor_info()},
            data_offset: non_neg_integer(),
            alignment: pos_integer()
          }

    # ggml type id => {name, elements per block, bytes per block}
    @ggml_types %{
      0 => {:f32, 1, 4},
      1 => {:f16, 1, 2},
      2 => {:q4_0, 32, 18},
      3 => {:q4_1, 32, 20},
      6 => {:q5_0, 32, 22},
      7 => {:q5_1, 32, 24},
      8 => {:q8_0, 32, 34},
      9 => {:q8_1, 32, 36},
      10 => {:q2_k, 256, 84},
      11 => {:q3_k, 256, 110},
      12 => {:q4_k, 256, 144},
      13 => {:q5_k, 256, 176},
      14 => {:q6_k, 256, 210},
      15 => {:q8_k, 256, 292},
      24 => {:i8, 1, 1},
      25 => {:i16, 1, 2},
      26 => {:i32, 1, 4},
      27 => {:i64, 1, 8},
      28 => {:f64, 1, 8},
      30 => {:bf16, 1, 2}
    }

    @doc """
    Reads the header of the GGUF file at `path`: metadata (a map from key to value; arrays
    are lists, strings are binaries) and the tensor table. Raises `ArgumentError` for a file
    that is not GGUF or is cut short.
    """
    @spec read!(Path.t()) :: t()
    def read!(path) do
      path = IO.chardata_to_string(path)
      size = File.stat!(path).size
      header = read_header!(path, size, min(size, 4 * 1024 * 1024))
      alignment = Map.get(header.metadata, "general.alignment", 32)
      data_offset = align(header.consumed, alignment)

      tensors =
        Map.new(header.infos, fn {name, dims, type_id, offset} ->
          {type, block, bytes} =
            Map.get(@ggml_types, type_id, {:"type_#{type_id}", 1, 0})

          count = Enum.reduce(dims, 1, &(&1 * &2))

          info = %{
            name: name,
            shape: dims |> Enum.reverse() |> List.to_tuple(),
            type: type,
            offset: data_offset + offset,
            byte_size: if(bytes == 0, do: 0, else: div(count, block) * bytes)
          }

          if info.offset + info.byte_size > size do
            raise ArgumentError,
                  "Emily.GGUF: tensor #{name} (#{type}, shape #{inspect(info.shape)}) ends at " <>
                    "byte #{info.offset + info.byte_size}, past the end of #{path} (#{size} bytes)"
          end

          {name, info}
        end)

      %__MODULE__{
        path: path,
        version: header.version,
        metadata: header.metadata,
        tensors: tensors,
        data_offset: data_offset,
        alignment: alignment
      }
    end

    @doc """
    The tensor `name` as an f32 `Nx` tensor on `Emily.Backend` (dequantized where the file
    holds it quantized). Options:

      * `:type` - the result's type for float tensors stored as F32/F16/BF16 (default
        `{:f, 32}`; `:native` keeps the stored type)
      * `:backend` - `Emily.Backend` options (e.g. `device: :gpu`)
    """
    @spec tensor(t(), String.t(), keyword()) :: Nx.Tensor.t()
    def tensor(%__MODULE__{} = gguf, name, opts \\ []) do
      info = info!(gguf, name)

      backend_opts = Keyword.get(opts, :backend, [])
      want = Keyword.get(opts, :type, {:f, 32})
      mapped = fn shape, type -> mapped(gguf, info, shape, type, backend_opts) end
      count = Tuple.product(info.shape)

      case info.type do
        stored when stored in [:f32, :f16, :bf16, :f64, :i8, :i16, :i32, :i64] ->
          t = mapped.(info.shape, nx_type(stored))
          if want == :native or not float?(stored), do: t, else: Nx.as_type(t, want)

        :q8_0 ->
          blocks = div(count, 32)
          d = mapped.({blocks, 17}, {:u, 16})[[.., 0..0]] |> Nx.bitcast({:f, 16})
          q = mapped.({blocks, 34}, {:s, 8})[[.., 2..33]]
          Nx.multiply(Nx.as_type(d, {:f, 32}), q) |> Nx.reshape(info.shape)

        :q4_0 ->
          blocks = div(count, 32)
          d = mapped.({blocks, 9}, {:u, 16})[[.., 0..0]] |> Nx.bitcast({:f, 16})
          n = nibbles(mapped.({blocks, 18}, {:u, 8})[[.., 2..17]])
          Nx.multiply(Nx.as_type(d, {:f, 32}), Nx.subtract(n, 8)) |> Nx.reshape(info.shape)

        :q4_1 ->
          blocks = div(count, 32)
          dm = mapped.({blocks, 10}, {:u, 16})[[.., 0..1]] |> Nx.bitcast({:f, 16})
          dm = Nx.as_type(dm, {:f, 32})
          n = nibbles(mapped.({blocks, 20}, {:u, 8})[[.., 4..19]])

          Nx.add(Nx.multiply(dm[[.., 0..0]], n), dm[[.., 1..1]])
          |> Nx.reshape(info.shape)

        other ->
          raise ArgumentError,
                "Emily.GGUF: tensor #{name} has ggml type #{other}, which Emily.GGUF does not " <>
                  "read (F32, F16, BF16, Q8_0, Q4_0 and Q4_1 are read)"
      end
    end

    @doc """
    The matrix `name`, stored as Q4_0, Q4_1 or Q8_0, as an `Emily.Quantized` matrix in MLX's
    affine layout (groups of 32 columns; 4 or 8 bits), without dequantizing it. GGUF's
    blocks of 32 are MLX's groups, and a block's `d` (and `m`) give its scale and bias:

    | type | scale | bias | code of element `i` |
    |---|---|---|---|
    | `Q4_0` | `d` | `-8 * d` | `n[i]` (value `d * n[i] - 8 * d = d * (n[i] - 8)`) |
    | `Q4_1` | `d` | `m` | `n[i]` |
    | `Q8_0` | `d` | `-128 * d` | `q[i] + 128` (the byte with its top bit flipped) |

    Scales and biases are f32 (`d` and `m` are f16, widened exactly, and `-8 * d`, `-128 * d`
    are exact), so `Emily.Quantized.dequantize/2` gives the values of `tensor/3`, bit for
    bit. The codes are repacked (GGUF keeps element `i` and `i + 16` of a block in one byte,
    MLX packs them in order, eight to a `u32`): the result is new memory, half a byte (Q4)
    or a byte (Q8) per element plus 8 bytes per block, computed by MLX ops on the mapped
    file. Other types raise `ArgumentError`. Options: `:backend` as for `tensor/3`.
    """
    @spec quantized(t(), String.t(), keyword()) :: Emily.Quantized.t()
    def quantized(%__MODULE__{} = gguf, name, opts \\ []) do
      info = info!(gguf, name)

      unless quantizable?(info) do
        raise ArgumentError,
              "Emily.GGUF.quantized: tensor #{name} (#{info.type}, shape #{inspect(info.shape)}) " <>
                "is not a Q4_0, Q4_1 or Q8_0 matrix"
      end

      backend_opts = Keyword.get(opts, :backend, [])
      mapped = fn shape, type -> mapped(gguf, info, shape, type, backend_opts) end
      {rows, cols} = {elem(info.shape, 0), elem(info.shape, 1)}
      blocks = div(rows * cols, 32)

      f16 = fn t ->
        t |> Nx.bitcast({:f, 16}) |> Nx.as_type({:f, 32}) |> Nx.reshape({rows, :auto})
      end

      {bits, codes, scales, biases} =
        case info.type do
          :q8_0 ->
            d = f16.(mapped.({blocks, 17}, {:u, 16})[[.., 0]])
            q = mapped.({blocks, 34}, {:u, 8})[[.., 2..33]] |> Nx.bitwise_xor(0x80)
            {8, q, d, Nx.multiply(d, -128)}

          :q4_0 ->
            d = f16.(mapped.({blocks, 9}, {:u, 16})[[.., 0]])
            {4, in_order(mapped.({blocks, 18}, {:u, 8})[[.., 2..17]]), d, Nx.multiply(d, -8)}

          :q4_1 ->
            dm = mapped.({blocks, 10}, {:u, 16})
            qs = mapped.({blocks, 20}, {:u, 8})[[.., 4..19]]
            {4, in_order(qs), f16.(dm[[.., 0]]), f16.(dm[[.., 1]])}
        end

      %Emily.Quantized{
        weight: words(codes, rows),
        scales: scales,
        biases: biases,
        bits: bits,
        group_size: 32
      }
    end

    @doc "Whether `quantized/3` reads the tensor `info` (a Q4_0, Q4_1 or Q8_0 matrix)."
    @spec quantizable?(tensor_info()) :: boolean()
    def quantizable?(%{type: type, shape: shape}),
      do: type in [:q4_0, :q4_1, :q8_0] and tuple_size(shape) == 2

    # {blocks, 16} u8 of GGUF's nibbles (byte j: element j low, element j + 16 high) ->
    # {blocks, 16} u8 with elements 2k (low) and 2k + 1 (high) in byte k, MLX's order.
    defp in_order(qs) do
      n = qs |> codes() |> Nx.reshape({elem(qs.shape, 0), 16, 2})
      Nx.bitwise_or(n[[.., .., 0]], Nx.left_shift(n[[.., .., 1]], 4))
    end

    # u8 bytes, row after row -> {rows, bytes / 4} little-endian u32 words.
    defp words(bytes, rows) do
      backend = {Emily.Backend, device: Emily.Backend.Core.device(bytes)}
      shifts = Nx.tensor([0, 8, 16, 24], type: {:u, 32}, backend: backend)

      bytes
      |> Nx.reshape({rows, :auto, 4})
      |> Nx.as_type({:u, 32})
      |> Nx.left_shift(shifts)
      |> Nx.sum(axes: [2])
      |> Nx.as_type({:u, 32})
    end

    @doc "A metadata value, raising `ArgumentError` naming the key when it is absent."
    @spec fetch_metadata!(t(), String.t()) :: term()
    def fetch_metadata!(%__MODULE__{metadata: m, path: path}, key) do
      case Map.fetch(m, key) do
        {:ok, v} -> v
        :error -> raise ArgumentError, "Emily.GGUF: #{path} has no metadata key #{inspect(key)}"
      end
    end

    # {blocks, 16} u8 -> {blocks, 32} f32: low nibbles (elements 0..15), then high (16..31).
    defp info!(gguf, name) do
      Map.get(gguf.tensors, name) ||
        raise ArgumentError, "Emily.GGUF: no tensor named #{inspect(name)} in #{gguf.path}"
    end

    defp nibbles(qs), do: qs |> codes() |> Nx.as_type({:f, 32})

    # {blocks, 16} u8 -> {blocks, 32} u8 codes in element order: low nibbles (elements
    # 0..15), then high (16..31).
    defp codes(qs), do: Nx.concatenate([Nx.bitwise_and(qs, 0x0F), Nx.right_shift(qs, 4)], axis: 1)

    defp mapped(gguf, info, shape, type, backend_opts) do
      device = Keyword.get(backend_opts, :device, Emily.Worker.default_device())
      Emily.Backend.Core.mmap(gguf.path, info.offset, Nx.template(shape, type), device)
    end

    defp nx_type(:f32), do: {:f, 32}
    defp nx_type(:f16), do: {:f, 16}
    defp nx_type(:bf16), do: {:bf, 16}
    defp nx_type(:f64), do: {:f, 64}
    defp nx_type(:i8), do: {:s, 8}
    defp nx_type(:i16), do: {:s, 16}
    defp nx_type(:i32), do: {:s, 32}
    defp nx_type(:i64), do: {:s, 64}

    defp float?(t), do: t in [:f32, :f16, :bf16, :f64]

    defp align(n, a), do: div(n + a - 1, a) * a

    ## Header parsing

    defp read_header!(path, size, chunk) do
      bytes = File.open!(path, [:read, :binary], &IO.binread(&1, chunk))

      try do
        parse_header!(bytes, path)
      catch
        :short when chunk < size -> read_header!(path, size, min(size, chunk * 4))
        :short -> raise ArgumentError, "Emily.GGUF: #{path} ends inside its header"
      end
    end

    defp parse_header!(<<"GGUF", version::little-32, rest::binary>> = all, path) do
      unless version in [2, 3] do
        raise ArgumentError, "Emily.GGUF: #{path} is GGUF version #{version}; 2 and 3 are read"
      end

      {tensor_count, rest} = u64(rest)
      {kv_count, rest} = u64(rest)
      {metadata, rest} = take(kv_count, rest, &kv/1)
      {infos, rest} = take(tensor_count, rest, &tensor_info/1)

      %{
        version: version,
        metadata: Map.new(metadata),
        infos: infos,
        consumed: byte_size(all) - byte_size(rest)
      }
    end

    defp parse_header!(_, path),
      do: raise(ArgumentError, "Emily.GGUF: #{path} is not a GGUF file")

    defp take(n, rest, fun), do: take(n, rest, fun, [])
    defp take(0, rest, _fun, acc), do: {Enum.reverse(acc), rest}

    defp take(n, rest, fun, acc) do
      {item, rest} = fun.(rest)
      take(n - 1, rest, fun, [item | acc])
    end

    defp kv(rest) do
      {key, rest} = string(rest)
      {type, rest} = u32(rest)
      {value, rest} = value(type, rest)
      {{key, value}, rest}
    end

    defp tensor_info(rest) do
      {name, rest} = string(rest)
      {n_dims, rest} = u32(rest)
      {dims, rest} = take(n_dims, rest, &u64/1)
      {type, rest} = u32(rest)
      {offset, rest} = u64(rest)
      {{name, dims, type, offset}, rest}
    end

    defp value(0, <<v::8, r::binary>>), do: {v, r}
    defp value(1, <<v::signed-8, r::binary>>), do: {v, r}
    defp value(2, <<v::little-16, r::binary>>), do: {v, r}
    defp value(3, <<v::little-signed-16, r::binary>>), do: {v, r}
    defp value(4, <<v::little-32, r::binary>>), do: {v, r}
    defp value(5, <<v::little-signed-32, r::binary>>), do: {v, r}
    defp value(6, <<v::little-float-32, r::binary>>), do: {v, r}
    defp value(7, <<v::8, r::binary>>), do: {v != 0, r}
    defp value(8, r), do: string(r)

    defp value(9, r) do
      {type, r} = u32(r)
      {n, r} = u64(r)
      take(n, r, &value(type, &1))
    end

    defp value(10, <<v::little-64, r::binary>>), do: {v, r}
    defp value(11, <<v::little-signed-64, r::binary>>), do: {v, r}
    defp value(12, <<v::little-float-64, r::binary>>), do: {v, r}

    defp value(type, r) when type in 0..12 and byte_size(r) < 8, do: throw(:short)

    defp value(type, _),
      do: raise(ArgumentError, "Emily.GGUF: unknown metadata value type #{type}")

    defp string(<<n::little-64, s::binary-size(n), r::binary>>), do: {s, r}
    defp string(_), do: throw(:short)

    defp u32(<<v::little-32, r::binary>>), do: {v, r}
    defp u32(_), do: throw(:short)
    defp u64(<<v::little-64, r::binary>>), do: {v, r}
    defp u64(_), do: throw(:short)
  end
end
