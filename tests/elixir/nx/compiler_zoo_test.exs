if Code.ensure_loaded?(Nx) do
  defmodule Emily.CompilerZooTest.Defs do
    import Nx.Defn

    defn softmax(t) do
      m = Nx.reduce_max(t, axes: [-1], keep_axes: true)
      e = Nx.exp(t - m)
      e / Nx.sum(e, axes: [-1], keep_axes: true)
    end

    defn(logsumexp(t), do: Nx.logsumexp(t, axes: [1]))

    defn mlp(x, w1, b1, w2, b2) do
      x |> Nx.dot(w1) |> Nx.add(b1) |> Nx.max(0) |> Nx.dot(w2) |> Nx.add(b2) |> softmax()
    end

    defn mlp_loss({w1, b1, w2, b2}, x, y) do
      p = mlp(x, w1, b1, w2, b2)
      -Nx.mean(Nx.sum(y * Nx.log(p), axes: [-1]))
    end

    defn mlp_train_step(params, x, y) do
      {loss, grads} = value_and_grad(params, &mlp_loss(&1, x, y))
      {w1, b1, w2, b2} = params
      {gw1, gb1, gw2, gb2} = grads
      {loss, {w1 - 0.1 * gw1, b1 - 0.1 * gb1, w2 - 0.1 * gw2, b2 - 0.1 * gb2}}
    end

    defn conv_net(img, k1, k2, w) do
      img
      |> Nx.conv(k1, padding: :same)
      |> Nx.max(0)
      |> Nx.window_max({1, 1, 2, 2}, strides: [1, 1, 2, 2])
      |> Nx.conv(k2)
      |> Nx.tanh()
      |> Nx.flatten(axes: [1, 2, 3])
      |> Nx.dot(w)
    end

    defn(conv_loss(k1, img, k2, w), do: Nx.sum(conv_net(img, k1, k2, w) ** 2))

    defn(conv_grad(img, k1, k2, w), do: grad(k1, &conv_loss(&1, img, k2, w)))

    defn layer_norm(x, g, b) do
      mean = Nx.mean(x, axes: [-1], keep_axes: true)
      var = Nx.variance(x, axes: [-1], keep_axes: true)
      (x - mean) * Nx.rsqrt(var + 1.0e-5) * g + b
    end

    # Two-head self-attention with a residual and a layer norm; x: {seq, d}.
    defn attention(x, wq, wk, wv, wo, g, b) do
      {s, d} = Nx.shape(x)
      dh = div(d, 2)
      heads = fn t -> t |> Nx.reshape({s, 2, dh}) |> Nx.transpose(axes: [1, 0, 2]) end
      q = heads.(Nx.dot(x, wq))
      k = heads.(Nx.dot(x, wk))
      v = heads.(Nx.dot(x, wv))
      scores = Nx.dot(q, [2], [0], k, [2], [0]) / Nx.sqrt(dh)
      a = softmax(scores)
      h = Nx.dot(a, [2], [0], v, [1], [0]) |> Nx.transpose(axes: [1, 0, 2]) |> Nx.reshape({s, d})
      layer_norm(x + Nx.dot(h, wo), g, b)
    end

    # while with a tuple carry
    defn power_iteration(m, v) do
      {_m, v, i} =
        while {m, v, i = 0}, i < 12 do
          w = Nx.dot(m, v)
          {m, w / Nx.sqrt(Nx.sum(w * w)), i + 1}
        end

      {v, i}
    end

    # cond inside while; integer state
    defn collatz_steps(n) do
      {_n, steps} =
        while {n, steps = 0}, n > 1 do
          n = if Nx.remainder(n, 2) == 0, do: Nx.quotient(n, 2), else: 3 * n + 1
          {n, steps + 1}
        end

      steps
    end

    # multi-clause cond with tuple results, using values computed outside it
    defn piecewise(x, y) do
      s = Nx.sum(x)
      t = y * 2

      cond do
        s > 10 -> {x * t, s}
        s > 0 -> {x + t, s * 2}
        true -> {x - y, -s}
      end
    end

    # nested cond, and a parameter used only inside a clause
    defn nested(x, y) do
      if Nx.all(x > 0) do
        if Nx.sum(y) > 0, do: x * y, else: x - y
      else
        Nx.exp(y)
      end
    end

    defn noisy(key, x) do
      {u, key} = Nx.Random.uniform(key, shape: Nx.shape(x))
      {n, _key} = Nx.Random.normal(key, shape: Nx.shape(x))
      x + u + n
    end

    defn elementwise_chain(x) do
      x |> Nx.sin() |> Nx.multiply(2) |> Nx.add(1) |> Nx.cos() |> Nx.abs() |> Nx.sqrt()
    end

    defn mixed_types(x, i) do
      {Nx.as_type(x, {:s, 32}) + i, Nx.as_type(i, {:f, 32}) * x, Nx.argmax(x, axis: 1)}
    end

    # Blocks with multi-output MLX primitives (QR, eigh, SVD) and others.
    defn linalg(a, b) do
      spd = Nx.dot(a, [0], a, [0]) + Nx.eye(4) * 4
      {q, r} = Nx.LinAlg.qr(a)
      {evals, _evecs} = Nx.LinAlg.eigh(spd)
      x = Nx.LinAlg.solve(spd, b)
      l = Nx.LinAlg.cholesky(spd)
      {Nx.dot(q, r), evals, x, Nx.dot(l, Nx.transpose(l)), Nx.LinAlg.determinant(spd)}
    end

    defn svd_values(a) do
      {_u, s, _vt} = Nx.LinAlg.svd(a)
      s
    end

    defn indexing(x, idx) do
      {vals, ids} = Nx.top_k(x, k: 2)
      g = Nx.take(x, idx, axis: 1)
      upd = Nx.indexed_add(x, Nx.tensor([[0, 0], [1, 2]]), Nx.tensor([10.0, 20.0]))

      {vals, ids, g, upd, Nx.argsort(x, axis: 1, direction: :desc),
       Nx.gather(x, Nx.tensor([[1, 1], [0, 2]]))}
    end

    defn windows(img) do
      {Nx.window_sum(img, {1, 1, 2, 2}, strides: [1, 1, 1, 1], padding: :same),
       Nx.window_mean(img, {1, 1, 3, 3}, strides: [1, 1, 2, 2]),
       Nx.conv(img, Nx.iota({4, 1, 2, 2}) / 10, strides: [2, 1], kernel_dilation: [1, 2]),
       Nx.pad(img, 0.5, [{0, 0, 0}, {0, 0, 0}, {1, 2, 1}, {0, 0, 0}])}
    end

    defn(no_args, do: Nx.iota({2, 3}) * 2 + Nx.eye({2, 3}))

    defn(complex_ops(z), do: {Nx.abs(z), Nx.conjugate(z) * z, Nx.real(Nx.exp(z))})

    defn(half_precision(x), do: Nx.sum(Nx.exp(x) * x, axes: [1]))

    defn(narrow(a, b), do: {a + b, a * b, Nx.as_type(a, {:s, 32}) - 3})

    defn(sums(x), do: {Nx.sum(x, axes: [0]), Nx.cumulative_sum(x, axis: 1), Nx.sort(x, axis: 1)})
  end

  defmodule Emily.CompilerZooTest do
    use ExUnit.Case, async: true
    @moduletag :nx

    import Emily.CompilerCase
    alias Emily.CompilerZooTest.Defs

    test "softmax and logsumexp" do
      x = rand({4, 7}, {:f, 32}, 1) |> Nx.multiply(5)
      check_lanes(&Defs.softmax/1, [x])
      check_lanes(&Defs.logsumexp/1, [x])
    end

    test "MLP forward" do
      args =
        [rand({5, 8}), rand({8, 16}, {:f, 32}, 2), rand({16}, {:f, 32}, 3)] ++
          [rand({16, 4}, {:f, 32}, 4), rand({4}, {:f, 32}, 5)]

      %{native: p} = check_lanes(&Defs.mlp/5, args)
      # rows of a softmax sum to 1
      assert_close(Nx.sum(p, axes: [1]), Nx.broadcast(1.0, {5}), 1.0e-6, 0, "softmax rows")
    end

    test "MLP backward: value_and_grad and a training step" do
      params =
        {rand({8, 16}, {:f, 32}, 2), rand({16}, {:f, 32}, 3), rand({16, 4}, {:f, 32}, 4),
         rand({4}, {:f, 32}, 5)}

      x = rand({5, 8})
      y = Nx.eye(5) |> Nx.slice([0, 0], [5, 4]) |> Nx.as_type({:f, 32})
      check_lanes(&Defs.mlp_train_step/3, [params, x, y], atol: 1.0e-5, rtol: 1.0e-4)
    end

    test "a conv net and its gradient" do
      img = rand({2, 1, 8, 8})
      k1 = rand({3, 1, 3, 3}, {:f, 32}, 7)
      k2 = rand({2, 3, 2, 2}, {:f, 32}, 8)
      w = rand({18, 5}, {:f, 32}, 9)
      check_lanes(&Defs.conv_net/4, [img, k1, k2, w], atol: 1.0e-5, rtol: 1.0e-4)
      check_lanes(&Defs.conv_grad/4, [img, k1, k2, w], atol: 1.0e-4, rtol: 1.0e-4)
    end

    test "an attention block" do
      d = 8
      x = rand({6, d})
      ws = for s <- 11..14, do: rand({d, d}, {:f, 32}, s)
      g = Nx.add(rand({d}, {:f, 32}, 15), 1)
      b = rand({d}, {:f, 32}, 16)
      check_lanes(&Defs.attention/7, [x | ws] ++ [g, b], atol: 1.0e-5, rtol: 1.0e-4)
    end

    test "while with a tuple carry" do
      m = Nx.tensor([[2.0, 1.0], [1.0, 3.0]])
      v = Nx.tensor([1.0, 0.0])
      %{native: {vec, i}} = check_lanes(&Defs.power_iteration/2, [m, v], atol: 1.0e-6)
      assert Nx.to_number(i) == 12
      # the dominant eigenvector of [[2, 1], [1, 3]] is (0.5257, 0.8507)
      assert_close(vec, Nx.tensor([0.5257311, 0.8506508]), 1.0e-3, 0, "eigenvector")
    end

    test "cond inside while" do
      for {n, steps} <- [{1, 0}, {6, 8}, {27, 111}] do
        %{native: r} = check_lanes(&Defs.collatz_steps/1, [Nx.tensor(n, type: {:s, 32})])
        assert Nx.to_number(r) == steps
      end
    end

    test "multi-clause cond with tuple results and free values" do
      y = Nx.tensor([1.0, -2.0, 3.0])

      for {x, want} <- [
            {[4.0, 5.0, 6.0], {[8.0, -20.0, 36.0], 15.0}},
            {[1.0, 1.0, 1.0], {[3.0, -3.0, 7.0], 6.0}},
            {[-1.0, -1.0, -1.0], {[-2.0, 1.0, -4.0], 3.0}}
          ] do
        %{native: {a, s}} = check_lanes(&Defs.piecewise/2, [Nx.tensor(x), y])
        assert Nx.to_flat_list(a) == elem(want, 0)
        assert Nx.to_number(s) == elem(want, 1)
      end
    end

    test "nested cond" do
      for {x, y} <- [
            {[1.0, 2.0], [3.0, 4.0]},
            {[1.0, 2.0], [-3.0, -4.0]},
            {[-1.0, 2.0], [0.5, 1.0]}
          ] do
        check_lanes(&Defs.nested/2, [Nx.tensor(x), Nx.tensor(y)])
      end
    end

    test "Nx.Random inside defn" do
      key = Nx.Random.key(42)
      x = rand({3, 4})
      %{native: r1} = check_lanes(&Defs.noisy/2, [key, x], atol: 1.0e-5, rtol: 1.0e-5)
      %{native: r2} = check_lanes(&Defs.noisy/2, [Nx.Random.key(43), x], atol: 1.0e-5)
      assert Nx.to_binary(r1) != Nx.to_binary(r2)
    end

    test "elementwise chains, mixed types, reductions and sorts" do
      x = rand({3, 5})
      check_lanes(&Defs.elementwise_chain/1, [x], atol: 1.0e-6)
      check_lanes(&Defs.mixed_types/2, [Nx.multiply(x, 10), Nx.tensor(3, type: {:s, 32})])
      check_lanes(&Defs.sums/1, [x])
    end

    test "linear algebra blocks (multi-output MLX primitives)" do
      a = rand({4, 4}, {:f, 32}, 31)
      b = rand({4}, {:f, 32}, 32)
      check_lanes(&Defs.linalg/2, [a, b], atol: 1.0e-4, rtol: 1.0e-4)
      check_lanes(&Defs.svd_values/1, [a], atol: 1.0e-5, rtol: 1.0e-4)
    end

    test "indexing, sorting and top_k" do
      x = rand({3, 5}, {:f, 32}, 33)
      check_lanes(&Defs.indexing/2, [x, Nx.tensor([4, 0, 2])])
    end

    test "windows, strided and dilated convolutions, padding" do
      check_lanes(&Defs.windows/1, [rand({2, 1, 6, 7}, {:f, 32}, 34)], atol: 1.0e-5, rtol: 1.0e-5)
    end

    test "f64, integer and vectorized inputs" do
      x = rand({2, 3}, {:f, 64})
      # MLX's f64 sin/cos are not correctly rounded. On a GPU (no f64 there) the native
      # lanes fall back to the evaluator lane.
      gpu_f64 =
        if Emily.Worker.default_device() == :gpu,
          do: [lane_opts: [native_fallback: :evaluator]],
          else: []

      check_lanes(&Defs.elementwise_chain/1, [x], [atol: 1.0e-7, rtol: 1.0e-7] ++ gpu_f64)
      check_lanes(&Defs.collatz_steps/1, [Nx.tensor(7, type: {:s, 64})])
      v = Nx.vectorize(rand({3, 4}), :rows)
      %{native: r} = check_lanes(&Defs.softmax/1, [v])
      assert r.vectorized_axes == [rows: 3]
    end

    test "no arguments, complex and half-precision types" do
      %{native: r} = check_lanes(&Defs.no_args/0, [])
      assert Nx.to_flat_list(r) == [1.0, 2.0, 4.0, 6.0, 9.0, 10.0]
      z = Nx.complex(rand({4}, {:f, 32}, 41), rand({4}, {:f, 32}, 42))
      check_lanes(&Defs.complex_ops/1, [z], atol: 1.0e-6, rtol: 1.0e-5)
      check_lanes(&Defs.half_precision/1, [rand({2, 8}, {:bf, 16}, 43)], atol: 0.05, rtol: 0.02)
      check_lanes(&Defs.half_precision/1, [rand({2, 8}, {:f, 16}, 44)], atol: 0.01, rtol: 0.01)
    end

    test "narrow types (stored wider by the backend)" do
      a = Nx.tensor([1, 7, 15, 9], type: {:u, 4})
      b = Nx.tensor([3, 9, 2, 15], type: {:u, 4})
      %{native: {s, p, _}} = check_lanes(&Defs.narrow/2, [a, b])
      # u4 arithmetic wraps modulo 16
      assert Nx.to_flat_list(s) == [4, 0, 1, 8]
      assert Nx.to_flat_list(p) == [3, 15, 14, 7]
      f8 = Nx.tensor([0.5, -1.25, 3.0], type: {:f, 8})
      check_lanes(&Defs.narrow/2, [f8, f8])
    end

    test "inputs may live on any backend or worker" do
      x = rand({4, 7})
      w = Emily.Worker.start(:cpu)

      on_other =
        Task.async(fn ->
          Process.put({Emily.Worker, :cpu}, w)
          # a lazy tensor being computed on another worker
          x |> Nx.backend_copy(Emily.Backend) |> Nx.multiply(1)
        end)
        |> Task.await()

      for lane <- lanes() do
        got = on_lane(&Defs.softmax/1, [on_other], lane)
        assert_close(got, reference(&Defs.softmax/1, [x]), 1.0e-6, 1.0e-5, "#{lane}")
      end
    end
  end
end
