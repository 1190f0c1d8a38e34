defmodule Emily.Config do
  @settings [
    # {key, environment variable or nil, default, type, when it is read, doc}
    {:default_device, "EMILY_DEFAULT_DEVICE", :cpu, {:in, [:cpu, :gpu]}, :start,
     "the device of `Emily.Backend`, `Emily.Compiler` and `Emily.Worker.current/0`"},
    {:queue_limit, nil, 4096, :pos_integer, :call,
     "jobs a worker queues before refusing more (`Emily.Worker.start/2`)"},
    {:await_timeout, nil, 300_000, :timeout, :call,
     "ms a caller waits for a worker's answer (`Emily.Worker.await/2`)"},
    {:inline_eval, "EMILY_INLINE_EVAL", true, :boolean, :start,
     "cheap graphs are evaluated in the caller's thread (`Emily.Worker`)"},
    {:direct_execution, "EMILY_DIRECT_EXECUTION", true, :boolean, :start,
     "MLX's CPU kernels run in the evaluating thread (`Emily.Worker`)"},
    {:lane, nil, :native, {:in, [:native, :fused, :evaluator]}, :call,
     "`Emily.Compiler`'s default lane"},
    {:fallback, nil, :warn, {:in, [:silent, :warn, :raise]}, :call,
     "what `Emily.Backend` does for the few ops it runs on `Nx.BinaryBackend`"},
    {:cpu_kernels, "EMILY_CPU_KERNELS", true, :boolean, :start,
     "Emily's vectorised, multi-threaded CPU kernels for exp, tanh, erf, ... (false: MLX's)"},
    {:tf32, nil, false, :boolean, :start,
     "let MLX run f32 matrix products in TF32 on NVIDIA GPUs"},
    {:kernel_cache_dir, nil, nil, {:or_false, {:or_nil, :string}}, :start,
     "NVIDIA GPUs: where MLX keeps its compiled kernels (nil: the user cache's emily/mlx-VERSION-ptx; false: MLX's own, under /tmp)"},
    {:gc_threshold, nil, 268_435_456, :pos_integer, :start,
     "bytes of tensor-handle growth that make the largest holders collect (`Emily.Memory`)"},
    {:gc_pressure, nil, true, :boolean, :start, "false turns those collection requests off"},
    {:memory_limit, nil, nil, {:or_nil, :pos_integer}, :start,
     "MLX's memory limit in bytes (nil: MLX's own, 80% of RAM)"},
    {:cache_limit, nil, nil, {:or_nil, :non_neg_integer}, :start,
     "MLX's buffer cache limit in bytes (nil: MLX's own, at least gc_threshold)"},
    {:malloc_mmap_threshold, "EMILY_MALLOC_MMAP_THRESHOLD", 33_554_432,
     {:or_false, {:range, 1, 33_554_432}}, :start,
     "glibc: blocks from this size get their own mapping (false: as the BEAM set it; `Emily.Memory`)"},
    {:debug_bounds_check, nil, false, :boolean, :compile,
     "debugging: index ops raise on out-of-range indices instead of clamping them"},
    {:debug_detect_nan_inf, nil, false, :boolean, :compile,
     "debugging: dot and Emily.Fast raise on results holding NaN or Inf"}
  ]

  @moduledoc """
  Emily's settings: `config :emily, key: value`, or, for some, an environment variable
  (which wins). Each is read when the application starts (`start`), at each use (`call`),
  or when Emily is compiled (`compile`: recompile Emily after changing it). A value of the
  wrong type raises `ArgumentError` naming the setting.

  | key | environment | default | read | what |
  |---|---|---|---|---|
  #{Enum.map_join(@settings, "\n", fn {key, env, default, _type, read, doc} -> "| `#{inspect(key)}` | #{if env, do: "`#{env}`", else: ""} | `#{inspect(default)}` | #{read} | #{doc} |" end)}

  Outside this table, for diagnosis only: `EMILY_GPU_CPU_FALLBACK=0` (read by the NIF
  library) stops building float64 ops and ops MLX refuses on the GPU on the worker's CPU
  stream instead.
  """

  @doc false
  def settings, do: @settings

  @doc "The value of setting `key` (see the table above)."
  def get(key) do
    {^key, env, default, type, _read, _doc} = List.keyfind(@settings, key, 0) || unknown!(key)

    case env && System.get_env(env) do
      v when v in [nil, ""] ->
        check!(key, type, Application.get_env(:emily, key, default), :config)

      v ->
        check!(key, type, parse_env(type, v), env)
    end
  end

  @doc "The value of a `compile` setting, read when the calling module compiles."
  defmacro compile_env(key) do
    {^key, _env, default, _type, :compile, _doc} =
      List.keyfind(@settings, key, 0) || unknown!(key)

    quote do
      Emily.Config.__checked__(
        unquote(key),
        Application.compile_env(:emily, unquote(key), unquote(Macro.escape(default)))
      )
    end
  end

  @doc false
  def __checked__(key, value) do
    {^key, _env, _default, type, _read, _doc} = List.keyfind(@settings, key, 0)
    check!(key, type, value, :config)
  end

  defp unknown!(key), do: raise(ArgumentError, "Emily.Config: no setting #{inspect(key)}")

  defp parse_env(:boolean, v) when v in ["1", "true"], do: true
  defp parse_env(:boolean, v) when v in ["0", "false"], do: false
  defp parse_env({:in, atoms}, v), do: Enum.find(atoms, v, &(Atom.to_string(&1) == v))
  defp parse_env({:or_false, _}, v) when v in ["0", "false"], do: false
  defp parse_env({:or_false, type}, v), do: parse_env(type, v)

  defp parse_env(_type, v) do
    case Integer.parse(v) do
      {n, ""} -> n
      _ -> v
    end
  end

  # `source`: :config, or the environment variable the value came from (named only when
  # the value is refused: get/1 runs on hot paths such as Emily.Worker.await/2).
  defp check!(key, type, value, source) do
    if valid?(type, value) do
      value
    else
      from = if source == :config, do: "config :emily, #{key}", else: source

      raise ArgumentError,
            "#{from} must be #{describe(type)}, got: #{inspect(value)} (Emily.Config #{inspect(key)})"
    end
  end

  defp valid?(:boolean, v), do: is_boolean(v)
  defp valid?(:string, v), do: is_binary(v) and v != ""
  defp valid?(:pos_integer, v), do: is_integer(v) and v > 0
  defp valid?(:non_neg_integer, v), do: is_integer(v) and v >= 0
  defp valid?(:timeout, v), do: v == :infinity or (is_integer(v) and v >= 0)
  defp valid?({:in, atoms}, v), do: v in atoms
  defp valid?({:range, lo, hi}, v), do: is_integer(v) and v >= lo and v <= hi
  defp valid?({:or_nil, type}, v), do: v == nil or valid?(type, v)
  defp valid?({:or_false, type}, v), do: v == false or valid?(type, v)

  defp describe(:boolean), do: "true or false"
  defp describe(:string), do: "a non-empty string"
  defp describe(:pos_integer), do: "a positive integer"
  defp describe(:non_neg_integer), do: "a non-negative integer"
  defp describe(:timeout), do: "a timeout in ms or :infinity"
  defp describe({:in, atoms}), do: "one of #{Enum.map_join(atoms, ", ", &inspect/1)}"
  defp describe({:range, lo, hi}), do: "an integer from #{lo} to #{hi}"
  defp describe({:or_nil, type}), do: "nil or #{describe(type)}"
  defp describe({:or_false, type}), do: "false or #{describe(type)}"
end
