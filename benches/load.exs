# Loading a model's safetensors params into Emily, in one run: Bumblebee.load_model with
# its default reader (Safetensors.read!(path, lazy: true): each tensor read into a binary,
# which Emily.Backend then aliases) next to Emily.Safetensors as :safetensors_reader (each
# tensor mapped from the file with Emily.mmap/4), on
#
#   * all-MiniLM-L6-v2 (scripts/models.sh; 91 MB, 6 layers, hidden 384), and
#   * a 1 GB BERT written here: MiniLM's tensor names at hidden 1024, intermediate 4096,
#     18 layers, 16 heads (258 M f32 params, values a repeated pattern: only loading is
#     measured).
#
#   eval "$(scripts/setup.sh --env)"
#   MIX_ENV=test mix run benches/load.exs [rounds]
#
# Per reader: the best of `rounds` loads (default 3, warm page cache, after a first
# load), the bytes Emily copied (memory_stats :bytes_copied), the bytes the BEAM holds in
# binaries for the loaded params, and the growth of the VM's resident set over the
# params' lifetime, measured on the first load of each reader, the mapped one first.

Code.require_file("support/table.exs", __DIR__)
Code.require_file("support/measure.exs", __DIR__)

defmodule Bench.Load do
  @mib 1024 * 1024

  def rss do
    "/proc/self/status"
    |> File.read!()
    |> then(&Regex.run(~r/VmRSS:\s+(\d+) kB/, &1))
    |> then(fn [_, kb] -> String.to_integer(kb) * 1024 end)
  end

  def mib(bytes), do: Bench.Measure.fmt(bytes / @mib)

  # Writes a BERT of the given size under `dir`: config.json from MiniLM's, with its
  # tensor names; layer tensors repeated for every layer, 384 -> hidden and
  # 1536 -> intermediate in each shape.
  def write_bert!(minilm_dir, dir, hidden, intermediate, layers, heads) do
    File.mkdir_p!(dir)

    config =
      Path.join(minilm_dir, "config.json")
      |> File.read!()
      |> Jason.decode!()
      |> Map.merge(%{
        "hidden_size" => hidden,
        "intermediate_size" => intermediate,
        "num_hidden_layers" => layers,
        "num_attention_heads" => heads
      })

    File.write!(Path.join(dir, "config.json"), Jason.encode!(config))
    header = Emily.Safetensors.header!(Path.join(minilm_dir, "model.safetensors"))
    dim = fn d -> %{384 => hidden, 1536 => intermediate}[d] || d end

    entries =
      header.tensors
      |> Enum.flat_map(fn {name, info} ->
        shape = info.shape |> Tuple.to_list() |> Enum.map(dim)

        case Regex.run(~r/^(.*encoder\.layer\.)0\.(.*)$/, name) do
          [_, pre, post] -> for l <- 0..(layers - 1), do: {"#{pre}#{l}.#{post}", info.type, shape}
          nil -> if name =~ ~r/encoder\.layer\.\d+\./, do: [], else: [{name, info.type, shape}]
        end
      end)
      |> Enum.sort()

    {fields, total} =
      Enum.map_reduce(entries, 0, fn {name, {k, bits}, shape}, at ->
        bytes = Enum.product(shape) * div(bits, 8)
        dtype = %{f: "F", s: "I", u: "U"}[k] <> "#{bits}"
        field = %{"dtype" => dtype, "shape" => shape, "data_offsets" => [at, at + bytes]}
        {{name, field}, at + bytes}
      end)

    json = Jason.encode!(Map.new(fields))
    json = json <> String.duplicate(" ", rem(8 - rem(8 + byte_size(json), 8), 8))
    # a repeated block of small f32 values (0 for the integer tensors' bytes too is fine:
    # position ids are not used when input positions are given)
    block =
      for i <- 0..(@mib - 1), into: <<>>, do: <<(rem(i, 251) - 125) / 12_500::float-32-little>>

    path = Path.join(dir, "model.safetensors")

    File.open!(path, [:write, :binary, :raw], fn io ->
      :ok = :file.write(io, [<<byte_size(json)::little-64>>, json])
      write_bytes(io, block, total)
    end)

    path
  end

  defp write_bytes(_io, _block, 0), do: :ok

  defp write_bytes(io, block, n) do
    chunk = min(n, byte_size(block))
    :ok = :file.write(io, binary_part(block, 0, chunk))
    write_bytes(io, block, n - chunk)
  end

  # Collects every process until the binaries' total stops falling: an array aliasing a
  # binary lets it go when MLX frees the array, on its worker, after the handle's GC.
  def settle(last \\ nil, n \\ 0) do
    for p <- Process.list(), do: :erlang.garbage_collect(p)
    Process.sleep(20)
    now = :erlang.memory(:binary)
    if n < 50 and (last == nil or now < last), do: settle(now, n + 1), else: :ok
  end

  # One load: ms, bytes copied, bytes held in binaries, RSS growth (while the params live).
  def load(dir, opts) do
    settle()
    stats = Emily.memory_stats()
    bin = :erlang.memory(:binary)
    rss = rss()
    {us, {:ok, model}} = :timer.tc(fn -> Bumblebee.load_model({:local, dir}, opts) end)

    figures = %{
      ms: us / 1000,
      copied: Emily.memory_stats().bytes_copied - stats.bytes_copied,
      binaries: :erlang.memory(:binary) - bin,
      rss: rss() - rss
    }

    # keep the params alive until measured
    _ = map_size(model.params.data)
    figures
  end
