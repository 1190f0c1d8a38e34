defmodule Emily.Memory do
  @moduledoc """
  MLX's memory controls, and the GC accounting of tensor handles.

  ## Why tensor handles need accounting

  A tensor is a resource term: however large its MLX array, the BEAM counts it as a few
  words of the process heap, so its garbage collector does not know that dropping it frees
  memory. A process that makes and drops large tensors in a loop can hold gigabytes of dead
  arrays before its heap fills up and it collects. (Binaries from `Emily.to_binary/1` are
  different: they are resource *binaries*, whose full size the BEAM adds to the process's
  binary heap, so it collects for them on its own.)

  Emily counts the bytes of every live handle per process that made it. When the total has
  grown by the GC threshold above its lowest level since the last request, the NIF asks
  `Emily.Memory.Pressure` to collect the largest holders
  (`:erlang.garbage_collect(pid, async: ref)`): at most one request per threshold of growth
  and one collection in flight per process. Dead handles go, their arrays are freed.

  Those requests are asynchronous, so a process that makes handles faster than a request
  travels (on a fast GPU, an iteration takes microseconds) would run ahead of them. Each
  process's own handle bytes are therefore also watched: once they have grown by twice the
  threshold since their lowest level after its last collection, the process collects
  itself, synchronously, the next time it waits for a worker's answer (`Emily.eval/1`,
  `Emily.to_binary/1`, `Nx.to_binary/1` and the like). A process holding live tensors does
  not collect again until it has made twice the threshold more.

  Configuration (`config :emily, ...`, read at start; the setters below change it at run
  time):

    * `:gc_threshold` - bytes of handle growth that trigger a request (default 256 MiB)
    * `:gc_pressure` - `false` turns the mechanism off (default `true`)
    * `:memory_limit` - MLX's memory limit in bytes (default: MLX's, 80% of RAM)
    * `:cache_limit` - MLX's buffer cache limit in bytes (default: MLX's, but at least the
      GC threshold). Dead handles are freed a collection at a time, up to a threshold's worth
      at once; MLX's CPU default (32 MiB) would return most of such a batch to the OS and
      fault fresh pages in for the next results, where Python's prompt frees reuse one
      cached buffer (f32 matmul at 1024: ~1,400 page faults per call without, ~0 with)
    * `:malloc_mmap_threshold` - glibc only: the size from which malloc maps fresh memory
      for each block instead of reusing the heap, in bytes (default 32 MiB; `false` leaves
      the C library as the BEAM set it; environment: `EMILY_MALLOC_MMAP_THRESHOLD`, a byte
      count or `false`). See `set_malloc_mmap_threshold/1`.

  ## The C library's malloc in a BEAM

  glibc raises its mmap threshold by itself as large blocks are freed (up to 32 MiB, the
  trim threshold following at twice it), so a block allocated and freed over and over comes
  back from the heap. The BEAM sets malloc's trim threshold and top pad at start (`+MYtt`,
  `+MYtp`), and any such setting switches that adjustment off: in a BEAM every block of
  128 KiB or more is a fresh mapping, zero-filled by the kernel on first touch and unmapped
  on free. OpenBLAS allocates about 0.5 MiB of bookkeeping in each multithreaded matrix
  product, so every one paid an mmap, page faults and an munmap (measured: 25-30 µs, a
  sixth of a 256x256 f32 matmul on two cores). At start Emily sets the thresholds to the
  values glibc would have reached on its own. Free heap memory below the threshold stays
  with the process until `clear_cache/0`, which also hands free heap pages back to the OS.
  """

  alias Emily.Native

  @malloc_mmap_threshold_max 32 * 1024 * 1024

  defguardp is_mmap_threshold(n)
            when is_integer(n) and n > 0 and n <= @malloc_mmap_threshold_max

  @doc "Resets MLX's peak memory figure (`:peak` in `Emily.memory_stats/0`)."
  @spec reset_peak() :: :ok
  def reset_peak, do: Native.reset_peak_memory()

  @doc """
  Frees the buffers MLX keeps cached for reuse (`:cache` in `Emily.memory_stats/0`), then
  hands the C library's free heap pages back to the OS (glibc's `malloc_trim`).
  """
  @spec clear_cache() :: :ok
  def clear_cache, do: Native.clear_cache()

  @doc """
  Sets MLX's memory limit in bytes and returns the previous one.

  On the CPU, MLX uses the limit to pace evaluation; Emily also refuses, with an
  `Emily.Error` and before anything runs, an evaluation or a `Emily.from_binary/3` that
  needs one buffer larger than the limit less the memory in use (MLX itself would write
  through the null pointer of a failed allocation and crash the VM).
  """
  @spec set_memory_limit(non_neg_integer()) :: non_neg_integer()
  def set_memory_limit(bytes) when is_integer(bytes) and bytes >= 0,
    do: Native.set_memory_limit(bytes)

  def set_memory_limit(other),
    do: raise(ArgumentError, "set_memory_limit: expected a byte count, got: #{inspect(other)}")

  @doc "Sets MLX's cache limit in bytes (0 disables the cache); returns the previous one."
  @spec set_cache_limit(non_neg_integer()) :: non_neg_integer()
  def set_cache_limit(bytes) when is_integer(bytes) and bytes >= 0,
    do: Native.set_cache_limit(bytes)

  def set_cache_limit(other),
    do: raise(ArgumentError, "set_cache_limit: expected a byte count, got: #{inspect(other)}")

  @doc """
  glibc only: fixes malloc's mmap threshold at `bytes`, its trim threshold at twice that
  and its top pad at glibc's default, 128 KiB (see "The C library's malloc in a BEAM"
  above). Process-wide, and there is no undoing it:
  the C library has no way back to its adjusting thresholds. Returns `true` when set,
  `false` where the C library is not glibc; raises for a size outside 1..32 MiB (glibc's
  own ceiling). `:malloc_mmap_threshold` in `Emily.memory_stats/0` shows the value set.
  """
  @spec set_malloc_mmap_threshold(pos_integer()) :: boolean()
  def set_malloc_mmap_threshold(bytes) when is_mmap_threshold(bytes) do
    Native.malloc_tune(bytes)
  end

  def set_malloc_mmap_threshold(other),
    do:
      raise(
        ArgumentError,
        "set_malloc_mmap_threshold: expected a byte count from 1 to " <>
          "#{@malloc_mmap_threshold_max} (32 MiB), got: #{inspect(other)}"
      )

  @doc """
  Sets the GC threshold (bytes of tensor-handle growth that trigger a collection request);
  returns the previous one.
  """
  @spec set_gc_threshold(pos_integer()) :: pos_integer()
  def set_gc_threshold(bytes) when is_integer(bytes) and bytes > 0 do
    {old, _} = Native.pressure_configure(bytes, gc_pressure?())
    old
  end

  def set_gc_threshold(other),
    do:
      raise(
        ArgumentError,
        "set_gc_threshold: expected a positive byte count, got: #{inspect(other)}"
      )

  @doc "Turns the GC accounting's collection requests on or off; returns the previous setting."
  @spec set_gc_pressure(boolean()) :: boolean()
  def set_gc_pressure(on) when is_boolean(on) do
    {_, old} = Native.pressure_configure(gc_threshold(), on)
    old
  end

  def set_gc_pressure(other),
    do: raise(ArgumentError, "set_gc_pressure: expected a boolean, got: #{inspect(other)}")

  @doc "The GC threshold in bytes."
  @spec gc_threshold() :: pos_integer()
  def gc_threshold, do: Native.memory_stats().gc_threshold

  @doc "Whether collection requests are on."
  @spec gc_pressure?() :: boolean()
  def gc_pressure?, do: Native.memory_stats().gc_pressure

  @doc "Bytes of live tensor handles made by `pid` (by the GC accounting)."
  @spec handle_bytes(pid()) :: non_neg_integer()
  def handle_bytes(pid \\ self()) when is_pid(pid) do
    case List.keyfind(Native.handle_holders(), pid, 0) do
      {^pid, bytes} -> bytes
      nil -> 0
    end
  end

  @doc "Processes holding tensor handles and their bytes, largest first."
  @spec holders() :: [{pid(), non_neg_integer()}]
  def holders, do: Native.handle_holders() |> Enum.sort_by(&elem(&1, 1), :desc)

  @doc false
  # Applies the application environment (called at start).
  def configure_from_env do
    threshold = Emily.Config.get(:gc_threshold)
    on = Emily.Config.get(:gc_pressure)
    Native.pressure_configure(threshold, on)

    case Emily.Config.get(:malloc_mmap_threshold) do
      false -> :ok
      bytes -> set_malloc_mmap_threshold(bytes)
    end

    if limit = Emily.Config.get(:memory_limit), do: set_memory_limit(limit)

    case Emily.Config.get(:cache_limit) do
      nil ->
        mlx_default = set_cache_limit(threshold)
        if mlx_default > threshold, do: set_cache_limit(mlx_default)

      limit ->
        set_cache_limit(limit)
    end

    :ok
  end
end
