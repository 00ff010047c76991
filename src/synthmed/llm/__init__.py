"""Language models, local and remote, behind one contract; captioners, paraphrasers and explanations use it.

* :mod:`synthmed.llm.chat` — :class:`~synthmed.llm.chat.ChatModel`: text and image+text messages
  in, reply text out; local vision (``hf:``), local text (``hf:``) and server (``api:``) back ends.
* :mod:`synthmed.llm.api` — a client for any OpenAI-compatible chat-completions server
  (vLLM, Ollama, LM Studio, llama.cpp server, OpenAI, Gemini's OpenAI endpoint).
* :mod:`synthmed.llm.replies` — pulling a JSON object out of a model's reply.
* :mod:`synthmed.llm.cache` — an append-only on-disk cache of replies, so reruns and
  resumed jobs do not pay twice.
"""
