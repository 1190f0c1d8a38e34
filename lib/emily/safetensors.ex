if Code.ensure_loaded?(Nx) do
  defmodule Emily.Safetensors do
    @moduledoc """
    Reads `.safetensors` files (Hugging Face's weights container) as `Nx` tensors on
    `Emily.Backend` that alias the file: each tensor is mapped with `Emily.mmap/4`, so
    reading a file copies nothing and reads no data; the OS reads a tensor's pages when
    MLX first uses them, and they stay shared with the page cache.

        tensors = Emily.Safetensors.read!("model.safetensors")
        tensors["embeddings.word_embeddings.weight"]
        #=> #Nx.Tensor<f32[30522][384] Emily.Backend ...>

    ## With Bumblebee

    `Bumblebee.load_model/2` takes the reader as its `:safetensors_reader` option:

        Bumblebee.load_model({:hf, "sentence-transformers/all-MiniLM-L6-v2"},
          backend: Emily.Backend,
          safetensors_reader: &Emily.Safetensors.read!/1
        )

    Bumblebee's default reader (`Safetensors.read!(path, lazy: true)`) reads each tensor's
    bytes into a binary; this one maps them. Bumblebee's conversions still apply on top:
    dense kernels are transposed (a view in MLX; its matmul reads it as it is) and a
    tensor whose type differs from the model's (`bf16` weights into an `f32` model, or
    `:type` given to `load_model`) is converted, which makes a new array.

    ## The format

    An 8-byte little-endian header length `n`, `n` bytes of JSON naming each tensor's
    `dtype`, `shape` and `data_offsets` (`[begin, end)`, relative to the byte after the
    header), and an optional `"__metadata__"` map of strings; the data follows. The types
    read are `F64`, `F32`, `F16`, `BF16`, `I64`, `I32`, `I16`, `I8`, `U64`, `U32`, `U16`,
    `U8` and `BOOL`; others (the `F8_*` types, which MLX lacks) raise `ArgumentError`
    naming the tensor, as does any header that does not fit the file.

    A tensor whose data does not start at a multiple of 8 bytes in the file (an odd-sized
    tensor before it; writers pad the header, not the tensors) is copied once into MLX
    memory instead, counted in `Emily.memory_stats/0`'s `:bytes_copied`, as
    `Emily.mmap/4` does.
    """

    @enforce_keys [:path, :metadata, :tensors, :data_offset]
    defstruct [:path, :metadata, :tensors, :data_offset]

    @type tensor_info :: %{
            type: Nx.Type.t(),
            shape: tuple(),
            offset: non_neg_integer(),
            byte_size: non_neg_integer()
          }
    @type t :: %__MODULE__{
            path: String.t(),
            metadata: %{String.t() => String.t()},
            tensors: %{String.t() => tensor_info()},
            data_offset: non_neg_integer()
          }

    # the format's own bound on the header (safetensors' MAX_HEADER_SIZE)
    @max_header 100_000_000

    @types %{
      "F64" => {:f, 64},
      "F32" => {:f, 32},
      "F16" => {:f, 16},
      "BF16" => {:bf, 16},
      "I64" => {:s, 64},
      "I32" => {:s, 32},
      "I16" => {:s, 16},
      "I8" => {:s, 8},
      "U64" => {:u, 64},
      "U32" => {:u, 32},
      "U16" => {:u, 16},
      "U8" => {:u, 8},
      "BOOL" => {:u, 8}
    }

    @doc """
    Reads the header of the file at `path`: its metadata and, for each tensor, the Nx
    type, shape, absolute byte offset and byte size. Reads only the header's bytes.
    """
    @spec header!(Path.t()) :: t()
    def header!(path) do
      path = Path.expand(path)
      size = file_size!(path)

      File.open(path, [:read, :binary, :raw], fn io ->
        n =
          case :file.pread(io, 0, 8) do
            {:ok, <<n::little-unsigned-64>>} -> n
            _ -> fail!(path, "is #{size} bytes, shorter than the 8-byte header length")
          end

        if n > @max_header or n > size - 8 do
          fail!(path, "declares a #{n}-byte header in a #{size}-byte file")
        end

        json =
          case :file.pread(io, 8, n) do
            {:ok, json} when byte_size(json) == n -> json
            _ -> fail!(path, "ends inside its #{n}-byte header")
          end

        parse_header!(path, json, 8 + n, size)
      end)
      |> case do
        {:ok, header} -> header
        {:error, reason} -> fail!(path, "cannot be opened: #{:file.format_error(reason)}")
      end
    end

    @doc """
    Reads every tensor of the file at `path` as a map of name to `Nx` tensor on
    `Emily.Backend`, aliasing the file (see the moduledoc).

    Options:

      * `:only` - a list of tensor names to read (each must exist); the rest are left
      * `:device` - `:cpu` or `:gpu`, the device of the tensors' worker; the default
        device otherwise
    """
    @spec read!(Path.t() | t(), keyword()) :: %{String.t() => Nx.Tensor.t()}
    def read!(path_or_header, opts \\ [])

    def read!(%__MODULE__{} = header, opts) do
      opts = Keyword.validate!(opts, [:only, :device])
      device = opts[:device] || Emily.Worker.default_device()

      infos =
        case opts[:only] do
          nil ->
            header.tensors

          names when is_list(names) ->
            Map.new(names, fn name ->
              info =
                Map.get(header.tensors, name) ||
                  fail!(header.path, "has no tensor named #{inspect(name)}")

              {name, info}
            end)

          other ->
            raise ArgumentError,
                  "Emily.Safetensors.read!: :only must be a list of tensor names, got: " <>
                    inspect(other)
        end

      Map.new(infos, fn {name, %{type: type, shape: shape, offset: offset}} ->
        {name, Emily.Backend.Core.mmap(header.path, offset, Nx.template(shape, type), device)}
      end)
    end

    def read!(path, opts), do: path |> header!() |> read!(opts)

    ## Header parsing

    defp parse_header!(path, json, data_offset, size) do
      entries =
        case decode_json(json) do
          {:ok, %{} = entries} -> entries
          {:ok, other} -> fail!(path, "has a header that is not a JSON object: #{short(other)}")
          {:error, why} -> fail!(path, "has a header that is not JSON (#{why})")
        end

      {metadata, entries} = Map.pop(entries, "__metadata__", %{})

      unless is_map(metadata) and Enum.all?(metadata, fn {_k, v} -> is_binary(v) end) do
        fail!(path, "has __metadata__ that is not a map of strings: #{short(metadata)}")
      end

      data_size = size - data_offset

      tensors =
        Map.new(entries, fn {name, entry} ->
          {name, tensor_info!(path, name, entry, data_offset, data_size)}
        end)

      %__MODULE__{path: path, metadata: metadata, tensors: tensors, data_offset: data_offset}
    end

    defp tensor_info!(
           path,
           name,
           %{"dtype" => dtype, "shape" => shape, "data_offsets" => [first, last]},
           data_offset,
           data_size
         )
         when is_list(shape) and is_integer(first) and is_integer(last) do
      type =
        Map.get(@types, dtype) ||
          fail!(
            path,
            "has tensor #{inspect(name)} of dtype #{inspect(dtype)}; the dtypes read are " <>
              Enum.join(Enum.sort(Map.keys(@types)), ", ")
          )

      unless Enum.all?(shape, &(is_integer(&1) and &1 >= 0)) do
        fail!(path, "has tensor #{inspect(name)} with shape #{inspect(shape)}")
      end

      {_, bits} = type
      bytes = Enum.product(shape) * div(bits, 8)

      unless 0 <= first and first <= last and last <= data_size and last - first == bytes do
        fail!(
          path,
          "has tensor #{inspect(name)} (#{dtype} #{inspect(shape)}, #{bytes} bytes) at " <>
            "data offsets [#{first}, #{last}), outside its #{data_size} bytes of data " <>
            "or not its size"
        )
      end

      %{type: type, shape: List.to_tuple(shape), offset: data_offset + first, byte_size: bytes}
    end

    defp tensor_info!(path, name, entry, _data_offset, _data_size) do
      fail!(
        path,
        "has tensor #{inspect(name)} whose entry is not {dtype, shape, data_offsets}: " <>
          short(entry)
      )
    end

    # Elixir's JSON (1.18) where it exists, else Jason (Bumblebee's and safetensors'
    # dependency).
    defp decode_json(json) do
      cond do
        Code.ensure_loaded?(JSON) ->
          case apply(JSON, :decode, [json]) do
            {:ok, term} -> {:ok, term}
            {:error, why} -> {:error, inspect(why)}
          end

        Code.ensure_loaded?(Jason) ->
          case apply(Jason, :decode, [json]) do
            {:ok, term} -> {:ok, term}
            {:error, e} -> {:error, Exception.message(e)}
          end

        true ->
          raise ArgumentError,
                "Emily.Safetensors needs a JSON decoder: Elixir 1.18's JSON or :jason"
      end
    end

    defp file_size!(path) do
      case File.stat(path) do
        {:ok, %{type: :regular, size: size}} -> size
        {:ok, %{type: type}} -> fail!(path, "is a #{type}, not a regular file")
        {:error, reason} -> fail!(path, "cannot be read: #{:file.format_error(reason)}")
      end
    end

    defp short(term), do: inspect(term, limit: 8, printable_limit: 80)

    defp fail!(path, what), do: raise(ArgumentError, "Emily.Safetensors: #{path} #{what}")
  end
end
