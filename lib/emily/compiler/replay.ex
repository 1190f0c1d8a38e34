if Code.ensure_loaded?(Nx) do
  defmodule Emily.Compiler.Replay do
    @moduledoc false
    # The native and fused lanes: a program captured once (Emily.Compiler.Lower), replayed
    # in one worker job per call (Emily.Native.program_run).
    #
    # A compiled function holds an *entry*: the traced function and its argument
    # templates (to trace and lower again for another worker), the output templates, the
    # hooks, and a program set (a NIF resource mapping worker id -> program, freed with
    # the function). `Nx.Defn.jit/2` calls come through `__jit__` every time, so their
    # entries are cached in :persistent_term by {function, argument templates, device,
    # hook names}.
    #
    # The entry holds no expression. An expression is a DAG whose nodes are shared
    # (a transformer's residual stream is read by every layer), and copying a term to
    # another process (a message, a spawn, Nx.Serving running a batch in a task) expands
    # that sharing: for a 6-layer encoder the copy does not finish. The function and the
    # templates copy in the size they have.

    require Logger

    alias Emily.Compiler.{Evaluator, Lower}
    alias Nx.Defn.Composite
    alias Nx.Tensor, as: T

    def compile(key, vars, fun, o, jit?) do
      entry =
        if jit? and o.cache do
          cache_key = {__MODULE__, key, signature(vars), o.device, hook_names(o)}

          case :persistent_term.get(cache_key, nil) do
            nil ->
              entry = new_entry(vars, fun, o)

              if :persistent_term.get(cache_key, nil) == nil,
                do: :persistent_term.put(cache_key, entry)

              entry

            entry ->
              entry
          end
        else
          new_entry(vars, fun, o)
        end

      runner(entry, o, {key, vars, fun})
    end

    @doc false
    # Drops every cached jit entry (tests and benchmarks).
    def clear_cache do
      for {{__MODULE__, _, _, _, _} = k, _} <- :persistent_term.get(),
          do: :persistent_term.erase(k)

      :ok
    end

    defp signature(vars) do
      vars
      |> Composite.flatten_list()
      |> Enum.map(fn %T{type: t, shape: s, names: n, vectorized_axes: v} -> {t, s, n, v} end)
    end

    defp hook_names(o), do: o.hooks |> Map.keys() |> Enum.sort()

    defp new_entry(vars, fun, o) do
      {expr, out_struct} = precompile(fun, vars)
      w = Emily.Compiler.worker(o)
      {time, result} = :timer.tc(fn -> try_lower(expr, Composite.flatten_list(vars), o, w) end)

      case result do
        {:ok, lowered} ->
          set = Emily.Native.program_set_new()
          :ok = Emily.Native.program_set_put(set, lowered.program)
          debug(o, lowered, time)

          %{
            kind: :native,
            fun: fun,
            vars: vars,
            out: out_struct,
            n_outputs: lowered.n_outputs,
            hooks: lowered.hooks,
            set: set
          }

        {:error, reason} ->
          fallback!(reason, o)
          %{kind: :fallback, reason: reason}
      end
    end

    # Like Nx.Defn.Evaluator: outputs devectorized for the walk; the output structure with
    # its (possibly vectorized) templates for the results.
    defp precompile(fun, vars) do
      {expr, templates} =
        vars
        |> fun.()
        |> Composite.traverse([], &{Nx.devectorize(&1), [Nx.to_template(&1) | &2]})

      {out_struct, []} =
        Composite.traverse(expr, Enum.reverse(templates), fn _, [t | rest] -> {t, rest} end)

      {expr, out_struct}
    end

    defp try_lower(expr, params, o, w) do
      {:ok, Lower.lower(expr, params, o, w)}
    rescue
      e in Lower.Unsupported ->
        {:error, e.message}

      e ->
        msg = Exception.message(e)

        if msg =~ "without a primitive" do
          {:error, "an op reads tensor values while tracing (#{first_line(msg)})"}
        else
          {:error, "#{inspect(e.__struct__)}: #{first_line(msg)}"}
        end
    end

    defp first_line(msg), do: msg |> String.split("\n") |> hd()

    defp fallback!(reason, o) do
      if o.fallback == :raise do
        raise ArgumentError,
              "Emily.Compiler: cannot run this function on the #{o.lane} lane: #{reason}"
      end

      if Emily.Telemetry.enabled?() do
        apply(:telemetry, :execute, [
          [:emily, :compiler, :fallback],
          %{count: 1},
          %{reason: reason, lane: o.lane}
        ])
      end

      Emily.Compiler.debug_log(o, fn ->
        "Emily.Compiler: #{o.lane} lane falls back to the evaluator: #{reason}"
      end)
    end

    defp debug(o, lowered, time) do
      Emily.Compiler.debug_log(o, fn ->
        "Emily.Compiler: #{o.lane} program captured in #{div(time, 1000)} ms: " <>
          inspect(lowered.stats)
      end)

      case o.debug[:stats] do
        pid when is_pid(pid) ->
          stats = Map.merge(lowered.stats, %{capture_us: time, program: lowered.program})
          send(pid, {:emily_compiler, stats})

        _ ->
          :ok
      end
    end

    ## Running

    # The evaluator lane, built for this call's options (hooks may differ between calls).
    defp runner(%{kind: :fallback, reason: reason}, o, {key, vars, fun}) do
      if o.fallback == :raise, do: fallback!(reason, o)
      Evaluator.compile(key, vars, fun, o)
    end

    defp runner(entry, o, _) do
      fused = o.lane == :fused

      # One result per argument list (Nx passes one).
      fn args_list ->
        w = Emily.Compiler.worker(o)
        program = program_for(entry, w, o)
        Enum.map(args_list, &run(&1, entry, program, w, fused, o))
      end
    end

    defp run(args, entry, program, w, fused, o) do
      d = o.device

      refs =
        Enum.map(args, fn f ->
          %T{data: %Emily.Backend{ref: r}} = f.() |> Nx.devectorize() |> Evaluator.to_emily(d)
          r
        end)

      # Inputs being computed on another worker must be finished there first.
      for i <- Emily.Native.program_foreign_pending(refs, w), do: Emily.eval(Enum.at(refs, i))

      ref = make_ref()
      :ok = Emily.Native.program_run(program, refs, fused, ref)
      outs = Emily.Worker.await(ref)
      {outs, hook_outs} = Enum.split(outs, entry.n_outputs)
      {result, []} = Composite.traverse(entry.out, outs, &fill(&1, &2, d))
      run_hooks(entry.hooks, hook_outs, o.hooks, d)
      if o.gc, do: :erlang.garbage_collect()
      result
    end

    defp fill(template, [r | rest], d),
      do: {%{template | data: %Emily.Backend{ref: r, device: d}}, rest}

    defp program_for(entry, w, o) do
      case Emily.Native.program_set_get(entry.set, w) do
        nil ->
          # First call on this worker: trace and lower again (primitives carry their
          # stream).
          {time, lowered} =
            :timer.tc(fn ->
              {expr, _} = precompile(entry.fun, entry.vars)
              Lower.lower(expr, Composite.flatten_list(entry.vars), o, w)
            end)

          debug(o, lowered, time)
          :ok = Emily.Native.program_set_put(entry.set, lowered.program)
          lowered.program

        program ->
          program
      end
    end

    defp run_hooks([], [], _hooks, _d), do: :ok

    defp run_hooks([{spec, template} | rest], refs, hooks, d) do
      {value, refs} = Composite.traverse(template, refs, &fill(&1, &2, d))

      case Lower.resolve(spec, hooks) do
        nil -> :ok
        fun -> fun.(value)
      end

      run_hooks(rest, refs, hooks, d)
    end
  end
end
