defmodule Emily.Stream do
  @moduledoc """
  A worker of one's own: a process, or a block of code, that builds and evaluates its
  tensors on its own worker thread (its own MLX stream) runs concurrently with the others
  instead of queueing behind the default worker.

      Emily.Stream.with_worker(fn ->
        t = Emily.from_binary(data, [1024, 1024], {:f, 32})
        Emily.to_binary(Emily.Native.exp(t, Emily.Worker.current()))
      end)

  `Emily.Worker.current/1` returns the worker of the calling process: the one set here, or
  the default. A tensor belongs to the worker it was built with; tensors of different
  workers mix freely: when an op's input is an unevaluated tensor of another worker,
  evaluation first runs that input's graph on its own worker (MLX runs a stream's work only
  on the thread that created the stream), then the rest.

  A worker stops when nothing references it any more (no process uses it and no tensor
  belongs to it) or when `Emily.Worker.stop/1` is called; tensors of a stopped worker that
  were evaluated stay readable.
  """

  alias Emily.Worker

  @doc "Starts a new worker on `device` (see `Emily.Worker.start/2` for `opts`)."
  @spec new(:cpu | :gpu, keyword()) :: reference()
  def new(device \\ Worker.default_device(), opts \\ []), do: Worker.start(device, opts)

  @doc """
  Makes `worker` the calling process's worker for its device (`nil` restores the default);
  returns the previous one (or `nil`).
  """
  @spec put(reference() | nil, :cpu | :gpu) :: reference() | nil
  def put(worker, device \\ Worker.default_device())

  def put(nil, device), do: Process.delete({Worker, device})

  def put(worker, device) when is_reference(worker) do
    %{device: ^device} = Worker.info(worker)
    Process.put({Worker, device}, worker)
  end

  @doc """
  Runs `fun` with a new worker (on `opts[:device]`, default `Emily.Worker.default_device/0`) as the calling
  process's worker, then restores the previous one. Returns `fun`'s result. Tensors made
  inside stay usable afterwards.
  """
  @spec with_worker(keyword(), (-> result)) :: result when result: var
  def with_worker(opts \\ [], fun) when is_list(opts) and is_function(fun, 0) do
    device = Keyword.get_lazy(opts, :device, &Worker.default_device/0)
    with_worker(new(device, opts), device, fun)
  end

  @doc """
  Runs `fun` with `worker` as the calling process's worker, then restores the previous one.
  """
  @spec with_worker(reference(), :cpu | :gpu, (-> result)) :: result when result: var
  def with_worker(worker, device, fun) when is_reference(worker) and is_function(fun, 0) do
    previous = put(worker, device)

    try do
      fun.()
    after
      put(previous, device)
    end
  end
end
