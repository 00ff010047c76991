"""Language-model back ends shared by captioners and paraphrasers.

* :mod:`synthmed.llm.api` — a client for any OpenAI-compatible chat-completions server
  (vLLM, Ollama, LM Studio, llama.cpp server, OpenAI, Gemini's OpenAI endpoint).
* :mod:`synthmed.llm.replies` — pulling a JSON object out of a model's reply.
* :mod:`synthmed.llm.cache` — an append-only on-disk cache of replies, so reruns and
  resumed jobs do not pay twice.
"""
