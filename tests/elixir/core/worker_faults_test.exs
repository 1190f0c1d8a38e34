defmodule Emily.WorkerFaultsTest do
  # What happens to a worker's jobs when their callers die, when a worker stops with jobs
  # queued, and when its queue is full: every caller gets an answer (a value or a clear
  # Emily.Error), the worker goes on serving, and MLX's memory comes back to where it was.
  # Not async: it reads MLX's process-wide memory figures.
  use ExUnit.Case, async: false
  @moduletag :linux
  alias Emily.Native, as: N
  alias Emily.Worker
  import Emily.Case, only: [wait_until: 2]

  # The matrix size of a job that takes a while: 40 matmuls of 768 x 768 f32 take about
  # 0.3 s on a 2-core CPU; a GPU needs 8192 x 8192 (1.1 TFLOP each) for as long.
  defp size, do: if(Worker.default_device() == :gpu, do: 8192, else: 768)

  # A graph that takes a while to evaluate: `steps` matmuls of n x n f32, kept bounded by a
  # tanh, and its expected first element (every element is equal).
  defp chain(w, steps, n \\ size()) do
    x = N.full([n, n], 1.0 / n, :f32, w)
    Enum.reduce(1..steps, x, fn _, acc -> N.tanh(N.matmul(acc, x, w), w) end)
  end

  defp active, do: Emily.memory_stats().active

  # Collects every process (their handles' destructors hand the arrays to the workers) and
  # waits, evaluating a trivial graph on each worker so their drops run, until MLX's active
  # memory is back to `baseline`.
  defp back_to(baseline, workers) do
    wait_until(
      fn ->
        for p <- Process.list(), do: :erlang.garbage_collect(p)

        for w <- workers do
          try do
            Emily.eval(N.zeros([1], :u8, w))
          rescue
            Emily.Error -> :stopped
          end
        end

        active() <= baseline
      end,
      tries: :infinity,
      within: 60_000,
      every: 5,
      message: fn -> "MLX's active memory stayed at #{active()} bytes" end
    )
  end

  # Evaluates chain(w, steps) in a monitored process with `w` as its worker; the process
  # sends `to` {:started, pid} just before it evaluates and {:done, pid, result} after.
  defp evaluating(w, steps, to \\ self()) do
    parent = to

    spawn_monitor(fn ->
      Emily.Stream.put(w, Worker.default_device())
      t = chain(w, steps)
      send(parent, {:started, self()})

      result =
        try do
          {:ok, Emily.to_binary(N.slice(t, [0, 0], [1, 1], [1, 1], w))}
        rescue
          e in Emily.Error -> {:error, e}
        end

      send(parent, {:done, self(), result})
    end)
  end

  # Every element of chain(_, steps) is a_steps, with a_0 = 1/n and a_k+1 = tanh(a_k).
  defp expected(steps), do: Enum.reduce(1..steps, 1.0 / size(), fn _, a -> :math.tanh(a) end)

  defp value!(<<v::float-32-native>>), do: v

  setup do
    w = Worker.start(Worker.default_device())
    baseline = (Emily.eval(N.zeros([1], :u8, w)) && active()) || active()
    on_exit(fn -> Worker.stop(w) end)
    %{w: w, baseline: baseline}
  end

  test "a process killed in the middle of an evaluation: the worker goes on, the memory comes back",
       %{w: w, baseline: baseline} do
    {pid, ref} = evaluating(w, 60)
    assert_receive {:started, ^pid}, 30_000
    Process.sleep(20)
    Process.exit(pid, :kill)
    assert_receive {:DOWN, ^ref, _, _, :killed}, 30_000

    # the next caller is answered, after the killed one's job (queued or running) is done
    {pid2, _} = evaluating(w, 2)
    assert_receive {:done, ^pid2, {:ok, bin}}, 60_000
    assert_in_delta value!(bin), expected(2), 1.0e-6

    back_to(baseline, [w])
    assert %{queued: 0, running: true} = Worker.info(w)
  end

  test "a worker stopped with jobs queued answers each caller, and stays stopped",
       %{w: w, baseline: baseline} do
    # one job running, three queued behind it (their callers wait in Emily.Worker.await)
    callers = for _ <- 1..4, do: evaluating(w, 40)
    for {pid, _} <- callers, do: assert_receive({:started, ^pid}, 30_000)
    Process.sleep(20)
    :ok = Worker.stop(w)

    results =
      for {pid, ref} <- callers do
        assert_receive {:done, ^pid, result}, 60_000
        assert_receive {:DOWN, ^ref, _, _, :normal}, 5_000
        result
      end

    for {:error, e} <- results do
      assert e.kind in [:shutdown, :closed], inspect(e)
      assert Exception.message(e) =~ ~r/worker \d+/
    end

    for {:ok, bin} <- results, do: assert_in_delta(value!(bin), expected(40), 1.0e-6)
    # a job queued behind the running one gets the error
    assert Enum.any?(results, &match?({:error, _}, &1)), inspect(results)

    e = assert_raise Emily.Error, fn -> Emily.eval(chain(w, 1)) end
    assert Exception.message(e) =~ ~r/worker \d+/
    back_to(baseline, [])
  end

  test "a worker whose owner exits with its jobs queued stops once unreferenced; its memory comes back",
       %{baseline: baseline} do
    parent = self()

    {owner, ref} =
      spawn_monitor(fn ->
        Emily.Stream.with_worker(fn ->
          w = Worker.current()
          send(parent, {:worker_id, Worker.info(w).id})
          callers = for _ <- 1..3, do: evaluating(w, 40, parent)
          wait_until(fn -> Worker.info(w).queued >= 1 end, tries: 10_000)
          send(parent, {:queued, Enum.map(callers, &elem(&1, 0))})
          # the owner exits while its callers' jobs are still queued
          exit(:owner_gone)
        end)
      end)

    assert_receive {:worker_id, id}, 30_000
    assert_receive {:queued, pids}, 30_000
    assert_receive {:DOWN, ^ref, _, _, :owner_gone}, 30_000
    _ = owner
    for pid <- pids, do: assert_receive({:started, ^pid}, 30_000)

    # the callers hold the worker; each is answered, with its value
    for pid <- pids do
      assert_receive {:done, ^pid, result}, 60_000
      assert {:ok, bin} = result
      assert_in_delta value!(bin), expected(40), 1.0e-6
    end

    back_to(baseline, [])
    # nothing references the worker any more: its thread is gone
    wait_until(fn -> "emily-#{Worker.default_device()}-#{id}" not in thread_names() end,
      tries: 10_000,
      message: fn ->
        "worker #{id} thread still there: #{inspect(thread_names())} #{inspect(Emily.memory_stats())}"
      end
    )
  end

  test "a full queue refuses at once with :queue_full; the queued callers are answered",
       %{baseline: baseline} do
    w = Worker.start(Worker.default_device(), queue_limit: 2)

    try do
      # one job running, then two queued behind it: the queue is full
      {first, _} = evaluating(w, 60)
      assert_receive {:started, ^first}, 30_000
      # its job taken by the worker (not merely about to be submitted)
      wait_until(fn -> match?(%{queued: 0, busy: true}, Worker.info(w)) end, tries: 10_000)
      queued = for _ <- 1..2, do: evaluating(w, 5)
      wait_until(fn -> Worker.info(w).queued == 2 end, tries: 10_000)

      {t, e} =
        :timer.tc(fn -> assert_raise Emily.Error, fn -> Emily.to_binary(chain(w, 1, 4)) end end)

      assert e.kind == :queue_full
      assert Exception.message(e) =~ ~r/worker \d+ queue is full \(2 jobs\)/
      # refused at once, not after the queue drained
      assert Worker.info(w).queued > 0 or t < 1_000_000

      assert_receive {:done, ^first, {:ok, bin}}, 120_000
      assert_in_delta value!(bin), expected(60), 1.0e-6

      for {pid, _} <- queued do
        assert_receive {:done, ^pid, {:ok, bin}}, 120_000
        assert_in_delta value!(bin), expected(5), 1.0e-6
      end

      # nothing stays queued, and the worker goes on
      assert %{queued: 0} = Worker.info(w)
      assert Emily.to_binary(N.add(N.full([1], 1, :u8, w), N.full([1], 2, :u8, w), w)) == <<3>>
    after
      Worker.stop(w)
    end

    back_to(baseline, [])
  end

  defp thread_names do
    for t <- File.ls!("/proc/self/task"),
        {:ok, comm} <- [File.read("/proc/self/task/#{t}/comm")],
        do: String.trim(comm)
  end
end
