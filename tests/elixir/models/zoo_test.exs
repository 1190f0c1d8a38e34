if Code.ensure_loaded?(Bumblebee) do
  defmodule Emily.Models.ZooTest do
    # Small random-weight Bumblebee models, one per architecture family, against
    # transformers on the same weights (tests/models/make_references.py writes config.json,
    # model.safetensors and the reference outputs under tests/models/fixtures/zoo).
    use ExUnit.Case, async: true
    @moduletag :models
    @moduletag timeout: 300_000

    import Emily.ModelCase.Fixtures

    @zoo Path.join(Emily.ModelCase.fixtures_dir(), "zoo")
    @models @zoo |> File.ls!() |> Enum.filter(&File.dir?(Path.join(@zoo, &1))) |> Enum.sort()
    @lanes [:evaluator, :native, :fused]
    @atol 1.0e-4

    test "the zoo holds every architecture family the fixtures script writes" do
      assert @models ==
               ~w(bert bert_mlm clip distilbert gpt2 llama mistral qwen3 t5 vit whisper)
    end

    for name <- @models do
      @name name
      test "#{name}: Bumblebee on every Emily.Compiler lane matches transformers" do
        dir = Path.join(@zoo, @name)
        ref = json!("zoo/#{@name}/reference.json")
        tensors = tensors!("zoo/#{@name}/reference.safetensors")

        {:ok, %{model: model, params: params, spec: spec}} =
          Bumblebee.load_model({:local, dir}, backend: Emily.Backend)

        assert inspect(spec.__struct__) == ref["bumblebee"]["module"]
        assert Atom.to_string(spec.architecture) == ref["bumblebee"]["architecture"]

        inputs =
          Map.new(ref["inputs"], fn {_, input} ->
            t = Map.fetch!(tensors, input["tensor"])
            t = if axes = input["bumblebee_transpose"], do: Nx.transpose(t, axes: axes), else: t
            {input["bumblebee_input"], t}
          end)

        for lane <- @lanes do
          {_init, predict} =
            Axon.build(model, compiler: Emily.Compiler, lane: lane, native_fallback: :raise)

          out = predict.(params, inputs)

          for {hf_name, output} <- ref["outputs"] do
            got =
              out
              |> Map.fetch!(String.to_atom(output["bumblebee_output"]))
              |> postprocess(output["bumblebee_postprocess"])

            want = Map.fetch!(tensors, output["tensor"])
            assert Nx.shape(got) == List.to_tuple(output["shape"]), "#{@name} #{hf_name} shape"
            diff = max_abs_diff(got, want)

            assert diff <= @atol,
                   "#{@name} lane #{lane}: #{hf_name} differs from transformers by #{diff} " <>
                     "(> #{@atol})"
          end
        end
      end
    end

    defp postprocess(t, nil), do: t

    defp postprocess(t, "l2_normalize"),
      do: Nx.divide(t, Nx.LinAlg.norm(t, axes: [-1], keep_axes: true))
  end
end
