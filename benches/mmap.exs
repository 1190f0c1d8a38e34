# What the read lease on a mapped file costs (src/mapped.rs), in one run:
#   * Emily.mmap/4 of a 4 KiB region: a file's first mapping (the lease is taken), a further
#     mapping of a file already leased, and a file open for writing elsewhere (no lease: the
#     region is read), each with the tensor dropped again;
#   * how long a truncation of a file takes with no mapping and with a mapping of the whole
#     file, which the writer waits to see copied (4 MiB to 1 GiB; pages the page cache no
#     longer holds are read from the disk for the copy).
#
#   MIX_ENV=test mix run benches/mmap.exs [rounds]
rounds =
  case System.argv() do
    [n | _] -> String.to_integer(n)
    [] -> 2000
  end

dir = Path.join(System.tmp_dir!(), "emily_bench_mmap_#{System.os_time()}")
File.mkdir_p!(dir)
mib = 1024 * 1024

us = fn fun, n ->
  {t, _} = :timer.tc(fn -> for _ <- 1..n, do: fun.() end)
  t / n
end

drop = fn t ->
  Emily.eval(t)
  :ok
end

IO.puts("Emily.mmap/4 of 4 KiB, #{rounds} rounds (µs per call, the tensor evaluated and dropped)")

files = for i <- 1..rounds, do: Path.join(dir, "f#{i}")
Enum.each(files, &File.write!(&1, :binary.copy(<<7>>, 8192)))
{t, _} = :timer.tc(fn -> Enum.each(files, &drop.(Emily.mmap(&1, 0, [4096], {:u, 8}))) end)
IO.puts("  first mapping of a file (lease taken):   #{Float.round(t / rounds, 1)}")

held = Emily.mmap(hd(files), 4096, [4096], {:u, 8})
again = us.(fn -> drop.(Emily.mmap(hd(files), 0, [4096], {:u, 8})) end, rounds)
IO.puts("  a file already leased (lease reused):    #{Float.round(again, 1)}")
Emily.eval(held)

writer = Path.join(dir, "open_for_writing")
File.write!(writer, :binary.copy(<<7>>, 8192))
{:ok, io} = File.open(writer, [:append])
read = us.(fn -> drop.(Emily.mmap(writer, 0, [4096], {:u, 8})) end, rounds)
IO.puts("  a file open for writing (region read):   #{Float.round(read, 1)}")
File.close(io)

IO.puts("\nA truncation of the whole file")

for size <- [4 * mib, 64 * mib, 1024 * mib] do
  path = Path.join(dir, "big")
  File.write!(path, :binary.copy(<<1>>, size))
  {plain, :ok} = :timer.tc(fn -> File.write(path, "") end)
  File.write!(path, :binary.copy(<<1>>, size))
  t = Emily.mmap(path, 0, [size], {:u, 8})
  before = Emily.memory_stats().bytes_copied
  {wait, :ok} = :timer.tc(fn -> File.write(path, "") end)
  copied = Emily.memory_stats().bytes_copied - before
  ms = &Float.round(&1 / 1000, 2)

  IO.puts(
    "  #{div(size, mib)} MiB: truncation #{ms.(plain)} ms unmapped, #{ms.(wait)} ms mapped " <>
      "(#{div(copied, mib)} MiB copied)"
  )

  Emily.eval(t)
  File.rm!(path)
end

File.rm_rf!(dir)
