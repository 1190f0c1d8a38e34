defmodule Emily.ThreadsTest do
  # Threads Emily brings about (its workers, MLX's stream threads, OpenBLAS's pool) take the
  # process's CPU set, also in a BEAM whose schedulers are bound to one CPU each (src/threads.rs).
  use ExUnit.Case, async: true

  @moduletag :linux
  if :erlang.system_info(:logical_processors_available) < 2 do
    @moduletag skip: "one CPU: every thread runs on it"
  end

  # Run in a child BEAM started with `+sbt db`: evaluates a matmul through the default
  # worker and reports its threads, their CPU sets and OpenBLAS's thread count.
  @child """
  {:ok, _} = Application.ensure_all_started(:emily)
  w = Emily.Worker.current()
  n = 256
  x = Emily.Native.from_binary(:binary.copy(<<1.0::float-32-native>>, n * n), [n, n], :f32, w)
  <<v::float-32-native, _::binary>> = Emily.to_binary(Emily.Native.matmul(x, x, w))
  cpus = fn status -> Regex.run(~r/Cpus_allowed_list:\\s*(\\S+)/, status) |> List.last() end
  threads =
    for t <- File.ls!("/proc/self/task"),
        # a thread may exit between the listing and the reads
        {:ok, status} <- [File.read("/proc/self/task/" <> t <> "/status")],
        {:ok, comm} <- [File.read("/proc/self/task/" <> t <> "/comm")] do
      {String.trim(comm), cpus.(status)}
    end
  report = %{
    value: v,
    bindings: :erlang.system_info(:scheduler_bindings),
    schedulers: :erlang.system_info(:schedulers),
    process: cpus.(File.read!("/proc/self/status")),
    threads: threads,
    blas: Emily.Native.blas_threads()
  }
  IO.write("REPORT:" <> Base.encode64(:erlang.term_to_binary(report)))
  """

  defp run_child do
    elixir = System.find_executable("elixir") || flunk("no elixir executable on PATH")
    paths = Enum.flat_map(:code.get_path(), &["-pa", to_string(&1)])
    args = ["--erl", "+sbt db"] ++ paths ++ ["-e", @child]
    {out, status} = System.cmd(elixir, args, stderr_to_stdout: true)
    assert status == 0, out
    [_, b64] = Regex.run(~r/REPORT:(\S+)/, out)
    b64 |> Base.decode64!() |> :erlang.binary_to_term()
  end

  test "with schedulers bound (+sbt db), only the schedulers are bound; OpenBLAS has a thread per CPU" do
    r = run_child()
    assert r.value == 256.0
    # The binding took effect (on a machine that cannot bind, there is nothing to test).
    assert Enum.all?(Tuple.to_list(r.bindings), &is_integer/1), inspect(r.bindings)

    bound = Enum.reject(r.threads, fn {_, cpus} -> cpus == r.process end)
    # the normal schedulers, each on its CPU, and nothing else: OpenBLAS's and MLX's threads
    # are started from a bound scheduler too, but with the process's set
    assert length(bound) == r.schedulers, inspect(bound, limit: :infinity)
    assert Enum.all?(bound, fn {name, _} -> name =~ ~r/^\d+_scheduler$/ end), inspect(bound)

    cap =
      Enum.find_value(~w(OPENBLAS_NUM_THREADS GOTO_NUM_THREADS OMP_NUM_THREADS), fn v ->
        case Integer.parse(System.get_env(v, "")) do
          {n, ""} when n > 0 -> n
          _ -> nil
        end
      end)

    cpus = :erlang.system_info(:logical_processors_available)
    if r.blas, do: assert(r.blas == min(cap || cpus, cpus))
  end
end
