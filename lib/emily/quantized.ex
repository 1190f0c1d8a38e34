if Code.ensure_loaded?(Nx) do
  defmodule Emily.Quantized do
    @moduledoc """
    Matrices in MLX's affine quantized layout, and the matrix product with them
    (`mlx::core::quantized_matmul`), on Nx tensors, eagerly and inside `defn`.

    A `{rows, cols}` matrix quantized with `bits` bits in groups of `group_size` columns
    is three tensors, kept in this struct:

      * `:weight` - `{:u, 32}`, shape `{rows, cols * bits / 32}`: the codes `q` (integers in
        `0..2^bits - 1`), packed `32 / bits` to a word, the first in the lowest bits
      * `:scales`, `:biases` - floats, shape `{rows, cols / group_size}`

    and element `{r, c}` of the matrix is `scales[r][g] * q[r][c] + biases[r][g]`, with
    `g = div(c, group_size)`. Group sizes 32, 64 and 128 and 2, 4 or 8 bits are supported
    (MLX's 3, 5 and 6 bits too, on `Emily.Backend` only).

    `dot/2` computes `x . w^T` (a `{.., cols}` input against `rows` output features: the
    layout of PyTorch's `Linear` weights and GGUF's tensors). On `Emily.Backend` it is
    MLX's quantized matmul kernel, which reads the codes directly (4-bit weights move an
    eighth of the bytes of f32 ones); on other backends, and as the definition of the
    result, it is the product with `dequantize/2`. `Emily.GGUF.quantized/3` reads GGUF's
    Q4_0, Q4_1 and Q8_0 blocks into this layout; `Emily.Bumblebee.quantize/2` rewrites a
    model's dense layers to use it.
    """

    alias Nx.Tensor, as: T

    @derive {Nx.Container, containers: [:weight, :scales, :biases], keep: [:bits, :group_size]}
    defstruct [:weight, :scales, :biases, :bits, :group_size]

    @type t :: %__MODULE__{
            weight: Nx.Tensor.t(),
            scales: Nx.Tensor.t(),
            biases: Nx.Tensor.t(),
            bits: pos_integer(),
            group_size: pos_integer()
          }

    defmodule Matmul do
      @moduledoc false
      # The Nx.block/4 struct of Emily.Quantized.dot/2 (native in Emily.Backend.Block).
      defstruct [:bits, :group_size]
    end

    defmodule Dequantize do
      @moduledoc false
      # The Nx.block/4 struct of Emily.Quantized.dequantize/2.
      defstruct [:bits, :group_size, :type]
    end

    @doc """
    Quantizes the rows of the float matrix `w` (`{rows, cols}`, or a batch of them) with
    MLX's `quantize` on `Emily.Backend` (a tensor on another backend is copied there).

    Options: `:bits` (default 4), `:group_size` (default 64; `cols` must be a multiple).
    """
    @spec quantize(Nx.Tensor.t(), keyword()) :: t()
    def quantize(%T{} = w, opts \\ []) do
      opts = Keyword.validate!(opts, bits: 4, group_size: 64)
      {bits, gs} = {opts[:bits], opts[:group_size]}
      check_float!(:quantize, w)

      if Nx.rank(w) < 2 or rem(elem(w.shape, Nx.rank(w) - 1), gs) != 0 do
        raise ArgumentError,
              "Emily.Quantized.quantize: expected a matrix whose last axis is a multiple of " <>
                "the group size #{gs}, got shape #{inspect(w.shape)} (#{Nx.Type.to_string(w.type)})"
      end

      w = Nx.backend_transfer(w, Emily.Backend)
      device = Emily.Backend.Core.device(w)
      worker = Emily.Backend.Core.worker(device)
      x = Emily.Backend.Core.ref(w, worker)
      [wq, scales, biases] = Emily.Native.quantize(x, gs, bits, :affine, worker)

      wrap = fn r ->
        type = r |> Emily.Native.dtype() |> Emily.Dtype.nx_type()
        shape = r |> Emily.Native.shape() |> List.to_tuple()
        Emily.Backend.Core.wrap(r, Nx.template(shape, type), device)
      end

      %__MODULE__{
        weight: wrap.(wq),
        scales: wrap.(scales),
        biases: wrap.(biases),
        bits: bits,
        group_size: gs
      }
    end

    @doc """
    The matrix `q` holds, as a float tensor of `opts[:type]` (default: the type of the
    scales).
    """
    @spec dequantize(t(), keyword()) :: Nx.Tensor.t()
    def dequantize(%__MODULE__{} = q, opts \\ []) do
      type = Keyword.get(opts, :type, q.scales.type)
      {_rows, cols} = matrix_shape!(:dequantize, q)
      out = Nx.template(put_elem(q.weight.shape, tuple_size(q.weight.shape) - 1, cols), type)

      Nx.block(
        %Dequantize{bits: q.bits, group_size: q.group_size, type: type},
        [q.weight, q.scales, q.biases],
        out,
        fn s, w, sc, b -> unpack(w, sc, b, s.bits, s.group_size, s.type) end
      )
    end

    @doc """
    `x . w^T` for `x` of shape `{.., cols}`: a tensor of shape `{.., rows}` and the type of
    `x` (a float type; the scales and biases are converted to it).
    """
    @spec dot(Nx.Tensor.t(), t()) :: Nx.Tensor.t()
    def dot(%T{} = x, %__MODULE__{} = q) do
      {rows, cols} = matrix_shape!(:dot, q)
      check_float!(:dot, x)

      unless Nx.rank(x) >= 1 and elem(x.shape, Nx.rank(x) - 1) == cols do
        raise ArgumentError,
              "Emily.Quantized.dot: x's last axis must be the matrix's #{cols} columns, got x " <>
                "of shape #{inspect(x.shape)} (#{Nx.Type.to_string(x.type)}) against a " <>
                "#{rows}x#{cols} matrix"
      end

      out = Nx.template(put_elem(x.shape, Nx.rank(x) - 1, rows), x.type)

      Nx.block(
        %Matmul{bits: q.bits, group_size: q.group_size},
        [x, q.weight, q.scales, q.biases],
        out,
        fn s, x, w, sc, b ->
          m = unpack(w, sc, b, s.bits, s.group_size, x.type)
          Nx.dot(x, [Nx.rank(x) - 1], m, [1])
        end
      )
    end

    @doc """
    The struct for three tensors in this layout, with `bits` and `group_size` found from
    their shapes and the number of columns `cols`.
    """
    @spec new(Nx.Tensor.t(), Nx.Tensor.t(), Nx.Tensor.t(), pos_integer()) :: t()
    def new(%T{} = weight, %T{} = scales, %T{} = biases, cols) do
      words = elem(weight.shape, Nx.rank(weight) - 1)
      groups = elem(scales.shape, Nx.rank(scales) - 1)
      q = %__MODULE__{weight: weight, scales: scales, biases: biases}
      bits = if rem(words * 32, cols) == 0, do: div(words * 32, cols)
      gs = if groups > 0 and rem(cols, groups) == 0, do: div(cols, groups)

      if bits in [2, 3, 4, 5, 6, 8] and gs in [32, 64, 128] do
        q = %{q | bits: bits, group_size: gs}
        matrix_shape!(:new, q)
        q
      else
        raise ArgumentError,
              "Emily.Quantized.new: weight #{inspect(weight.shape)} and scales " <>
                "#{inspect(scales.shape)} do not describe #{cols} columns with 2-8 bits in " <>
                "groups of 32, 64 or 128"
      end
    end

    # {rows, cols} of the matrix, checking the three tensors against each other.
    defp matrix_shape!(op, %__MODULE__{
           weight: w,
           scales: s,
           biases: b,
           bits: bits,
           group_size: gs
         }) do
      words = elem(w.shape, Nx.rank(w) - 1)
      cols = div(words * 32, bits)

      ok =
        w.type == {:u, 32} and Nx.rank(w) >= 2 and s.shape == b.shape and
          Nx.rank(s) == Nx.rank(w) and rem(words * 32, bits) == 0 and
          elem(s.shape, Nx.rank(s) - 1) * gs == cols and
          Tuple.delete_at(s.shape, Nx.rank(s) - 1) == Tuple.delete_at(w.shape, Nx.rank(w) - 1) and
          Nx.Type.float?(s.type) and s.type == b.type

      unless ok do
        raise ArgumentError,
              "Emily.Quantized.#{op}: inconsistent quantized matrix: weight " <>
                "#{Nx.Type.to_string(w.type)}#{inspect(w.shape)}, scales " <>
                "#{Nx.Type.to_string(s.type)}#{inspect(s.shape)}, biases " <>
                "#{Nx.Type.to_string(b.type)}#{inspect(b.shape)}, #{bits} bits, groups of #{gs}"
      end

      {elem(w.shape, Nx.rank(w) - 2), cols}
    end

    defp check_float!(op, %T{type: type, shape: shape}) do
      unless Nx.Type.float?(type) do
        raise ArgumentError,
              "Emily.Quantized.#{op}: expected a float tensor, got #{Nx.Type.to_string(type)} " <>
                "of shape #{inspect(shape)}"
      end
    end

    # The matrix as Nx ops: codes shifted out of their words, then scale * q + bias per
    # group. Codes of 2, 4 and 8 bits never straddle a word.
    defp unpack(w, scales, biases, bits, gs, type) when bits in [2, 4, 8] do
      per = div(32, bits)
      lead = Tuple.delete_at(w.shape, Nx.rank(w) - 1)
      words = elem(w.shape, Nx.rank(w) - 1)
      cols = words * per
      shifts = Nx.multiply(Nx.iota({per}, type: {:u, 32}), bits)

      codes =
        w
        |> Nx.new_axis(-1)
        |> Nx.right_shift(shifts)
        |> Nx.bitwise_and(Bitwise.bsl(1, bits) - 1)
        |> Nx.as_type(type)
        |> Nx.reshape(
          Tuple.insert_at(
            Tuple.insert_at(lead, tuple_size(lead), div(cols, gs)),
            tuple_size(lead) + 1,
            gs
          )
        )

      scales = scales |> Nx.as_type(type) |> Nx.new_axis(-1)
      biases = biases |> Nx.as_type(type) |> Nx.new_axis(-1)

      codes
      |> Nx.multiply(scales)
      |> Nx.add(biases)
      |> Nx.reshape(Tuple.insert_at(lead, tuple_size(lead), cols))
    end

    defp unpack(_w, _scales, _biases, bits, _gs, _type) do
      raise ArgumentError,
            "Emily.Quantized: #{bits}-bit codes are read by Emily.Backend only (other " <>
              "backends read 2, 4 and 8 bits)"
    end
  end
end
