defmodule Emily.OpsFftTest do
  use ExUnit.Case, async: true
  import Emily.Case
  alias Emily.Native, as: N

  setup do
    {:ok, w: Emily.Worker.current()}
  end

  test "fft, ifft with each normalisation", %{w: w} do
    x = f([1, 2, 3, 4], [4])
    r = N.fft(x, 0, -1, :backward, w)
    assert Emily.dtype(r) == {:c, 64}
    assert_close(read(r), [{10, 0}, {-2, 2}, {-2, 0}, {-2, -2}])
    assert_close(read(N.ifft(r, 0, -1, :backward, w)), [1, 2, 3, 4])

    assert_close(read(N.fft(f([1, 1, 1, 1], [4]), 0, 0, :ortho, w)), [2, 0, 0, 0])

    assert_close(read(N.fft(x, 0, 0, :forward, w)), [
      {2.5, 0},
      {-0.5, 0.5},
      {-0.5, 0},
      {-0.5, -0.5}
    ])
  end

  test "fft with n pads or truncates", %{w: w} do
    # [1, 2, 0, 0]
    assert_close(read(N.fft(f([1, 2], [2]), 4, 0, :backward, w)), [
      {3, 0},
      {1, -2},
      {-1, 0},
      {1, 2}
    ])

    assert_close(read(N.fft(f([1, 2, 3, 4], [4]), 2, 0, :backward, w)), [{3, 0}, {-1, 0}])

    assert_close(read(N.fftn(f([1, 2], [2]), [4], [0], :backward, w)), [
      {3, 0},
      {1, -2},
      {-1, 0},
      {1, 2}
    ])
  end

  test "rfft and irfft", %{w: w} do
    r = N.rfft(f([1, 2, 3, 4], [4]), 0, -1, :backward, w)
    assert Emily.shape(r) == [3]
    assert_close(read(r), [{10, 0}, {-2, 2}, {-2, 0}])

    back = N.irfft(r, 0, -1, :backward, w)
    assert Emily.dtype(back) == {:f, 32}
    assert_close(read(back), [1, 2, 3, 4])
    # odd length needs n
    r5 = N.rfft(f([1, 2, 3, 4, 5], [5]), 0, -1, :backward, w)
    assert_close(read(N.irfft(r5, 5, -1, :backward, w)), [1, 2, 3, 4, 5])
  end

  test "2-D transforms", %{w: w} do
    m = f([1, 2, 3, 4], [2, 2])
    expected = [{10, 0}, {-2, 0}, {-4, 0}, {0, 0}]
    assert_close(read(N.fftn(m, [], [0, 1], :backward, w)), expected)
    assert_close(read(N.fft2(m, [], [], :backward, w)), expected)

    assert_close(read(N.ifft2(N.fft2(m, [], [], :backward, w), [], [], :backward, w)), [
      1,
      2,
      3,
      4
    ])

    assert_close(read(N.ifftn(N.fftn(m, [], [0, 1], :ortho, w), [], [0, 1], :ortho, w)), [
      1,
      2,
      3,
      4
    ])

    r = N.rfft2(m, [], [], :backward, w)
    assert Emily.shape(r) == [2, 2]
    assert_close(read(r), expected)
    assert_close(read(N.irfft2(r, [2, 2], [], :backward, w)), [1, 2, 3, 4])

    assert_close(
      read(N.irfftn(N.rfftn(m, [], [0, 1], :backward, w), [2, 2], [0, 1], :backward, w)),
      [1, 2, 3, 4]
    )

    # only along axis 1: rows [1, 2] -> [3, -1], [3, 4] -> [7, -1]
    assert_close(read(N.fftn(m, [], [1], :backward, w)), [{3, 0}, {-1, 0}, {7, 0}, {-1, 0}])
  end

  test "fftshift and ifftshift", %{w: w} do
    x = t([0, 1, 2, 3, 4], [5], {:s, 32})
    assert read(N.fftshift(x, [], w)) == [3, 4, 0, 1, 2]
    assert read(N.ifftshift(N.fftshift(x, [], w), [0], w)) == [0, 1, 2, 3, 4]
  end

  test "bad arguments raise ArgumentError", %{w: w} do
    x = f([1, 2, 3, 4], [4])
    assert_raise ArgumentError, ~r/norm/, fn -> N.fft(x, 0, 0, :bogus, w) end
    assert_raise ArgumentError, ~r/fft2/, fn -> N.fft2(x, [], [0], :backward, w) end
    assert_raise ArgumentError, fn -> N.fft(x, 0, 3, :backward, w) end
  end
end
