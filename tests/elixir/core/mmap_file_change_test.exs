defmodule Emily.MmapFileChangeTest do
  # A file mapped by Emily.mmap/4 and changed by another process (or by this one) while the
  # tensor lives: the tensor keeps the bytes it was made with and nothing kills the VM. Each
  # case runs in a child BEAM, so a SIGBUS fails the test instead of ending the suite.
  use ExUnit.Case, async: true

  @moduletag :linux
  @mib 1024 * 1024

  # The child maps 4 MiB of the file at argv[0], evaluates a sum over it (the pages are read),
  # runs the change (argv[1]: a shell command with $F the file, or "self: truncate", a
  # File.write/2 from a process of the child itself), and reads the tensor back
  # whole. It reports whether the bytes are the ones the file had, and the memory counters.
  @child """
  [path, change] = System.argv()
  {:ok, _} = Application.ensure_all_started(:emily)
  original = File.read!(path)
  n = byte_size(original)
  before = Emily.memory_stats()
  t = Emily.mmap(path, 0, [n], {:u, 8})
  w = Emily.Worker.current()
  s = Emily.Native.sum(Emily.Native.astype(t, :u32, w), [0], false, w)
  _ = Emily.to_binary(s)
  mapped = Emily.memory_stats()
  {out, status} =
    case change do
      "self: truncate" -> {Task.await(Task.async(fn -> inspect(File.write(path, "")) end)), 0}
      _ -> System.cmd("sh", ["-c", change], env: [{"F", path}], stderr_to_stdout: true)
    end
  bin = Emily.to_binary(t)
  report = %{
    aliasing: before.external_aliasing,
    n: n,
    same: bin == original,
    change: {status, out},
    copied_at_map: mapped.bytes_copied - before.bytes_copied,
    leases_while_mapped: mapped.file_leases,
    copied_at_change: Emily.memory_stats().bytes_copied - mapped.bytes_copied,
    file_now: File.stat(path) |> elem(0)
  }
  IO.write("REPORT:" <> Base.encode64(:erlang.term_to_binary(report)))
  """

  defp file!(tag) do
    path =
      Path.join(
        System.tmp_dir!(),
        "emily_mmap_change_#{tag}_#{System.unique_integer([:positive])}"
      )

    File.write!(path, :crypto.strong_rand_bytes(4 * @mib))
    on_exit(fn -> File.rm(path) end)
    path
  end

  defp run_child(path, change) do
    elixir = System.find_executable("elixir") || flunk("no elixir executable on PATH")
    paths = Enum.flat_map(:code.get_path(), &["-pa", to_string(&1)])

    {out, status} =
      System.cmd(elixir, paths ++ ["-e", @child, path, change], stderr_to_stdout: true)

    assert status == 0, "child VM exited with #{status} (#{signal(status)}):\n#{out}"
    [_, b64] = Regex.run(~r/REPORT:(\S+)/, out)
    b64 |> Base.decode64!() |> :erlang.binary_to_term()
  end

  defp signal(status) when status > 128, do: "signal #{status - 128}"
  defp signal(_), do: "no signal"

  # The change went through; the tensor kept its bytes. Where MLX cannot alias foreign
  # memory (its CUDA allocator) the region is copied when mapped, and nothing later.
  defp assert_kept(r, copied_at_change) do
    assert {0, _} = r.change
    assert r.same

    if r.aliasing do
      assert r.copied_at_map == 0
      assert r.leases_while_mapped >= 1
      assert r.copied_at_change == copied_at_change
    else
      assert r.copied_at_map == r.n
      assert r.copied_at_change == 0
    end
  end

  test "truncated by another process" do
    # the shell's `>` opens with O_TRUNC and waits while the mapping is copied
    r = run_child(file!("truncate"), ": > \"$F\"")
    assert_kept(r, 4 * @mib)
  end

  test "truncated by truncate(1), which does not wait" do
    # truncate opens with O_NONBLOCK: refused (EAGAIN) until the lease is released, then
    # it goes through
    change =
      "for i in $(seq 100); do truncate -s 0 \"$F\" 2>/dev/null && exit 0; sleep 0.05; done; exit 1"

    r = run_child(file!("truncate1"), change)
    assert_kept(r, 4 * @mib)
  end

  test "truncated by the VM that maps it" do
    r = run_child(file!("self"), "self: truncate")
    assert_kept(r, 4 * @mib)
  end

  test "rewritten in place" do
    r =
      run_child(
        file!("rewrite"),
        "dd if=/dev/zero of=\"$F\" bs=1M count=4 conv=notrunc status=none"
      )

    assert_kept(r, 4 * @mib)
  end

  test "replaced by a rename" do
    r = run_child(file!("rename"), "head -c 100 /dev/zero > \"$F.new\" && mv \"$F.new\" \"$F\"")
    # the mapping keeps the old file: nothing to copy
    assert_kept(r, 0)
  end

  test "deleted" do
    r = run_child(file!("delete"), "rm \"$F\"")
    assert_kept(r, 0)
    assert r.file_now == :error
  end
end
