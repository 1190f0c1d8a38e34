if Code.ensure_loaded?(Nx) do
  defmodule Emily.SafetensorsTest do
    # Emily.Safetensors against files written here byte by byte (header padded as
    # Python's safetensors pads it, or not) and against the safetensors package's own
    # writer and reader. Not async: the cases read the process-wide :bytes_copied counter.
    use ExUnit.Case, async: false
    @moduletag :nx

    @tmp Path.join(System.tmp_dir!(), "emily_safetensors_test")

    setup_all do
      File.mkdir_p!(@tmp)
      on_exit(fn -> File.rm_rf!(@tmp) end)
    end

    # Writes `entries` ([{name, dtype, shape, bytes}]) as a safetensors file; `pad: true`
    # pads the header with spaces so the data starts at a multiple of 8.
    defp write!(name, entries, opts \\ []) do
      {fields, {data, _}} =
        Enum.map_reduce(entries, {[], 0}, fn {tname, dtype, shape, bytes}, {data, at} ->
          field =
            ~s("#{tname}":{"dtype":"#{dtype}","shape":[#{Enum.join(shape, ",")}],) <>
              ~s("data_offsets":[#{at},#{at + byte_size(bytes)}]})

          {field, {[data, bytes], at + byte_size(bytes)}}
        end)

      meta = Keyword.get(opts, :metadata, ~s("__metadata__":{"format":"pt"}))
      json = "{" <> Enum.join([meta | fields], ",") <> "}"

      json =
        if opts[:pad],
          do: json <> String.duplicate(" ", rem(8 - rem(8 + byte_size(json), 8), 8)),
          else: json

      path = Path.join(@tmp, name)
      File.write!(path, [<<byte_size(json)::little-64>>, json, data])
      path
    end

    defp f32(list), do: for(x <- list, into: <<>>, do: <<x::float-32-little>>)

    defp copied, do: Emily.memory_stats().bytes_copied

    @tag :aliasing
    test "every dtype reads back its bytes, mapped without a copy when aligned" do
      entries = [
        {"a.f32", "F32", [2, 3], f32([1.5, -2.0, 3.25, 0.0, -0.0, 1.0e4])},
        {"b.f64", "F64", [2], <<1.0::float-64-little, -3.5::float-64-little>>},
        {"c.f16", "F16", [4], Nx.to_binary(Nx.tensor([1, -2, 0.5, 65504], type: :f16))},
        {"d.bf16", "BF16", [4], Nx.to_binary(Nx.tensor([1, -2, 0.5, 3.0e38], type: :bf16))},
        {"e.i64", "I64", [1, 1], <<-7::little-signed-64>>},
        {"f.i32", "I32", [2], <<-1::little-signed-32, 2_000_000_000::little-signed-32>>},
        {"g.u8", "U8", [8], <<0, 1, 2, 3, 250, 251, 252, 255>>},
        {"h.u16", "U16", [4], <<1::little-16, 65535::little-16, 0::32>>},
        {"i.empty", "F32", [0, 4], <<>>},
        {"k.bool", "BOOL", [8], <<1, 0, 1, 1, 0, 0, 0, 1>>},
        {"l.i8", "I8", [8], <<-128::8, 127, 0, 1, -1::8, 2, 3, 4>>},
        {"m.u32", "U32", [2], <<4_000_000_000::little-32, 5::little-32>>},
        {"n.u64", "U64", [1], <<2 ** 63 + 1::little-64>>},
        {"o.i16", "I16", [4], <<-2::little-signed-16, 3::little-16, 0::32>>},
        {"j.scalar", "F32", [], f32([42.0])}
      ]

      types = %{
        "F32" => {:f, 32},
        "F64" => {:f, 64},
        "F16" => {:f, 16},
        "BF16" => {:bf, 16},
        "I64" => {:s, 64},
        "I32" => {:s, 32},
        "I16" => {:s, 16},
        "I8" => {:s, 8},
        "U64" => {:u, 64},
        "U32" => {:u, 32},
        "U16" => {:u, 16},
        "U8" => {:u, 8},
        "BOOL" => {:u, 8}
      }

      path = write!("types.safetensors", entries, pad: true)
      before = copied()
      got = Emily.Safetensors.read!(path)
      assert map_size(got) == length(entries)

      for {name, dtype, shape, bytes} <- entries do
        t = got[name]
        assert match?(%Emily.Backend{}, t.data), name
        assert {name, t.type, t.shape} == {name, types[dtype], List.to_tuple(shape)}
        assert Nx.to_binary(t) == bytes, name
      end

      assert copied() == before
      assert Nx.to_number(got["j.scalar"]) == 42.0
      assert Nx.to_list(got["a.f32"]) == [[1.5, -2.0, 3.25], [0.0, -0.0, 1.0e4]]
      assert Nx.to_list(got["n.u64"]) == [2 ** 63 + 1]
    end

    @tag :aliasing
    test "a tensor at an offset that is not a multiple of 8 is copied once, and counted" do
      # 3 bytes of u8 put the f32 tensor after it at data offset 3
      path =
        write!(
          "odd.safetensors",
          [{"bytes", "U8", [3], <<7, 8, 9>>}, {"w", "F32", [4], f32([1, 2, 3, 4])}],
          pad: true
        )

      before = copied()
      got = Emily.Safetensors.read!(path, only: ["w"])
      assert Map.keys(got) == ["w"]
      assert Nx.to_list(got["w"]) == [1.0, 2.0, 3.0, 4.0]
      assert copied() - before == 16
    end

    test "files from the safetensors package's writer (header not padded) read as its reader does" do
      tensors = %{
        "x" => Nx.iota({3, 5}, type: :f32),
        "y" => Nx.tensor([[1, -2], [3, -4]], type: :s64),
        "z" => Nx.tensor([0.25, 8.0], type: :bf16)
      }

      path = Path.join(@tmp, "package.safetensors")
      Safetensors.write!(path, tensors)
      got = Emily.Safetensors.read!(path)

      for {name, t} <- tensors do
        assert got[name].type == t.type
        assert Nx.to_binary(got[name]) == Nx.to_binary(t), name
      end
    end

    test "header!/1 gives metadata, types, shapes and absolute offsets" do
      path =
        write!("header.safetensors", [{"a", "F32", [2, 2], f32([1, 2, 3, 4])}],
          metadata: ~s("__metadata__":{"format":"pt","note":"x"}),
          pad: true
        )

      h = Emily.Safetensors.header!(path)
      assert h.metadata == %{"format" => "pt", "note" => "x"}
      assert %{type: {:f, 32}, shape: {2, 2}, byte_size: 16, offset: offset} = h.tensors["a"]
      assert offset == h.data_offset and rem(offset, 8) == 0
      assert File.stat!(path).size == offset + 16
    end

    test "tensors can be made on a named device's worker and used in Nx ops" do
      path = write!("dev.safetensors", [{"v", "F32", [3], f32([1, 2, 3])}], pad: true)
      %{"v" => v} = Emily.Safetensors.read!(path, device: :cpu)
      assert v.data.device == :cpu
      assert Nx.to_list(Nx.multiply(v, 2)) == [2.0, 4.0, 6.0]
    end

    describe "bad files raise ArgumentError naming the file and what is wrong" do
      test "too short, header past the end, header not JSON or not an object" do
        short = Path.join(@tmp, "short.safetensors")
        File.write!(short, <<1, 2, 3>>)

        assert_raise ArgumentError, ~r/short.safetensors is 3 bytes/, fn ->
          Emily.Safetensors.read!(short)
        end

        long = Path.join(@tmp, "long.safetensors")
        File.write!(long, <<1000::little-64, "{}">>)

        assert_raise ArgumentError, ~r/1000-byte header in a 10-byte file/, fn ->
          Emily.Safetensors.read!(long)
        end

        bad = Path.join(@tmp, "bad.safetensors")
        File.write!(bad, <<5::little-64, "{nope">>)

        assert_raise ArgumentError, ~r/header that is not JSON/, fn ->
          Emily.Safetensors.read!(bad)
        end

        list = Path.join(@tmp, "list.safetensors")
        File.write!(list, <<2::little-64, "[]">>)

        assert_raise ArgumentError, ~r/not a JSON object/, fn ->
          Emily.Safetensors.read!(list)
        end

        assert_raise ArgumentError, ~r/cannot be read/, fn ->
          Emily.Safetensors.read!(Path.join(@tmp, "absent.safetensors"))
        end
      end

      test "unknown dtype, wrong size, data past the end, malformed entry, missing name" do
        f8 = write!("f8.safetensors", [{"q", "F8_E4M3", [4], <<1, 2, 3, 4>>}])

        assert_raise ArgumentError, ~r/tensor "q" of dtype "F8_E4M3"; the dtypes read are/, fn ->
          Emily.Safetensors.read!(f8)
        end

        size = write!("size.safetensors", [{"w", "F32", [3], f32([1, 2])}])

        assert_raise ArgumentError,
                     ~r/tensor "w" \(F32 \[3\], 12 bytes\) at data offsets \[0, 8\)/,
                     fn ->
                       Emily.Safetensors.read!(size)
                     end

        path = write!("past.safetensors", [{"w", "F32", [2], f32([1, 2])}])
        File.write!(path, binary_part(File.read!(path), 0, File.stat!(path).size - 4))

        assert_raise ArgumentError, ~r/outside its 4 bytes of data/, fn ->
          Emily.Safetensors.read!(path)
        end

        entry = Path.join(@tmp, "entry.safetensors")
        json = ~s({"w":{"dtype":"F32","shape":[1]}})
        File.write!(entry, [<<byte_size(json)::little-64>>, json, f32([1])])

        assert_raise ArgumentError, ~r/tensor "w" whose entry is not/, fn ->
          Emily.Safetensors.read!(entry)
        end

        ok = write!("ok.safetensors", [{"w", "F32", [1], f32([1])}], pad: true)

        assert_raise ArgumentError, ~r/has no tensor named "v"/, fn ->
          Emily.Safetensors.read!(ok, only: ["v"])
        end

        assert_raise ArgumentError, ~r/:only must be a list/, fn ->
          Emily.Safetensors.read!(ok, only: "w")
        end
      end
    end
  end
end
