if Code.ensure_loaded?(Nx) do
  defmodule Emily.CompilerGradTest.Defs do
    import Nx.Defn

    defn smooth_loss(x, w) do
      h = Nx.tanh(Nx.dot(x, w))
      Nx.sum(h * h) + Nx.sum(Nx.sin(w) * Nx.exp(-w * w))
    end

    defn(grad_w(x, w), do: grad(w, &smooth_loss(x, &1)))

    defn value_and_grad_both(x, w) do
      value_and_grad({x, w}, fn {x, w} -> smooth_loss(x, w) end)
    end

    # A loss through a while loop and a cond: grad through control flow.
    defn looped(x) do
      {y, _} =
        while {x, i = 0}, i < 3 do
          {Nx.sin(x) * 1.5 + x * 0.5, i + 1}
        end

      s = Nx.sum(y)
      if s > 0, do: s * s, else: -s
    end

    defn(grad_looped(x), do: grad(x, &looped/1))

    defn softmax_ce(logits, labels) do
      m = Nx.reduce_max(logits, axes: [-1], keep_axes: true)
      lse = Nx.log(Nx.sum(Nx.exp(logits - m), axes: [-1], keep_axes: true)) + m
      -Nx.sum(labels * (logits - lse)) / Nx.axis_size(logits, 0)
    end

    defn(grad_ce(logits, labels), do: grad(logits, &softmax_ce(&1, labels)))

    defn grad_layer_norm(x, g) do
      grad(x, fn x ->
        mean = Nx.mean(x, axes: [-1], keep_axes: true)
        var = Nx.variance(x, axes: [-1], keep_axes: true)
        Nx.sum((x - mean) * Nx.rsqrt(var + 1.0e-5) * g * Nx.iota(Nx.shape(x)))
      end)
    end
  end

  defmodule Emily.CompilerGradTest do
    use ExUnit.Case, async: true
    @moduletag :nx

    import Emily.CompilerCase
    alias Emily.CompilerGradTest.Defs

    # Central differences of `f` (a defn of one tensor argument, run on Nx.BinaryBackend in
    # f64) at `x`.
    defp finite_diff(f, x, h \\ 1.0e-6) do
      x = to_binary_backend(x)
      n = Nx.size(x)
      flat = Nx.flatten(x)

      for i <- 0..(n - 1) do
        e =
          Nx.indexed_put(
            Nx.broadcast(0.0, {n}) |> Nx.as_type({:f, 64}),
            Nx.tensor([[i]]),
            Nx.tensor([h], type: {:f, 64})
          )

        plus = f.(Nx.reshape(Nx.add(flat, e), x.shape)) |> Nx.to_number()
        minus = f.(Nx.reshape(Nx.subtract(flat, e), x.shape)) |> Nx.to_number()
        (plus - minus) / (2 * h)
      end
      |> Nx.tensor(type: {:f, 64}, backend: Nx.BinaryBackend)
      |> Nx.reshape(x.shape)
    end

    defp ref_fun(fun), do: fn x -> Nx.Defn.jit_apply(fun, [x], compiler: Nx.Defn.Evaluator) end

    test "grad matches Nx.BinaryBackend (f32) on every lane" do
      x = rand({4, 3}, {:f, 32}, 1)
      w = rand({3, 5}, {:f, 32}, 2)
      check_lanes(&Defs.grad_w/2, [x, w], atol: 1.0e-5, rtol: 1.0e-4)
      check_lanes(&Defs.value_and_grad_both/2, [x, w], atol: 1.0e-5, rtol: 1.0e-4)
      logits = Nx.multiply(rand({4, 6}, {:f, 32}, 3), 4)
      labels = Nx.eye(6) |> Nx.slice([0, 0], [4, 6]) |> Nx.as_type({:f, 32})
      check_lanes(&Defs.grad_ce/2, [logits, labels], atol: 1.0e-6, rtol: 1.0e-4)

      check_lanes(&Defs.grad_layer_norm/2, [rand({3, 8}), Nx.add(rand({8}, {:f, 32}, 5), 1.0)],
        atol: 1.0e-4,
        rtol: 1.0e-3
      )
    end

    test "grad through while and cond" do
      for x <- [rand({5}, {:f, 32}, 7), Nx.negate(Nx.abs(rand({5}, {:f, 32}, 8)))] do
        check_lanes(&Defs.grad_looped/1, [x], atol: 1.0e-5, rtol: 1.0e-4)
      end
    end

    test "grad agrees with central finite differences in f64 on every lane" do
      x = rand({4, 3}, {:f, 64}, 1)
      w = rand({3, 2}, {:f, 64}, 2)

      fd =
        finite_diff(
          fn w -> Nx.Defn.jit_apply(&Defs.smooth_loss/2, [x, w], compiler: Nx.Defn.Evaluator) end,
          w
        )

      # MLX's GPU has no float64: there the native lanes fall back to the evaluator lane,
      # which computes float64 on the worker's CPU stream.
      opts = if Emily.Worker.default_device() == :gpu, do: [native_fallback: :evaluator], else: []

      for lane <- lanes() do
        g = on_lane(&Defs.grad_w/2, [x, w], lane, opts)
        assert_close(g, fd, 1.0e-7, 1.0e-6, "#{lane} grad vs finite differences")
      end

      for x <- [rand({5}, {:f, 64}, 7), Nx.negate(Nx.abs(rand({5}, {:f, 64}, 8)))] do
        fd = finite_diff(ref_fun(&Defs.looped/1), x)

        for lane <- lanes() do
          g = on_lane(&Defs.grad_looped/1, [x], lane, opts)

          assert_close(
            g,
            fd,
            1.0e-6,
            1.0e-6,
            "#{lane} grad through control flow vs finite differences"
          )
        end
      end
    end
  end
end
