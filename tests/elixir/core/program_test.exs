defmodule Emily.ProgramTest do
  # Program capture and replay through the NIFs (no Nx): the machinery behind
  # Emily.Compiler's native and fused lanes.
  use ExUnit.Case, async: true
  import Emily.Case

  alias Emily.{Native, Worker}

  defp run(program, inputs, fused \\ false) do
    ref = make_ref()
    :ok = Native.program_run(program, inputs, fused, ref)
    Worker.await(ref)
  end

  # Polls `check` for up to two seconds: for effects that follow a process exit.
  # Polls `check` every 10 ms for up to 30 s of wall time (a loaded machine frees a dead
  # process's handles, and so its worker, late).
  defp eventually(check) do
    Emily.Case.wait_until(check, tries: :infinity, within: 30_000, every: 10)
    true
  end

  defp ph(shape, type \\ :f32), do: Native.program_placeholder(shape, type, Worker.current())

  test "repeated runs of a quick program (in the caller's thread after the first) agree" do
    # After a quick first run on the worker, runs on evaluated inputs go in the caller's
    # thread while the worker is idle; lazy inputs, and the fused lane, go to the worker.
    w = Worker.current()
    x = ph([3])
    p = Native.program_capture([x], [Native.add(Native.multiply(x, x, w), x, w)], w)

    for inline <- [true, false] do
      previous = Worker.set_inline_eval(inline)

      try do
        for i <- 1..20 do
          a = t([i * 1.0, 2.0, -1.0], [3], {:f, 32})
          lazy = Native.add(a, t([0.0, 0.0, 0.0], [3], {:f, 32}), w)
          expected = [i * i + i * 1.0, 6.0, 0.0]
          assert [r] = run(p, [a])
          assert read(r) == expected
          assert [r] = run(p, [lazy])
          assert read(r) == expected
          assert [r] = run(p, [a], true)
          assert read(r) == expected
        end
      after
        Worker.set_inline_eval(previous)
      end
    end
  end

  test "a quick program run by 16 processes at once, inline and queued, every value checked" do
    w = Worker.current()
    x = ph([2])
    p = Native.program_capture([x], [Native.multiply(x, x, w)], w)
    assert [_] = run(p, [t([1.0, 1.0], [2], {:f, 32})])

    1..16
    |> Task.async_stream(
      fn k ->
        for i <- 1..50 do
          v = (k * 100 + i) * 1.0
          assert [r] = run(p, [t([v, -v], [2], {:f, 32})])
          assert read(r) == [v * v, v * v]
        end
      end,
      max_concurrency: 16,
      timeout: 60_000
    )
    |> Enum.each(fn r -> assert {:ok, _} = r end)
  end

  test "a graph captured on placeholders replays on new inputs, native and fused" do
    w = Worker.current()
    [x, y] = [ph([3]), ph([3])]
    c = t([10.0, 20.0, 30.0], [3], {:f, 32})
    s = Native.multiply(x, y, w)
    out = Native.subtract(Native.exp(Native.add(s, c, w), w), c, w)
    program = Native.program_capture([x, y], [out, s], w)

    assert %{inputs: 2, outputs: 2, tapes: 1, nodes: 4, constants: 1, heavy: 0} =
             Native.program_stats(program)

    # a sort is heavy: its program never runs in a caller's thread
    sorted = Native.program_capture([x], [Native.sort(Native.multiply(x, x, w), 0, w)], w)
    assert %{nodes: 2, heavy: 1} = Native.program_stats(sorted)

    for _ <- 1..3 do
      assert [r] = run(sorted, [t([3.0, -1.0, 2.0], [3], {:f, 32})])
      assert read(r) == [1.0, 4.0, 9.0]
    end

    for fused <- [false, true], k <- [0.0, 0.5] do
      a = t([1.0, 2.0, -1.0], [3], {:f, 32})
      b = t([k, k, k], [3], {:f, 32})
      [o, p] = run(program, [a, b], fused)
      assert read(p) == [k, 2 * k, -k]

      for {got, v, c} <- Enum.zip([read(o), [k, 2 * k, -k], [10.0, 20.0, 30.0]]) do
        expected = :math.exp(v + c) - c
        # f32 exp (MLX's approximation)
        assert_in_delta got, expected, 1.0e-5 * abs(expected)
      end
    end
  end

  test "evaluating anything built on a placeholder raises instead of computing" do
    w = Worker.current()
    x = ph([2])
    y = Native.exp(x, w)
    assert_raise ArgumentError, ~r/without a primitive/, fn -> Emily.eval(y) end
    # The worker still works.
    assert read(Native.negative(t([1.0], [1], {:f, 32}), w)) == [-1.0]
  end

  test "a while loop and a cond run as sub-programs in one call" do
    w = Worker.current()
    one = t([1], [], {:s, 32})
    ten = t([10], [], {:s, 32})

    sub = fn shapes, f ->
      b = Native.program_builder()
      phs = Enum.map(shapes, fn {s, ty} -> ph(s, ty) end)
      Native.program_inputs(b, phs)
      Native.program_finish(b, f.(phs), w)
    end

    # while {i, acc}, i < 10, do: {i + 1, acc + i}
    cond = sub.([{[], :s32}, {[], :s32}], fn [i, _] -> [Native.less(i, ten, w)] end)

    body =
      sub.([{[], :s32}, {[], :s32}], fn [i, acc] ->
        [Native.add(i, one, w), Native.add(acc, i, w)]
      end)

    b = Native.program_builder()
    [i0, a0] = [ph([], :s32), ph([], :s32)]
    Native.program_inputs(b, [i0, a0])
    state = Native.program_materialize(b, [i0, a0])
    [fi, fa] = [ph([], :s32), ph([], :s32)]
    :ok = Native.program_while(b, cond, body, state, [fi, fa])

    # cond fa > 40 -> fa * 2; true -> -fa
    forty = t([40], [], {:s, 32})
    two = t([2], [], {:s, 32})
    [fa_slot] = Native.program_materialize(b, [fa])
    pred = sub.([{[], :s32}], fn [v] -> [Native.greater(v, forty, w)] end)
    dbl = sub.([{[], :s32}], fn [v] -> [Native.multiply(v, two, w)] end)
    neg = sub.([{[], :s32}], fn [v] -> [Native.negative(v, w)] end)
    r = ph([], :s32)

    :ok =
      Native.program_cond(b, [{pred, [fa_slot], dbl, [fa_slot]}, {nil, [], neg, [fa_slot]}], [r])

    program = Native.program_finish(b, [fi, r], w)
    assert %{whiles: 1, conds: 1} = Native.program_stats(program)

    for fused <- [false, true] do
      s32 = fn v -> t([v], [], {:s, 32}) end
      # 0 + 0 + 1 + ... + 9 = 45 > 40
      assert Enum.map(run(program, [s32.(0), s32.(0)], fused), &read/1) == [[10], [90]]
      # 7 + 8 + 9 = 24
      assert Enum.map(run(program, [s32.(7), s32.(0)], fused), &read/1) == [[10], [-24]]
      # no iteration
      assert Enum.map(run(program, [s32.(12), s32.(41)], fused), &read/1) == [[12], [82]]
    end
  end

  test "errors are raised, never crash" do
    w = Worker.current()
    x = ph([2])
    program = Native.program_capture([x], [Native.exp(x, w)], w)
    assert_raise ArgumentError, ~r/takes 1 inputs, got 0/, fn -> run(program, []) end

    # Inputs must have the placeholders' shapes and dtypes (kernels would read out of
    # bounds otherwise).
    y = ph([2])
    p2 = Native.program_capture([y], [Native.add(y, t([1.0, 2.0], [2], {:f, 32}), w)], w)
    assert [r] = run(p2, [t([1.0, 2.0], [2], {:f, 32})])
    assert read(r) == [2.0, 4.0]

    assert_raise ArgumentError,
                 ~r/program inputs: got \(float32\[3\]\), expected \(float32\[2\]\)/,
                 fn ->
                   run(p2, [t([1.0, 2.0, 3.0], [3], {:f, 32})])
                 end

    assert_raise ArgumentError, ~r/program inputs: got \(float64\[2\]\)/, fn ->
      run(p2, [t([1.0, 2.0], [2], {:f, 64})])
    end

    # A while whose body changes the state's shape is refused when it is built.
    s = ph([2])

    cond =
      Native.program_capture(
        [s],
        [Native.less(Native.sum(s, [0], false, w), t([9.0], [], {:f, 32}), w)],
        w
      )

    grow = Native.program_capture([ph([2])], [t([1.0, 2.0, 3.0], [3], {:f, 32})], w)
    bw = Native.program_builder()
    [slot] = Native.program_inputs(bw, [ph([2])])

    assert_raise ArgumentError, ~r/while: body outputs: got \(float32\[3\]\)/, fn ->
      Native.program_while(bw, cond, grow, [slot], [ph([2])])
    end

    other = ph([1])

    assert_raise ArgumentError, ~r/another scope/, fn ->
      Native.program_capture([y], [Native.add(y, other, w)], w)
    end

    b = Native.program_builder()
    Native.program_inputs(b, [x])
    Native.program_finish(b, [x], w)
    assert_raise ArgumentError, ~r/finished/, fn -> Native.program_finish(b, [x], w) end
  end

  test "inputs owned by another worker are reported until evaluated" do
    w = Worker.current()
    other = Worker.start(:cpu)
    a = Native.add(t([1.0], [1], {:f, 32}), t([2.0], [1], {:f, 32}), other)
    b = t([1.0], [1], {:f, 32})
    assert Native.program_foreign_pending([a, b], w) == [0]
    Emily.eval(a)
    assert Native.program_foreign_pending([a, b], w) == []
    x = ph([1])
    program = Native.program_capture([x], [Native.negative(x, w)], w)
    assert [r] = run(program, [a])
    assert read(r) == [-3.0]
    Worker.stop(other)
  end

  test "a graph with a node of another worker is refused at capture (it would run on the wrong thread)" do
    other = Worker.start(:cpu)
    w = Worker.current()
    x = ph([1])
    y = Native.negative(x, other)

    assert_raise ArgumentError, ~r/program_capture: a node of the graph runs on stream \d+/, fn ->
      Native.program_capture([x], [Native.exp(y, w)], w)
    end

    Worker.stop(other)
  end

  test "programs do not keep their worker alive; a set forgets programs of gone workers" do
    set = Native.program_set_new()

    task =
      Task.async(fn ->
        w = Worker.start(:cpu)
        x = Native.program_placeholder([1], :f32, w)
        p = Native.program_capture([x], [Native.negative(x, w)], w)
        assert [r] = run(p, [t([2.0], [1], {:f, 32})])
        assert read(r) == [-2.0]
        :ok = Native.program_set_put(set, p)
        p
      end)

    down = Process.monitor(task.pid)
    program = Task.await(task)
    # The task replies before it exits: wait until it is down, then (its heap freed with
    # its worker handle, placeholders and results) until its worker is gone.
    assert_receive {:DOWN, ^down, :process, _, _}, 5_000

    # Each probe runs in a process of its own: a run that still reaches the worker returns
    # tensors, which hold their worker; left on this process's heap (promoted to its old
    # heap by a collection during the run), they would keep the worker alive themselves.
    probe = fn ->
      try do
        run(program, [t([1.0], [1], {:f, 32})])
        false
      rescue
        e in Emily.Error -> Exception.message(e) =~ "worker is gone"
      end
    end

    assert eventually(fn -> Task.await(Task.async(probe)) end)

    assert Native.program_set_size(set) == 1
    w = Worker.current()
    x = ph([1])
    :ok = Native.program_set_put(set, Native.program_capture([x], [Native.exp(x, w)], w))
    assert Native.program_set_size(set) == 1
    assert Native.program_set_get(set, w) != nil
  end
end
