# The binary bridge, measured in one run:
#
#   to_binary of an evaluated MLX tensor (zero-copy: a resource binary over MLX's buffer)
#     vs a copying baseline (:binary.copy/1 of that binary: one memcpy into a new binary)
#   from_binary of a BEAM binary (zero-copy: the binary aliased as MLX's buffer) vs copying
#     (the same bytes as a misaligned sub-binary, which Emily copies)
#   mmap of a 1 GiB file region vs File.read! + a copying from_binary
#
# Times are the median of several runs, in µs; "copied" is the growth of
# Emily.memory_stats().bytes_copied (or the baseline's own copy) per call.
#
#     mix run benches/bridge.exs [max_mib]      (default 1024; needs ~4x that in RAM)
import Bitwise
alias Emily.Native, as: N

defmodule BridgeBench do
  @mib 1 <<< 20

  def median_us(fun, runs) do
    fun.()

    for(_ <- 1..runs, do: elem(:timer.tc(fun), 0))
    |> Enum.sort()
    |> Enum.at(div(runs, 2))
  end

  def copied(fun) do
    before = Emily.memory_stats().bytes_copied
    fun.()
    Emily.memory_stats().bytes_copied - before
  end

  def runs(mib) when mib >= 256, do: 3
  def runs(_), do: 9

  def fmt_bytes(0), do: "0"
  def fmt_bytes(b) when b >= @mib, do: "#{div(b, @mib)} MiB"
  def fmt_bytes(b), do: "#{b} B"

  def fmt_us(us) when us >= 10_000, do: "#{Float.round(us / 1000, 1)} ms"
  def fmt_us(us), do: "#{us} µs"

  def row(cells), do: IO.puts("| " <> Enum.join(cells, " | ") <> " |")

  def gc_and_settle do
    :erlang.garbage_collect()
    Process.sleep(20)
    Emily.eval(N.zeros([1], :u8, Emily.Worker.current()))
  end
end

max_mib = String.to_integer(List.first(System.argv()) || "1024")
sizes = Enum.filter([1, 4, 16, 64, 256, 1024], &(&1 <= max_mib))
w = Emily.Worker.current()
mib = 1 <<< 20

IO.puts(
  "Emily #{Mix.Project.config()[:version]}, MLX #{N.mlx_version()}, #{System.schedulers_online()} schedulers\n"
)

IO.puts("## to_binary: zero-copy vs a copying baseline (:binary.copy of the result)\n")

BridgeBench.row([
  "size",
  "to_binary",
  "copied",
  "same address",
  "copying baseline",
  "copied",
  "ratio"
])

BridgeBench.row(List.duplicate("---", 7))

for m <- sizes do
  n = div(m * mib, 4)
  t = N.negative(Emily.from_binary(:binary.copy(<<1.0::float-32-native>>, n), [n], {:f, 32}), w)
  :ok = Emily.eval(t)
  runs = BridgeBench.runs(m)
  zc = BridgeBench.median_us(fn -> Emily.to_binary(t) end, runs)
  copied = BridgeBench.copied(fn -> Emily.to_binary(t) end)
  b = Emily.to_binary(t)
  same = N.binary_ptr(b) == N.data_ptr(t)
  base = BridgeBench.median_us(fn -> :binary.copy(b) end, runs)

  BridgeBench.row([
    "#{m} MiB",
    BridgeBench.fmt_us(zc),
    BridgeBench.fmt_bytes(copied),
    "#{same}",
    BridgeBench.fmt_us(base),
    BridgeBench.fmt_bytes(byte_size(b)),
    "#{Float.round(base / max(zc, 1), 1)}x"
  ])

  BridgeBench.gc_and_settle()
end

IO.puts("\n## to_binary of a transposed (strided) f32 matrix: one contiguous copy by MLX\n")
BridgeBench.row(["size", "to_binary", "copied", "to_binary of the contiguous original"])
BridgeBench.row(List.duplicate("---", 4))

