defmodule Emily do
  @moduledoc """
  Elixir bindings for Apple's [MLX](https://github.com/ml-explore/mlx), and the core of
  `Emily.Backend` (an Nx backend) and `Emily.Compiler` (an Nx.Defn compiler).

  Most code goes through Nx, with `Emily.Backend` as its backend and `Emily.Compiler` for
  `defn` and `Nx.Serving`. This module is the layer under them: tensors as handles to MLX
  arrays, built from raw bytes and read back, for diagnostics and direct round trips.

  Tensors are lazy: ops build a graph and nothing is computed until `eval/1` or
  `to_binary/1`. Data crosses between the BEAM and MLX without copies: `to_binary/1` returns
  a binary that points into MLX's buffer, and MLX is kept from writing into that buffer for
  as long as the binary lives; `from_binary/3` of a large binary and `mmap/4` wrap the
  binary or the file mapping as an MLX buffer.

      iex> t = Emily.from_binary(<<1.0::float-32-native, 2.0::float-32-native>>, [2], {:f, 32})
      iex> Emily.shape(t)
      [2]
      iex> Emily.dtype(t)
      {:f, 32}
      iex> Emily.to_binary(t)
      <<1.0::float-32-native, 2.0::float-32-native>>

  ## Functions

    * `from_binary/3` - a binary to a tensor
    * `to_binary/1` - evaluates a tensor and returns its bytes (`[:emily, :to_binary, *]`
      telemetry span)
    * `shape/1`, `dtype/1` - metadata, without evaluating
    * `eval/1` - evaluates a tensor or a list of tensors (`[:emily, :eval, *]` span)

  and, beyond those:

    * `mmap/4` - a region of a file as a tensor
    * `async_eval/1` - starts evaluating tensors without waiting for the result
    * `memory_stats/0` - MLX's memory figures and Emily's accounting

  `Emily.Native` has one function per MLX op on these tensors (with the worker, the MLX
  stream, as their last argument: `Emily.Worker.current/0`); `Emily.Memory` has the memory
  controls, `Emily.Stream` a worker of one's own, `Emily.Telemetry` the events.

  An `Nx.Tensor` on `Emily.Backend` holds its handle in `tensor.data.ref` (see `eval/1`'s
  example).

  ## Shapes and types

  A shape is a list of dimensions, each an integer from 0 to 2^31 - 1 (MLX's dimensions are
  32-bit); `[]` is a scalar. Functions that take a shape accept a tuple as well, as Nx writes
  shapes (`{2, 2}` is `[2, 2]`); `shape/1` returns a list.

  A type is an Nx type tuple (`t:dtype/0`), among those MLX holds: `{:u, 8}` ... `{:u, 64}`,
  `{:s, 8}` ... `{:s, 64}`, `{:f, 16}`, `{:bf, 16}`, `{:f, 32}`, `{:f, 64}` (CPU only),
  `{:c, 64}`. Beyond Nx's types, `:bool` is MLX's boolean type (one byte per element, 0 or
  1): ops such as comparisons produce it, and `from_binary/3`, `mmap/4` and `dtype/1` take
  and give it. Nx types MLX lacks (`{:u, 2}`, `{:u, 4}`, `{:s, 2}`, `{:s, 4}`, `{:f, 8}`,
  `{:f8_e4m3fn, 8}`, `{:c, 128}`) raise `ArgumentError` here; `Emily.Backend` keeps the
  first six in a wider MLX type.

  ## Errors

  Every function here raises `ArgumentError` for a bad argument, naming the function, the
  argument and what it must be:

      iex> Emily.from_binary(<<1>>, [2 ** 40], {:u, 8})
      ** (ArgumentError) from_binary: shape must be a list (or a tuple) of integers from 0 to 2147483647, got: [1099511627776]

      iex> Emily.to_binary(:not_a_tensor)
      ** (ArgumentError) to_binary: tensor must be an Emily tensor (a handle to an MLX array), got: :not_a_tensor

  Failures while evaluating (a memory limit, a numerical failure MLX reports) raise
  `Emily.Error`.

  ## Memory accounting

  MLX's buffers live outside the BEAM's heaps. What the BEAM knows of them:

    * A binary from `to_binary/1` is a resource binary over the MLX buffer. ERTS charges its
      full size to the binary virtual heap of the process that receives it (the
      `:bin_vheap_size` of `:erlang.process_info(pid, :garbage_collection_info)` grows by
      its size in words), so that process collects for it as for any large binary: a loop
      reading large tensors and dropping the binaries stays bounded without help. (It is a
      NIF resource's binary: `:erlang.process_info(pid, :binary)` does not list it and
      `:erlang.memory(:binary)` does not count it; `memory_stats/0`'s `:aliased_bytes` and
      `:live_aliases` do.)
    * The buffer stays allocated while any such binary or the tensor lives, and is released
      once both are collected (`memory_stats/0`'s `:aliased_buffers` falls back).
    * A tensor handle is charged to its process as a few words (the term, and its NIF
      resource's own struct in the binary virtual heap), however large its array. Emily
      counts the handles' bytes per process that made them (`memory_stats/0`'s
      `:handles` and `:handle_bytes`, `Emily.Memory.handle_bytes/1`), and when they grow by
      the GC threshold `Emily.Memory.Pressure` asks the largest holders to collect (see
      `Emily.Memory`).

  To release a buffer sooner than the next collection: collect (`:erlang.garbage_collect/0`)
  after dropping the binary; read it in a short-lived process, whose binaries go when it
  exits; or keep a BEAM-owned copy (`:binary.copy/1`) and drop the original.
  (`tests/elixir/core/memory_accounting_test.exs` checks each of these statements.)

  ## Debug flags

  Two compile-time settings add checks that MLX leaves out (it checks no index values and
  looks for no NaN):

      # config/config.exs of the application using Emily
      import Config
      config :emily, debug_bounds_check: true, debug_detect_nan_inf: true

    * `:debug_bounds_check` - `Nx.gather/3`, `Nx.take/3`, `Nx.take_along_axis/3`,
      `Nx.indexed_add/4` and `Nx.indexed_put/4` on `Emily.Backend` raise `ArgumentError`
      for a negative or out-of-range index (naming the op and the axis size), as
      Nx.BinaryBackend does. Off, reads clamp such indices into range and writes drop their
      updates (see `Emily.Backend`).
    * `:debug_detect_nan_inf` - `Nx.dot/2` in all its forms (MLX's matmul) and
      `Emily.Fast`'s fused RMS norm, layer norm and scaled dot-product attention (with or
      without a mask) on `Emily.Backend` raise `ArgumentError` when their float result holds
      NaN or Inf, naming the op: a numerical failure shows at the op that made it.

  A check evaluates the tensors it looks at (a reduction and a one-byte read), so it costs
  a synchronisation per op. `Emily.Compiler`'s native lanes trace a function without data,
  so a function that meets a check runs on the evaluator lane instead (with an
  `[:emily, :compiler, :fallback]` event), where the check runs.

  Both default to `false`, and then the checks are not compiled in: the modules carry no
  test of the setting at run time (a test reads their BEAM code to show it). They are read
  with `Application.compile_env/3`: a change takes effect when Emily is compiled again.
  """

  alias Emily.{Dtype, Native, Telemetry, Worker}

  @typedoc "A handle to an MLX array."
  @opaque t :: reference()

  @typedoc """
  An Nx type tuple, such as `{:f, 32}` or `{:s, 64}`. Emily also takes and gives `:bool`,
  MLX's boolean type (see "Shapes and types").
  """
  @type dtype :: Nx.Type.t()

  @max_dim 2_147_483_647
  @max_offset 18_446_744_073_709_551_615

  @doc """
  Creates a tensor from `binary`, which holds the elements of `shape` in row-major order and
  native endianness, in `dtype` (an Nx type, or `:bool`). The byte size must match exactly.
  `shape` may also be a tuple (`{2, 2}`), as Nx writes shapes.

  A binary of 64 KiB or more is not copied: the tensor's MLX buffer is the binary's own
  bytes, kept alive (by a reference the NIF holds) until MLX frees the array. MLX never
  writes into it: the buffer is not its allocator's, so it is never reused for an op's
  output. A sub-binary keeps its whole parent binary alive, as in Erlang. Smaller binaries,
  and the rare binary whose bytes are not 8-byte aligned (a sub-binary at an odd offset),
  are copied once. `memory_stats/0` counts both (`:external_made`, `:bytes_copied`).

  Emits `[:emily, :from_binary, :start | :stop | :exception]` (see `Emily.Telemetry`).

  ## Examples

      iex> t = Emily.from_binary(<<1.0::float-32-native>>, [1], {:f, 32})
      iex> Emily.to_binary(t)
      <<1.0::float-32-native>>

      iex> Emily.from_binary(<<1, 2, 3, 4>>, {2, 2}, {:u, 8}) |> Emily.shape()
      [2, 2]

      iex> Emily.from_binary(<<1, 2, 3>>, [2], {:u, 8})
      ** (ArgumentError) from_binary: binary has 3 bytes but shape and dtype need 2 (inputs: 3 bytes, shape=[2], dtype=u8)

  """
  @spec from_binary(binary(), [non_neg_integer()], dtype()) :: t()
  def from_binary(binary, shape, dtype) do
    unless is_binary(binary) do
      bad!(:from_binary, "binary", "a binary (a whole number of bytes)", binary)
    end

    dims = dims!(shape, :from_binary)
    native = Dtype.native_type!(dtype, :from_binary)

    Telemetry.span(:from_binary, %{shape: dims, dtype: dtype, byte_size: byte_size(binary)}, fn ->
      Native.from_binary(binary, dims, native, Worker.current())
    end)
  end

  @doc """
  Maps the bytes of `shape` and `dtype` in the file at `path`, from byte `offset`, as a
  tensor: no copy and no read until the data is used (the pages are read by the OS on first
  access), the mapping kept until MLX frees the array. Suited to weights files: for a
  safetensors tensor, `offset` is 8 + the header length + the tensor's start offset. `shape`
  may also be a tuple.

  The mapping is read-only and MLX never writes into it, and the tensor keeps the bytes it
  was made with whatever happens to the file. On Linux, Emily holds a read lease on each
  mapped file (`fcntl(2)`, `F_SETLEASE`): a process that opens the file for writing or
  truncates it (this VM included) waits while Emily copies the file's live mappings into
  memory (`:bytes_copied`), then goes on; one opening with `O_NONBLOCK`, as `truncate(1)`
  does, gets `EAGAIN` until then. Renaming another file over it or deleting it needs no copy.
  Where the kernel grants no lease (the file is open for writing already, it belongs to
  another user and the VM lacks `CAP_LEASE`, the file system has no leases) the region is
  read into memory instead. Elsewhere the file is mapped without a lease and must not be
  truncated while the tensor lives. When `offset` is not a multiple of 8 the data is copied
  once instead.

  Emits `[:emily, :mmap, :start | :stop | :exception]` (see `Emily.Telemetry`).

  ## Examples

      iex> path = Path.join(System.tmp_dir!(), "emily_mmap_doctest")
      iex> File.write!(path, <<0, 0, 1, 2, 3, 4>>)
      iex> t = Emily.mmap(path, 2, [2, 2], {:u, 8})
      iex> Emily.to_binary(t)
      <<1, 2, 3, 4>>

  """
  @spec mmap(Path.t(), non_neg_integer(), [non_neg_integer()], dtype()) :: t()
  def mmap(path, offset, shape, dtype) do
    path = path!(path)

    unless is_integer(offset) and offset >= 0 and offset <= @max_offset do
      bad!(:mmap, "offset", "a byte position in the file, an integer from 0 to 2^64 - 1", offset)
    end

    dims = dims!(shape, :mmap)
    native = Dtype.native_type!(dtype, :mmap)

    Telemetry.span(:mmap, %{shape: dims, dtype: dtype, path: path, offset: offset}, fn ->
      Native.mmap_file(path, offset, dims, native, Worker.current())
    end)
  end

  @doc """
  Evaluates `tensor` and returns its bytes (row-major, native endianness). `Nx.to_binary/1`
  of a tensor on `Emily.Backend` comes here too.

  No copy is made: the binary is a resource binary pointing into MLX's buffer. While any
  such binary lives, the buffer stays allocated and MLX never writes into it (the bridge's
  ledger holds a reference that keeps MLX from donating it to an op's output), so the binary
  is immutable as any other; the buffer is freed once the binaries and the tensor are
  collected. The BEAM charges the binary's full size to the receiving process's binary
  heap (see "Memory accounting" above).

  A tensor that is a strided view (transposed, broadcast, sliced with steps) is made
  contiguous first: one copy, made by MLX on the worker (counted in `memory_stats/0`'s
  `:bytes_copied`), then aliased the same way.

  Inputs built on other workers (see `Emily.Stream`) are evaluated on their own workers
  first. Emits `[:emily, :to_binary, :start | :stop | :exception]` (see `Emily.Telemetry`).

  ## Examples

      iex> t = Emily.from_binary(<<1.0::float-32-native>>, [1], {:f, 32})
      iex> Emily.to_binary(t)
      <<1.0::float-32-native>>

  """
  @spec to_binary(t()) :: binary()
  def to_binary(tensor) do
    {shape, dtype} = describe!(tensor, :to_binary)
    meta = %{shape: shape, dtype: dtype, byte_size: Native.nbytes(tensor)}

    Telemetry.span(:to_binary, meta, fn ->
      ref = make_ref()
      :ok = Native.to_binary(tensor, ref)
      Worker.await(ref)
    end)
  end

  @doc """
  The shape of `tensor`, a list of non-negative integers. Reads metadata only: nothing is
  evaluated.

  ## Examples

      iex> t = Emily.from_binary(<<0::32, 0::32, 0::32, 0::32>>, [2, 2], {:f, 32})
      iex> Emily.shape(t)
      [2, 2]

  """
  @spec shape(t()) :: [non_neg_integer()]
  def shape(tensor), do: native!(tensor, :shape, &Native.shape/1)

  @doc """
  The type of `tensor`: an Nx type tuple, or `:bool` (see "Shapes and types"). Reads
  metadata only: nothing is evaluated.

  ## Examples

      iex> t = Emily.from_binary(<<1.0::float-32-native>>, [1], {:f, 32})
      iex> Emily.dtype(t)
      {:f, 32}

  """
  @spec dtype(t()) :: dtype() | :bool
  def dtype(tensor), do: tensor |> native!(:dtype, &Native.dtype/1) |> Dtype.nx_type()

  @doc """
  Evaluates `tensor`, or a list of tensors, and returns `:ok` once done. `to_binary/1`
  evaluates by itself; this is for flushing pending work (benchmarks, timing, memory).
  Tensors of several workers, and inputs built on other workers, are each evaluated on their
  own worker.

  Emits `[:emily, :eval, :start | :stop | :exception]`, metadata `%{count: n}` (see
  `Emily.Telemetry`).

  ## Examples

      iex> a = Nx.tensor([1.0, 2.0, 3.0], backend: Emily.Backend)
      iex> b = a |> Nx.multiply(2.0) |> Nx.add(1.0)
      iex> Emily.eval(b.data.ref)
      :ok

      iex> t = Emily.from_binary(<<1, 2>>, [2], {:u, 8})
      iex> Emily.eval([t, t])
      :ok

  """
  @spec eval(t() | [t()]) :: :ok
  def eval(tensors) do
    tensors = tensor_list!(tensors, :eval, true)

    Telemetry.span(:eval, %{count: length(tensors)}, fn ->
      ref = make_ref()
      :ok = Native.eval(tensors, ref)
      Worker.await(ref)
    end)
  end

  @doc """
  Starts evaluating `tensors` and returns `:ok` without waiting for the result: the work is
  handed to the tensors' worker, and the caller can go on building the next step while it
  runs. A later `eval/1` or `to_binary/1` finds the values computed, or waits for them; an
  error in the evaluation is raised there. Pass every output of a step in one call.

  Emits `[:emily, :async_eval, :start | :stop | :exception]`, metadata `%{count: n}` (see
  `Emily.Telemetry`).

  ## Examples

      iex> a = Nx.tensor([1.0, 2.0, 3.0], backend: Emily.Backend)
      iex> b = a |> Nx.multiply(2.0) |> Nx.add(1.0)
      iex> Emily.async_eval([b.data.ref])
      :ok

  """
  @spec async_eval([t()]) :: :ok
  def async_eval(tensors) do
    tensors = tensor_list!(tensors, :async_eval, false)

    Telemetry.span(:async_eval, %{count: length(tensors)}, fn ->
      Native.async_eval(tensors)
    end)
  end

  @doc """
  MLX's memory figures, the bridge's ledger and the GC accounting, in bytes and counts:

    * `:active`, `:peak`, `:cache`, `:limit` - MLX's allocator: bytes in use, the most in
      use since start or `Emily.Memory.reset_peak/0`, bytes kept for reuse, the limit
    * `:handles`, `:handle_bytes` - tensor handles alive in the BEAM and their arrays'
      (nominal) size: memory the BEAM's garbage collector does not see
    * `:gc_pressure`, `:gc_threshold`, `:pressure_signals`, `:gc_requests`,
      `:self_collections` - the GC accounting (see `Emily.Memory`): whether it is on, its
      threshold, how often the NIF asked for collections, how many process collections
      `Emily.Memory.Pressure` requested, and how often a process collected itself while
      waiting for a worker
    * `:aliased_buffers`, `:aliased_bytes`, `:live_aliases` - MLX buffers aliased by BEAM
      binaries from `to_binary/1` now, their bytes and the binaries' count
    * `:aliases_created`, `:aliases_released` - since start
    * `:donations_prevented` - evaluations in which MLX would have written an op's output
      into a buffer aliased by a live binary, had the ledger not held it (the input's only
      other owner was the ledger)
    * `:bytes_reported` - bytes of the binaries `to_binary/1` made: what the BEAM charged to
      processes' binary heaps
    * `:bytes_copied` - bytes copied crossing the bridge (small or unaligned `from_binary/3`
      inputs, strided tensors made contiguous by `to_binary/1`, `mmap/4` regions read for
      want of a lease or copied when their file was about to change)
    * `:file_leases`, `:file_mappings` - files `mmap/4` holds a read lease on now, and the
      file-backed mappings alive
    * `:external_aliasing` - whether MLX's allocator allows wrapping BEAM memory (checked at
      run time; when not, `from_binary/3` and `mmap/4` copy)
    * `:external_arrays`, `:external_bytes` - MLX arrays aliasing BEAM binaries or file
      mappings now, and their bytes (not in `:active`: MLX did not allocate them);
      `:external_made` - such arrays made since start
    * `:malloc_mmap_threshold` - the C library's mmap threshold Emily set (glibc; see
      `Emily.Memory`), `nil` when it set none

  ## Examples

      iex> stats = Emily.memory_stats()
      iex> is_integer(stats.active) and is_integer(stats.handle_bytes)
      true

  """
  @spec memory_stats() :: map()
  def memory_stats do
    Map.put(Native.memory_stats(), :gc_requests, Emily.Memory.Pressure.requests())
  end

  ## Argument checks

  defp bad!(op, arg, must, got) do
    raise ArgumentError, "#{op}: #{arg} must be #{must}, got: #{inspect(got, limit: 5)}"
  end

  # A shape (list or tuple) as a list of dimensions MLX takes.
  defp dims!(shape, op) do
    dims = if is_tuple(shape), do: Tuple.to_list(shape), else: shape

    if is_list(dims) and dims?(dims) do
      dims
    else
      bad!(op, "shape", "a list (or a tuple) of integers from 0 to #{@max_dim}", shape)
    end
  end

  defp dims?([]), do: true
  defp dims?([d | rest]) when is_integer(d) and d >= 0 and d <= @max_dim, do: dims?(rest)
  defp dims?(_), do: false

  defp path!(path) do
    string =
      cond do
        is_binary(path) -> path
        is_list(path) -> chardata_to_string(path)
        true -> nil
      end

    if is_binary(string) and String.valid?(string) do
      string
    else
      bad!(:mmap, "path", "a file name (a UTF-8 string or a charlist)", path)
    end
  end

  defp chardata_to_string(list) do
    IO.chardata_to_string(list)
  rescue
    ArgumentError -> nil
    UnicodeConversionError -> nil
  end

  # `tensors` as a list of tensors (a single tensor too when `one?`), each checked.
  defp tensor_list!(tensors, op, one?) do
    list = if one? and not is_list(tensors), do: [tensors], else: tensors

    unless is_list(list) and proper_list?(list) do
      must = if one?, do: "an Emily tensor or a list of them", else: "a list of Emily tensors"
      bad!(op, "tensors", must, tensors)
    end

    Enum.each(list, &describe!(&1, op))
    list
  end

  defp proper_list?([]), do: true
  defp proper_list?([_ | rest]), do: proper_list?(rest)
  defp proper_list?(_), do: false

  # {shape, type} of a tensor, or an ArgumentError naming `op`.
  defp describe!(tensor, op) do
    {native!(tensor, op, &Native.shape/1),
     tensor |> native!(op, &Native.dtype/1) |> Dtype.nx_type()}
  end

  defp native!(tensor, op, fun) when is_reference(tensor) do
    fun.(tensor)
  rescue
    e in ArgumentError ->
      if e.message == "argument error",
        do: not_a_tensor!(op, tensor),
        else: reraise(e, __STACKTRACE__)
  end

  defp native!(tensor, op, _fun), do: not_a_tensor!(op, tensor)

  defp not_a_tensor!(op, %{__struct__: Nx.Tensor, type: type, shape: shape}) do
    raise ArgumentError,
          "#{op}: tensor must be an Emily tensor (a handle to an MLX array), got: an " <>
            "Nx.Tensor of type #{inspect(type)} and shape #{inspect(shape)} (for a tensor " <>
            "on Emily.Backend, pass tensor.data.ref)"
  end

  defp not_a_tensor!(op, other), do: raise(ArgumentError, not_a_tensor(op, other))

  @doc false
  # The message for a term that is not a tensor of this VM (also Emily.Backend's).
  def not_a_tensor(op, ref) when is_reference(ref) and node(ref) != node() do
    "#{op}: #{inspect(ref)} is a tensor of node #{node(ref)}; tensors live in their own " <>
      "VM's MLX memory and do not cross nodes: send Nx.backend_copy(tensor, Nx.BinaryBackend) " <>
      "instead"
  end

  def not_a_tensor(op, other),
    do:
      "#{op}: tensor must be an Emily tensor (a handle to an MLX array), got: " <>
        inspect(other, limit: 5)
end
