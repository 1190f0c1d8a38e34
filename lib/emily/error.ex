defmodule Emily.Error do
  @moduledoc """
  Raised when MLX fails at run time (allocation failure, an op the device cannot run, a
  worker that is shut down or whose queue is full). Bad arguments raise `ArgumentError`.
  """
  defexception [:message, kind: :runtime]
end
