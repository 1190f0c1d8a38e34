defmodule Emily do
  @moduledoc """
  Elixir bindings for Apple's [MLX](https://github.com/ml-explore/mlx), and the core of
  `Emily.Backend` (an Nx backend) and `Emily.Compiler` (an Nx.Defn compiler).

  Tensors here are handles to MLX arrays. They are lazy: ops build a graph and nothing is
  computed until `eval/1` or `to_binary/1`. Data crosses between the BEAM and MLX without
  copies: `to_binary/1` returns a binary that points into MLX's buffer, and MLX is kept from
  writing into that buffer for as long as the binary lives; `from_binary/3` of a large
  binary and `mmap/4` wrap the binary or the file mapping as an MLX buffer.

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

  Memory: see `memory_stats/0` and `Emily.Memory` (limits, the MLX cache, and how tensor
  handles, which the BEAM's garbage collector does not see, are collected on time).
  Concurrency: see `Emily.Stream` (a worker of one's own).
  """

  alias Emily.{Native, Telemetry, Worker}

  @type tensor :: reference()
  @type type :: {:u | :s | :f | :bf | :c, pos_integer()} | :bool

  @doc """
  Creates a tensor from `binary` holding the elements of `shape` (a tuple) in row-major
  order, in native endianness. The byte size must match exactly.

  A binary of 64 KiB or more is not copied: the tensor's MLX buffer is the binary's own
  bytes, kept alive (by a reference the NIF holds) until MLX frees the array. MLX never
  writes into it: the buffer is not its allocator's, so it is never reused for an op's
  output. A sub-binary keeps its whole parent binary alive, as in Erlang. Smaller binaries,
  and the rare binary whose bytes are not 8-byte aligned (a sub-binary at an odd offset),
  are copied once. `memory_stats/0` counts both (`:external_made`, `:bytes_copied`).

      iex> Emily.from_binary(<<1, 2, 3>>, {3}, {:u, 8}) |> Emily.to_binary()
      <<1, 2, 3>>

      iex> Emily.from_binary(<<1, 2, 3>>, {2}, {:u, 8})
      ** (ArgumentError) from_binary: binary has 3 bytes but shape and dtype need 2 (inputs: 3 bytes, shape=[2], dtype=u8)
  """
  @spec from_binary(binary(), tuple(), type()) :: tensor()
  def from_binary(binary, shape, type) when is_binary(binary) and is_tuple(shape) do
    dtype = native_type!(type, :from_binary)

    Telemetry.span(:from_binary, %{shape: shape, dtype: type, byte_size: byte_size(binary)}, fn ->
      Native.from_binary(binary, Tuple.to_list(shape), dtype, Worker.current())
    end)
  end

  def from_binary(binary, shape, type) do
    raise ArgumentError,
          "from_binary: expected a binary, a shape tuple and a type, got: " <>
            "#{inspect(binary, limit: 5)}, #{inspect(shape)}, #{inspect(type)}"
  end

  @doc """
  Maps `shape` and `type`'s bytes of the file at `path`, from byte `offset`, as a tensor:
  no copy and no read until the data is used (the pages are read by the OS on first
  access), the mapping kept until MLX frees the array. Suited to weights files: for a
  safetensors tensor, `offset` is 8 + the header length + the tensor's start offset.

  The mapping is read-only and MLX never writes into it. The file must not be truncated
  while the tensor lives (reading a truncated mapping crashes the VM, as with any mmap).
  When `offset` is not a multiple of 8 the data is copied once instead.
  """
  @spec mmap(Path.t(), non_neg_integer(), tuple(), type()) :: tensor()
  def mmap(path, offset, shape, type)
      when (is_binary(path) or is_list(path)) and is_integer(offset) and offset >= 0 and
             is_tuple(shape) do
    dtype = native_type!(type, :mmap)
    path = IO.chardata_to_string(path)

    Telemetry.span(:mmap, %{shape: shape, dtype: type, path: path}, fn ->
      Native.mmap_file(path, offset, Tuple.to_list(shape), dtype, Worker.current())
    end)
  end

  def mmap(path, offset, shape, type) do
    raise ArgumentError,
          "mmap: expected a path, a non-negative offset, a shape tuple and a type, got: " <>
            "#{inspect(path)}, #{inspect(offset)}, #{inspect(shape)}, #{inspect(type)}"
  end

  @doc """
  Evaluates `tensor` and returns its bytes (row-major, native endianness).

  No copy is made: the binary is a resource binary pointing into MLX's buffer. While any
  such binary lives, the buffer stays allocated and MLX never writes into it (the bridge's
  ledger holds a reference that keeps MLX from donating it to an op's output); it is freed
  once the binaries and the tensor are collected. The BEAM charges the binary's full size to
  the receiving process's binary heap, so holding many of them triggers collections as for
  any large binary.

  A tensor that is a strided view (transposed, broadcast, sliced with steps) is made
  contiguous first: one copy, made by MLX on the worker (counted in `memory_stats/0`'s
  `:bytes_copied`), then aliased the same way.

  Inputs built on other workers (see `Emily.Stream`) are evaluated on their own workers
  first.
  """
  @spec to_binary(tensor()) :: binary()
  def to_binary(tensor) do
    {shape, dtype} = describe!(tensor, :to_binary)

    Telemetry.span(:to_binary, %{shape: shape, dtype: dtype}, fn ->
      ref = make_ref()
      :ok = Native.to_binary(tensor, ref)
      Worker.await(ref)
    end)
  end

  @doc "The shape of `tensor`, as a tuple. Reads metadata only: nothing is evaluated."
  @spec shape(tensor()) :: tuple()
  def shape(tensor), do: tensor |> native(:shape, &Native.shape/1) |> List.to_tuple()

  @doc "The type of `tensor`. Reads metadata only: nothing is evaluated."
  @spec dtype(tensor()) :: type()
  def dtype(tensor), do: tensor |> native(:dtype, &Native.dtype/1) |> nx_type()

  @doc """
  Evaluates `tensor` (or a list of tensors) and returns `:ok`. Tensors of several workers,
  and inputs built on other workers, are each evaluated on their own worker.

      iex> t = Emily.from_binary(<<1, 2>>, {2}, {:u, 8})
      iex> Emily.eval(t)
      :ok
  """
  @spec eval(tensor() | [tensor()]) :: :ok
  def eval(tensors) do
    tensors = List.wrap(tensors)
    Enum.each(tensors, &describe!(&1, :eval))

    Telemetry.span(:eval, %{count: length(tensors)}, fn ->
      ref = make_ref()
      :ok = Native.eval(tensors, ref)
      Worker.await(ref)
    end)
  end

  @doc """
  MLX's memory figures, the bridge's ledger and the GC accounting, in bytes and counts:

    * `:active`, `:peak`, `:cache`, `:limit` - MLX's allocator: bytes in use, the most in
      use since start or `Emily.Memory.reset_peak/0`, bytes kept for reuse, the limit
    * `:handles`, `:handle_bytes` - tensor handles alive in the BEAM and their arrays'
      (nominal) size: memory the BEAM's garbage collector does not see
    * `:gc_pressure`, `:gc_threshold`, `:pressure_signals`, `:gc_requests` - the GC
      accounting (see `Emily.Memory`): whether it is on, its threshold, how often the NIF
      asked for collections and how many process collections `Emily.Memory.Pressure`
      requested
    * `:aliased_buffers`, `:aliased_bytes`, `:live_aliases` - MLX buffers aliased by BEAM
      binaries from `to_binary/1` now, their bytes and the binaries' count
    * `:aliases_created`, `:aliases_released` - since start
    * `:donations_prevented` - evaluations in which MLX would have written an op's output
      into a buffer aliased by a live binary, had the ledger not held it (the input's only
      other owner was the ledger)
    * `:bytes_reported` - bytes of the binaries `to_binary/1` made: what the BEAM charged to
      processes' binary heaps
    * `:bytes_copied` - bytes copied crossing the bridge (small or unaligned `from_binary/3`
      inputs, strided tensors made contiguous by `to_binary/1`)
    * `:external_aliasing` - whether MLX's allocator allows wrapping BEAM memory (checked at
      run time; when not, `from_binary/3` and `mmap/4` copy)
    * `:external_arrays`, `:external_bytes` - MLX arrays aliasing BEAM binaries or file
      mappings now, and their bytes (not in `:active`: MLX did not allocate them);
      `:external_made` - such arrays made since start
    * `:malloc_mmap_threshold` - the C library's mmap threshold Emily set (glibc; see
      `Emily.Memory`), `nil` when it set none
  """
  @spec memory_stats() :: map()
  def memory_stats do
    Map.put(Native.memory_stats(), :gc_requests, Emily.Memory.Pressure.requests())
  end

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

  # {shape, type} of a tensor, or an ArgumentError naming `op` for anything else.
  defp describe!(tensor, op) do
    {native(tensor, op, &Native.shape/1) |> List.to_tuple(),
     native(tensor, op, &Native.dtype/1) |> nx_type()}
  end

  defp native(tensor, op, fun) do
    fun.(tensor)
  rescue
    e in ArgumentError ->
      if e.message == "argument error",
        do: raise(ArgumentError, not_a_tensor(op, tensor)),
        else: reraise(e, __STACKTRACE__)
  end

  @doc false
  # The message for a term that is not a tensor of this VM.
  def not_a_tensor(op, ref) when is_reference(ref) and node(ref) != node() do
    "#{op}: #{inspect(ref)} is a tensor of node #{node(ref)}; tensors live in their own " <>
      "VM's MLX memory and do not cross nodes: send Nx.backend_copy(tensor, Nx.BinaryBackend) " <>
      "instead"
  end

  def not_a_tensor(op, other), do: "#{op}: expected a tensor, got: #{inspect(other, limit: 5)}"
end
