defmodule Emily.BridgeTest do
  # Measures MLX's allocator figures and the ledger's counters: not async (ExUnit runs
  # synchronous modules alone, after the async ones).
  use ExUnit.Case, async: false
  import Emily.Case
  import Bitwise
  alias Emily.Native, as: N

  @mib 1024 * 1024

  defp w, do: Emily.Worker.current()
  defp stats, do: Emily.memory_stats()

  # Every drop the default worker was handed before this call has been processed: drops run
  # before the next job.
  defp barrier, do: Emily.eval(N.zeros([1], :u8, w()))

  # Collects the calling process until its live handles hold at most `bytes` (the BEAM runs
  # resource destructors as scheduler aux work, shortly after the collection), then lets the
  # worker run the drops that freed.
  defp collect(bytes) do
    wait_until(fn ->
      :erlang.garbage_collect()
      Emily.Memory.handle_bytes() <= bytes
    end)

    barrier()
  end

  # Waits for a process to exit and for the BEAM to run its handles' destructors.
  defp await_exit(pid) do
    ref = Process.monitor(pid)
    assert_receive {:DOWN, ^ref, _, _, _}, 10_000
    wait_until(fn -> Emily.Memory.handle_bytes(pid) == 0 end)
    barrier()
  end

  defp f32s(n, v), do: :binary.copy(<<v::float-32-native>>, n)

  # An evaluated f32 tensor of `n` elements equal to `-v`, in a buffer MLX allocated.
  defp mlx_owned(n, v) do
    t = N.negative(Emily.from_binary(f32s(n, v), [n], {:f, 32}), w())
    :ok = Emily.eval(t)
    t
  end

  describe "to_binary without a copy" do
    test "the binary is the MLX buffer: same address, MLX's active memory does not grow" do
      n = div(64 * @mib, 4)
      t = mlx_owned(n, 1.5)
      before = stats()
      b = Emily.to_binary(t)
      later = stats()

      assert byte_size(b) == 64 * @mib
      assert N.binary_ptr(b) == N.data_ptr(t)
      assert later.active - before.active < @mib
      assert later.bytes_copied == before.bytes_copied
      assert later.bytes_reported - before.bytes_reported == 64 * @mib
      assert later.aliases_created - before.aliases_created == 1
      assert b == f32s(n, -1.5)
    end

    test "binaries of one tensor share one ledger entry, released with the last binary" do
      t = mlx_owned(1024, 2.0)
      before = stats()

      parent = self()

      pid =
        spawn(fn ->
          b1 = Emily.to_binary(t)
          b2 = Emily.to_binary(t)
          send(parent, {:made, N.binary_ptr(b1) == N.binary_ptr(b2)})
          receive(do: (:go -> byte_size(b1) + byte_size(b2)))
        end)

      assert_receive {:made, true}, 5000
      mid = stats()
      assert mid.aliased_buffers - before.aliased_buffers == 1
      assert mid.live_aliases - before.live_aliases == 2

      send(pid, :go)
      await_exit(pid)
      wait_until(fn -> stats().live_aliases == before.live_aliases end)
      after_ = stats()
      assert after_.aliased_buffers == before.aliased_buffers
      assert after_.live_aliases == before.live_aliases
      assert after_.aliases_released - before.aliases_released == 2
    end

    test "a strided tensor is copied once, by MLX, then aliased" do
      # 256 x 512 u16 with value i * 512 + j; its transpose holds j * 512 + i at [j][i].
      rows = 256
      cols = 512

      x =
        Emily.from_binary(
          bin(Enum.to_list(0..(rows * cols - 1)), {:u, 16}),
          [rows, cols],
          {:u, 16}
        )

      tt = N.transpose(x, [1, 0], w())
      before = stats()
      b = Emily.to_binary(tt)
      later = stats()

      expected =
        for j <- 0..(cols - 1), i <- 0..(rows - 1), into: <<>>, do: <<i * cols + j::16-native>>

      assert b == expected
      assert later.bytes_copied - before.bytes_copied == rows * cols * 2
      # The view itself still reads the original layout; the binary is the copy.
      assert N.binary_ptr(b) != N.data_ptr(tt)
    end

    test "empty tensors and scalars" do
      assert Emily.to_binary(Emily.from_binary(<<>>, [0, 3], {:f, 32})) == <<>>

      assert Emily.to_binary(Emily.from_binary(<<7::32-native>>, [], {:s, 32})) ==
               <<7::32-native>>
    end
  end

  describe "the donation ledger" do
    # y = exp(x), x's buffer MLX's own, and x's handle dropped before y is evaluated: MLX
    # would write y into x's buffer. Returns {y, binary of x or nil, x's address}.
    defp exp_of_dropped(n, alias?) do
      x = mlx_owned(n, 1.0)
      b = if alias?, do: Emily.to_binary(x)
      {N.exp(x, w()), b, N.data_ptr(x)}
    end

    test "without a binary, MLX donates x's buffer to exp(x) (the control)" do
      mine = Emily.Memory.handle_bytes()
      {y, nil, x_ptr} = exp_of_dropped(4096, false)
      collect(mine + 4 * 4096)
      :ok = Emily.eval(y)
      assert N.data_ptr(y) == x_ptr
    end

    test "with a binary alive, the buffer is not donated and the binary's bytes never change" do
      n = 4096
      before = stats()
      mine = Emily.Memory.handle_bytes()
      {y, b, x_ptr} = exp_of_dropped(n, true)
      collect(mine + 4 * n)
      snapshot = :binary.copy(b)
      yb = Emily.to_binary(y)

      assert N.binary_ptr(b) == x_ptr
      assert b == snapshot
      assert b == f32s(n, -1.0)
      assert N.data_ptr(y) != x_ptr
      # e^-1
      for <<v::float-32-native <- yb>>, do: assert(abs(v - 0.36787944) < 1.0e-6)
      assert stats().donations_prevented - before.donations_prevented == 1
    end

    test "a handle still alive blocks donation by itself: nothing counted" do
      x = mlx_owned(4096, 1.0)
      b = Emily.to_binary(x)
      before = stats()
      y = N.exp(x, w())
      :ok = Emily.eval(y)
      assert stats().donations_prevented == before.donations_prevented
      assert N.data_ptr(y) != N.data_ptr(x)
      assert b == f32s(4096, -1.0)
    end

    test "the buffer is freed once the binary is gone and GC ran" do
      n = div(64 * @mib, 4)
      barrier()
      base = stats().active
      parent = self()

      pid =
        spawn(fn ->
          b = Emily.to_binary(mlx_owned(n, 3.0))
          :erlang.garbage_collect()
          send(parent, {:holding, byte_size(b)})
          receive(do: (:go -> byte_size(b)))
        end)

      assert_receive {:holding, _}, 10_000
      wait_until(fn -> Emily.Memory.handle_bytes(pid) == 0 end)
      barrier()
      # The tensor's handle is gone; the binary alone keeps the buffer. (Small arrays of the
      # barriers may be freed in between: a few hundred bytes either way.)
      held = stats()
      assert held.active - base > 63 * @mib
      assert held.aliased_bytes >= 64 * @mib

      send(pid, :go)
      await_exit(pid)
      wait_until(fn -> stats().aliased_bytes < held.aliased_bytes end)
      barrier()
      assert stats().active - base < @mib
    end
  end

  describe "from_binary without a copy" do
    @tag :aliasing
    test "a large binary is aliased: same address, nothing copied" do
      bin = f32s(1 <<< 16, 2.5)
      before = stats()
      t = Emily.from_binary(bin, [1 <<< 16], {:f, 32})
      later = stats()
      assert N.data_ptr(t) == N.binary_ptr(bin)
      assert later.external_made - before.external_made == 1
      assert later.bytes_copied == before.bytes_copied
      assert later.active - before.active < 64 * 1024
      assert Emily.to_binary(t) == bin
    end

    test "small and misaligned binaries are copied" do
      small = f32s(16, 1.0)
      t = Emily.from_binary(small, [16], {:f, 32})
      assert N.data_ptr(t) != N.binary_ptr(small)

      big = f32s(1 <<< 16, 1.0) <> <<9>>
      odd = binary_part(big, 1, 4 * ((1 <<< 16) - 1))
      assert rem(N.binary_ptr(odd), 8) != 0
      before = stats()
      t = Emily.from_binary(odd, [(1 <<< 16) - 1], {:f, 32})
      assert stats().bytes_copied - before.bytes_copied == byte_size(odd)
      assert N.data_ptr(t) != N.binary_ptr(odd)
      assert Emily.to_binary(t) == odd
    end

    @tag :aliasing
    test "MLX never writes into an aliased BEAM binary, even when it would donate" do
      n = 1 <<< 18
      bin = f32s(n, 2.0)
      mine = Emily.Memory.handle_bytes()

      {y, t_ptr} =
        (fn ->
           t = Emily.from_binary(bin, [n], {:f, 32})
           {N.exp(t, w()), N.data_ptr(t)}
         end).()

      assert t_ptr == N.binary_ptr(bin)
      collect(mine + 4 * n)
      yb = Emily.to_binary(y)
      assert bin == f32s(n, 2.0)
      assert N.data_ptr(y) != N.binary_ptr(bin)
      <<v::float-32-native, _::binary>> = yb
      assert abs(v - 7.389056) < 1.0e-5
    end

    test "a binary built by appending (writable) is frozen first; later appends copy" do
      acc = Enum.reduce(1..(1 <<< 14), <<>>, fn i, acc -> acc <> <<i::32-native>> end)
      t = Emily.from_binary(acc, [1 <<< 14], {:u, 32})
      acc2 = acc <> <<0::32>>
      assert byte_size(acc2) == byte_size(acc) + 4
      expected = for i <- 1..(1 <<< 14), into: <<>>, do: <<i::32-native>>
      assert Emily.to_binary(t) == expected
      assert binary_part(acc2, 0, byte_size(acc)) == expected
    end

    @tag :aliasing
    test "aliased binaries are released when MLX frees the array" do
      mine = Emily.Memory.handle_bytes()
      collect(mine)
      before = stats()

      (fn -> Emily.eval(Emily.from_binary(f32s(1 <<< 16, 1.0), [1 <<< 16], {:f, 32})) end).()

      assert stats().external_arrays - before.external_arrays == 1
      collect(mine)
      assert stats().external_arrays == before.external_arrays
      assert stats().external_bytes == before.external_bytes
    end
  end

  describe "mmap" do
    setup do
      path = Path.join(System.tmp_dir!(), "emily_mmap_#{System.unique_integer([:positive])}")
      on_exit(fn -> File.rm(path) end)
      {:ok, path: path}
    end

    @tag :aliasing
    test "maps a file region without a copy", %{path: path} do
      data = for i <- 0..4095, into: <<>>, do: <<i * 0.5::float-32-native>>
      File.write!(path, "HEADER!!" <> data <> "trailer")
      before = stats()
      t = Emily.mmap(path, 8, [64, 64], {:f, 32})
      assert stats().external_made - before.external_made == 1
      assert stats().bytes_copied == before.bytes_copied
      assert N.data_ptr(t) != nil
      assert Emily.to_binary(t) == data
      # Ops read the mapping (read-only: a write would crash the VM).
      y = N.add(t, t, w())
      assert binary_part(Emily.to_binary(y), 4 * 4095, 4) == <<4095.0::float-32-native>>
    end

    test "an unaligned offset copies once", %{path: path} do
      File.write!(path, "abc" <> <<1::16-native, 2::16-native, 3::16-native>>)
      before = stats()
      t = Emily.mmap(path, 3, [3], {:u, 16})
      assert Emily.to_binary(t) == <<1::16-native, 2::16-native, 3::16-native>>
      assert stats().bytes_copied - before.bytes_copied == 6
    end

    test "a tensor whose only handle is gone keeps its mapping until evaluated", %{path: path} do
      File.write!(path, f32s(1024, 1.0))
      mine = Emily.Memory.handle_bytes()
      y = (fn -> N.exp(Emily.mmap(path, 0, [1024], {:f, 32}), w()) end).()
      collect(mine + 4096)
      <<v::float-32-native, _::binary>> = Emily.to_binary(y)
      assert abs(v - 2.7182817) < 1.0e-6
    end

    test "bad regions and paths raise, naming the op and the arguments", %{path: path} do
      File.write!(path, <<0::64>>)

      e = assert_raise ArgumentError, fn -> Emily.mmap(path, 4, [2], {:f, 32}) end
      assert e.message =~ "mmap"
      assert e.message =~ "shape=[2]"
      assert e.message =~ "dtype=f32"

      e = assert_raise ArgumentError, fn -> Emily.mmap(path <> ".missing", 0, [1], {:u, 8}) end
      assert e.message =~ ~r/cannot (open|stat)/

      # not a regular file: a directory, and a FIFO (opening one would block until a writer)
      assert_raise ArgumentError, ~r/not a regular file/, fn ->
        Emily.mmap(Path.dirname(path), 0, [1], {:u, 8})
      end

      fifo = path <> ".fifo"
      {_, 0} = System.cmd("mkfifo", [fifo])

      try do
        assert_raise ArgumentError, ~r/not a regular file/, fn ->
          Emily.mmap(fifo, 0, [1], {:u, 8})
        end
      after
        File.rm(fifo)
      end

      # past the end of the file, from an offset inside or beyond it
      assert_raise ArgumentError, ~r/^mmap: /, fn -> Emily.mmap(path, 8, [1], {:u, 8}) end
      assert_raise ArgumentError, ~r/^mmap: /, fn -> Emily.mmap(path, 1 <<< 62, [1], {:u, 8}) end

      assert Emily.to_binary(Emily.mmap(path, 0, [0], {:u, 8})) == <<>>
    end
  end

  describe "memory limits" do
    test "an evaluation needing a buffer over the limit raises instead of crashing" do
      # One more row of 2^20 f32 than MLX's memory limit holds: the op builds (its buffer is
      # far below what one array may have here), evaluation is refused. The limit is set to
      # 1 GiB for this (MLX's default, a share of RAM or of GPU memory, may exceed the
      # largest array the host allows).
      a = Emily.from_binary(f32s(1 <<< 20, 1.0), [1, 1 <<< 20], {:f, 32})
      old = Emily.Memory.set_memory_limit(min(stats().limit, 1 <<< 30))

      try do
        rows = div(stats().limit, 4 <<< 20) + 1
        b = Emily.from_binary(f32s(rows, 1.0), [rows, 1], {:f, 32})
        e = assert_raise Emily.Error, fn -> Emily.to_binary(N.add(a, b, w())) end
        assert e.message =~ "to_binary"
        assert e.message =~ "memory limit"
        assert e.message =~ "f32[#{rows}][1048576]"
        assert e.kind == :runtime
        e = assert_raise Emily.Error, fn -> Emily.eval([a, N.add(a, b, w())]) end
        assert e.message =~ "eval: "
      after
        Emily.Memory.set_memory_limit(old)
      end

      # 2^40 f32 (4 TiB): MLX's CPU allocator would return NULL and MLX write through it;
      # the op is refused when built.
      e =
        assert_raise ArgumentError, fn ->
          N.add(a, Emily.from_binary(f32s(1 <<< 20, 1.0), [1 <<< 20, 1], {:f, 32}), w())
        end

      assert e.message =~ "add"
      assert e.message =~ "f32[1048576][1]"
      # The VM and the worker carry on.
      assert read(N.add(t([1], [1], {:s, 32}), t([2], [1], {:s, 32}), w())) == [3]
    end

    test "a small memory limit refuses allocations, and the previous limit comes back" do
      x = Emily.from_binary(f32s(1 <<< 20, 1.0), [1 <<< 20], {:f, 32})
      old = Emily.Memory.set_memory_limit(1)

      try do
        assert Emily.Memory.set_memory_limit(1) == 1
        e = assert_raise Emily.Error, fn -> Emily.eval(N.negative(x, w())) end
        assert e.message =~ "memory limit"
        e = assert_raise Emily.Error, fn -> Emily.from_binary(<<1, 2, 3, 4>>, [4], {:u, 8}) end
        assert e.message =~ "from_binary"
      after
        Emily.Memory.set_memory_limit(old)
      end

      assert read(N.negative(t([1.0], [1], {:f, 32}), w())) == [-1.0]
    end
  end

  describe "memory_stats and Emily.Memory" do
    @tag :aliasing
    test "reports every figure" do
      s = stats()

      for k <-
            ~w(active peak cache limit handles handle_bytes aliased_buffers aliased_bytes live_aliases
               aliases_created aliases_released donations_prevented bytes_copied bytes_reported
               external_arrays external_bytes external_made gc_threshold pressure_signals gc_requests)a do
        assert is_integer(Map.fetch!(s, k)) and Map.fetch!(s, k) >= 0, "#{k}"
      end

      assert s.external_aliasing == true
      assert is_boolean(s.gc_pressure)
    end

    test "handles and their bytes are counted per process" do
      before = stats()
      mine = Emily.Memory.handle_bytes()
      t = Emily.from_binary(f32s(1000, 1.0), [1000], {:f, 32})
      assert Emily.Memory.handle_bytes() - mine == 4000
      assert stats().handles - before.handles >= 1
      assert is_reference(t)
    end

    test "peak, cache and limits" do
      t = mlx_owned(1 <<< 20, 1.0)
      assert stats().peak >= 4 * @mib
      :ok = Emily.Memory.reset_peak()
      assert stats().peak <= stats().active + 64
      old = Emily.Memory.set_cache_limit(0)
      assert Emily.Memory.set_cache_limit(old) == 0
      :ok = Emily.Memory.clear_cache()
      assert stats().cache == 0
      assert is_reference(t)
    end

    test "bad arguments raise" do
      assert_raise ArgumentError, ~r/set_memory_limit/, fn ->
        Emily.Memory.set_memory_limit(-1)
      end

      assert_raise ArgumentError, ~r/set_cache_limit/, fn -> Emily.Memory.set_cache_limit(:x) end
      assert_raise ArgumentError, ~r/set_gc_threshold/, fn -> Emily.Memory.set_gc_threshold(0) end
      assert_raise ArgumentError, ~r/set_gc_pressure/, fn -> Emily.Memory.set_gc_pressure(1) end

      for bad <- [0, 32 * @mib + 1, :x] do
        assert_raise ArgumentError, ~r/set_malloc_mmap_threshold/, fn ->
          Emily.Memory.set_malloc_mmap_threshold(bad)
        end
      end
    end

    # The application's default: glibc's own ceiling, in place of the 128 KiB the BEAM fixes
    # (tests/memory.rs checks what glibc then does with large blocks).
    @tag :glibc
    test "malloc's mmap threshold is set at start" do
      assert stats().malloc_mmap_threshold == 32 * @mib
      assert Emily.Memory.set_malloc_mmap_threshold(32 * @mib)
      assert stats().malloc_mmap_threshold == 32 * @mib
    end
  end
end
