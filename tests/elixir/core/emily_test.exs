defmodule EmilyTest do
  use ExUnit.Case, async: true
  import Bitwise

  # eval/1's and async_eval/1's examples build their tensors with Nx (on Emily.Backend).
  if Code.ensure_loaded?(Nx) do
    doctest Emily
  else
    doctest Emily, except: [eval: 1, async_eval: 1]
  end

  defp f32(values), do: for(v <- values, into: <<>>, do: <<v::float-32-native>>)

  describe "shapes are lists; tuples are taken as well" do
    test "from_binary and mmap take either; shape/1 gives a list" do
      for shape <- [[2, 2], {2, 2}] do
        t = Emily.from_binary(f32([1, 2, 3, 4]), shape, {:f, 32})
        assert Emily.shape(t) == [2, 2]
        assert Emily.to_binary(t) == f32([1, 2, 3, 4])
      end

      assert Emily.shape(Emily.from_binary(f32([1]), [], {:f, 32})) == []
      assert Emily.shape(Emily.from_binary(f32([1]), {}, {:f, 32})) == []
      assert Emily.shape(Emily.from_binary(<<>>, [0, 3], {:f, 32})) == [0, 3]

      path = Path.join(System.tmp_dir!(), "emily_shape_#{System.unique_integer([:positive])}")
      File.write!(path, <<1, 2, 3, 4, 5, 6>>)

      try do
        for shape <- [[2, 3], {2, 3}], p <- [path, String.to_charlist(path)] do
          t = Emily.mmap(p, 0, shape, {:u, 8})
          assert Emily.shape(t) == [2, 3]
          assert Emily.to_binary(t) == <<1, 2, 3, 4, 5, 6>>
        end
      after
        File.rm(path)
      end
    end

    test "dtype/1 gives Nx type tuples, and :bool for MLX's booleans" do
      for {type, bytes} <- [
            {{:u, 8}, 1},
            {{:u, 16}, 2},
            {{:u, 32}, 4},
            {{:u, 64}, 8},
            {{:s, 8}, 1},
            {{:s, 16}, 2},
            {{:s, 32}, 4},
            {{:s, 64}, 8},
            {{:f, 16}, 2},
            {{:bf, 16}, 2},
            {{:f, 32}, 4},
            {{:f, 64}, 8},
            {{:c, 64}, 8},
            {:bool, 1}
          ] do
        t = Emily.from_binary(:binary.copy(<<0>>, 3 * bytes), [3], type)
        assert Emily.dtype(t) == type
        assert Emily.shape(t) == [3]
      end

      w = Emily.Worker.current()
      x = Emily.from_binary(<<1, 2>>, [2], {:u, 8})
      assert Emily.dtype(Emily.Native.equal(x, x, w)) == :bool
    end

    test "shape/1 and dtype/1 read metadata only: nothing is evaluated" do
      w = Emily.Worker.current()
      x = Emily.from_binary(f32([1, 2]), [2], {:f, 32})
      y = Emily.Native.exp(x, w)
      assert Emily.shape(y) == [2]
      assert Emily.dtype(y) == {:f, 32}
      refute Emily.Native.evaluated(y)
      assert Emily.eval(y) == :ok
      assert Emily.Native.evaluated(y)
    end
  end

  describe "bad arguments raise ArgumentError naming the function, the argument and what it must be" do
    @shape_must "shape must be a list (or a tuple) of integers from 0 to 2147483647, got: "
    @dtype_must "dtype must be an Nx type MLX holds"
    @tensor_must "tensor must be an Emily tensor (a handle to an MLX array), got: "

    defp message(fun) do
      e = assert_raise ArgumentError, fun
      e.message
    end

    test "from_binary: binary" do
      for bad <- [:x, 1, [1, 2], <<1::size(9)>>] do
        assert message(fn -> Emily.from_binary(bad, [1], {:u, 8}) end) ==
                 "from_binary: binary must be a binary (a whole number of bytes), got: " <>
                   inspect(bad)
      end
    end

    test "from_binary: shape" do
      for bad <- [
            {2 ** 70},
            [2 ** 70],
            {1.5},
            [1.5],
            {:a},
            [:a],
            {-1},
            [3, -1],
            {2 ** 31},
            [1 | 2],
            :x,
            "2",
            %{}
          ] do
        assert message(fn -> Emily.from_binary(<<1>>, bad, {:u, 8}) end) ==
                 "from_binary: " <> @shape_must <> inspect(bad)
      end

      # the error names the shape, not its bytes
      assert message(fn -> Emily.from_binary(<<1>>, {2 ** 70}, {:u, 8}) end) =~
               "got: {1180591620717411303424}"
    end

    test "from_binary: dtype" do
      for bad <- [{:u, 7}, {:u, 4}, {:s, 2}, {:f, 8}, {:f8_e4m3fn, 8}, {:c, 128}, :u8, nil, "f32"] do
        msg = message(fn -> Emily.from_binary(<<1>>, [1], bad) end)
        assert msg =~ "from_binary: " <> @dtype_must
        assert msg =~ ":bool, got: #{inspect(bad)}"
      end
    end

    test "mmap: path, offset, shape, dtype" do
      path = Path.join(System.tmp_dir!(), "emily_args_#{System.unique_integer([:positive])}")
      File.write!(path, <<0::64>>)

      try do
        for bad <- [:foo, 1, [1.5], [:a], <<255, 254>>, nil] do
          assert message(fn -> Emily.mmap(bad, 0, [1], {:u, 8}) end) ==
                   "mmap: path must be a file name (a UTF-8 string or a charlist), got: " <>
                     inspect(bad)
        end

        for bad <- [-1, 2 ** 64, 2 ** 70, 1.0, :x, nil] do
          assert message(fn -> Emily.mmap(path, bad, [1], {:u, 8}) end) ==
                   "mmap: offset must be a byte position in the file, an integer from 0 " <>
                     "to 2^64 - 1, got: " <> inspect(bad)
        end

        for bad <- [{2 ** 70}, [1.5], {:a}, [-2], :x] do
          assert message(fn -> Emily.mmap(path, 0, bad, {:u, 8}) end) ==
                   "mmap: " <> @shape_must <> inspect(bad)
        end

        for bad <- [{:x, 3}, {:u, 4}, :f32] do
          assert message(fn -> Emily.mmap(path, 0, [1], bad) end) =~ "mmap: " <> @dtype_must
        end

        # The file itself is checked by the NIF, naming the op and its arguments.
        msg = message(fn -> Emily.mmap(path <> "\0x", 0, [1], {:u, 8}) end)
        assert msg =~ "mmap: cannot open the file"
        assert msg =~ "offset=0, shape=[1], dtype=u8"
      after
        File.rm(path)
      end
    end

    test "to_binary, shape, dtype: tensor" do
      for {fun, op} <- [
            {&Emily.to_binary/1, "to_binary"},
            {&Emily.shape/1, "shape"},
            {&Emily.dtype/1, "dtype"}
          ],
          bad <- [:x, make_ref(), "bin", 1, [], {1}, self()] do
        assert message(fn -> fun.(bad) end) == "#{op}: " <> @tensor_must <> inspect(bad)
      end
    end

    test "eval and async_eval: tensors" do
      x = Emily.from_binary(<<1>>, [1], {:u, 8})

      for bad <- [:x, make_ref(), "bin"] do
        assert message(fn -> Emily.eval(bad) end) == "eval: " <> @tensor_must <> inspect(bad)
        assert message(fn -> Emily.eval([x, bad]) end) == "eval: " <> @tensor_must <> inspect(bad)

        assert message(fn -> Emily.async_eval([bad]) end) ==
                 "async_eval: " <> @tensor_must <> inspect(bad)
      end

      assert message(fn -> Emily.eval([x | x]) end) =~
               "eval: tensors must be an Emily tensor or a list of them, got: "

      for bad <- [x, :x, [x | :x]] do
        assert message(fn -> Emily.async_eval(bad) end) =~
                 "async_eval: tensors must be a list of Emily tensors, got: "
      end

      assert Emily.eval([]) == :ok
      assert Emily.async_eval([]) == :ok
    end

    if Code.ensure_loaded?(Nx) do
      test "an Nx tensor in place of a handle: the message says where the handle is" do
        t = Nx.tensor([1.0, 2.0], backend: Emily.Backend)

        assert message(fn -> Emily.to_binary(t) end) ==
                 "to_binary: tensor must be an Emily tensor (a handle to an MLX array), got: " <>
                   "an Nx.Tensor of type {:f, 32} and shape {2} (for a tensor on " <>
                   "Emily.Backend, pass tensor.data.ref)"

        assert Emily.to_binary(t.data.ref) == f32([1, 2])
      end
    end

    test "the VM and the default worker carry on" do
      x = Emily.from_binary(<<1, 2>>, [2], {:u, 8})
      y = Emily.Native.add(x, x, Emily.Worker.current())
      assert Emily.to_binary(y) == <<2, 4>>

      assert byte_size(
               Emily.to_binary(
                 Emily.from_binary(:binary.copy(<<0>>, 1 <<< 17), [1 <<< 17], {:u, 8})
               )
             ) == 1 <<< 17
    end
  end
end
