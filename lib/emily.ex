defmodule Emily do
  @moduledoc """
  Elixir bindings for Apple's [MLX](https://github.com/ml-explore/mlx), and the core of
  `Emily.Backend` (an Nx backend) and `Emily.Compiler` (an Nx.Defn compiler).

  Tensors here are handles to MLX arrays. They are lazy: ops build a graph and nothing is
  computed until `eval/1` or `to_binary/1`. Data crosses into the BEAM without a copy:
  `to_binary/1` returns a binary that points into MLX's buffer, and MLX is kept from
  writing into that buffer for as long as the binary lives.

      iex> t = Emily.from_binary(<<1.0::float-32-native, 2.0::float-32-native>>, {2}, {:f, 32})
      iex> Emily.shape(t)
      {2}
      iex> Emily.dtype(t)
      {:f, 32}
      iex> Emily.to_binary(t)
      <<1.0::float-32-native, 2.0::float-32-native>>

  Types are Nx's type tuples: `{:u, 8}` ... `{:u, 64}`, `{:s, 8}` ... `{:s, 64}`,
  `{:f, 16}`, `{:bf, 16}`, `{:f, 32}`, `{:f, 64}` (CPU only), `{:c, 64}`, and `:bool` for
  MLX's boolean arrays.
  """

  alias Emily.{Native, Telemetry, Worker}

  @type tensor :: reference()
  @type type :: {:u | :s | :f | :bf | :c, pos_integer()} | :bool

  @doc """
  Creates a tensor from `binary` holding the elements of `shape` (a tuple) in row-major
  order, in native endianness. The byte size must match exactly.

      iex> Emily.from_binary(<<1, 2, 3>>, {3}, {:u, 8}) |> Emily.to_binary()
      <<1, 2, 3>>

      iex> Emily.from_binary(<<1, 2, 3>>, {2}, {:u, 8})
      ** (ArgumentError) from_binary: binary has 3 bytes but shape and dtype need 2 (inputs: 3 bytes, shape=[2], dtype=u8)
  """
  @spec from_binary(binary(), tuple(), type()) :: tensor()
  def from_binary(binary, shape, type) when is_binary(binary) and is_tuple(shape) do
    Native.from_binary(
      binary,
      Tuple.to_list(shape),
      native_type!(type, :from_binary),
      Worker.current()
    )
  end

  def from_binary(binary, shape, type) do
    raise ArgumentError,
          "from_binary: expected a binary, a shape tuple and a type, got: " <>
            "#{inspect(binary, limit: 5)}, #{inspect(shape)}, #{inspect(type)}"
  end

  @doc """
  Evaluates `tensor` and returns its bytes (row-major, native endianness).

  No copy is made: the binary points into MLX's buffer, which stays alive (and is never
  written into) while the binary lives. A non-contiguous tensor (a transposed, sliced or
  broadcast view) is first made contiguous in MLX: one copy, on the worker.
  """
  @spec to_binary(tensor()) :: binary()
  def to_binary(tensor) do
    Telemetry.span(:to_binary, %{shape: shape(tensor), dtype: dtype(tensor)}, fn ->
      ref = make_ref()
      :ok = Native.to_binary(tensor, ref)
      Worker.await(ref)
    end)
  end

  @doc "The shape of `tensor`, as a tuple. Reads metadata only: nothing is evaluated."
  @spec shape(tensor()) :: tuple()
  def shape(tensor), do: tensor |> Native.shape() |> List.to_tuple()

  @doc "The type of `tensor`. Reads metadata only: nothing is evaluated."
  @spec dtype(tensor()) :: type()
  def dtype(tensor), do: tensor |> Native.dtype() |> nx_type()

  @doc """
  Evaluates `tensor` (or a list of tensors) on its worker and returns `:ok`.

      iex> t = Emily.from_binary(<<1, 2>>, {2}, {:u, 8})
      iex> Emily.eval(t)
      :ok
  """
  @spec eval(tensor() | [tensor()]) :: :ok
  def eval(tensors) do
    tensors = List.wrap(tensors)

    Telemetry.span(:eval, %{count: length(tensors)}, fn ->
      ref = make_ref()
      :ok = Native.eval(tensors, ref)
      Worker.await(ref)
    end)
  end

  @doc """
  MLX's memory figures and the bridge's ledger, in bytes and counts:

    * `:active`, `:peak`, `:cache`, `:limit` - MLX's allocator
    * `:handles`, `:handle_bytes` - tensor handles alive in the BEAM and their arrays' size
    * `:aliased_buffers`, `:aliased_bytes`, `:live_aliases` - MLX buffers aliased by BEAM
      binaries now
    * `:aliases_created`, `:aliases_released`, `:donations_prevented`
    * `:bytes_copied` - bytes copied by `from_binary/3` and non-contiguous `to_binary/1`
  """
  @spec memory_stats() :: map()
  def memory_stats, do: Native.memory_stats()

  @doc false
  def native_type!(type, op) do
    case type do
      :bool -> :bool
      {:u, b} when b in [8, 16, 32, 64] -> :"u#{b}"
      {:s, b} when b in [8, 16, 32, 64] -> :"s#{b}"
      {:f, b} when b in [16, 32, 64] -> :"f#{b}"
      {:bf, 16} -> :bf16
      {:c, 64} -> :c64
      other -> raise ArgumentError, "#{op}: unsupported type #{inspect(other)}"
    end
  end

  @doc false
  def nx_type(:bool), do: :bool
  def nx_type(:bf16), do: {:bf, 16}

  def nx_type(atom) do
    <<kind, bits::binary>> = Atom.to_string(atom)
    {String.to_existing_atom(<<kind>>), String.to_integer(bits)}
  end
end
