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
  zero give 0 and the dividend. `src/ops/*.rs` documents each family's arguments.

  The op tables here mirror the Rust tables in `src/ops/*.rs` and the C++ lists in
  `src/cpp/*.cc`: a function missing on either side fails the NIF load.
  """
  @on_load :__load_nif__

  @doc false
  def __load_nif__ do
    path = :filename.join(:code.priv_dir(:emily), ~c"emily_nif")
    :erlang.load_nif(path, 0)
  end

  # Elementwise unary ops: op(a, worker).
  @unary ~w(abs negative sign logical_not bitwise_invert floor ceil round square sqrt rsqrt
            reciprocal exp expm1 log log1p log2 log10 sin cos tan arcsin arccos arctan sinh
            cosh tanh arcsinh arccosh arctanh sigmoid erf erfinv isnan isinf isfinite
            isposinf isneginf real imag conjugate degrees radians stop_gradient copy)a

  # Elementwise binary ops with broadcasting: op(a, b, worker).
  @binary ~w(add subtract multiply divide floor_divide remainder power maximum minimum
             arctan2 logaddexp equal not_equal less less_equal greater greater_equal
             logical_and logical_or bitwise_and bitwise_or bitwise_xor left_shift
             right_shift)a

  # Creation and dtype conversion (src/ops/creation.rs documents the arguments).
  @creation [
    full: 4,
    full_int: 4,
    full_complex: 5,
    scalar: 3,
    scalar_int: 3,
    scalar_complex: 4,
    zeros: 3,
    ones: 3,
    zeros_like: 2,
    ones_like: 2,
    arange: 5,
    linspace: 6,
    eye: 5,
    identity: 3,
    tri: 5,
    tril: 3,
    triu: 3,
    astype: 3,
    view: 3,
    contiguous: 3
  ]

  # Reductions, arg-reductions, cumulative ops (src/ops/reduce.rs).
  @reduce [
    sum: 4,
    prod: 4,
    max: 4,
    min: 4,
    all: 4,
    any: 4,
    mean: 4,
    logsumexp: 4,
    median: 4,
    var: 5,
    std: 5,
    argmax: 4,
    argmin: 4,
    cumsum: 5,
    cumprod: 5,
    cummax: 5,
    cummin: 5,
    logcumsumexp: 5
  ]

  # Shape and layout ops (src/ops/shape.rs).
  @shape [
    reshape: 3,
    transpose: 3,
    squeeze: 3,
    expand_dims: 3,
    broadcast_to: 3,
    pad: 7,
    concatenate: 3,
    stack: 3,
    slice: 5,
    slice_dynamic: 5,
    slice_update: 6,
    slice_update_dynamic: 5,
    slice_update_add: 6,
    slice_update_prod: 6,
    slice_update_max: 6,
    slice_update_min: 6,
    flip: 3,
    tile: 3,
    repeat: 4,
    swapaxes: 4,
    moveaxis: 4,
    select: 4,
    clip: 4,
    flatten: 4,
    unflatten: 4,
    # multi-output (a list of any length)
    split: 4,
    split_indices: 4,
    unstack: 3
  ]

  # Sorting, partitioning, top-k (src/ops/sort.rs).
  @sort [sort: 3, argsort: 3, partition: 4, argpartition: 4, topk: 4]

  # Indexing: take, gather, scatter (src/ops/index.rs).
  @index [
    take: 3,
    take_axis: 4,
    take_along_axis: 4,
    put_along_axis: 5,
    scatter_add_axis: 5,
    gather: 5,
    scatter: 5,
    scatter_add: 5,
    scatter_prod: 5,
    scatter_max: 5,
    scatter_min: 5
  ]

  # Products and linalg (src/ops/linalg.rs); factorizations run on the worker's CPU stream.
  @linalg [
    matmul: 3,
    tensordot: 5,
    addmm: 6,
    inner: 3,
    outer: 3,
    cross: 4,
    norm: 6,
    gather_mm: 6,
    cholesky: 3,
    cholesky_inv: 3,
    inv: 2,
    tri_inv: 3,
    pinv: 2,
    solve: 3,
    solve_triangular: 4,
    eigvalsh: 3,
    eigvals: 2,
    det: 2,
    qr: 2,
    svd: 3,
    eigh: 3,
    eig: 2,
    lu: 2,
    lu_factor: 2,
    slogdet: 2
  ]

  # Convolutions, channels-last (src/ops/conv.rs).
  @conv [
    conv_general: 10,
    conv1d: 7,
    conv2d: 7,
    conv3d: 7,
    conv_transpose1d: 8,
    conv_transpose2d: 8,
    conv_transpose3d: 8
  ]

  # Fourier transforms (src/ops/fft.rs).
  @fft [
    fftn: 5,
    ifftn: 5,
    rfftn: 5,
    irfftn: 5,
    fft: 5,
    ifft: 5,
    rfft: 5,
    irfft: 5,
    fft2: 5,
    ifft2: 5,
    rfft2: 5,
    irfft2: 5,
    fftshift: 3,
    ifftshift: 3
  ]

  # Fused ops (src/ops/fast.rs); optional arrays are lists of 0 or 1 tensors.
  @fast [
    rms_norm: 4,
    layer_norm: 5,
    rope: 8,
    rope_offset: 8,
    scaled_dot_product_attention: 8,
    cross_entropy: 3
  ]

  # Quantization (src/ops/quantize.rs).
  @quantize [quantize: 5, dequantize: 7, quantized_matmul: 9, gather_qmm: 12]

  # Ops Emily.Backend needs beyond MLX's op list (src/ops/backend_extra.rs).
  @backend_extra [as_strided: 5, precise_unary: 3]

  # Every other NIF, as {name, arity}; families add theirs here.
  @nifs [
          # workers and devices
          worker_new: 2,
          worker_shutdown: 1,
          worker_info: 1,
          device_available: 1,
          device_info: 1,
          tf32_default: 1,
          inline_eval: 1,
          direct_execution: 1,
          direct_execution_available: 0,
          mlx_version: 0,
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
          # every op NIF with its argument kinds
          op_signatures: 0
        ] ++
          Enum.map(@unary, &{&1, 2}) ++
          Enum.map(@binary, &{&1, 3}) ++
          @creation ++
          @reduce ++
          @shape ++
          @sort ++
          @index ++ @linalg ++ @conv ++ @fft ++ @fast ++ @quantize ++ @backend_extra

  @doc false
  def __nifs__, do: @nifs

  @doc false
  def __unary__, do: @unary
  @doc false
  def __binary__, do: @binary

  for {name, arity} <- @nifs do
    args = Macro.generate_arguments(arity, __MODULE__)
    @doc false
    def unquote(name)(unquote_splicing(args)), do: :erlang.nif_error(:nif_not_loaded)
  end
end
