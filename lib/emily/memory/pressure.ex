defmodule Emily.Memory.Pressure do
  @moduledoc """
  Receives the NIF's collection requests (see `Emily.Memory`) and asks the processes that
  hold the most tensor-handle bytes to collect: `:erlang.garbage_collect(pid, async: ref)`,
  never blocking, at most one collection in flight per process.

  Started by Emily's application; `requests/0` counts the collections it asked for.
  """
  use GenServer

  @counter {__MODULE__, :counter}

  @doc false
  def start_link(opts \\ []), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @doc "Process collections requested since start."
  @spec requests() :: non_neg_integer()
  def requests do
    case :persistent_term.get(@counter, nil) do
      nil -> 0
      c -> :counters.get(c, 1)
    end
  end

  @impl true
  def init(_opts) do
    counter =
      case :persistent_term.get(@counter, nil) do
        nil ->
          c = :counters.new(1, [:write_concurrency])
          :persistent_term.put(@counter, c)
          c

        c ->
          c
      end

    :ok = Emily.Native.pressure_register(self())
    {:ok, %{counter: counter, pending: %{}}}
  end

  @impl true
  def handle_info({:emily_memory_pressure, {_bytes, _active, _threshold}, holders}, state) do
    pending =
      Enum.reduce(holders, state.pending, fn {pid, _bytes}, pending ->
        if Map.has_key?(pending, pid) or not Process.alive?(pid) do
          pending
        else
          ref = make_ref()
          :erlang.garbage_collect(pid, async: ref)
          :counters.add(state.counter, 1, 1)
          Map.put(pending, pid, ref)
        end
      end)

    {:noreply, %{state | pending: pending}}
  end

  def handle_info({:garbage_collect, ref, _result}, state) do
    pending = for {pid, r} <- state.pending, r != ref, into: %{}, do: {pid, r}
    {:noreply, %{state | pending: pending}}
  end

  def handle_info(_other, state), do: {:noreply, state}
end