end

rounds = Bench.Measure.rounds(3)
cache = Emily.ModelCase.cache_dir()
minilm_dir = Path.join(cache, "models/all-minilm-l6-v2")
big_dir = Path.join(System.tmp_dir!(), "emily_bench_load_bert_1g")

unless File.exists?(Path.join(minilm_dir, "model.safetensors")) do
  IO.puts("no MiniLM under #{minilm_dir}: run scripts/models.sh")
  System.halt(1)
end

big = Path.join(big_dir, "model.safetensors")

unless File.exists?(big) do
  IO.puts("writing the 1 GB BERT to #{big_dir} ...")
  Bench.Load.write_bert!(minilm_dir, big_dir, 1024, 4096, 18, 16)
end

readers = [
  {"Emily.Safetensors (mmap)", [safetensors_reader: &Emily.Safetensors.read!/1]},
  {"Bumblebee default (read)", []}
]

rows =
  for {label, dir} <- [{"MiniLM", minilm_dir}, {"BERT 1 GB", big_dir}],
      {reader, opts} <- readers do
    opts = [backend: Emily.Backend, log_params_diff: false] ++ opts
    size = File.stat!(Path.join(dir, "model.safetensors")).size
    first = Bench.Load.load(dir, opts)
    best = Enum.min(for _ <- 1..rounds, do: Bench.Load.load(dir, opts).ms)
    {label, size, reader, best, first}
  end

IO.puts(
  "\nBumblebee.load_model({:local, dir}, backend: Emily.Backend), best of #{rounds}, warm page cache"
)

Bench.Table.print(
  [
    "model",
    "file MiB",
    "reader",
    "load ms",
    "vs default",
    "copied MiB",
    "binaries MiB",
    "RSS growth MiB"
  ],
  for {label, size, reader, ms, first} <- rows do
    {_, _, _, default_ms, _} =
      Enum.find(rows, fn {l, _, r, _, _} -> l == label and r =~ "default" end)

    [
      label,
      Bench.Load.mib(size),
      reader,
      Bench.Measure.fmt(ms),
      Bench.Measure.ratio(ms, default_ms),
      Bench.Load.mib(first.copied),
      Bench.Load.mib(first.binaries),
      Bench.Load.mib(first.rss)
    ]
  end
)
