defmodule Emily.RoundTripTest do
  use ExUnit.Case, async: true
  import Emily.Case
  import Emily.OpsCase, only: [types: 0]
  import Bitwise
  alias Emily.Native, as: N

  defp w, do: Emily.Worker.current()

  defp size_of(:bool), do: 1
  defp size_of({_, bits}), do: div(bits, 8)

  # Valid elements of `type` as raw bytes (bool: 0 or 1; everything else any bit pattern,
  # floats kept finite so that a copy by MLX's kernels keeps the exact bits).
  defp elements(type, n) do
    for i <- 0..(n - 1), into: <<>> do
      case type do
        :bool -> <<rem(i * 7, 3) |> min(1)>>
        {:f, 16} -> <<i * 0.25::float-16-native>>
        {:bf, 16} -> binary_part(<<i * 0.5::float-32-native>>, 2, 2)
        {:f, b} -> <<i * 1.5 - 7.0::float-size(b)-native>>
        {:c, 64} -> <<i * 1.0::float-32-native, -i * 2.0::float-32-native>>
        {_, b} -> <<i * 2_654_435_761::size(b)-native>>
      end
    end
  end

  # Transposes a row-major rows x cols matrix of `size`-byte elements.
  defp transpose_bytes(bin, rows, cols, size) do
    for j <- 0..(cols - 1),
        i <- 0..(rows - 1),
        into: <<>>,
        do: binary_part(bin, (i * cols + j) * size, size)
  end

  describe "round trips" do
    test "every type, copied (small), aliased (large) and through an MLX copy (transposed)" do
      for type <- types(), n <- [6, 1 <<< 16] do
        size = size_of(type)
        bin = elements(type, n)
        t = Emily.from_binary(bin, [n], type)
        assert Emily.dtype(t) == type
        assert Emily.shape(t) == [n]
        assert Emily.to_binary(t) == bin, "#{inspect(type)} x #{n}"

        rows = 2
        cols = div(n, 2)
        m = Emily.from_binary(bin, [rows, cols], type)
        tt = N.transpose(m, [1, 0], w())
        assert Emily.shape(tt) == [cols, rows]

        assert Emily.to_binary(tt) == transpose_bytes(bin, rows, cols, size),
               "#{inspect(type)} x #{n} transposed"

        # An MLX-allocated buffer: the transpose made contiguous, transposed back.
        back = N.transpose(N.contiguous(tt, false, w()), [1, 0], w())
        assert Emily.to_binary(back) == bin
      end
    end

    test "values survive in every type (hand-written)" do
      assert read(t([true, false, true], [3], :bool)) == [true, false, true]
      assert read(t([0, 255], [2], {:u, 8})) == [0, 255]
      assert read(t([-32768, 32767], [2], {:s, 16})) == [-32768, 32767]
      assert read(t([4_294_967_295], [1], {:u, 32})) == [4_294_967_295]
      assert read(t([-9_223_372_036_854_775_808], [1], {:s, 64})) == [-9_223_372_036_854_775_808]
      assert read(t([18_446_744_073_709_551_615], [1], {:u, 64})) == [18_446_744_073_709_551_615]
      assert read(t([1.5, -2.25], [2], {:f, 16})) == [1.5, -2.25]
      assert read(t([1.5, -2.25], [2], {:bf, 16})) == [1.5, -2.25]
      assert read(t([0.1], [1], {:f, 64})) == [0.1]
      assert read(t([{1.0, -2.0}], [1], {:c, 64})) == [{1.0, -2.0}]
      assert read(t([3.0], [1, 1, 1], {:f, 32})) == [3.0]
    end
  end

  describe "async_eval" do
    test "starts the evaluation and returns; reads find the values; errors surface later" do
      w = Emily.Worker.current()
      a = Emily.Case.t([1.0, 2.0, 3.0], [3], {:f, 32})
      # a graph too costly to run inline: it goes to the worker
      big = Emily.Native.full([1024, 1024], 0.5, :f32, w)
      s = Emily.Native.sum(Emily.Native.matmul(big, big, w), [0, 1], false, w)
      y = Emily.Native.exp(a, w)
      assert Emily.async_eval([s, y]) == :ok
      assert Emily.async_eval([]) == :ok
      assert Emily.Case.read(s) == [256.0 * 1024 * 1024]
      assert_in_delta Enum.at(Emily.Case.read(y), 2), :math.exp(3.0), 1.0e-4

      # an evaluation that fails in the background raises when the tensor is read
      bad = Emily.Native.full([2], 1.0, :f32, w)
      ph = Emily.Native.program_placeholder([2], :f32, w)
      z = Emily.Native.add(bad, ph, w)
      assert Emily.async_eval([z]) == :ok
      assert_raise ArgumentError, fn -> Emily.Case.read(z) end
    end
  end

  describe "concurrency" do
    test "32 processes x 200 from_binary/to_binary round trips, every byte checked" do
      parent = self()

      pids =
        for p <- 1..32 do
          spawn_link(fn ->
            :rand.seed(:exsss, {p, 17, 42})
            run = fn -> for i <- 1..200, do: round_trip(p, i) end

            # Half the processes use a worker of their own.
            if rem(p, 2) == 0, do: Emily.Stream.with_worker(run), else: run.()
            send(parent, {:done, p})
          end)
        end

      for p <- 1..32, do: assert_receive({:done, ^p}, 120_000)
      assert length(pids) == 32
    end

    defp round_trip(p, i) do
      type = Enum.at(types(), rem(p + i, length(types())))
      size = size_of(type)
      # Sizes from a few bytes to past the aliasing threshold (64 KiB).
      n = Enum.random([1, 7, 100, 1000, div(70_000, size), div(200_000, size)])
      bin = elements(type, n)
      t = Emily.from_binary(bin, [n], type)
      out = Emily.to_binary(t)
      assert out == bin

      # Every fourth: through an MLX kernel (a u8 add) and back, checked byte by byte.
      if rem(i, 4) == 0 do
        raw = :crypto.strong_rand_bytes(min(byte_size(bin), 16_384))
        k = rem(p * 31 + i, 256)
        u = Emily.from_binary(raw, [byte_size(raw)], {:u, 8})
        sum = Emily.to_binary(N.add(u, N.full_int([1], k, :u8, w()), w()))
        assert sum == for(<<x <- raw>>, into: <<>>, do: <<rem(x + k, 256)>>)
      end
    end
  end

  describe "bad input raises, naming the op, shapes and types; the VM stays up" do
    # (Argument checks of every Emily function: tests/elixir/core/emily_test.exs.)
    test "from_binary: the byte size must match the shape and type" do
      e = assert_raise ArgumentError, fn -> Emily.from_binary(<<1, 2, 3>>, [2], {:u, 8}) end
      assert e.message =~ "from_binary"
      assert e.message =~ "shape=[2]"
      assert e.message =~ "dtype=u8"

      # a binary large enough to be aliased rather than copied
      e =
        assert_raise ArgumentError, fn ->
          Emily.from_binary(:binary.copy(<<0>>, 1 <<< 17), [7], {:f, 32})
        end

      assert e.message =~ "from_binary"
      assert e.message =~ "dtype=f32"

      # dimensions each in range whose product is not the byte size
      e =
        assert_raise ArgumentError, fn ->
          Emily.from_binary(<<1>>, [2_147_483_647, 2_147_483_647, 2_147_483_647], {:u, 8})
        end

      assert e.message =~ "from_binary"
    end

    test "ops name themselves and their inputs" do
      a = t([1.0, 2.0, 3.0], [3], {:f, 32})
      b = t([1, 2], [2], {:s, 16})
      e = assert_raise ArgumentError, fn -> N.add(a, b, w()) end
      assert e.message =~ "add"
      assert e.message =~ "f32[3]"
      assert e.message =~ "s16[2]"
      assert_raise ArgumentError, fn -> N.add(a, :x, w()) end
      assert_raise ArgumentError, fn -> N.exp(a, :not_a_worker) end
    end

    test "Emily.Stream and Emily.Memory" do
      assert_raise FunctionClauseError, fn -> Emily.Stream.with_worker(:x) end
      assert_raise FunctionClauseError, fn -> Emily.Stream.put(:x) end
      assert_raise ArgumentError, ~r/worker_new: unknown device/, fn -> Emily.Stream.new(:tpu) end

      assert_raise ArgumentError, ~r/set_gc_threshold/, fn ->
        Emily.Memory.set_gc_threshold(-5)
      end
    end

    test "the VM is still up" do
      assert read(N.add(t([1], [1], {:u, 8}), t([2], [1], {:u, 8}), w())) == [3]
    end
  end

  # Handlers run in the emitting process: keep the test's own events only.
  def handle_event(event, measurements, meta, test) do
    if self() == test, do: send(test, {:event, event, measurements, meta})
  end

  describe "telemetry" do
    @describetag :telemetry

    test "spans for from_binary, mmap, to_binary, eval and async_eval; shapes as lists" do
      {:ok, _} = Application.ensure_all_started(:telemetry)
      id = {__MODULE__, make_ref()}

      events =
        for e <- [:from_binary, :mmap, :to_binary, :eval, :async_eval],
            k <- [:start, :stop],
            do: [:emily, e, k]

      :ok = apply(:telemetry, :attach_many, [id, events, &__MODULE__.handle_event/4, self()])
      path = Path.join(System.tmp_dir!(), "emily_span_#{System.unique_integer([:positive])}")

      try do
        # a tuple shape is reported as a list as well
        x = Emily.from_binary(<<1, 2>>, {2}, {:u, 8})
        assert Emily.to_binary(x) == <<1, 2>>
        assert Emily.eval(x) == :ok
        assert Emily.async_eval([x, x]) == :ok
        File.write!(path, <<0, 1, 2, 3>>)
        m = Emily.mmap(path, 0, [2, 2], :bool)

        assert_receive {:event, [:emily, :from_binary, :start], _,
                        %{shape: [2], dtype: {:u, 8}, byte_size: 2}}

        assert_receive {:event, [:emily, :from_binary, :stop], %{duration: d}, _} when d >= 0

        assert_receive {:event, [:emily, :to_binary, :start], _,
                        %{shape: [2], dtype: {:u, 8}, byte_size: 2}}

        assert_receive {:event, [:emily, :to_binary, :stop], %{duration: _}, %{shape: [2]}}
        assert_receive {:event, [:emily, :eval, :start], _, %{count: 1}}
        assert_receive {:event, [:emily, :eval, :stop], _, _}
        assert_receive {:event, [:emily, :async_eval, :start], _, %{count: 2}}
        assert_receive {:event, [:emily, :async_eval, :stop], _, _}

        assert_receive {:event, [:emily, :mmap, :start], _,
                        %{shape: [2, 2], dtype: :bool, path: ^path, offset: 0}}

        assert_receive {:event, [:emily, :mmap, :stop], _, _}
        assert Emily.shape(m) == [2, 2]
      after
        apply(:telemetry, :detach, [id])
        File.rm(path)
      end
    end
  end
end
