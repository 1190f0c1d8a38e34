if Code.ensure_loaded?(Nx) do
  defmodule Emily.Compiler.Lower do
    @moduledoc false
    # Lowers a defn expression to a native program (see Emily.Compiler, "native").
    #
    # The expression is walked once, like Nx.Defn.Evaluator does, but every value is an
    # Emily.Backend tensor built on *placeholder* arrays: the backend's own ops build a lazy
    # MLX graph that is never evaluated. A program builder (Emily.Native.program_*) captures
    # that graph. Each scope has its own builder:
    #
    #   * the root scope: the defn's parameters are its inputs;
    #   * a `while`: its condition and its body are sub-programs over the loop state;
    #   * a `cond` clause: its predicate and its body are sub-programs whose inputs are the
    #     values of enclosing scopes they use ("free" values, found while walking: a node
    #     that belongs to an enclosing scope is computed there and passed in).
    #
    # Anything that cannot be lowered raises Unsupported (the caller falls back to the
    # evaluator lane). So does any backend op that tries to read data computed from a
    # placeholder: MLX refuses to evaluate it.

    alias Nx.Defn.{Composite, Expr, Tree}
    alias Nx.Tensor, as: T
    alias Emily.Native

    defmodule Unsupported do
      @moduledoc false
      defexception [:message]
    end

    @creation_ops [:eye, :iota, :from_binary]

    @doc """
    Lowers `expr` (a composite of devectorized expression tensors) whose parameters are
    `params` (the parameter expressions, any order) for `worker`.

    Returns `%{program: ref, n_outputs: n, hooks: [{spec, template}], stats: map}`.
    """
    def lower(expr, params, o, worker) do
      ctx = %{device: o.device, worker: worker, hooks: o.hooks}

      Emily.Compiler.Evaluator.with_env(o, worker, fn ->
        builder = Native.program_builder()

        phs =
          params
          |> Enum.sort_by(fn %T{data: %Expr{args: [i]}} -> i end)
          |> Enum.map(fn p -> placeholder(p, ctx) end)

        Native.program_inputs(builder, Enum.map(phs, &ref/1))

        scope = %{
          kind: :root,
          builder: builder,
          ids: Tree.scope_ids(expr),
          parent_ids: nil,
          memo: %{},
          params: phs,
          free: [],
          hooks: [],
          ctx: ctx
        }

        {out, [scope]} = composite_eval(expr, [scope])
        out_refs = refs(out)
        hooks = Enum.reverse(scope.hooks)
        hook_refs = Enum.flat_map(hooks, fn {_spec, value} -> refs(value) end)

        program = Native.program_finish(builder, out_refs ++ hook_refs, worker)

        %{
          program: program,
          n_outputs: length(out_refs),
          hooks:
            Enum.map(hooks, fn {spec, value} ->
              {spec, Composite.traverse(value, &Nx.to_template/1)}
            end),
          stats: Native.program_stats(program)
        }
      end)
    end

    ## Values

    defp ref(%T{data: %Emily.Backend{ref: r}}), do: r

    defp ref(other) do
      raise Unsupported, "expected an Emily.Backend tensor while lowering, got: #{inspect(other)}"
    end

    defp refs(composite),
      do: composite |> List.wrap() |> Composite.flatten_list() |> Enum.map(&ref/1)

    defp wrap(r, %T{} = template, ctx),
      do: %{template | data: %Emily.Backend{ref: r, device: ctx.device}}

    # MLX's GPU has no float64: Emily.Backend computes float64 on a GPU worker's CPU
    # stream, op by op, which a program captured on the GPU stream cannot do.
    defp no_f64_on_gpu!(%T{type: {:f, 64}}, %{device: :gpu}) do
      raise Unsupported,
            "float64 on the GPU (Emily.Backend computes it on the worker's CPU stream, op by op)"
    end

    defp no_f64_on_gpu!(_tensor, _ctx), do: :ok

    # A placeholder for the parameter expression `p` (devectorized shape).
    defp placeholder(%T{type: type, shape: shape, vectorized_axes: axes} = p, ctx) do
      no_f64_on_gpu!(p, ctx)
      dims = Keyword.values(axes) ++ Tuple.to_list(shape)
      r = Native.program_placeholder(dims, storage_dtype(type), ctx.worker)
      wrap(r, Nx.devectorize(p), ctx)
    end

    # A placeholder with the MLX shape and dtype of `r`, wrapped like `template`.
    defp placeholder_like(r, template, ctx) do
      ph = Native.program_placeholder(Native.shape(r), Native.dtype(r), ctx.worker)
      wrap(ph, template, ctx)
    end

    # The MLX dtype Emily.Backend stores Nx `type` in (narrow types in a wider one).
    defp storage_dtype(type) do
      Emily.Backend.Core.dtype(type)
    rescue
      e in ArgumentError -> reraise Unsupported, Exception.message(e), __STACKTRACE__
    end

    ## Walking

    defp composite_eval(composite, stack), do: Composite.traverse(composite, stack, &eval/2)

    defp eval(%T{data: %Expr{op: :constant, args: [c]}} = ans, [scope | _] = stack) do
      {Emily.Backend.constant(ans, c, device: scope.ctx.device), stack}
    end

    defp eval(%T{data: %Expr{id: id, op: op}} = ans, [scope | parents] = stack) do
      case scope.memo do
        %{^id => value} ->
          {value, stack}

        %{} ->
          no_f64_on_gpu!(ans, scope.ctx)

          if delegate?(scope, id, op) do
            {value, parents} = eval(ans, parents)
            {value, [add_free(scope, id, value) | parents]}
          else
            {value, [scope | parents]} = eval_op(op, ans, stack)
            {value, [%{scope | memo: Map.put(scope.memo, id, value)} | parents]}
          end
      end
    end

    defp eval(number, stack) when is_number(number), do: {number, stack}

    defp eval(other, _stack) do
      raise Unsupported, "cannot lower #{inspect(other)}"
    end

    # In a cond clause, parameters and nodes of enclosing scopes are computed there.
    defp delegate?(%{kind: :clause, parent_ids: ids}, id, op),
      do: op == :parameter or Map.has_key?(ids, id)

    defp delegate?(_scope, _id, _op), do: false

    defp add_free(scope, id, value) do
      rs = refs(value)
      _slots = Native.program_inputs(scope.builder, rs)
      %{scope | free: scope.free ++ rs, memo: Map.put(scope.memo, id, value)}
    end

    ## Ops

    defp eval_op(:parameter, %T{data: %Expr{args: [i]}}, [scope | _] = stack) do
      {Enum.fetch!(scope.params, i), stack}
    end

    defp eval_op(:tensor, %T{data: %Expr{args: [t]}}, [scope | _] = stack) do
      t = Emily.Compiler.Evaluator.to_emily(t, scope.ctx.device)
      # A constant of the program: computed once, now, on its own worker.
      Emily.eval(ref(t))
      {Nx.devectorize(t), stack}
    end

    defp eval_op(:metadata, %T{data: %Expr{args: [expr, _meta]}}, stack) do
      composite_eval(expr, stack)
    end

    defp eval_op(:elem, %T{data: %Expr{args: [tuple, i]}}, stack) do
      {tuple, stack} = composite_eval(tuple, stack)
      {elem(tuple, i), stack}
    end

    defp eval_op(:fun, _ans, _stack) do
      raise Unsupported,
            "anonymous functions in expressions (reduce/window_reduce with a function)"
    end

    defp eval_op(:runtime_call, _ans, _stack) do
      raise Unsupported, "Nx.runtime_call/4 (it calls Elixir in the middle of the program)"
    end

    defp eval_op(:hook, %T{data: %Expr{args: args}}, stack) do
      [tensor_expr, callback_spec, out_template, _ref] = args
      {value, stack} = composite_eval(tensor_expr, stack)
      stack = hook(callback_spec, value, stack)

      result =
        case out_template do
          %T{} -> value
          _ -> value |> List.wrap() |> Composite.flatten_list() |> List.to_tuple()
        end

      {result, stack}
    end

    defp eval_op(:block, %T{data: %Expr{args: args}} = ans, stack) do
      [struct, in_args, expr, callback] = args

      {in_args, stack} =
        Enum.map_reduce(in_args, stack, fn
          %T{} = t, st -> eval(t, st)
          other, st -> {other, st}
        end)

      out =
        case ans do
          %{type: {:tuple, _}} -> expr
          _ -> ans
        end

      {Emily.Backend.block(struct, out, in_args, callback), stack}
    end

    defp eval_op(:while, %T{data: %Expr{args: args}}, [scope | parents]) do
      [initial, _arg, pred, block] = args
      {init, [scope | parents]} = composite_eval(initial, [scope | parents])
      flat = Composite.flatten_list([init])
      ids = Tree.scope_ids({pred, block})
      {flat, cond_prog, body_prog} = while_programs(flat, pred, block, ids, scope, 3)
      init_refs = Enum.map(flat, &ref/1)
      slots = Native.program_materialize(scope.builder, init_refs)
      outs = Enum.zip_with(init_refs, flat, &placeholder_like(&1, &2, scope.ctx))

      :ok =
        Native.program_while(scope.builder, cond_prog, body_prog, slots, Enum.map(outs, &ref/1))

      {result, []} = Composite.traverse(init, outs, fn _, [o | rest] -> {o, rest} end)
      {result, [scope | parents]}
    end

    defp eval_op(:cond, %T{data: %Expr{args: [clauses, last]}}, stack) do
      # Each clause (and the last) gets a scope of its own, like Nx.Defn.Evaluator.
      {subs, stack} =
        Enum.map_reduce(clauses, stack, fn {pred, body}, stack ->
          ids = Tree.scope_ids({pred, body}, hd(stack).ids)

          {pred_prog, pred_free, _, stack} =
            clause_program(stack, ids, fn st ->
              {p, st} = eval(pred, st)
              {[p], st}
            end)

          {body_prog, body_free, body_refs, stack} =
            clause_program(stack, ids, fn st -> composite_eval(body, st) end)

          {{pred_prog, pred_free, body_prog, body_free, body_refs}, stack}
        end)

      last_ids = Tree.scope_ids(last, hd(stack).ids)

      {last_prog, last_free, last_refs, stack} =
        clause_program(stack, last_ids, fn st -> composite_eval(last, st) end)

      [scope | parents] = stack

      for {_, _, _, _, body_refs} <- subs, do: check_same!(body_refs, last_refs, "cond clause")

      # The enclosing scope computes every value the clauses use, in one tape.
      frees =
        Enum.flat_map(subs, fn {_, pf, _, bf, _} -> [pf, bf] end) ++ [last_free]

      all_slots = Native.program_materialize(scope.builder, Enum.concat(frees))
      {slot_lists, []} = Enum.map_reduce(frees, all_slots, &Enum.split(&2, length(&1)))

      {clause_terms, [last_slots]} =
        Enum.map_reduce(subs, slot_lists, fn {pp, _, bp, _, _}, [ps, bs | rest] ->
          {{pp, ps, bp, bs}, rest}
        end)

      leaves = Composite.flatten_list([last])
      outs = Enum.zip_with(last_refs, leaves, &placeholder_like(&1, &2, scope.ctx))

      :ok =
        Native.program_cond(
          scope.builder,
          clause_terms ++ [{nil, [], last_prog, last_slots}],
          Enum.map(outs, &ref/1)
        )

      {result, []} = Composite.traverse(last, outs, fn _, [o | rest] -> {o, rest} end)
      {result, [scope | parents]}
    end

    defp eval_op(op, ans, [scope | _] = stack) do
      {args, stack} = Tree.apply_args(ans, stack, &eval/2)
      d = scope.ctx.device

      args =
        cond do
          op in @creation_ops -> [ans | args] ++ [[device: d]]
          match?({:tuple, _}, ans.type) -> args
          true -> [ans | args]
        end

      {apply(Emily.Backend, op, args), stack}
    end

    # The condition and body programs of a while over the state `flat`. The loop state must
    # keep one type: when the body returns other types than the initial state (as
    # Nx.Defn.Grad's loops can: Nx.Defn.Evaluator just carries whatever the body returns),
    # the initial state is converted to the body's types and the loop traced again.
    defp while_programs(flat, pred, block, ids, scope, tries) do
      init_refs = Enum.map(flat, &ref/1)

      new_scope = fn ->
        b = Native.program_builder()
        phs = Enum.zip_with(init_refs, flat, &placeholder_like(&1, &2, scope.ctx))
        Native.program_inputs(b, Enum.map(phs, &ref/1))

        %{
          kind: :while,
          builder: b,
          ids: ids,
          parent_ids: nil,
          memo: %{},
          params: phs,
          free: [],
          hooks: [],
          ctx: scope.ctx
        }
      end

      {body_prog, body_refs, body_out} =
        sub_program(new_scope.(), [], fn st -> composite_eval(block, st) end)

      body_flat = Composite.flatten_list([body_out])
      sig = fn r -> {Native.shape(r), Native.dtype(r)} end

      cond do
        Enum.map(body_refs, sig) == Enum.map(init_refs, sig) ->
          {cond_prog, _, _} =
            sub_program(new_scope.(), [], fn st ->
              {p, st} = eval(pred, st)
              {[p], st}
            end)

          {flat, cond_prog, body_prog}

        tries > 0 and Enum.map(body_flat, & &1.shape) == Enum.map(flat, & &1.shape) ->
          flat = Enum.zip_with(flat, body_flat, fn t, b -> Nx.as_type(t, b.type) end)
          while_programs(flat, pred, block, ids, scope, tries - 1)

        true ->
          check_same!(body_refs, init_refs, "while body")
      end
    end

    ## Sub-programs

    # Runs `fun` in `scope` (pushed on `parents`); returns the finished program, the refs of
    # its outputs and the outputs.
    defp sub_program(scope, parents, fun) do
      {outs, [scope | _]} = fun.([scope | parents])
      out_refs = refs(outs)
      {Native.program_finish(scope.builder, out_refs, scope.ctx.worker), out_refs, outs}
    end

    # A cond clause scope over `stack`: returns the program, the refs of the enclosing
    # scope's values it takes (its inputs), its output refs, and the updated stack.
    defp clause_program([parent | _] = stack, ids, fun) do
      b = Native.program_builder()

      scope = %{
        kind: :clause,
        builder: b,
        ids: ids,
        parent_ids: parent.ids,
        memo: %{},
        params: nil,
        free: [],
        hooks: [],
        ctx: parent.ctx
      }

      {outs, [scope | stack]} = fun.([scope | stack])
      out_refs = refs(outs)
      program = Native.program_finish(b, out_refs, scope.ctx.worker)
      {program, scope.free, out_refs, stack}
    end

    defp check_same!(got, want, what) do
      sig = fn r -> {Native.shape(r), Native.dtype(r)} end

      if Enum.map(got, sig) != Enum.map(want, sig) do
        raise Unsupported,
              "#{what} returns #{inspect(Enum.map(got, sig))} where #{inspect(Enum.map(want, sig))} " <>
                "is expected"
      end
    end

    ## Hooks

    defp hook({:token_hook, hooked_expr, inner_spec}, _value, stack) do
      case resolve(inner_spec, hd(stack).ctx.hooks) do
        nil ->
          stack

        _fun ->
          {hooked, stack} = composite_eval(hooked_expr, stack)
          record_hook(inner_spec, hooked, stack)
      end
    end

    defp hook(spec, value, stack) do
      case resolve(spec, hd(stack).ctx.hooks) do
        nil -> stack
        _fun -> record_hook(spec, value, stack)
      end
    end

    defp record_hook(spec, value, [%{kind: :root} = scope | parents]) do
      [%{scope | hooks: [{spec, value} | scope.hooks]} | parents]
    end

    defp record_hook(_spec, _value, _stack) do
      raise Unsupported, "a hook with a callback inside while or cond"
    end

    @doc false
    def resolve({:fn, fun}, _hooks), do: fun
    def resolve({:named, name, callback}, hooks), do: hooks[name] || callback
  end
end
