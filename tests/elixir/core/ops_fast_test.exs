defmodule Emily.OpsFastTest do
  use ExUnit.Case, async: true
  import Emily.Case
  alias Emily.Native, as: N

  setup do
    {:ok, w: Emily.Worker.current()}
  end

  test "rms_norm with and without weight", %{w: w} do
    # rms([3, 4]) = sqrt(12.5)
    r = :math.sqrt(12.5)
    assert_close(read(N.rms_norm(f([3, 4], [1, 2]), [], 0.0, w)), [3 / r, 4 / r])
    assert_close(read(N.rms_norm(f([3, 4], [1, 2]), [f([2, 0.5], [2])], 0.0, w)), [6 / r, 2 / r])
  end

  test "layer_norm with optional weight and bias", %{w: w} do
    x = f([1, 2, 3], [1, 3])
    s = :math.sqrt(2 / 3)
    assert_close(read(N.layer_norm(x, [], [], 0.0, w)), [-1 / s, 0.0, 1 / s])

    r = N.layer_norm(x, [f([1, 2, 3], [3])], [f([1, 1, 1], [3])], 0.0, w)
    assert_close(read(r), [1 - 1 / s, 1.0, 1 + 3 / s])

    assert_close(read(N.layer_norm(x, [], [f([1, 1, 1], [3])], 0.0, w)), [
      1 - 1 / s,
      1.0,
      1 + 1 / s
    ])
  end

  test "rope rotates feature pairs by position * frequency", %{w: w} do
    # [batch, heads, positions, features]; each position holds [1, 0]
    x = f([1, 0, 1, 0], [1, 1, 2, 2])
    c = &:math.cos/1
    s = &:math.sin/1
    assert_close(read(N.rope(x, 2, false, 10_000.0, 1.0, 0, [], w)), [1, 0, c.(1), s.(1)])
    assert_close(read(N.rope(x, 2, true, 10_000.0, 1.0, 1, [], w)), [c.(1), s.(1), c.(2), s.(2)])

    assert_close(read(N.rope(x, 2, false, 10_000.0, 0.5, 1, [], w)), [
      c.(0.5),
      s.(0.5),
      c.(1),
      s.(1)
    ])

    # freqs are periods: angle = position / freq (base ignored)
    freqs = [f([2.0], [1])]

    assert_close(read(N.rope(x, 2, false, 1.0, 1.0, 1, freqs, w)), [
      c.(0.5),
      s.(0.5),
      c.(1),
      s.(1)
    ])

    offset = t([1], [], {:s, 32})

    assert_close(read(N.rope_offset(x, 2, false, 10_000.0, 1.0, offset, [], w)), [
      c.(1),
      s.(1),
      c.(2),
      s.(2)
    ])
  end

  test "rope with 4 features uses base^(-2i/dims)", %{w: w} do
    # one position (offset 1); pairs (x0, x2) at freq 1 and (x1, x3) at freq 100^-0.5 = 0.1
    x = f([1, 1, 0, 0], [1, 1, 1, 4])
    r = N.rope(x, 4, false, 100.0, 1.0, 1, [], w)
    assert_close(read(r), [:math.cos(1), :math.cos(0.1), :math.sin(1), :math.sin(0.1)])
  end

  describe "scaled_dot_product_attention" do
    setup do
      q = f([1, 0], [1, 1, 1, 2])
      k = f([1, 0, 0, 1], [1, 1, 2, 2])
      v = f([1, 2, 3, 4], [1, 1, 2, 2])
      {:ok, q: q, k: k, v: v}
    end

    test "softmax(q k^T * scale) v", %{w: w, q: q, k: k, v: v} do
      # scores [1, 0] -> weights [e, 1] / (e + 1)
      e = :math.exp(1)
      p = e / (e + 1)
      expected = [p * 1 + (1 - p) * 3, p * 2 + (1 - p) * 4]
      assert_close(read(N.scaled_dot_product_attention(q, k, v, 1.0, false, [], [], w)), expected)

      # scale 0: uniform weights
      assert_close(read(N.scaled_dot_product_attention(q, k, v, 0.0, false, [], [], w)), [
        2.0,
        3.0
      ])
    end

    test "causal, boolean and additive masks, sinks", %{w: w, k: k, v: v} do
      q2 = f([1, 0, 0, 1], [1, 1, 2, 2])
      e = :math.exp(1)
      p = e / (e + 1)
      # row 0 sees key 0 only; row 1 sees both with scores [0, 1]
      r = N.scaled_dot_product_attention(q2, k, v, 1.0, true, [], [], w)
      assert_close(read(r), [1.0, 2.0, (1 - p) * 1 + p * 3, (1 - p) * 2 + p * 4])

      q = f([1, 0], [1, 1, 1, 2])
      keep = t([1, 0], [1, 2], :bool)

      assert_close(read(N.scaled_dot_product_attention(q, k, v, 1.0, false, [keep], [], w)), [
        1.0,
        2.0
      ])

      # additive mask [0, 1]: scores become [1, 1]
      add = f([0, 1], [1, 2])

      assert_close(read(N.scaled_dot_product_attention(q, k, v, 1.0, false, [add], [], w)), [
        2.0,
        3.0
      ])

      # a sink logit 0 joins the softmax denominator: weights [e, 1] / (e + 2)
      sinks = [f([0], [1])]
      r = N.scaled_dot_product_attention(q, k, v, 1.0, false, [], sinks, w)
      assert_close(read(r), [(e + 3) / (e + 2), (2 * e + 4) / (e + 2)])
    end

    test "causal together with a mask is an error", %{w: w, q: q, k: k, v: v} do
      assert_raise ArgumentError, ~r/either causal or a mask/, fn ->
        N.scaled_dot_product_attention(q, k, v, 1.0, true, [f([0, 0], [1, 2])], [], w)
      end

      assert_raise ArgumentError, ~r/0 or 1 arrays/, fn ->
        N.scaled_dot_product_attention(q, k, v, 1.0, false, [q, q], [], w)
      end

      # keys with no heads (MLX takes n_heads % n_kv_heads first)
      k0 = N.zeros([1, 0, 2, 2], :f32, w)

      assert_raise ArgumentError, ~r/at least one head/, fn ->
        N.scaled_dot_product_attention(q, k0, k0, 1.0, false, [], [], w)
      end
    end
  end

  test "cross_entropy", %{w: w} do
    r = N.cross_entropy(f([0, 0, 1, 2, 3, 0], [2, 3]), t([0, 2], [2], {:s, 32}), w)
    assert Emily.shape(r) == [2]
    # row 0: logits [0, 0, 1], target 0; row 1: logits [2, 3, 0], target 2
    row0 = :math.log(2 + :math.exp(1)) - 0
    row1 = :math.log(:math.exp(2) + :math.exp(3) + 1) - 0
    assert_close(read(r), [row0, row1])

    # targets out of range are clamped, negatives count from the end: 7 -> 2, -1 -> 2
    r = N.cross_entropy(f([0, 0, 1, 2, 3, 0], [2, 3]), t([7, -1], [2], {:s, 64}), w)
    assert_close(read(r), [:math.log(2 + :math.exp(1)) - 1, row1])
    r = N.cross_entropy(f([0, 0, 1, 2, 3, 0], [2, 3]), t([-3, -100], [2], {:s, 8}), w)
    assert_close(read(r), [row0, :math.log(:math.exp(2) + :math.exp(3) + 1) - 2])

    assert_raise ArgumentError, ~r/cross_entropy.*integer/, fn ->
      N.cross_entropy(f([0, 0, 1, 2, 3, 0], [2, 3]), f([0, 1], [2]), w)
    end
  end
end
