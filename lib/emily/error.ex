defmodule Emily.Error do
  @moduledoc """
  Raised when MLX fails at run time (allocation failure, an op the device cannot run, a
  worker that is shut down or whose queue is full). Bad arguments raise `ArgumentError`.

  `:kind` says which:

    * `:runtime` - MLX failed (the message names the op, its inputs and MLX's words)
    * `:queue_full` - the worker's queue held its `:queue_limit` of jobs (see
      `Emily.Worker.start/2`); nothing was queued
    * `:closed` - the worker was stopped (`Emily.Worker.stop/1`) before it ran the job
    * `:timeout` - no answer from the worker within the `:await_timeout`
  """
  defexception [:message, kind: :runtime]
end
