defmodule Emily.Worker do
  @moduledoc """
  Worker threads that own MLX streams.

  MLX binds a stream to the thread that created it, so every evaluation and read runs on a
  dedicated OS thread (a worker). The application starts one default worker per available
  device; `Emily.Stream` gives a process (or a block of code) a worker of its own.

  Configuration (`config :emily, ...`):

    * `:queue_limit` - jobs a worker queues before `Emily.Error` (`:queue_full`) is raised
      (default 4096)
    * `:await_timeout` - milliseconds a caller waits for a worker's answer (default
      300_000; `:infinity` allowed)
    * `:default_device` - the device `current/0` and `default/0` use, `:cpu` (default) or
      `:gpu`. The environment variable `EMILY_DEFAULT_DEVICE` (`cpu` or `gpu`), read when
      `:emily` starts, overrides it. Asking for `:gpu` where MLX has no GPU makes `:emily`
      fail to start rather than silently running on the CPU.
    * `:inline_eval` - whether a caller may evaluate a cheap graph on a CPU worker's stream
      in its own thread (default `true`; the environment variable `EMILY_INLINE_EVAL=0`
      turns it off). See `set_inline_eval/1`.
    * `:direct_execution` - whether the thread evaluating on a CPU worker's stream runs
      MLX's kernels itself (default `true`; `EMILY_DIRECT_EXECUTION=0` turns it off). See
      `set_direct_execution/1`.

  ## Inline evaluation

  A queued job costs two thread hops (to the worker, and the answer back), most of a small
  op's round trip. When a CPU worker is idle (nothing queued, not running a job) and the
  graph to evaluate is cheap (at most 64 nodes touching at most 2^18 elements, with no
  factorization, sort, convolution, FFT or compiled function), `Emily.eval/1` and
  `Emily.to_binary/1` evaluate it in the calling process's scheduler thread instead,
  holding the worker's lock so that the two never use its stream at once. So do
  `Emily.Compiler`'s native-lane programs that ran quickly before (unfused, without `while`
  or `cond`, on evaluated inputs). Anything else, and every GPU worker, goes through the
  queue.

  "Cheap" is counted in element-units: an element of an input or of an elementwise
  result is one, of a transcendental function's result (exp, sin, erf, sigmoid, ...) 32, a
  matmul multiply-add 1/64; at most 2^18 units, some 100-250 µs of work on the machines
  Emily is measured on.

  ## Direct execution

  MLX's CPU backend does not run a kernel where the graph is evaluated: it queues it for a
  thread of the stream's own and waits for that thread, two thread wake-ups per evaluation
  (10-40 µs on small graphs, most of their round trip). With direct execution (the
  default), the thread evaluating on a CPU worker's stream (the worker's, or a caller's
  evaluating inline) runs MLX's CPU kernels itself, in the order MLX produces them. Emily
  defines four of MLX's scheduler entry points in its NIF library, which the dynamic linker
  binds libmlx's calls to; `direct_execution_available?/0` says whether that works in this
  process (it is probed with the first CPU worker; where it does not, MLX's threads run
  everything, as with the setting off). GPU workers are not affected.

  ## Bound schedulers

  Worker threads, the threads MLX starts for streams and OpenBLAS's threads run on any CPU
  of the process, also when the BEAM binds its schedulers (`+sbt`) and the thread that
  starts them is a scheduler bound to one CPU. OpenBLAS's thread count is fitted to the
  process's CPUs when the NIF library loads (`OPENBLAS_NUM_THREADS` still caps it);
  `mix emily.doctor` prints it.
  """

  @doc "Starts a worker on `device` (`:cpu` or `:gpu`; default `default_device/0`)."
  def start(device \\ default_device(), opts \\ []) do
    limit = Keyword.get_lazy(opts, :queue_limit, fn -> Emily.Config.get(:queue_limit) end)
    Emily.Native.worker_new(device, limit)
  end

  @doc """
  Turns inline evaluation (see the module doc) on or off for every worker; returns the
  previous setting.
  """
  @spec set_inline_eval(boolean()) :: boolean()
  def set_inline_eval(on) when is_boolean(on), do: Emily.Native.inline_eval(on)

  def set_inline_eval(other),
    do: raise(ArgumentError, "set_inline_eval: expected a boolean, got: #{inspect(other)}")

  @doc """
  Turns direct execution (see the module doc) on or off for every CPU worker, from its next
  job or inline evaluation; returns the previous setting.
  """
  @spec set_direct_execution(boolean()) :: boolean()
  def set_direct_execution(on) when is_boolean(on), do: Emily.Native.direct_execution(on)

  def set_direct_execution(other),
    do: raise(ArgumentError, "set_direct_execution: expected a boolean, got: #{inspect(other)}")

  @doc """
  Whether direct execution works in this process: `true` or `false` once a CPU worker has
  asked for it (the default worker does at start when it is on), `nil` before.
  """
  @spec direct_execution_available?() :: boolean() | nil
  def direct_execution_available?, do: Emily.Native.direct_execution_available()

  @doc "Stops a worker; queued work is answered with an error."
  def stop(worker), do: Emily.Native.worker_shutdown(worker)

  @doc """
  Information about a worker: `:id`, `:device`, `:queued` (jobs waiting), `:queue_limit`,
  `:running` (not stopped) and `:busy` (its streams in use now: a job, or a caller
  evaluating inline in its stead).
  """
  def info(worker) do
    {id, device, queued, limit, running, busy} = Emily.Native.worker_info(worker)
    %{id: id, device: device, queued: queued, queue_limit: limit, running: running, busy: busy}
  end

  @doc """
  The worker the current process uses for `device`: its own (see `Emily.Stream`) or the
  default one.
  """
  def current(device \\ default_device()) do
    Process.get({__MODULE__, device}) || default(device)
  end

  @doc """
  The device `current/0` and `default/0` use when none is named: `:cpu` unless configured
  (`:default_device`, or `EMILY_DEFAULT_DEVICE`; see the module doc).
  """
  def default_device, do: :persistent_term.get({__MODULE__, :default_device}, :cpu)

  @doc "The default worker for `device`."
  def default(device \\ default_device()) do
    case :persistent_term.get({__MODULE__, :default, device}, nil) do
      nil ->
        raise Emily.Error,
          message:
            "no #{device} worker: MLX has no #{device} device here, or :emily is not started"

      w ->
        w
    end
  end

  @doc false
  def start_defaults do
    device = configured_device!()

    for d <- [:cpu, :gpu], Emily.Native.device_available(d) do
      :persistent_term.put({__MODULE__, :default, d}, start(d))
    end

    :persistent_term.put({__MODULE__, :default_device}, device)
    :ok
  end

  @doc false
  def configured_device! do
    device = Emily.Config.get(:default_device)

    source =
      if System.get_env("EMILY_DEFAULT_DEVICE") in [nil, ""],
        do: "config :emily, :default_device",
        else: "EMILY_DEFAULT_DEVICE"

    unless Emily.Native.device_available(device) do
      raise Emily.Error,
        message:
          "#{source} asks for #{device}, but MLX has no #{device} device here " <>
            "(MLX #{Emily.Native.mlx_version()}; a GPU needs MLX built for Metal or CUDA)",
        kind: :runtime
    end

    device
  end

  @doc false
  def stop_defaults do
    :persistent_term.erase({__MODULE__, :default_device})

    for device <- [:cpu, :gpu] do
      case :persistent_term.get({__MODULE__, :default, device}, nil) do
        nil -> :ok
        w -> stop(w)
      end
    end

    :ok
  end

  @doc """
  Waits for a worker's answer to the request tagged `ref`; raises on error or timeout.
  """
  def await(ref, timeout \\ Emily.Config.get(:await_timeout)) do
    # While the worker computes: the caller's own collection when its dead handles have
    # outgrown what the asynchronous requests keep up with (see Emily.Memory).
    if Emily.Native.pressure_collect_due(), do: :erlang.garbage_collect()

    receive do
      {^ref, {:ok, value}} ->
        value

      {^ref, {:error, {:argument, message}}} ->
        raise ArgumentError, message

      {^ref, {:error, {kind, message}}} ->
        raise Emily.Error, message: message, kind: kind
    after
      timeout ->
        raise Emily.Error,
          message: "no answer from the MLX worker in #{timeout} ms",
          kind: :timeout
    end
  end
end