for m <- Enum.filter([16, 256], &(&1 <= max_mib)) do
  side = trunc(:math.sqrt(div(m * mib, 4)))
  n = side * side

  x =
    N.negative(
      Emily.from_binary(:binary.copy(<<1.0::float-32-native>>, n), [side, side], {:f, 32}),
      w
    )

  :ok = Emily.eval(x)
  # A fresh transpose each run: its contiguous copy is made once per tensor.
  tr =
    BridgeBench.median_us(
      fn -> Emily.to_binary(N.transpose(x, [1, 0], w)) end,
      BridgeBench.runs(m)
    )

  copied = BridgeBench.copied(fn -> Emily.to_binary(N.transpose(x, [1, 0], w)) end)
  zc = BridgeBench.median_us(fn -> Emily.to_binary(x) end, BridgeBench.runs(m))

  BridgeBench.row([
    "#{m} MiB (#{side}x#{side})",
    BridgeBench.fmt_us(tr),
    BridgeBench.fmt_bytes(copied),
    BridgeBench.fmt_us(zc)
  ])

  BridgeBench.gc_and_settle()
end

IO.puts("\n## from_binary: zero-copy vs copying (a misaligned sub-binary of the same bytes)\n")
BridgeBench.row(["size", "from_binary", "copied", "same address", "copying", "copied", "ratio"])
BridgeBench.row(List.duplicate("---", 7))

for m <- sizes do
  n = div(m * mib, 4)
  bin = :binary.copy(<<2.0::float-32-native>>, n)
  odd = binary_part(<<0>> <> bin, 1, byte_size(bin))
  runs = BridgeBench.runs(m)
  zc = BridgeBench.median_us(fn -> Emily.from_binary(bin, [n], {:f, 32}) end, runs)
  zc_copied = BridgeBench.copied(fn -> Emily.from_binary(bin, [n], {:f, 32}) end)
  same = N.data_ptr(Emily.from_binary(bin, [n], {:f, 32})) == N.binary_ptr(bin)
  BridgeBench.gc_and_settle()
  cp = BridgeBench.median_us(fn -> Emily.from_binary(odd, [n], {:f, 32}) end, runs)
  BridgeBench.gc_and_settle()
  cp_copied = BridgeBench.copied(fn -> Emily.from_binary(odd, [n], {:f, 32}) end)

  BridgeBench.row([
    "#{m} MiB",
    BridgeBench.fmt_us(zc),
    BridgeBench.fmt_bytes(zc_copied),
    "#{same}",
    BridgeBench.fmt_us(cp),
    BridgeBench.fmt_bytes(cp_copied),
    "#{Float.round(cp / max(zc, 1), 1)}x"
  ])

  BridgeBench.gc_and_settle()
end

m = List.last(sizes)
n = div(m * mib, 4)
path = Path.join(System.tmp_dir!(), "emily_bridge_bench.bin")
File.write!(path, :binary.copy(<<3.0::float-32-native>>, n))

IO.puts("\n## a #{m} MiB file (in the page cache): mmap vs reading it\n")
BridgeBench.row(["path", "time", "copied", "then a sum over it (MLX)"])
BridgeBench.row(List.duplicate("---", 4))

sum_us = fn t ->
  {us, _} = :timer.tc(fn -> Emily.to_binary(N.sum(t, [0], false, w)) end)
  us
end

mm = BridgeBench.median_us(fn -> Emily.mmap(path, 0, [n], {:f, 32}) end, 3)
mm_copied = BridgeBench.copied(fn -> Emily.mmap(path, 0, [n], {:f, 32}) end)
t = Emily.mmap(path, 0, [n], {:f, 32})
mm_sum = sum_us.(t)

BridgeBench.row([
  "Emily.mmap",
  BridgeBench.fmt_us(mm),
  BridgeBench.fmt_bytes(mm_copied),
  BridgeBench.fmt_us(mm_sum)
])

BridgeBench.gc_and_settle()

rd = BridgeBench.median_us(fn -> File.read!(path) end, 3)
BridgeBench.gc_and_settle()
rdz = BridgeBench.median_us(fn -> Emily.from_binary(File.read!(path), [n], {:f, 32}) end, 3)
BridgeBench.gc_and_settle()
bin = File.read!(path)
copied = BridgeBench.copied(fn -> Emily.from_binary(bin, [n], {:f, 32}) end)
t = Emily.from_binary(bin, [n], {:f, 32})

BridgeBench.row([
  "File.read! + from_binary (aliased)",
  BridgeBench.fmt_us(rdz),
  BridgeBench.fmt_bytes(m * mib + copied),
  BridgeBench.fmt_us(sum_us.(t))
])

BridgeBench.row(["File.read! alone", BridgeBench.fmt_us(rd), BridgeBench.fmt_bytes(m * mib), ""])
File.rm(path)

IO.puts(
  "\n(A copying from_binary of #{m} MiB is in the from_binary table above; File.read!'s" <>
    " copy is the read from the page cache into a BEAM binary.)"
)
