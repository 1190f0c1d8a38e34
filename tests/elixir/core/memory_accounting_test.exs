defmodule Emily.MemoryAccountingTest do
  @moduledoc """
  The statements of the "Memory accounting" section of `Emily`'s moduledoc, one test each.
  Not async: they read process-wide figures (the ledger's, the handles').
  """
  use ExUnit.Case, async: false
  import Emily.Case, only: [wait_until: 1]
  import Bitwise
  alias Emily.Native, as: N

  @mib 1 <<< 20
  @word :erlang.system_info(:wordsize)

  defp w, do: Emily.Worker.current()
  defp stats, do: Emily.memory_stats()

  # Every drop handed to the default worker before this call has run.
  defp barrier, do: Emily.eval(N.zeros([1], :u8, w()))

  # Words of binaries charged to the process: its young and old binary virtual heaps (a
  # collection moves surviving binaries to the old one).
  defp vheap(pid \\ self()) do
    {:garbage_collection_info, info} = :erlang.process_info(pid, :garbage_collection_info)
    info[:bin_vheap_size] + info[:bin_old_vheap_size]
  end

  defp listed_sizes do
    {:binary, list} = :erlang.process_info(self(), :binary)
    Enum.map(list, fn {_, size, _} -> size end)
  end

  # Runs `fun` in a fresh process with a heap large enough that it does not collect on its
  # own during the test; returns fun's result once the process and its handles are gone.
  defp in_process(fun, opts \\ []) do
    parent = self()

    {pid, ref} =
      :erlang.spawn_opt(
        fn -> send(parent, {:result, self(), fun.()}) end,
        [:monitor, min_heap_size: Keyword.get(opts, :heap_words, 1 <<< 20)]
      )

    assert_receive {:result, ^pid, result}, 60_000
    assert_receive {:DOWN, ^ref, _, _, _}, 10_000
    wait_until(fn -> Emily.Memory.handle_bytes(pid) == 0 end)
    barrier()
    result
  end

  # An evaluated f32 tensor of `n` elements equal to `v`, in a buffer MLX allocated.
  defp mlx_owned(n, v) do
    t = N.full([n], v * 1.0, :f32, w())
    :ok = Emily.eval(t)
    t
  end

  describe "binaries from to_binary" do
    test "are charged at their full size to the receiving process's binary virtual heap" do
      n = div(16 * @mib, 4)

      growth =
        in_process(fn ->
          # evaluated: read in the caller's thread
          t = mlx_owned(n, 1.0)
          v0 = vheap()
          b1 = Emily.to_binary(t)
          v1 = vheap()
          # not evaluated and too costly to evaluate inline: the worker answers with a message
          b2 = Emily.to_binary(N.exp(mlx_owned(n, 0.0), w()))
          v2 = vheap()
          <<1.0::float-32-native, _::binary>> = b1
          <<1.0::float-32-native, _::binary>> = b2
          {v1 - v0, v2 - v1}
        end)

      # (give or take the few small binaries a collection in between may drop)
      {g1, g2} = growth
      words = div(16 * @mib, @word)
      assert abs(g1 - words) < 1024, inspect(growth)
      assert abs(g2 - words) < 1024, inspect(growth)
    end

    test "are not listed by process_info(:binary) nor counted by :erlang.memory(:binary); the ledger counts them" do
      size = 16 * @mib + 4 * 12_345
      t = mlx_owned(div(size, 4), 2.0)
      before = stats()
      mem = :erlang.memory(:binary)
      b = Emily.to_binary(t)
      later = stats()

      assert byte_size(b) == size
      refute size in listed_sizes()
      assert :erlang.memory(:binary) - mem < div(size, 2)
      assert later.aliased_bytes - before.aliased_bytes == size
      assert later.live_aliases - before.live_aliases == 1
      assert later.bytes_reported - before.bytes_reported == size
    end

    test "a loop reading large tensors and dropping the binaries stays bounded without help" do
      # ERTS alone: the handle accounting is off, and the process's heap (8 MiB) does not
      # fill in the loop; what collects is the binary virtual heap.
      old = Emily.Memory.set_gc_pressure(false)
      n = div(8 * @mib, 4)
      rounds = 48

      try do
        base = mlx_owned(n, 0.0)
        a0 = stats().aliased_bytes

        max_aliased =
          in_process(fn ->
            Enum.reduce(1..rounds, 0, fn i, acc ->
              <<v::float-32-native, _::binary>> =
                Emily.to_binary(N.add(base, N.scalar(i * 1.0, :f32, w()), w()))

              ^v = i * 1.0
              max(acc, stats().aliased_bytes - a0)
            end)
          end)

        # 48 tensors of 8 MiB were read; at most a few binaries were alive at once
        assert max_aliased <= 16 * 8 * @mib, "#{div(max_aliased, @mib)} MiB aliased at once"
      after
        Emily.Memory.set_gc_pressure(old)
      end
    end

    test "the buffer stays while a binary or the tensor lives, and goes once both are collected" do
      n = div(16 * @mib, 4)
      # earlier tests' garbage collected and dropped first, so nothing else moves the
      # figures compared below
      for p <- Process.list(), do: :erlang.garbage_collect(p)
      barrier()
      before = stats()
      parent = self()

      pid =
        spawn(fn ->
          b = Emily.to_binary(mlx_owned(n, 3.0))
          # the tensor's handle is garbage now; the binary alone holds the buffer
          :erlang.garbage_collect()
          send(parent, :holding)
          receive(do: (:go -> byte_size(b)))
        end)

      ref = Process.monitor(pid)
      assert_receive :holding, 10_000
      wait_until(fn -> Emily.Memory.handle_bytes(pid) == 0 end)
      barrier()
      held = stats()
      assert held.aliased_buffers - before.aliased_buffers == 1
      assert held.active - before.active >= 16 * @mib

      send(pid, :go)
      assert_receive {:DOWN, ^ref, _, _, _}, 10_000
      wait_until(fn -> stats().aliased_buffers == before.aliased_buffers end)
      barrier()
      assert stats().active - before.active < @mib

      # the tensor alone: its binaries collected, it keeps its buffer (and the ledger lets go)
      t = mlx_owned(n, 4.0)
      in_process(fn -> byte_size(Emily.to_binary(t)) end)
      wait_until(fn -> stats().aliased_buffers == before.aliased_buffers end)
      <<4.0::float-32-native, _::binary>> = Emily.to_binary(t)
    end
  end

  describe "tensor handles" do
    test "count a few words, whatever their arrays' size; Emily counts their bytes per process" do
      n = div(64 * @mib, 4)

      {words, vheap_growth, mine, all} =
        in_process(fn ->
          before = stats()
          m0 = Emily.Memory.handle_bytes()
          v0 = vheap()
          t = N.zeros([n], :f32, w())
          v1 = vheap()
          later = stats()
          mine = Emily.Memory.handle_bytes() - m0
          all = {later.handles - before.handles, later.handle_bytes - before.handle_bytes}
          {:erts_debug.size(t), v1 - v0, mine, all}
        end)

      # the handle's term, in words of the process heap
      assert words < 16, "#{words} words"
      # the binary heap is charged the NIF resource's own struct, not the array's 64 MiB
      assert vheap_growth < 64, "#{vheap_growth} words"
      assert mine == 64 * @mib
      {handles, handle_bytes} = all
      assert handles >= 1
      assert handle_bytes >= 64 * @mib
    end

    test "when they grow by the GC threshold, the largest holders are asked to collect" do
      old_threshold = Emily.Memory.set_gc_threshold(16 * @mib)
      old_pressure = Emily.Memory.set_gc_pressure(true)
      n = div(4 * @mib, 4)
      rounds = 64

      try do
        requests = stats().gc_requests

        max_held =
          in_process(
            fn ->
              Enum.reduce(1..rounds, 0, fn i, acc ->
                :ok = Emily.eval(N.full([n], i * 1.0, :f32, w()))
                max(acc, Emily.Memory.handle_bytes())
              end)
            end,
            heap_words: 4 <<< 20
          )

        # 256 MiB of handles made and dropped; the process was collected along the way
        assert stats().gc_requests > requests
        assert max_held <= 16 * 4 * @mib, "#{div(max_held, @mib)} MiB of handles held at once"
      after
        Emily.Memory.set_gc_threshold(old_threshold)
        Emily.Memory.set_gc_pressure(old_pressure)
      end
    end
  end

  describe "releasing a buffer sooner than the next collection" do
    test ":erlang.garbage_collect/0 after dropping the binary" do
      t = mlx_owned(div(4 * @mib, 4), 1.0)
      base = stats().live_aliases

      in_process(fn ->
        b = Emily.to_binary(t)
        true = stats().live_aliases == base + 1
        _ = byte_size(b)
        :erlang.garbage_collect()
        wait_until(fn -> stats().live_aliases == base end)
      end)

      assert stats().live_aliases == base
    end

    test "a short-lived process's binaries go when it exits" do
      t = mlx_owned(div(4 * @mib, 4), 1.0)
      base = stats().live_aliases
      parent = self()

      {pid, ref} =
        spawn_monitor(fn ->
          b = Emily.to_binary(t)
          send(parent, {:alive, stats().live_aliases, byte_size(b)})
          receive(do: (:exit -> :ok))
        end)

      assert_receive {:alive, live, _}
      assert live == base + 1
      send(pid, :exit)
      assert_receive {:DOWN, ^ref, _, _, _}
      wait_until(fn -> stats().live_aliases == base end)
    end

    test ":binary.copy/1 gives a BEAM-owned copy; the alias goes with the original" do
      size = 4 * @mib + 4 * 777
      t = mlx_owned(div(size, 4), 5.0)
      base = stats().live_aliases

      in_process(fn ->
        b = Emily.to_binary(t)
        c = :binary.copy(b)
        true = c == b
        true = N.binary_ptr(c) != N.binary_ptr(b)
        # an ordinary binary, which the BEAM lists and counts
        true = size in listed_sizes()
        true = stats().live_aliases == base + 1
        _ = byte_size(b)
        :erlang.garbage_collect()
        wait_until(fn -> stats().live_aliases == base end)
        <<5.0::float-32-native, _::binary>> = c
      end)
    end
  end
end
