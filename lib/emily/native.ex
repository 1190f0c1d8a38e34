defmodule Emily.Native do
  @moduledoc """
  The NIF layer: one function per MLX op, with MLX's arguments and the worker (stream) last.

  No Nx policy lives here: ops take and return tensor handles (references to MLX arrays),
  lists of integers for shapes and axes, and dtype atoms (`:bool`, `:u8`, ..., `:f32`,
  `:bf16`, `:c64`). Building an op is lazy and happens in the calling process (a few µs);
  `eval/2` and `to_binary/2` are queued to the worker, which answers the caller with
  `{ref, {:ok, value} | {:error, {kind, message}}}` (see `Emily.await/2`).

  Bad arguments raise `ArgumentError` naming the op, the inputs' dtypes and shapes, and
  MLX's message; other MLX failures raise `Emily.Error`, among them numerical failures found
  only at evaluation (LAPACK refusing a singular matrix in `inv`, a failed decomposition):
  `Emily.Error` of kind `:runtime`. No argument can crash the VM: the
  native layer checks sizes, axes, counts and modes before MLX sees them, and refuses any
  result larger than the machine's memory.

  Index values are only known when a graph runs, so out-of-range ones are defined rather
  than refused: gathers (`take*`, `gather`) clamp them into range (negative indices in
  `[-n, -1]` count from the end), scatters (`scatter*`, `put_along_axis`,
  `scatter_add_axis`) drop the updates they address. Integer `floor_divide`/`remainder` by
  zero give 0 and the dividend.

  Each op is declared once, in `src/ops/<family>.ops`: its stub here (with its arguments'
  names and kinds), its NIF, its Rust wrapper and the C prototype its C++ definition in
  `src/cpp/<family>.cc` compiles against are all generated from that line. Enum arguments
  are atoms (`pad(..., :edge, w)`, `fft(..., :ortho, w)`).
  """
  @on_load :__load_nif__

  @doc false
  def __load_nif__ do
    path = :filename.join(:code.priv_dir(:emily), ~c"emily_nif")
    :erlang.load_nif(path, 0)
  end

  # The op NIFs: one per declaration in src/ops/<family>.ops, the same files build.rs
  # generates the C prototypes, the Rust wrappers and the NIFs from.
  @families Enum.map(Emily.Native.Ops.files(), &Emily.Native.Ops.parse_file!/1)
  for path <- Emily.Native.Ops.files(), do: @external_resource(path)

  for fam <- @families, op <- fam.ops do
    args = Enum.map(op.args, fn {name, _} -> Macro.var(name, __MODULE__) end)
    worker = Macro.var(:worker, __MODULE__)
    @doc Emily.Native.Ops.doc(fam, op)
    def unquote(op.name)(unquote_splicing(args), unquote(worker)) do
      _ = {unquote_splicing(args), unquote(worker)}
      :erlang.nif_error(:nif_not_loaded)
    end
  end

  @ops for fam <- @families, op <- fam.ops, do: {op.name, length(op.args) + 1}

  # The other NIFs, as {name, arity}.
  @other_nifs [
    # workers and devices
    worker_new: 2,
    worker_shutdown: 1,
    worker_info: 1,
    device_available: 1,
    device_info: 1,
    mlx_env_default: 2,
    inline_eval: 1,
    direct_execution: 1,
    direct_execution_available: 0,
    mlx_version: 0,
    cpu_kernels: 1,
    cpu_kernels_isa: 0,
    # the bridge
    from_binary: 4,
    shape: 1,
    dtype: 1,
    nbytes: 1,
    tensor_worker: 1,
    eval: 2,
    async_eval: 1,
    to_binary: 2,
    mmap_file: 5,
    data_ptr: 1,
    binary_ptr: 1,
    evaluated: 1,
    memory_stats: 0,
    reset_peak_memory: 0,
    clear_cache: 0,
    set_memory_limit: 1,
    set_cache_limit: 1,
    malloc_tune: 1,
    blas_core: 0,
    blas_threads: 0,
    # programs (Emily.Compiler's native and fused lanes)
    program_placeholder: 3,
    program_builder: 0,
    program_inputs: 2,
    program_materialize: 2,
    program_while: 5,
    program_cond: 3,
    program_finish: 3,
    program_capture: 3,
    program_run: 4,
    program_foreign_pending: 2,
    program_stats: 1,
    program_primitives: 1,
    program_set_new: 0,
    program_set_get: 2,
    program_set_put: 2,
    program_set_size: 1,
    # GC accounting (Emily.Memory.Pressure)
    pressure_register: 0,
    pressure_configure: 2,
    pressure_collect_due: 0,
    handle_holders: 0,
    # every op NIF with its declaration, as the native library has it
    op_signatures: 0
  ]

  # (@nifs is also the module's `-nifs` attribute: the functions load_nif may replace.)
  @nifs @other_nifs ++ @ops

  @doc false
  # Every NIF, ops included, as {name, arity}.
  def __nifs__, do: @nifs

  @doc false
  # The declarations this module was compiled from (Emily.Native.Ops.parse_file!/1).
  def __families__, do: @families

  @doc false
  # The names of a family's ops, in declaration order.
  def __family__(family) do
    case Enum.find(@families, &(&1.family == family)) do
      nil -> raise ArgumentError, "no op family #{inspect(family)}"
      fam -> Enum.map(fam.ops, & &1.name)
    end
  end

  for {name, arity} <- @other_nifs do
    args = Macro.generate_arguments(arity, __MODULE__)
    @doc false
    def unquote(name)(unquote_splicing(args)), do: :erlang.nif_error(:nif_not_loaded)
  end
end
