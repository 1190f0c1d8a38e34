if Code.ensure_loaded?(Bumblebee) do
  defmodule Emily.Models.MiniLMTest do
    # all-MiniLM-L6-v2 (sentence-transformers), pretrained, through Bumblebee's
    # text_embedding serving (mean pooling, L2 norm) on Emily.Compiler, against
    # sentence-transformers' embeddings (tests/models/fixtures/minilm).
    use ExUnit.Case, async: true
    @moduletag :models
    @moduletag timeout: 600_000

    import Emily.ModelCase.Fixtures

    setup_all do
      dir = Emily.ModelCase.model_dir(:minilm)
      {:ok, model} = Bumblebee.load_model({:local, dir}, backend: Emily.Backend)
      {:ok, tokenizer} = Bumblebee.load_tokenizer({:local, dir})
      ref = json!("minilm/reference.json")

      %{
        model: model,
        tokenizer: tokenizer,
        ref: ref,
        want: tensors!("minilm/reference.safetensors")
      }
    end

    defp cosines(a, b) do
      Nx.sum(Nx.multiply(a, b), axes: [1])
      |> Nx.divide(Nx.multiply(Nx.LinAlg.norm(a, axes: [1]), Nx.LinAlg.norm(b, axes: [1])))
    end

    test "the tokenizer gives sentence-transformers' ids", %{
      tokenizer: tokenizer,
      ref: ref,
      want: want
    } do
      enc = Bumblebee.apply_tokenizer(tokenizer, ref["sentences"])
      assert Nx.to_list(enc["input_ids"]) == Nx.to_list(want["input_ids"])
      assert Nx.to_list(enc["attention_mask"]) == Nx.to_list(want["attention_mask"])
    end

    for lane <- lanes() do
      @lane lane
      test "lane #{lane}: 16 sentences embed as sentence-transformers does, and the query " <>
             "finds its neighbour",
           %{model: model, tokenizer: tokenizer, ref: ref, want: want} do
        serving = Emily.ModelCase.Serving.text_embedding(model, tokenizer, @lane)
        got = Nx.Serving.run(serving, ref["sentences"]) |> Enum.map(& &1.embedding) |> Nx.stack()

        assert Nx.shape(got) == {16, 384}
        min_cos = cosines(got, want["embeddings"]) |> Nx.reduce_min() |> Nx.to_number()
        assert min_cos >= 0.99999, "lane #{@lane}: lowest cosine #{min_cos}"

        %{embedding: query} = Nx.Serving.run(serving, ref["query"])
        assert max_abs_diff(query, want["query_embedding"]) < 1.0e-5
        sims = Nx.dot(got, query)
        assert max_abs_diff(sims, want["similarities"]) < 1.0e-5
        ranking = sims |> Nx.argsort(direction: :desc) |> Nx.to_list()
        assert hd(ranking) == ref["expected_neighbour_index"]
        assert Enum.at(ref["sentences"], hd(ranking)) == ref["expected_neighbour_sentence"]
        # the rest of the order too, where neighbouring similarities are apart
        assert ranking == ref["ranking"]
      end
    end

    test "quantize/2 (8 bits, groups of 32): every dense layer quantized, embeddings still " <>
           "sentence-transformers' to a cosine of 0.999 and the same neighbour",
         %{model: model, tokenizer: tokenizer, ref: ref, want: want} do
      quantized = Emily.Bumblebee.quantize(model, bits: 8, group_size: 32)

      ops =
        Axon.reduce_nodes(quantized.model, %{}, fn node, acc ->
          Map.update(acc, node.op_name, 1, &(&1 + 1))
        end)

      # 6 layers x (query, key, value, attention output, intermediate, output) and the
      # pooler, all with biases
      assert ops[:quantized_dense] == 37
      refute Map.has_key?(ops, :dense)
      layer = quantized.params.data["encoder.blocks.0.ffn.intermediate"]
      assert Map.keys(layer) |> Enum.sort() == ["bias", "biases", "scales", "weight"]

      serving = Emily.ModelCase.Serving.text_embedding(quantized, tokenizer, :native)
      got = Nx.Serving.run(serving, ref["sentences"]) |> Enum.map(& &1.embedding) |> Nx.stack()
      min_cos = cosines(got, want["embeddings"]) |> Nx.reduce_min() |> Nx.to_number()
      assert min_cos >= 0.999, "lowest cosine #{min_cos}"

      %{embedding: query} = Nx.Serving.run(serving, ref["query"])
      best = Nx.dot(got, query) |> Nx.argmax() |> Nx.to_number()
      assert best == ref["expected_neighbour_index"]
    end

    test "the encoder's hidden states match transformers' BertModel", %{model: model, want: want} do
      for i <- [0, 1], lane <- lanes() do
        ids = Nx.new_axis(want["input_ids_#{i}"], 0)
        inputs = %{"input_ids" => ids, "attention_mask" => Nx.broadcast(1, Nx.shape(ids))}

        %{hidden_state: h} =
          Axon.predict(model.model, model.params, inputs, compiler: Emily.Compiler, lane: lane)

        diff = max_abs_diff(Nx.squeeze(h, axes: [0]), want["last_hidden_state_#{i}"])
        assert diff < 1.0e-4, "sentence #{i}, lane #{lane}: #{diff}"
      end
    end
  end
end
