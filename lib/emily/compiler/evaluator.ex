if Code.ensure_loaded?(Nx) do
  defmodule Emily.Compiler.Evaluator do
    @moduledoc false
    # The evaluator lane: Nx.Defn.Evaluator over Emily.Backend, with Emily.Backend pinned as
    # the process's default backend (and the chosen worker as its worker) while it runs, so
    # that creation ops (constant, iota, eye) land on MLX. Inputs of other backends are
    # copied in; outputs are evaluated before they are returned, as on the native lanes.

    alias Nx.Tensor, as: T

    def compile(key, vars, fun, o) do
      inner =
        with_env(o, nil, fn ->
          Nx.Defn.Evaluator.__compile__(key, vars, fun,
            hooks: o.hooks,
            garbage_collect: o.gc
          )
        end)

      fn [args] ->
        w = Emily.Compiler.worker(o)

        with_env(o, w, fn ->
          args =
            Enum.map(args, fn f -> fn -> f.() |> to_emily(o.device) |> finish_foreign(w) end end)

          [res] = inner.([args])
          eval_outputs(res)
          [res]
        end)
      end
    end

    @doc false
    # Runs `fun` with Emily.Backend (on `o.device`) as the default backend and `worker` as
    # the process's worker for that device.
    def with_env(o, worker, fun) do
      key = Nx.Shared.backend_pdict_key()
      prev = Process.get(key)
      Process.put(key, {Emily.Backend, device: o.device})
      wkey = {Emily.Worker, o.device}
      prev_w = Process.get(wkey)
      if worker, do: Process.put(wkey, worker)

      try do
        fun.()
      after
        if prev, do: Process.put(key, prev), else: Process.delete(key)
        if prev_w, do: Process.put(wkey, prev_w), else: Process.delete(wkey)
      end
    end

    # A tensor still being computed on another worker is finished there first: this
    # worker cannot evaluate nodes of another worker's stream.
    defp finish_foreign(%T{data: %Emily.Backend{ref: r}} = t, w) do
      if Emily.Native.program_foreign_pending([r], w) != [], do: Emily.eval(r)
      t
    end

    @doc false
    def to_emily(%T{data: %Emily.Backend{device: d}} = t, d), do: t
    def to_emily(%T{} = t, d), do: Nx.backend_copy(t, {Emily.Backend, device: d})

    def to_emily(number, d) when is_number(number),
      do: Nx.tensor(number, backend: {Emily.Backend, device: d})

    defp eval_outputs(res) do
      [res]
      |> Nx.Defn.Composite.flatten_list()
      |> Enum.flat_map(fn
        %T{data: %Emily.Backend{ref: r}} -> [r]
        _ -> []
      end)
      |> Enum.group_by(&Emily.Native.tensor_worker/1)
      |> Enum.each(fn {_, refs} -> Emily.eval(refs) end)
    end
  end
end
