if Code.ensure_loaded?(Bumblebee) do
  defmodule Emily.Models.SafetensorsLoadTest do
    # Bumblebee.load_model with Emily.Safetensors as its :safetensors_reader, against its
    # default reader, on all-MiniLM-L6-v2. Not async: it reads the process-wide
    # :bytes_copied counter.
    use ExUnit.Case, async: false
    @moduletag :models
    @moduletag timeout: 600_000

    import Emily.ModelCase.Fixtures

    @tag :aliasing
    test "MiniLM's params through Emily.Safetensors equal the default reader's, and " <>
           "loading them copies no byte" do
      dir = Emily.ModelCase.model_dir(:minilm)
      {:ok, default} = Bumblebee.load_model({:local, dir}, backend: Emily.Backend)

      before = Emily.memory_stats()

      {:ok, mapped} =
        Bumblebee.load_model({:local, dir},
          backend: Emily.Backend,
          safetensors_reader: &Emily.Safetensors.read!/1
        )

      assert Emily.memory_stats().bytes_copied == before.bytes_copied

      flat = fn %Axon.ModelState{data: data} ->
        for {layer, params} <- data, {name, t} <- params, into: %{}, do: {{layer, name}, t}
      end

      want = flat.(default.params)
      got = flat.(mapped.params)
      assert Map.keys(got) |> Enum.sort() == Map.keys(want) |> Enum.sort()
      assert map_size(got) > 100

      for {key, t} <- got do
        assert match?(%Emily.Backend{}, t.data), inspect(key)
        assert {t.type, t.shape} == {want[key].type, want[key].shape}, inspect(key)
        assert Nx.to_binary(t) == Nx.to_binary(want[key]), inspect(key)
      end

      # and the model runs on them as on the default's
      tokenizer = elem(Bumblebee.load_tokenizer({:local, dir}), 1)
      inputs = Bumblebee.apply_tokenizer(tokenizer, ["a mapped weights file"])
      a = Axon.predict(mapped.model, mapped.params, inputs, compiler: Emily.Compiler)
      b = Axon.predict(default.model, default.params, inputs, compiler: Emily.Compiler)
      assert max_abs_diff(a.hidden_state, b.hidden_state) == 0.0
    end
  end
end
