if Code.ensure_loaded?(Nx) do
  defmodule Emily.Backend do
    @moduledoc """
    An `Nx.Backend` that runs every operation on MLX.

        Nx.global_default_backend(Emily.Backend)
        Nx.global_default_backend({Emily.Backend, device: :gpu})

    Tensors hold a handle to an MLX array and the device it lives on. Ops are lazy: they
    build MLX graph nodes on the calling process's worker (`Emily.Worker.current/1`) and
    nothing is computed until the data is read (`Nx.to_binary/1`, `inspect/1`, ...).
    `Nx.to_binary/1` returns a binary that points into MLX's buffer (no copy).

    ## Options

      * `:device` - `:cpu` or `:gpu`; defaults to `Emily.Worker.default_device/0` (`:cpu`
        unless `config :emily, default_device: :gpu` or `EMILY_DEFAULT_DEVICE=gpu`). `:gpu`
        raises `ArgumentError` when MLX has no GPU on the machine. On an NVIDIA GPU (MLX's
        CUDA backend) float64 ops run on the worker's CPU stream: MLX's GPU has no float64.

    ## Types

    Every Nx type MLX has runs natively: `{:u, 8..64}`, `{:s, 8..64}`, `{:f, 16}`,
    `{:bf, 16}`, `{:f, 32}`, `{:c, 64}`, and `{:f, 64}` (on the CPU; MLX's GPU backends have
    no float64). Types MLX lacks follow one policy: **compute in the next wider type and
    convert at the boundary**. `{:u, 2}`, `{:u, 4}` are stored as `u8`, `{:s, 2}`, `{:s, 4}`
    as `s8`, `{:f, 8}` (E5M2) and `{:f8_e4m3fn, 8}` as `f16` (both are exact subsets of
    f16). Results of ops in those types are brought back into the type after each op
    (integers wrap, E5M2 truncates like Nx's encoder; E4M3FN goes through Nx's own
    encoder, which evaluates), and `from_binary`/`to_binary` convert with Nx.BinaryBackend's own
    code. `{:c, 128}` raises `ArgumentError` (MLX has complex64 only).

    ## Fallbacks

    Only callbacks that take an Elixir function run on `Nx.BinaryBackend` (the result
    comes back to MLX): `reduce/5` and `window_reduce/6`. Each fallback emits
    `[:emily, :fallback, :start | :stop | :exception]` telemetry events (metadata
    `%{op: atom}`) when `:telemetry` is available. `config :emily, fallback:` picks what
    else happens: `:silent`, `:warn` (default; logs a warning once per op) or `:raise`
    (raises `ArgumentError` naming the op). `from_pointer/5` and `to_pointer/2` raise, as
    in Nx.BinaryBackend. Everything else runs on MLX, including what MLX has no single op
    for (composed of MLX ops): window reductions and window scatters (strided views of
    the padded input), conv in f64/c64 or more than 3 spatial axes (windows times the
    kernel), integer dot products (multiply and sum), complex triangular_solve (a real
    block system), population_count and count_leading_zeros (bit arithmetic), float64
    transcendental functions (a C-library kernel: MLX's own compute them in single
    precision).

    `Nx.block/4` structs without a native implementation here run their default function,
    which is made of Nx ops and so runs on MLX as well (not a fallback). Native blocks:
    LogicalNot, Phase, Cumulative{Sum,Product,Min,Max}, Take, TakeAlongAxis, TopK,
    AllClose, FFT2, IFFT2, RFFT, IRFFT, LinAlg.{Cholesky, QR, Eigh, SVD, LU, Solve,
    Determinant}. Determinants of 2x2 and 3x3 matrices use Nx's closed formulas (its
    default function), linear-algebra blocks with complex inputs and QR in `:complete`
    mode with more rows than columns run the default function too.

    ## Tensors and other nodes

    A tensor's data lives in its VM's MLX memory, so an `Emily.Backend` tensor sent to
    another node is not usable there: every op on it raises an `ArgumentError` naming the
    node it belongs to. Send `Nx.backend_copy(tensor, Nx.BinaryBackend)` instead. An
    `Nx.Serving` answering `{:distributed, name}` requests from other nodes does that
    copy in `Nx.Serving.distributed_postprocessing/2`:

        serving
        |> Nx.Serving.distributed_postprocessing(&Nx.backend_copy(&1, Nx.BinaryBackend))

    (`Nx.backend_copy/2` copies every tensor of a container). Tensors arriving from another
    node as `Nx.BinaryBackend` tensors are copied in by the first op that uses them.

    ## Known divergences from Nx.BinaryBackend

      * Floating-point results may differ in the last bits: MLX computes f32 (and f16,
        bf16) in single precision where BinaryBackend uses Erlang's doubles, and its
        transcendental functions are vectorised approximations. float64 math goes
        through the C library, like Erlang's `:math`: identical results, except `log1p`,
        which is the C library's (BinaryBackend computes log(1 + x)).
      * bf16 arithmetic rounds to nearest even (BinaryBackend truncates every result);
        `as_type/2` to bf16 truncates like BinaryBackend. Half-precision arithmetic on
        inputs of another type (an integer, say) computes in f32 and rounds once.
      * Integer `quotient/2` and `remainder/2` by zero do not raise: x quotient 0 is 0
        and x remainder 0 is x. MIN quotient -1 wraps to MIN. Shifts by a negative
        amount or by the bit width or more do not raise either (the result is MLX's).
      * Float to integer conversion of finite values out of the target range: 8, 16 and
        32-bit targets wrap modulo 2^bits like BinaryBackend; 64-bit targets give the
        platform's conversion (Nx documents this as platform dependent).
      * `sign/1` of -Inf is -1 and of NaN is NaN (BinaryBackend gives 1 for both: its
        comparison of atoms with numbers puts them above 0); of -0.0 it is 0.0.
      * Complex arithmetic with infinite parts follows MLX (C) rules: Inf * (2 + 0i)
        keeps its infinities where BinaryBackend gives NaN.
      * `gather/4`, `Nx.take/3` and `Nx.take_along_axis/3` clamp out-of-range indices
        into range (as XLA does) where BinaryBackend raises; `indexed_add/5` and
        `indexed_put/5` ignore the updates of out-of-range index rows. Set
        `config :emily, debug_bounds_check: true` to raise `ArgumentError` like
        BinaryBackend (costs an evaluation per op). With repeated indices,
        `indexed_put/5` keeps MLX's choice (in practice the last update, as
        BinaryBackend).
      * Decompositions that are not unique: `eigh` returns eigenvalues from the largest
        down, each eigenvector with its largest-magnitude entry positive (BinaryBackend:
        the order its iteration ends in); QR and SVD carry LAPACK's signs. All satisfy
        the same identities. Results differ from BinaryBackend's iterative algorithms in
        the last digits (LAPACK is usually the more accurate).
      * `fft/2` and `ifft/2` along a middle axis of a rank-3 or higher tensor are right
        here; BinaryBackend puts the transformed axis back with a swap (wrong there).
      * `window_scatter_max/6`, `window_scatter_min/6` in f64 keep f64 sums
        (BinaryBackend adds the scattered values as f32 scalars).
      * `backend_deallocate/1` drops nothing eagerly: the MLX array is freed when its last
        handle is garbage collected. It returns `:ok`.

    ## Debug flags (compile time)

      * `config :emily, debug_bounds_check: true` - gather, take, take_along_axis,
        indexed_add and indexed_put raise `ArgumentError` on negative or out-of-range
        indices.
      * `config :emily, debug_detect_nan_inf: true` - dot (matmul) and the fused kernels
        of `Emily.Fast` (RMS norm, layer norm, scaled dot-product attention) raise
        `ArgumentError` when their result holds NaN or Inf.

    Both default to false and are compiled out then; either check evaluates the tensors
    it looks at. See "Debug flags" in `Emily`.
    """

    @behaviour Nx.Backend

    defstruct [:ref, device: :cpu]

    alias Emily.Native, as: N

    alias Emily.Backend.{Core, MX, Shape, Reduce, Elementwise, Index, LinAlg, Conv, FFT}
    alias Emily.Backend.{Window, Fallback, Block}
    alias Nx.Tensor, as: T

    import Core, only: [on_device: 3, wrap: 3, ref: 2, ref: 3, device_of: 1, worker: 1, fit: 3]

    ## Backend setup

    @impl true
    def init(opts), do: Core.init_opts(opts)

    ## Creation

    @impl true
    def constant(%T{type: type, shape: shape} = out, number, opts) do
      created(out, opts, fn w ->
        s = Core.scalar(number, type, w)
        if shape == {}, do: s, else: N.broadcast_to(s, Tuple.to_list(shape), w)
      end)
    end

    @impl true
    def from_binary(%T{type: type, shape: shape} = out, binary, opts) do
      created(out, opts, &Core.upload(type, shape, binary, &1))
    end

    @impl true
    def eye(%T{type: type, shape: shape} = out, opts) do
      created(out, opts, fn w ->
        rank = tuple_size(shape)
        m = elem(shape, rank - 2)
        n = elem(shape, rank - 1)
        r = N.eye(m, n, 0, Core.dtype(type), w)
        if rank > 2, do: N.broadcast_to(r, Tuple.to_list(shape), w), else: r
      end)
    end

    @impl true
    def iota(%T{type: type, shape: shape} = out, axis, opts) do
      created(out, opts, &Shape.iota(type, shape, axis, &1))
    end

    # A tensor made by `fun.(worker)` on the device `opts` name (or the default), as `out`.
    defp created(out, opts, fun) do
      device = Core.opts_device(opts)
      wrap(fun.(worker(device)), out, device)
    end

    ## Conversions and memory

    @impl true
    def to_binary(%T{type: type, shape: shape} = t, limit) do
      bin = Core.download(Core.ref(t, nil), type, shape)
      {_, bits} = type
      want = limit * bits

      if want < bit_size(bin) do
        if rem(want, 8) == 0 do
          binary_part(bin, 0, div(want, 8))
        else
          <<part::bitstring-size(^want), _::bitstring>> = bin
          part
        end
      else
        bin
      end
    end

    @impl true
    def inspect(%T{} = tensor, inspect_opts) do
      limit = inspect_opts.limit
      size = Nx.size(tensor)
      n = if limit == :infinity, do: size, else: min(limit + 1, size)
      binary = to_binary(tensor, n)
      Nx.Backend.inspect(tensor, binary, inspect_opts)
    end

    @impl true
    def backend_copy(%T{} = t, Emily.Backend, opts) do
      created(t, opts, &N.copy(ref(t, &1), &1))
    end

    def backend_copy(%T{shape: shape} = t, backend, opts) do
      backend.from_binary(t, to_binary(t, Nx.size(shape)), opts)
    end

    @impl true
    def backend_transfer(%T{} = t, Emily.Backend, opts) do
      device = Core.opts_device(opts)

      if Core.device(t) == device do
        t
      else
        backend_copy(t, Emily.Backend, opts)
      end
    end

    def backend_transfer(%T{} = t, backend, opts) do
      result = backend_copy(t, backend, opts)
      backend_deallocate(t)
      result
    end

    @impl true
    def backend_deallocate(%T{data: %Emily.Backend{}}), do: :ok
    def backend_deallocate(_), do: :already_deallocated

    @impl true
    def from_pointer(_, _, _, _, _) do
      raise ArgumentError, "Emily.Backend does not support pointer manipulation"
    end

    @impl true
    def to_pointer(_, _) do
      raise ArgumentError, "Emily.Backend does not support pointer manipulation"
    end

    @impl true
    def to_batched(%T{shape: out_shape} = out, %T{shape: shape} = t, opts) do
      device = device_of([t])
      w = worker(device)
      leftover = opts[:leftover]
      batch = elem(out_shape, 0)
      total = elem(shape, 0)
      full = div(total, batch)
      rem = rem(total, batch)
      r = ref(t, w)
      rank = tuple_size(shape)
      rest = shape |> Tuple.delete_at(0) |> Tuple.to_list()

      slice = fn start, len ->
        N.slice(
          r,
          [start | List.duplicate(0, rank - 1)],
          [start + len | rest],
          List.duplicate(1, rank),
          w
        )
      end

      batches = for i <- 0..(full - 1)//1, do: slice.(i * batch, batch)

      batches =
        if rem != 0 and leftover == :repeat do
          tail = slice.(full * batch, rem)
          head = slice.(0, batch - rem)
          batches ++ [N.concatenate([tail, head], 0, w)]
        else
          batches
        end

      Enum.map(batches, &wrap(&1, out, device))
    end

    @impl true
    def as_type(%T{type: to} = out, %T{type: from} = t) do
      on_device([t], out, fn w -> Core.convert(ref(t, w), from, to, w) end)
    end

    @impl true
    def bitcast(%T{type: to} = out, %T{type: from} = t) do
      on_device([t], out, fn w ->
        r =
          cond do
            Core.narrow?(to) or Core.narrow?(from) ->
              # Narrow types do not live in their own bits: go through their bytes.
              Core.upload(to, t.shape, to_binary(t, Nx.size(t)), w)

            true ->
              N.view(ref(t, w), Core.dtype(to), w)
          end

        r
      end)
    end

    ## Shape

    @impl true
    def reshape(%T{shape: shape} = out, t) do
      on_device([t], out, fn w -> N.reshape(ref(t, w), Tuple.to_list(shape), w) end)
    end

    @impl true
    def squeeze(out, t, _axes), do: reshape(out, t)

    @impl true
    def broadcast(%T{shape: shape} = out, %T{shape: tshape} = t, shape, axes) do
      on_device([t], out, fn w -> Shape.broadcast(ref(t, w), tshape, shape, axes, w) end)
    end

    @impl true
    def transpose(out, t, axes) do
      on_device([t], out, fn w -> N.transpose(ref(t, w), axes, w) end)
    end

    @impl true
    def pad(%T{type: type} = out, t, pad_value, config) do
      on_device([t, pad_value], out, fn w ->
        r = Shape.pad(ref(t, type, w), ref(pad_value, type, w), config, w)
        r
      end)
    end

    @impl true
    def reverse(out, %T{shape: shape} = t, axes) do
      on_device([t], out, fn w -> Shape.reverse(ref(t, w), shape, axes, w) end)
    end

    @impl true
    def slice(out, %T{shape: shape} = t, starts, lengths, strides) do
      on_device([t], out, fn w -> Shape.slice(ref(t, w), shape, starts, lengths, strides, w) end)
    end

    @impl true
    def put_slice(%T{type: type} = out, %T{shape: shape} = t, starts, slice) do
      on_device([t, slice], out, fn w ->
        r = Shape.put_slice(ref(t, type, w), shape, starts, ref(slice, type, w), slice.shape, w)
        r
      end)
    end

    @impl true
    def concatenate(%T{type: type} = out, tensors, axis) do
      on_device(tensors, out, fn w ->
        N.concatenate(Enum.map(tensors, &ref(&1, type, w)), axis, w)
      end)
    end

    @impl true
    def stack(%T{type: type} = out, tensors, axis) do
      on_device(tensors, out, fn w -> N.stack(Enum.map(tensors, &ref(&1, type, w)), axis, w) end)
    end

    @impl true
    def select(%T{type: type} = out, pred, on_true, on_false) do
      on_device([pred, on_true, on_false], out, fn w ->
        p = Core.to_bool(ref(pred, w), w)
        r = MX.where(p, ref(on_true, type, w), ref(on_false, type, w), w)
        r = broadcast_out(r, out, w)
        r
      end)
    end

    @impl true
    def clip(%T{type: type} = out, t, min, max) do
      device = device_of([t, min, max])
      w = worker(device)
      # Nx: c = x > min ? x : min, then c < max ? c : max (NaN becomes min), comparing
      # the exact values of the three (possibly different) types.
      gt_lo = compare(:greater, t, min, device, w)

      below =
        MX.where(gt_lo, compare(:less, t, max, device, w), compare(:less, min, max, device, w), w)

      c = MX.where(gt_lo, ref(t, type, w), ref(min, type, w), w)
      c = MX.where(below, c, ref(max, type, w), w)
      wrap(fit(broadcast_out(c, out, w), type, w), out, device)
    end

    defp broadcast_out(r, %T{shape: shape}, w) do
      if N.shape(r) == Tuple.to_list(shape),
        do: r,
        else: N.broadcast_to(r, Tuple.to_list(shape), w)
    end

    ## Element-wise binary ops

    @arith [add: :add, subtract: :subtract, multiply: :multiply, divide: :divide, pow: :power] ++
             [atan2: :arctan2] ++
             [bitwise_and: :bitwise_and, bitwise_or: :bitwise_or, bitwise_xor: :bitwise_xor] ++
             [left_shift: :left_shift, right_shift: :right_shift]

    for {nx, mlx} <- @arith do
      @impl true
      def unquote(nx)(%T{type: type} = out, l, r) do
        device = device_of([l, r])
        w = worker(device)
        ct = compute_type(type, l.type, r.type)
        res = N.unquote(mlx)(ref(l, ct, w), ref(r, ct, w), w)
        res = if ct == type, do: res, else: Core.cast(res, type, w)
        wrap(fit(broadcast_out(res, out, w), type, w), out, device)
      end
    end

    # Nx.BinaryBackend computes in Elixir numbers and rounds once to the output type. For
    # half-precision outputs with inputs of another type (an integer, say) we compute in
    # f32 and round once too, instead of rounding the inputs to half precision first.
    defp compute_type(out, a, b) when out in [{:f, 16}, {:bf, 16}] do
      if a == out and b == out, do: out, else: {:f, 32}
    end

    defp compute_type(out, _a, _b), do: out

    # A signed integer against a u64 (no common integer type): negative values are below
    # every u64; the rest compare as u64.
    defp compare(op, %T{type: {:s, _}} = l, %T{type: {:u, 64}} = r, _device, w) do
      a = ref(l, w)
      neg = N.less(a, Core.scalar(0, l.type, w), w)
      cmp = apply(N, op, [N.astype(a, :u64, w), ref(r, w), w])

      MX.where(
        neg,
        bool_scalar(op in [:less, :less_equal, :not_equal], w),
        cmp,
        w
      )
    end

    defp compare(op, %T{type: {:u, 64}} = l, %T{type: {:s, _}} = r, _device, w) do
      b = ref(r, w)
      neg = N.less(b, Core.scalar(0, r.type, w), w)
      cmp = apply(N, op, [ref(l, w), N.astype(b, :u64, w), w])

      MX.where(
        neg,
        bool_scalar(op in [:greater, :greater_equal, :not_equal], w),
        cmp,
        w
      )
    end

    defp compare(op, l, r, device, w) do
      type = compare_type(l.type, r.type, device)
      apply(N, op, [ref(l, type, w), ref(r, type, w), w])
    end

    defp bool_scalar(b, w), do: Core.to_bool(Core.scalar(if(b, do: 1, else: 0), {:u, 8}, w), w)

    # Comparisons see the exact values on BinaryBackend: compare mixed types in a type
    # that holds both. f64 on the CPU. On a GPU (no f64 there; f64 would leave the GPU
    # stream and any native program) f32 unless a side is f64: exact but for a 32- or
    # 64-bit integer beyond 2^24 that rounds onto the float it is compared with (never
    # against f16, whose range f32 holds integer by integer). Not Nx's merged type: f16
    # against s64 would compare in f16 (large integers become infinities).
    defp compare_type(same, same, _device), do: same

    defp compare_type(a, b, device) do
      cond do
        Core.int?(a) and Core.int?(b) -> Nx.Type.merge(a, b)
        Core.complex?(a) or Core.complex?(b) -> {:c, 64}
        device == :cpu or {:f, 64} in [a, b] -> {:f, 64}
        true -> {:f, 32}
      end
    end

    # min/max pick one of the inputs: with two integer types (a u64 against a signed type
    # has no common integer type), pick by exact comparison, then convert.
    for {nx, {mlx, cmp}} <- [min: {:minimum, :less_equal}, max: {:maximum, :greater_equal}] do
      @impl true
      def unquote(nx)(%T{type: type} = out, %T{type: lt} = l, %T{type: rt} = r) do
        device = device_of([l, r])
        w = worker(device)

        res =
          if lt != rt and Core.int?(lt) and Core.int?(rt) do
            pick = compare(unquote(cmp), l, r, device, w)
            MX.where(pick, ref(l, type, w), ref(r, type, w), w)
          else
            ct = compute_type(type, lt, rt)
            res = N.unquote(mlx)(ref(l, ct, w), ref(r, ct, w), w)
            if ct == type, do: res, else: Core.cast(res, type, w)
          end

        wrap(fit(broadcast_out(res, out, w), type, w), out, device)
      end
    end

    @impl true
    def remainder(%T{type: type} = out, l, r) do
      device = device_of([l, r])
      w = worker(device)
      res = Elementwise.trunc_remainder(ref(l, type, w), ref(r, type, w), type, w)
      wrap(fit(broadcast_out(res, out, w), type, w), out, device)
    end

    @impl true
    def quotient(%T{type: type} = out, l, r) do
      device = device_of([l, r])
      w = worker(device)
      res = Elementwise.trunc_quotient(ref(l, type, w), ref(r, type, w), type, w)
      wrap(fit(broadcast_out(res, out, w), type, w), out, device)
    end

    @compare [equal: :equal, not_equal: :not_equal, greater: :greater, less: :less] ++
               [greater_equal: :greater_equal, less_equal: :less_equal]

    for {nx, mlx} <- @compare do
      @impl true
      def unquote(nx)(out, l, r) do
        device = device_of([l, r])
        w = worker(device)
        res = compare(unquote(mlx), l, r, device, w)
        wrap(broadcast_out(Core.from_bool(res, w), out, w), out, device)
      end
    end

    @logical [logical_and: :logical_and, logical_or: :logical_or, logical_xor: :not_equal]

    for {nx, mlx} <- @logical do
      @impl true
      def unquote(nx)(out, l, r) do
        device = device_of([l, r])
        w = worker(device)
        a = Core.to_bool(ref(l, w), w)
        b = Core.to_bool(ref(r, w), w)
        res = N.unquote(mlx)(a, b, w)
        wrap(broadcast_out(Core.from_bool(res, w), out, w), out, device)
      end
    end

    ## Element-wise unary ops

    # {Nx op, MLX op, the float64 precise_unary op}. MLX's float64 kernels for
    # several of these compute in single precision: float64 goes through the C library.
    @math [
      {:exp, :exp, :exp},
      {:expm1, :expm1, :expm1},
      {:log, :log, :log},
      {:log1p, :log1p, :log1p},
      {:sigmoid, :sigmoid, :sigmoid},
      {:cos, :cos, :cos},
      {:sin, :sin, :sin},
      {:tan, :tan, :tan},
      {:cosh, :cosh, :cosh},
      {:sinh, :sinh, :sinh},
      {:tanh, :tanh, :tanh},
      {:acos, :arccos, :acos},
      {:asin, :arcsin, :asin},
      {:atan, :arctan, :atan},
      {:acosh, :arccosh, :acosh},
      {:asinh, :arcsinh, :asinh},
      {:atanh, :arctanh, :atanh},
      {:sqrt, :sqrt, :sqrt},
      {:rsqrt, :rsqrt, :rsqrt},
      {:erf, :erf, :erf},
      {:erf_inv, :erfinv, :erf_inv}
    ]

    for {nx, mlx, precise} <- @math do
      @impl true
      def unquote(nx)(%T{type: type} = out, t) do
        on_device([t], out, fn w ->
          x = ref(t, type, w)

          r =
            if type == {:f, 64},
              do: N.precise_unary(x, unquote(precise), w),
              else: N.unquote(mlx)(x, w)

          fit(r, type, w)
        end)
      end
    end

    @impl true
    def cbrt(%T{type: type} = out, t) do
      if type == {:f, 64} do
        unary(out, t, &N.precise_unary(&1, :cbrt, &2))
      else
        unary(out, t, fn x, w -> Elementwise.cbrt(x, type, w) end, type)
      end
    end

    @impl true
    def erfc(%T{type: type} = out, t) do
      if type == {:f, 64} do
        unary(out, t, &N.precise_unary(&1, :erfc, &2))
      else
        unary(out, t, fn x, w -> N.subtract(Core.scalar(1, type, w), N.erf(x, w), w) end, type)
      end
    end

    @impl true
    def negate(%T{type: type} = out, t), do: unary(out, t, &N.negative/2, type)

    @impl true
    def bitwise_not(%T{type: type} = out, t), do: unary(out, t, &N.bitwise_invert/2, type)

    @impl true
    def conjugate(out, t), do: unary(out, t, &N.conjugate/2)

    @impl true
    def sign(%T{type: type} = out, t) do
      if Core.unsigned?(type) do
        unary(out, t, fn x, w ->
          N.astype(N.not_equal(x, Core.scalar(0, type, w), w), Core.dtype(type), w)
        end)
      else
        # MLX's sign of NaN is 0; keep NaN
        unary(out, t, fn x, w ->
          if Core.float?(type),
            do: MX.where(N.isnan(x, w), x, N.sign(x, w), w),
            else: N.sign(x, w)
        end)
      end
    end

    @impl true
    def abs(%T{type: type} = out, %T{type: in_type} = t) do
      on_device([t], out, fn w ->
        x = ref(t, w)

        r =
          cond do
            Core.complex?(in_type) -> Core.cast(N.abs(x, w), type, w)
            Core.unsigned?(in_type) -> x
            true -> fit(N.abs(x, w), type, w)
          end

        r
      end)
    end

    for {nx, mlx} <- [ceil: :ceil, floor: :floor] do
      @impl true
      def unquote(nx)(%T{type: type} = out, t) do
        if Core.int?(type) do
          unary(out, t, fn x, _w -> x end)
        else
          unary(out, t, &(N.unquote(mlx) / 2), type)
        end
      end
    end

    @impl true
    def round(%T{type: type} = out, t) do
      if Core.int?(type) do
        unary(out, t, fn x, _w -> x end)
      else
        unary(out, t, fn x, w -> Elementwise.round_half_away(x, type, w) end, type)
      end
    end

    @impl true
    def real(%T{type: type} = out, %T{type: in_type} = t) do
      if Core.complex?(in_type) do
        on_device([t], out, fn w -> Core.cast(N.real(ref(t, w), w), type, w) end)
      else
        as_type(out, t)
      end
    end

    @impl true
    def imag(%T{type: type, shape: shape} = out, %T{type: in_type} = t) do
      on_device([t], out, fn w ->
        r =
          if Core.complex?(in_type) do
            Core.cast(N.imag(ref(t, w), w), type, w)
          else
            N.broadcast_to(Core.scalar(0, type, w), Tuple.to_list(shape), w)
          end

        r
      end)
    end

    for {nx, mlx} <- [is_nan: :isnan, is_infinity: :isinf] do
      @impl true
      def unquote(nx)(%T{shape: shape} = out, %T{type: in_type} = t) do
        on_device([t], out, fn w ->
          r =
            if Core.int?(in_type) do
              N.broadcast_to(Core.scalar(0, {:u, 8}, w), Tuple.to_list(shape), w)
            else
              Core.from_bool(
                Elementwise.complex_test(ref(t, w), in_type, &(N.unquote(mlx) / 2), w),
                w
              )
            end

          r
        end)
      end
    end

    @impl true
    def population_count(%T{type: type} = out, t) do
      unary(out, t, fn x, w -> Elementwise.population_count(x, type, w) end)
    end

    @impl true
    def count_leading_zeros(%T{type: type} = out, t) do
      unary(out, t, fn x, w -> Elementwise.count_leading_zeros(x, type, w) end)
    end

    # Applies `fun.(handle, worker)` to `t` converted to the output type; `fit_type`
    # brings narrow results back into range.
    defp unary(%T{type: type} = out, t, fun, fit_type \\ nil) do
      on_device([t], out, fn w ->
        r = fun.(ref(t, type, w), w)
        r = if fit_type, do: fit(r, fit_type, w), else: r
        r
      end)
    end

    ## Reductions

    for op <- [:sum, :product, :reduce_max, :reduce_min, :all, :any] do
      @impl true
      def unquote(op)(out, t, opts), do: Reduce.unquote(op)(out, t, opts)
    end

    @impl true
    def argmax(out, t, opts), do: Reduce.arg_extreme(out, t, opts, :max)

    @impl true
    def argmin(out, t, opts), do: Reduce.arg_extreme(out, t, opts, :min)

    @impl true
    def reduce(out, t, acc, opts, fun) do
      Fallback.run(:reduce, [out, t, acc, opts, fun])
    end

    @impl true
    def window_reduce(out, t, acc, window, opts, fun) do
      Fallback.run(:window_reduce, [out, t, acc, window, opts, fun])
    end

    for op <- [:window_sum, :window_product, :window_max, :window_min] do
      @impl true
      def unquote(op)(out, t, window, opts), do: Window.unquote(op)(out, t, window, opts)
    end

    @impl true
    def window_scatter_max(out, t, source, init, window, opts) do
      Window.scatter(out, t, source, init, window, opts, :max)
    end

    @impl true
    def window_scatter_min(out, t, source, init, window, opts) do
      Window.scatter(out, t, source, init, window, opts, :min)
    end

    @impl true
    def sort(out, t, opts), do: Reduce.sort(out, t, opts, false)

    @impl true
    def argsort(out, t, opts), do: Reduce.sort(out, t, opts, true)

    ## Indexing

    @impl true
    def gather(out, t, indices, opts), do: Index.gather(out, t, indices, opts)

    @impl true
    def indexed_add(out, t, indices, updates, opts),
      do: Index.indexed(out, t, indices, updates, opts, :add)

    @impl true
    def indexed_put(out, t, indices, updates, opts),
      do: Index.indexed(out, t, indices, updates, opts, :put)

    ## Linear algebra, convolution, FFT

    @impl true
    def dot(out, l, lc, lb, r, rc, rb), do: LinAlg.dot(out, l, lc, lb, r, rc, rb)

    @impl true
    def conv(out, t, k, opts), do: Conv.conv(out, t, k, opts)

    @impl true
    def triangular_solve(out, a, b, opts), do: LinAlg.triangular_solve(out, a, b, opts)

    @impl true
    def fft(out, t, opts), do: FFT.fft(out, t, opts, :fft)

    @impl true
    def ifft(out, t, opts), do: FFT.fft(out, t, opts, :ifft)

    ## Blocks

    @impl true
    def block(struct, output, args, fun), do: Block.run(struct, output, args, fun)
  end
end
