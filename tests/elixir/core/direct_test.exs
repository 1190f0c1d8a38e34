defmodule Emily.DirectTest do
  # Direct execution (Emily.Worker's module doc): the thread evaluating on a CPU worker's
  # stream runs MLX's kernels itself. The setting is process-wide: not async.
  use ExUnit.Case, async: false
  import Emily.Case
  alias Emily.Native, as: N
  alias Emily.Worker

  defp with_direct(on, fun) do
    previous = Worker.set_direct_execution(on)

    try do
      fun.()
    after
      Worker.set_direct_execution(previous)
    end
  end

  # A graph mixing op families; evaluated on a fresh worker (queued jobs) and read back.
  defp mixed(w) do
    n = 4096
    x = N.divide(N.arange(0, n, 1, :f32, w), N.full([1], 64.0, :f32, w), w)
    y = N.add(N.multiply(N.sin(x, w), N.exp(N.negative(x, w), w), w), x, w)
    m = N.reshape(y, [64, 64], w)
    p = N.matmul(m, N.transpose(m, [1, 0], w), w)
    s = N.sort(N.reshape(p, [n], w), 0, w)
    c = N.cumsum(N.reshape(y, [n], w), 0, false, true, w)

    inv =
      N.inv(
        N.add(N.reshape(N.slice(y, [0], [16], [1], w), [4, 4], w), N.eye(4, 4, 0, :f32, w), w),
        w
      )

    [p, s, c, N.sum(y, [0], false, w), inv]
  end

  defp evaluate(fun) do
    w = Worker.start(:cpu)

    try do
      Enum.map(fun.(w), &Emily.to_binary/1)
    after
      Worker.stop(w)
    end
  end

  test "libmlx's scheduler calls reach Emily on Linux" do
    _ = evaluate(fn w -> [N.add(f([1, 2], [2]), f([3, 4], [2]), w)] end)

    if :os.type() == {:unix, :linux} do
      assert Worker.direct_execution_available?() == true
    end
  end

  test "the same graph gives the same bytes with direct execution on and off" do
    on = with_direct(true, fn -> evaluate(&mixed/1) end)
    off = with_direct(false, fn -> evaluate(&mixed/1) end)
    assert on == off
    # and inline, in this process's thread, on the default worker
    w = Worker.current()

    small = fn ->
      Emily.to_binary(N.sin(N.multiply(f([1, 2, 3], [3]), f([4, 5, 6], [3]), w), w))
    end

    assert with_direct(true, small) == with_direct(false, small)
  end

  test "a kernel failing while it runs raises the same error either way; the worker goes on" do
    for direct <- [true, false, true] do
      with_direct(direct, fn ->
        w = Worker.current()
        e = assert_raise Emily.Error, fn -> Emily.eval(N.inv(f([1, 2, 2, 4], [2, 2]), w)) end
        assert e.kind == :runtime
        assert e.message =~ "LU factorization failed with error code"
        assert_close(read(N.inv(f([4, 7, 2, 6], [2, 2]), w)), [0.6, -0.7, -0.2, 0.4])
      end)
    end
  end

  test "set_direct_execution/1 takes a boolean" do
    assert_raise ArgumentError, ~r/set_direct_execution/, fn ->
      Worker.set_direct_execution(:yes)
    end
  end
end
