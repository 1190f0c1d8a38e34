if Code.ensure_loaded?(Nx) do
  defmodule Emily.Compiler do
    @moduledoc """
    An `Nx.Defn.Compiler` that runs `defn`, `Nx.Defn.jit/2`, `Nx.Defn.grad/2` and
    `Nx.Serving` on MLX.

        Nx.Defn.global_default_options(compiler: Emily.Compiler)
        Nx.Defn.global_default_options(compiler: Emily.Compiler, lane: :fused)

    ## Lanes

    A defn runs on one of three lanes, picked by the `:lane` option or
    `config :emily, lane: ...` (default `:native`):

      * `:native` - the expression is traced **once** through `Emily.Backend` on
        placeholder arrays (nothing is computed), which builds a lazy MLX graph with exactly
        the backend's Nx-to-MLX translation. That graph is captured into a *program*: the
        MLX primitives in topological order, constants kept by reference. Each call then
        replays the program on the real inputs, evaluates and returns, in **one** job on
        the worker (one NIF call, one thread hop). `while` and `cond` are sub-programs run
        by that same job (the loop reads the predicate on the worker). Programs are cached
        per compiled function and per worker (MLX primitives carry their stream).
      * `:fused` - the native program with each straight-line part wrapped in
        `mlx::core::compile`, which fuses elementwise chains into generated kernels. On
        the CPU, MLX compiles those kernels with the system C++ compiler the first time
        (seconds), and caches them.
      * `:evaluator` - `Nx.Defn.Evaluator` over `Emily.Backend`, op by op (each op one NIF
        call building a lazy node), with `Emily.Backend` pinned as the default backend
        while it runs so that `iota`, `eye` and constants land on MLX too.

    What the native lane cannot lower runs on the evaluator lane, and a
    `[:emily, :compiler, :fallback]` telemetry event is emitted (measurements
    `%{count: 1}`, metadata `%{reason: String.t(), lane: lane}`): `Nx.runtime_call/4`,
    hooks with a callback inside `while`/`cond`, `reduce`/`window_reduce` with an
    Elixir function, and any backend op that must read data while tracing (such as
    `Emily.Backend`'s fallbacks to `Nx.BinaryBackend`). Set `native_fallback: :raise` to
    raise `ArgumentError` instead.

    ## How the native lane captures a program

      * Placeholders are MLX arrays with a shape and a dtype but no primitive and no data.
        MLX's `eval` refuses them before doing any work, so a backend op that needs values
        while tracing (a fallback to `Nx.BinaryBackend`, a data-dependent shape) fails
        loudly and the function falls back to the evaluator lane, instead of computing on
        garbage.
      * A program is a list of steps over numbered slots: *tapes* (captured MLX graph
        fragments) and `while`/`cond` steps running sub-programs. A `while`'s initial state
        or a `cond`'s inputs are captured as a tape when the step is reached; a value
        computed inside an earlier tape and needed later is exported from that tape rather
        than recomputed. `cond` clauses take the values of enclosing scopes they use as
        inputs (found while walking, with `Nx.Defn.Tree.scope_ids/2` as the evaluator
        does); `while` state that the body returns in other types (as `Nx.Defn.Grad`'s loops
        can) is converted to the body's types before the loop.
      * At capture, nodes with an equivalent primitive (`Primitive::is_equivalent`) on the
        same inputs are merged, as are equal small constants (the backend uploads a scalar
        for each number it meets); on the first run, nodes computed from constants alone are
        evaluated once and become constants.
      * Each call replays the tapes with the captured primitives (as `mlx::core::compile`'s
        own replay does), runs control flow and evaluates the outputs, in one job on the
        worker. Programs hold their worker weakly, so cached programs do not keep worker
        threads alive.

    ## Options

      * `:device` - `:cpu` or `:gpu`; defaults to the device of the default backend when it
        is `Emily.Backend`, else `Emily.Worker.default_device/0`
      * `:lane` - `:native`, `:fused` or `:evaluator` (see above)
      * `:native_fallback` - `:evaluator` (default) or `:raise`
      * `:hooks` - a map of hook names to functions, overriding the callbacks given to
        `Nx.Defn.Kernel.hook/3` (as `Nx.Defn.Evaluator`). On the native lanes hooked values
        are extra outputs of the program and the callbacks run after it, in order.
      * `:max_concurrency` - the number of partitions `Nx.Serving` starts
        (`partitions: true`); each partition gets a worker (an MLX stream and thread) of
        its own, so concurrent batches run in parallel. Default 1.
      * `:garbage_collect` - on the evaluator lane, garbage collects after each node (as
        `Nx.Defn.Evaluator`); on the native lanes, after each call
      * `:debug_options` - a keyword list: `log: true` logs which lane runs each compiled
        function, with the program's size and the time to trace and capture it;
        `stats: pid` sends `{:emily_compiler, stats}` to `pid` after each capture (the
        program's size, `:capture_us`, and `:program`, whose
        `Emily.Native.program_stats/1` also gives the last run's replay and evaluation
        times)
      * `:worker` - the `Emily.Worker` to run on (set per partition by
        `__partitions_options__/1`); defaults to `Emily.Worker.current/1`
      * `:cache` - `false` disables the program cache of `Nx.Defn.jit/2` calls (default
        `true`; `Nx.Defn.compile/3` always keeps its program in the returned function)

    Nx itself may also pass `:batch_keys` (from `Nx.Serving`), which is ignored, and
    `:compiler` (to `__partitions_options__/1`). Any other option raises `ArgumentError`.
    """

    @behaviour Nx.Defn.Compiler

    require Logger

    alias Emily.Compiler.{Evaluator, Replay}

    @lanes [:native, :fused, :evaluator]
    @known [
      :device,
      :lane,
      :native_fallback,
      :hooks,
      :max_concurrency,
      :garbage_collect,
      :debug_options,
      :worker,
      :cache,
      :batch_keys,
      :compiler
    ]

    @impl true
    def __partitions_options__(opts) do
      opts = validate!(opts)
      n = opts.max_concurrency

      if n == 1 do
        [opts.raw]
      else
        for _ <- 1..n do
          Keyword.put(opts.raw, :worker, Emily.Worker.start(opts.device))
        end
      end
    end

    @impl true
    def __to_backend__(opts) do
      opts = validate!(opts)
      {Emily.Backend, device: opts.device}
    end

    @impl true
    def __jit__(key, vars, fun, args_list, opts) do
      __compile__(key, vars, fun, opts, true).(args_list)
    end

    @impl true
    def __compile__(key, vars, fun, opts), do: __compile__(key, vars, fun, opts, false)

    @impl true
    def __shard_jit__(_key, _mesh, _vars, _fun, _args_list, _opts) do
      raise ArgumentError,
            "Emily.Compiler does not support sharding (Nx.Defn.shard_jit/3 and meshes): " <>
              "MLX runs each computation on one device. Use Nx.Serving with partitions: true " <>
              "and max_concurrency: n to run several computations in parallel"
    end

    defp __compile__(key, vars, fun, opts, jit?) do
      o = validate!(opts)

      case o.lane do
        :evaluator -> Evaluator.compile(key, vars, fun, o)
        lane when lane in [:native, :fused] -> Replay.compile(key, vars, fun, o, jit?)
      end
    end

    @doc """
    Forgets the programs cached for `Nx.Defn.jit/2` calls (they are kept, per function and
    argument shapes, for the life of the VM otherwise). Functions returned by
    `Nx.Defn.compile/3` keep their own programs.
    """
    def clear_cache, do: Replay.clear_cache()

    @doc false
    # Validated options: a map, with the raw keyword list kept for partitions.
    def validate!(opts) do
      unknown = Keyword.keys(opts) -- @known

      if unknown != [] do
        raise ArgumentError,
              "Emily.Compiler: unknown option(s) #{inspect(Enum.uniq(unknown))}; " <>
                "known options: #{inspect(@known)}"
      end

      lane = Keyword.get_lazy(opts, :lane, fn -> Emily.Config.get(:lane) end)

      unless lane in @lanes do
        raise ArgumentError,
              "Emily.Compiler: :lane must be one of #{inspect(@lanes)}, got: #{inspect(lane)}"
      end

      fallback = Keyword.get(opts, :native_fallback, :evaluator)

      unless fallback in [:evaluator, :raise] do
        raise ArgumentError,
              "Emily.Compiler: :native_fallback must be :evaluator or :raise, got: " <>
                inspect(fallback)
      end

      hooks = Keyword.get(opts, :hooks, %{})

      unless is_map(hooks) do
        raise ArgumentError, "Emily.Compiler: :hooks must be a map, got: #{inspect(hooks)}"
      end

      max = Keyword.get(opts, :max_concurrency, 1)

      unless is_integer(max) and max >= 1 do
        raise ArgumentError,
              "Emily.Compiler: :max_concurrency must be a positive integer, got: #{inspect(max)}"
      end

      debug = Keyword.get(opts, :debug_options, [])

      unless Keyword.keyword?(debug) and Keyword.keys(debug) -- [:log, :stats] == [] do
        raise ArgumentError,
              "Emily.Compiler: :debug_options must be a keyword list of :log and :stats, got: " <>
                inspect(debug)
      end

      device = Keyword.get_lazy(opts, :device, &default_device/0)

      unless device in [:cpu, :gpu] do
        raise ArgumentError,
              "Emily.Compiler: :device must be :cpu or :gpu, got: #{inspect(device)}"
      end

      worker = Keyword.get(opts, :worker)

      if worker != nil and not is_reference(worker) do
        raise ArgumentError,
              "Emily.Compiler: :worker must be an Emily.Worker, got: #{inspect(worker)}"
      end

      %{
        raw: opts,
        lane: lane,
        fallback: fallback,
        hooks: hooks,
        max_concurrency: max,
        gc: Keyword.get(opts, :garbage_collect, false) == true,
        debug: debug,
        device: device,
        worker: worker,
        cache: Keyword.get(opts, :cache, true) != false
      }
    end

    defp default_device do
      case Nx.default_backend() do
        {Emily.Backend, o} -> Keyword.get_lazy(o, :device, &Emily.Worker.default_device/0)
        _ -> Emily.Worker.default_device()
      end
    end

    @doc false
    # The worker a call runs on.
    def worker(%{worker: nil, device: d}), do: Emily.Worker.current(d)
    def worker(%{worker: w}), do: w

    @doc false
    def debug_log(o, fun) do
      if o.debug[:log], do: Logger.info(fun)
      :ok
    end
  end
end
