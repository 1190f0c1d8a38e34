defmodule Emily.CpuKernelsTest do
  # Emily's CPU kernels (src/cpp/kernels, via cpu_kernels.cc): an accuracy sweep of each op
  # against the C library in float64 (precise_unary, MLX's float64 power) rounded to
  # float32, special values, float16/bfloat16, strided and broadcast inputs, sizes around the
  # vector width and the pool's threshold, and agreement with MLX's own kernels; reductions
  # over trailing axes against float64 sums and exact maxima.
  use ExUnit.Case, async: false
  import Emily.OpsCase, only: [tensor: 3]
  alias Emily.Native, as: N

  @moduletag :cpu_kernels

  # {op, reference, sweep range, worst ulp allowed}: the reference is a precise_unary op
  # (the C library in float64), or :erfinv_exact (below). sigmoid is e / (1 + e) or
  # 1 / (1 + e) with e = e^-|x|: two roundings after exp, so 2 ulp.
  @ops [
    {:exp, :exp, {-87.0, 88.0}, 1},
    {:expm1, :expm1, {-20.0, 88.0}, 1},
    {:log, :log, {1.0e-30, 1.0e30}, 1},
    {:log1p, :log1p, {-0.999, 1.0e20}, 1},
    {:sin, :sin, {-100.0, 100.0}, 1},
    {:cos, :cos, {-100.0, 100.0}, 1},
    {:tanh, :tanh, {-10.0, 10.0}, 1},
    {:sigmoid, :sigmoid, {-90.0, 20.0}, 2},
    {:erf, :erf, {-5.0, 5.0}, 1},
    {:erfinv, :erfinv_exact, {-0.99999994, 0.99999994}, 1},
    {:sqrt, :sqrt, {0.0, 1.0e30}, 0},
    {:rsqrt, :rsqrt, {1.0e-30, 1.0e30}, 1}
  ]

  @specials [:nan, :infinity, :neg_infinity, -0.0, 0.0, 1.0e-40, -1.0e-40, 1.0e-45]

  setup_all do
    if N.cpu_kernels_isa() == nil,
      do: {:skip, "this build or CPU has no Emily CPU kernels"},
      else: :ok
  end

  setup do
    on_exit(fn -> N.cpu_kernels(true) end)
    :ok
  end

  # The kernels run on CPU streams, whatever the default device.
  defp cw, do: Emily.Worker.current(:cpu)

  defp f32(values), do: tensor(values, [length(values)], {:f, 32})

  defp floats(t) do
    for <<b::binary-4 <- Emily.to_binary(t)>> do
      case b do
        <<x::float-32-native>> -> x
        <<_::32-native>> -> special(b)
      end
    end
  end

  defp special(<<b::unsigned-32-native>>) do
    cond do
      b == 0x7F800000 -> :infinity
      b == 0xFF800000 -> :neg_infinity
      true -> :nan
    end
  end

  defp bits(t), do: for(<<x::signed-32-native <- Emily.to_binary(t)>>, do: x)

  # float32 bit patterns as integers ordered like the floats they encode.
  defp ordered(b) when b < 0, do: -(b + 2_147_483_648)
  defp ordered(b), do: b

  defp nan?(b), do: Bitwise.band(b, 0x7FFFFFFF) > 0x7F800000

  # The largest distance in ulp between two float32 tensors; NaN must meet NaN.
  defp worst_ulp(got, want) do
    Enum.zip(bits(got), bits(want))
    |> Enum.reduce(0, fn {g, w}, acc ->
      cond do
        nan?(g) and nan?(w) -> acc
        nan?(g) or nan?(w) -> :infinity
        acc == :infinity -> acc
        true -> max(acc, abs(ordered(g) - ordered(w)))
      end
    end)
  end

  # Values over [lo, hi]: a linear grid, a geometric one for wide ranges, and random float32
  # bit patterns that fall in the range.
  defp sweep({lo, hi}, n) do
    linear = for i <- 0..(n - 1), do: lo + (hi - lo) * i / (n - 1)

    geometric =
      for sign <- [1, -1], i <- 0..(n - 1), lo < 0 or sign == 1 do
        {a, b} = if sign == 1, do: {max(lo, 1.0e-30), hi}, else: {1.0e-30, -lo}
        v = sign * :math.exp(:math.log(a) + (:math.log(b) - :math.log(a)) * i / (n - 1))
        v
      end
      |> Enum.filter(&(&1 >= lo and &1 <= hi))

    :rand.seed(:exsss, {7, 11, 13})

    random =
      Stream.repeatedly(fn ->
        <<x::float-32-native>> = <<:rand.uniform(0x7F7FFFFF)::32-native>>
        x * Enum.random([1, -1])
      end)
      |> Stream.filter(&(&1 >= lo and &1 <= hi))
      |> Enum.take(n)

    linear ++ geometric ++ random
  end

  # erf^-1 has no C library function: Nx's float64 erf_inv (Giles's single-precision
  # approximation, precise_unary's :erf_inv) refined by two Newton steps on erf(x) = z with
  # the C library's erf and exp in float64; +-1 give +-infinity, |z| > 1 NaN, +-0 themselves.
  defp reference(:erfinv_exact, x32) do
    z64 = N.astype(x32, :f64, cw())

    guesses =
      for <<g::float-64-native <- Emily.to_binary(N.precise_unary(z64, :erf_inv, cw()))>>, do: g

    floats(x32)
    |> Enum.zip(guesses)
    |> Enum.map(fn
      {z, _} when not is_float(z) ->
        :nan

      {z, _} when z == 0 ->
        z

      {z, _} when z == 1.0 ->
        :infinity

      {z, _} when z == -1.0 ->
        :neg_infinity

      {z, _} when abs(z) > 1.0 ->
        :nan

      {z, g} ->
        Enum.reduce(1..2, g, fn _, x ->
          x - (:math.erf(x) - z) * 0.886226925452758 * :math.exp(x * x)
        end)
    end)
    |> f32()
  end

  defp reference(op, x32) do
    x64 = N.astype(x32, :f64, cw())
    N.astype(N.precise_unary(x64, op, cw()), :f32, cw())
  end

  test "each op is within its ulp bound of the C library over its domain, special values included" do
    for {op, precise, range, bound} <- @ops do
      x = f32(sweep(range, 20_000) ++ @specials)
      got = apply(N, op, [x, cw()])
      worst = worst_ulp(got, reference(precise, x))

      assert worst != :infinity and worst <= bound,
             "#{op}: worst #{inspect(worst)} ulp (bound #{bound}) over #{inspect(range)}"
    end
  end

  test "log1p, log, sqrt and rsqrt are within 1 ulp up to the largest float32" do
    # SLEEF's log1pf overflows above 1e38: there the kernel takes log.
    x = f32([1.0e38, 1.5e38, 2.0e38, 3.0e38, 3.4028234663852886e38])

    for op <- [:log1p, :log, :sqrt, :rsqrt] do
      worst = worst_ulp(apply(N, op, [x, cw()]), reference(op, x))

      assert worst != :infinity and worst <= 1,
             "#{op}: worst #{inspect(worst)} ulp near the largest float"
    end
  end

  test "special values come out as the C library's" do
    x = f32(@specials)

    for {op, precise, _range, _bound} <- @ops do
      got = bits(apply(N, op, [x, cw()]))
      want = bits(reference(precise, x))

      for {g, e, input} <- Enum.zip([got, want, @specials]) do
        assert g == e or (nan?(g) and nan?(e)),
               "#{op}(#{inspect(input)}): bits #{Integer.to_string(g, 16)}, C library #{Integer.to_string(e, 16)}"
      end
    end
  end

  test "float16 and bfloat16 are computed in float32 and rounded once" do
    values = sweep({-4.0, 4.0}, 2_000)

    for type <- [:f16, :bf16],
        {op, _precise, _range, _bound} <- @ops,
        op not in [:log, :sqrt, :rsqrt] do
      x32 = f32(values)
      x = N.astype(x32, type, cw())
      # The float32 kernel on the same (rounded) inputs, rounded to the type: the same values.
      want = N.astype(apply(N, op, [N.astype(x, :f32, cw()), cw()]), type, cw())
      got = apply(N, op, [x, cw()])
      assert N.dtype(got) == type
      assert Emily.to_binary(got) == Emily.to_binary(want), "#{op} on #{type}"
    end
  end

  test "every length gives the values the element would get alone: tails, vector widths, the pool" do
    for n <- [1, 7, 15, 16, 17, 33, 131_071, 131_072, 300_001] do
      x = N.arange(0.0, n * 1.0, 1.0, :f32, cw())

      x =
        N.subtract(
          N.multiply(x, N.scalar(6.0 / n, :f32, cw()), cw()),
          N.scalar(3.0, :f32, cw()),
          cw()
        )

      assert N.shape(x) == [n]

      for op <- [:exp, :tanh, :erf] do
        got = floats(apply(N, op, [x, cw()]))
        # Each element computed in a 16-element array of its own.
        probe = Enum.take_every(0..(n - 1), max(div(n, 97), 1)) |> Enum.to_list()

        for i <- probe do
          xi = N.slice(x, [i], [i + 1], [1], cw())
          alone = hd(floats(apply(N, op, [N.broadcast_to(xi, [16], cw()), cw()])))
          assert Enum.at(got, i) == alone, "#{op} at #{i} of #{n}"
        end
      end
    end
  end

  test "strided and broadcast inputs give the values of their dense copies" do
    base = N.reshape(N.arange(-2.0, 2.0, 4.0 / 4096, :f32, cw()), [64, 64], cw())
    t = N.transpose(base, [1, 0], cw())
    s = N.slice(base, [1, 0], [64, 64], [3, 5], cw())
    b = N.broadcast_to(N.slice(base, [0, 0], [1, 64], [1, 1], cw()), [8, 64], cw())

    for view <- [t, s, b], op <- [:exp, :sin, :sigmoid] do
      dense = N.astype(N.astype(view, :f64, cw()), :f32, cw())

      assert Emily.to_binary(apply(N, op, [view, cw()])) ==
               Emily.to_binary(apply(N, op, [dense, cw()]))

      assert N.shape(apply(N, op, [view, cw()])) == N.shape(view)
    end
  end

  test "with cpu_kernels off the ops are MLX's, and no closer to the C library than Emily's" do
    wide = f32(sweep({-10.0, 10.0}, 5_000))
    unit = f32(sweep({-0.99999994, 0.99999994}, 5_000))

    cases =
      Enum.map([:exp, :expm1, :sin, :cos, :tanh, :sigmoid, :erf], &{&1, &1, wide}) ++
        [{:erfinv, :erfinv_exact, unit}]

    for {op, ref, x} <- cases do
      ours = apply(N, op, [x, cw()])
      assert N.cpu_kernels(false) == true
      theirs = apply(N, op, [x, cw()])
      Emily.eval([theirs])
      assert N.cpu_kernels(true) == false
      want = reference(ref, x)
      assert worst_ulp(ours, want) <= worst_ulp(theirs, want), "#{op}"
    end
  end

  ## power

  defp pow_reference(x, y) do
    N.astype(N.power(N.astype(x, :f64, cw()), N.astype(y, :f64, cw()), cw()), :f32, cw())
  end

  test "power is within 1 ulp of the C library, for array and scalar exponents" do
    :rand.seed(:exsss, {3, 5, 7})
    n = 20_000
    xs = for _ <- 1..n, do: :math.exp(:rand.uniform() * 20 - 10)
    ys = for _ <- 1..n, do: :rand.uniform() * 20 - 10
    # negative bases with integer exponents, and results near overflow and underflow
    xs = xs ++ for(i <- 1..200, do: -i / 7) ++ List.duplicate(3.0, 200)
    ys = ys ++ for(i <- 1..200, do: rem(i, 9) - 4.0) ++ for(i <- 1..200, do: -95 + i * 0.9)
    {x, y} = {f32(xs), f32(ys)}
    worst = worst_ulp(N.power(x, y, cw()), pow_reference(x, y))
    assert worst != :infinity and worst <= 1, "power: worst #{inspect(worst)} ulp"

    for e <- [2.0, 0.5, 3.0, -1.0, 1.0e-3] do
      ye = N.broadcast_to(N.scalar(e, :f32, cw()), [length(xs)], cw())
      got = N.power(x, N.scalar(e, :f32, cw()), cw())
      assert N.shape(got) == [length(xs)]
      worst = worst_ulp(got, pow_reference(x, ye))
      assert worst != :infinity and worst <= 1, "x ** #{e}: worst #{inspect(worst)} ulp"
    end

    # a scalar base
    got = N.power(N.scalar(1.5, :f32, cw()), y, cw())
    xb = N.broadcast_to(N.scalar(1.5, :f32, cw()), [length(ys)], cw())
    assert worst_ulp(got, pow_reference(xb, y)) <= 1
  end

  test "x ** 2 is exactly x * x" do
    x = f32(sweep({-1.0e19, 1.0e19}, 5_000) ++ @specials)
    got = N.power(x, N.scalar(2.0, :f32, cw()), cw())
    assert Emily.to_binary(got) == Emily.to_binary(N.multiply(x, x, cw()))
  end

  test "power's special values come out as the C library's" do
    specials = [
      :nan,
      :infinity,
      :neg_infinity,
      -0.0,
      0.0,
      1.0,
      -1.0,
      0.5,
      -2.0,
      3.0,
      2.5,
      1.0e-40
    ]

    pairs = for a <- specials, b <- specials, do: {a, b}
    x = f32(Enum.map(pairs, &elem(&1, 0)))
    y = f32(Enum.map(pairs, &elem(&1, 1)))
    got = bits(N.power(x, y, cw()))
    want = bits(pow_reference(x, y))

    for {g, e, {a, b}} <- Enum.zip([got, want, pairs]) do
      assert g == e or (nan?(g) and nan?(e)),
             "#{inspect(a)} ** #{inspect(b)}: bits #{Integer.to_string(g, 16)}, C library #{Integer.to_string(e, 16)}"
    end
  end

  test "power on float16/bfloat16 is float32's rounded once; broadcasting follows MLX" do
    x32 = f32(Enum.take(sweep({0.1, 4.0}, 1_000), 2_500))
    y32 = f32(Enum.take(sweep({-3.0, 3.0}, 1_000), 2_500))

    for type <- [:f16, :bf16] do
      {x, y} = {N.astype(x32, type, cw()), N.astype(y32, type, cw())}
      want = N.astype(N.power(N.astype(x, :f32, cw()), N.astype(y, :f32, cw()), cw()), type, cw())
      got = N.power(x, y, cw())
      assert N.dtype(got) == type
      assert Emily.to_binary(got) == Emily.to_binary(want)
    end

    col = N.reshape(N.arange(1.0, 5.0, 1.0, :f32, cw()), [4, 1], cw())
    row = N.reshape(N.arange(0.0, 3.0, 1.0, :f32, cw()), [1, 3], cw())
    assert N.shape(N.power(col, row, cw())) == [4, 3]

    assert floats(N.power(col, row, cw())) == [
             1.0,
             1.0,
             1.0,
             1.0,
             2.0,
             4.0,
             1.0,
             3.0,
             9.0,
             1.0,
             4.0,
             16.0
           ]

    assert N.dtype(N.power(tensor([2, 3], [2], {:s, 32}), tensor([2, 2], [2], {:s, 32}), cw())) ==
             :s32
  end

  ## reductions

  defp random_f32(shape, seed) do
    :rand.seed(:exsss, {seed, 1, 2})
    n = Enum.product(shape)
    N.reshape(f32(for(_ <- 1..n, do: :rand.normal() * 10)), shape, cw())
  end

  defp close?(got, want, rel) do
    Enum.zip(floats(got), floats(want))
    |> Enum.all?(fn {g, w} -> abs(g - w) <= rel * max(1.0, abs(w)) end)
  end

  # A float32 sum of a row is within a few units of float32 roundoff (2^-24) of the row's
  # sum of magnitudes, whatever its order of additions (lanes of 8 on AVX2, 16 on AVX-512);
  # `rel` bounds rows whose sum does not cancel. `scale` is the row's sum of |x| (divided
  # by its length for a mean).
  defp sum_close?(got, want, scale, rel) do
    Enum.zip([floats(got), floats(want), floats(scale)])
    |> Enum.all?(fn {g, w, s} ->
      abs(g - w) <= max(rel * max(1.0, abs(w)), 4 * :math.pow(2, -24) * s)
    end)
  end

  test "sum, max, min and mean over trailing axes match float64 sums and exact extremes" do
    for {shape, axes} <- [
          {[7], [0]},
          {[3, 17], [1]},
          {[3, 17], [-1]},
          {[4, 5, 33], [1, 2]},
          {[4, 5, 33], [2, 1]},
          {[64, 64], [0, 1]},
          {[1, 1_000_003], [1]},
          {[2, 300_000], [-1]},
          {[5_000, 64], [1]}
        ],
        keep <- [false, true] do
      x = random_f32(shape, length(shape) + hd(shape))
      x64 = N.astype(x, :f64, cw())
      want_sum = N.astype(N.sum(x64, axes, keep, cw()), :f32, cw())
      got = N.sum(x, axes, keep, cw())
      assert N.shape(got) == N.shape(want_sum) and N.dtype(got) == :f32
      abs64 = N.abs(x64, cw())
      scale = N.astype(N.sum(abs64, axes, keep, cw()), :f32, cw())

      assert sum_close?(got, want_sum, scale, 1.0e-5),
             "sum #{inspect(shape)} over #{inspect(axes)}"

      want_mean = N.astype(N.mean(x64, axes, keep, cw()), :f32, cw())

      assert sum_close?(
               N.mean(x, axes, keep, cw()),
               want_mean,
               N.astype(N.mean(abs64, axes, keep, cw()), :f32, cw()),
               1.0e-5
             ),
             "mean #{inspect(shape)}"

      for op <- [:max, :min] do
        want = N.astype(apply(N, op, [x64, axes, keep, cw()]), :f32, cw())
        got = apply(N, op, [x, axes, keep, cw()])
        assert N.shape(got) == N.shape(want)

        assert Emily.to_binary(got) == Emily.to_binary(want),
               "#{op} #{inspect(shape)} over #{inspect(axes)}"
      end
    end
  end

  test "reductions: NaN anywhere in a row gives NaN; infinities; strided inputs; other axes" do
    rows = [
      [1.0, :nan, 3.0],
      [:infinity, 1.0, 2.0],
      [:neg_infinity, -1.0, 5.0],
      [-0.0, 0.0, 1.0e-45]
    ]

    x =
      N.reshape(f32(List.flatten(for r <- rows, do: r ++ List.duplicate(0.5, 37))), [4, 40], cw())

    assert [s0, s1, s2, _] = floats(N.sum(x, [1], false, cw()))
    assert s0 == :nan and s1 == :infinity and s2 == :neg_infinity
    assert [m0, m1, m2, _] = floats(N.max(x, [1], false, cw()))
    assert m0 == :nan and m1 == :infinity and m2 == 5.0
    assert [n0, n1, n2, _] = floats(N.min(x, [1], false, cw()))
    assert n0 == :nan and n1 == 0.5 and n2 == :neg_infinity

    big = random_f32([96, 96], 9)
    t = N.transpose(big, [1, 0], cw())
    s = N.slice(big, [0, 1], [96, 96], [2, 3], cw())

    for view <- [t, s], op <- [:sum, :max, :min] do
      dense = N.astype(N.astype(view, :f64, cw()), :f32, cw())

      assert Emily.to_binary(apply(N, op, [view, [-1], false, cw()])) ==
               Emily.to_binary(apply(N, op, [dense, [-1], false, cw()]))
    end

    # leading axes keep MLX's kernels, with the same values
    want = N.astype(N.sum(N.astype(big, :f64, cw()), [0], false, cw()), :f32, cw())
    assert close?(N.sum(big, [0], false, cw()), want, 1.0e-5)
  end

  test "reductions of float16/bfloat16 accumulate in float32 and round once" do
    x32 = random_f32([8, 3000], 4)

    for type <- [:f16, :bf16], op <- [:sum, :max, :min] do
      x = N.astype(x32, type, cw())
      want = N.astype(apply(N, op, [N.astype(x, :f32, cw()), [1], false, cw()]), type, cw())
      got = apply(N, op, [x, [1], false, cw()])
      assert N.dtype(got) == type

      if op == :sum,
        do: assert(close?(N.astype(got, :f32, cw()), N.astype(want, :f32, cw()), 1.0e-2)),
        else: assert(Emily.to_binary(got) == Emily.to_binary(want))
    end
  end

  ## softmax and logsumexp

  defmodule Softmaxes do
    import Nx.Defn

    defn nx_softmax(x) do
      e = Nx.exp(x - Nx.reduce_max(x, axes: [-1], keep_axes: true))
      e / Nx.sum(e, axes: [-1], keep_axes: true)
    end

    defn(axon_softmax(x), do: Axon.Activations.softmax(x, axis: -1))
    defn(axon_log_softmax(x), do: Axon.Activations.log_softmax(x, axis: -1))

    # e is read again after the softmax: the nodes it replaces stay for it.
    defn softmax_and_e(x) do
      e = Nx.exp(x - Nx.reduce_max(x, axes: [-1], keep_axes: true))
      {e / Nx.sum(e, axes: [-1], keep_axes: true), e}
    end

    # max over the first axis: not a softmax over the last one
    defn not_a_softmax(x) do
      e = Nx.exp(x - Nx.reduce_max(x, axes: [0], keep_axes: true))
      e / Nx.sum(e, axes: [-1], keep_axes: true)
    end
  end

  # Each call captures anew (the program cache is shared between lanes), so its stats come.
  defp run_lane(fun, x, lane) when not is_list(x), do: run_lane(fun, [x], lane)

  defp run_lane(fun, args, lane) do
    Emily.Compiler.clear_cache()

    f =
      Nx.Defn.jit(fun,
        compiler: Emily.Compiler,
        lane: lane,
        device: :cpu,
        debug_options: [stats: self()]
      )

    out = apply(f, args)

    prims =
      receive do
        {:emily_compiler, st} -> Emily.Native.program_primitives(st.program)
      after
        0 -> []
      end

    {out, prims}
  end

  defp nx_f32(values, shape),
    do:
      Nx.from_binary(Emily.to_binary(f32(values)), :f32, backend: {Emily.Backend, device: :cpu})
      |> Nx.reshape(shape)

  test "composed softmaxes run as one kernel in the native and fused lanes, with the evaluator's float32 bits" do
    :rand.seed(:exsss, {5, 6, 7})

    for shape <- [{3, 7}, {2, 5, 64}, {32, 300}, {4, 40_000}] do
      n = Tuple.product(shape)
      x = nx_f32(for(_ <- 1..n, do: :rand.normal() * 8), shape)

      for {fun, name} <- [
            {&Softmaxes.nx_softmax/1, "EmilySoftmax"},
            {&Softmaxes.axon_softmax/1, "EmilySoftmax"},
            {&Softmaxes.axon_log_softmax/1, "EmilyLogSoftmax"}
          ] do
        {want, _} = run_lane(fun, x, :evaluator)

        for lane <- [:native, :fused] do
          {got, prims} = run_lane(fun, x, lane)
          assert name in prims, "#{inspect(fun)} #{lane}: #{inspect(prims)}"

          assert Nx.to_binary(got) == Nx.to_binary(want),
                 "#{inspect(fun)} #{lane} #{inspect(shape)}"
        end
      end
    end
  end

  test "softmax rows with NaN, infinities and one element give the composed form's values" do
    rows = [
      [1.0, :nan, 3.0],
      [:infinity, 1.0, 2.0],
      [:neg_infinity, :neg_infinity, :neg_infinity],
      [-1.0e30, 0.0, 1.0e30]
    ]

    x = nx_f32(List.flatten(rows), {4, 3})

    for fun <- [&Softmaxes.nx_softmax/1, &Softmaxes.axon_softmax/1, &Softmaxes.axon_log_softmax/1] do
      {want, _} = run_lane(fun, x, :evaluator)
      {got, prims} = run_lane(fun, x, :native)

      assert Enum.any?(prims, &String.starts_with?(&1, "EmilyLogSoftmax")) or
               "EmilySoftmax" in prims

      assert Nx.to_binary(got) == Nx.to_binary(want)
    end

    one = nx_f32([2.0, -3.0], {2, 1})
    {got, _} = run_lane(&Softmaxes.nx_softmax/1, one, :native)
    assert Nx.to_flat_list(got) == [1.0, 1.0]
  end

  test "softmax rewrites keep other readers and leave other patterns alone" do
    x = nx_f32(Enum.map(1..24, &(&1 / 3)), {4, 6})
    {{sm, e}, prims} = run_lane(&Softmaxes.softmax_and_e/1, x, :native)
    {{sm0, e0}, _} = run_lane(&Softmaxes.softmax_and_e/1, x, :evaluator)
    assert "EmilySoftmax" in prims and Enum.any?(prims, &(&1 in ["EmilyExp", "EmilyFused"]))
    assert Nx.to_binary(sm) == Nx.to_binary(sm0) and Nx.to_binary(e) == Nx.to_binary(e0)

    {got, prims} = run_lane(&Softmaxes.not_a_softmax/1, x, :native)
    {want, _} = run_lane(&Softmaxes.not_a_softmax/1, x, :evaluator)
    refute "EmilySoftmax" in prims
    assert Nx.to_binary(got) == Nx.to_binary(want)
  end

  test "logsumexp over trailing axes is within float32 rounding of float64's, infinities as MLX's" do
    x = random_f32([6, 5, 300], 8)
    x64 = N.astype(x, :f64, cw())

    for axes <- [[2], [1, 2], [-1]], keep <- [false, true] do
      want = N.astype(N.logsumexp(x64, axes, keep, cw()), :f32, cw())
      got = N.logsumexp(x, axes, keep, cw())
      assert N.shape(got) == N.shape(want)
      assert close?(got, want, 1.0e-6), "logsumexp over #{inspect(axes)}"
    end

    rows = [[:infinity, 1.0], [:neg_infinity, :neg_infinity], [:nan, 1.0], [1.0e30, 1.0e30]]

    got =
      floats(N.logsumexp(f32(List.flatten(rows)) |> N.reshape([4, 2], cw()), [1], false, cw()))

    assert [:infinity, :neg_infinity, :nan, big] = got
    assert_in_delta big, 1.0e30, 1.0e24
  end

  ## fused elementwise programs

  defmodule Fusable do
    import Nx.Defn

    defn(layer_norm(x, g, b), do: Axon.Layers.layer_norm(x, g, b))
    defn(gelu(x), do: Axon.Activations.gelu(x))
    defn(scalars_rows_columns(x, row, col), do: Nx.abs(-(x * x) + row) / 3.0 - Nx.exp(x + col))
    defn(dense_chain(x, w), do: Nx.tanh(Nx.dot(x, w) * 0.5 + x))
    defn(relu_min(x, y), do: Nx.max(x, 0.0) + Nx.min(x, y) * Nx.max(y, x))

    # t is read twice and returned: it roots its own tree.
    defn shared(x) do
      t = Nx.sigmoid(x * 2.0)
      {t * t + 1.0, t}
    end
  end

  defp random_nx(shape, seed) do
    {t, _} = Nx.Random.normal(Nx.Random.key(seed), shape: shape, type: :f32)
    Nx.backend_transfer(t, {Emily.Backend, device: :cpu})
  end

  defp bits_of(out), do: [out] |> Nx.Defn.Composite.flatten_list() |> Enum.map(&Nx.to_binary/1)

  test "elementwise trees run fused in the native and fused lanes with the evaluator's bits" do
    for {rows, cols} <- [{3, 5}, {64, 384}, {700, 513}] do
      x = random_nx({rows, cols}, 1)
      row = random_nx({cols}, 2)
      col = random_nx({rows, 1}, 3)
      w = random_nx({cols, cols}, 4)

      for {fun, args} <- [
            {&Fusable.layer_norm/3, [x, row, row]},
            {&Fusable.gelu/1, [x]},
            {&Fusable.scalars_rows_columns/3, [x, row, col]},
            {&Fusable.dense_chain/2, [x, w]},
            {&Fusable.shared/1, [x]}
          ] do
        {want, _} = run_lane(fun, args, :evaluator)

        for lane <- [:native, :fused] do
          {got, prims} = run_lane(fun, args, lane)
          assert "EmilyFused" in prims, "#{inspect(fun)} #{lane}: #{inspect(prims)}"
          assert bits_of(got) == bits_of(want), "#{inspect(fun)} #{lane} #{rows}x#{cols}"
        end
      end
    end
  end

  test "maxima, minima (NaN from either side), lone nodes and mixed dtypes keep the evaluator's bits" do
    specials = [:nan, 1.0, -0.0, 0.0, :infinity, :neg_infinity, 2.5, -3.0]
    pairs = for a <- specials, b <- specials, do: {a, b}
    a = nx_f32(Enum.map(pairs, &elem(&1, 0)), {8, 8})
    b = nx_f32(Enum.map(pairs, &elem(&1, 1)), {8, 8})

    for {fun, args} <- [
          {&Fusable.relu_min/2, [a, b]},
          {&Nx.add/2, [a, b]},
          {&Fusable.gelu/1, [Nx.as_type(random_nx({8, 16}, 5), :bf16)]}
        ] do
      {want, _} = run_lane(fun, args, :evaluator)
      {got, prims} = run_lane(fun, args, :native)
      assert "EmilyFused" in prims, inspect(prims)
      assert bits_of(got) == bits_of(want), inspect(fun)
    end
  end

  test "the pool's threads are named emily-kernels, not after the worker that started them" do
    x = N.full([1024, 1024], 0.5, :f32, cw())
    Emily.eval(N.exp(x, cw()))

    names =
      for t <- File.ls!("/proc/self/task"),
          {:ok, comm} <- [File.read("/proc/self/task/#{t}/comm")],
          do: String.trim(comm)

    if System.schedulers_online() > 1, do: assert("emily-kernels" in names)
    # one thread per CPU worker
    assert Enum.count(names, &(&1 == "emily-cpu-1")) <= 1
  end

  test "integer and float64 inputs keep MLX's paths" do
    i = tensor([1, 2, 3], [3], {:s, 32})
    assert N.dtype(N.exp(i, cw())) == :f32
    assert N.dtype(N.exp(tensor([0.5, 1.0], [2], {:f, 64}), cw())) == :f64

    assert Emily.to_binary(N.sum(tensor([1, 2, 3], [1, 3], {:s, 32}), [1], false, cw())) ==
             <<6::32-native>>

    assert N.dtype(N.max(tensor([0.5, 1.0], [2], {:f, 64}), [0], false, cw())) == :f64
  end
end
