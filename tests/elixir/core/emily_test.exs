defmodule EmilyTest do
  use ExUnit.Case, async: true
  doctest Emily
end
