defmodule Emily.Native do
  @moduledoc """
  The NIF layer: one function per MLX op, with MLX's arguments and the worker (stream) last.

  No Nx policy lives here: ops take and return tensor handles (references to MLX arrays),
  lists of integers for shapes and axes, and dtype atoms (`:bool`, `:u8`, ..., `:f32`,
  `:bf16`, `:c64`). Building an op is lazy and happens in the calling process (a few µs);
  `eval/2` and `to_binary/2` are queued to the worker, which answers the caller with
  `{ref, {:ok, value} | {:error, {kind, message}}}` (see `Emily.await/2`).

  Bad arguments raise `ArgumentError` naming the op, the inputs' dtypes and shapes, and
  MLX's message; other MLX failures raise `Emily.Error`.

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

  # Every other NIF, as {name, arity}; families add theirs here.
  @nifs [
          # workers and devices
          worker_new: 2,
          worker_shutdown: 1,
          worker_info: 1,
          device_available: 1,
          mlx_version: 0,
          # the bridge
          from_binary: 4,
          shape: 1,
          dtype: 1,
          nbytes: 1,
          tensor_worker: 1,
          eval: 2,
          to_binary: 2,
          memory_stats: 0,
          reset_peak_memory: 0,
          clear_cache: 0,
          set_memory_limit: 1,
          set_cache_limit: 1,
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
          program_set_new: 0,
          program_set_get: 2,
          program_set_put: 2
        ] ++
          Enum.map(@unary, &{&1, 2}) ++ Enum.map(@binary, &{&1, 3})

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
