"""A run's prompt template as the text between messages, for tools that cannot run our templates.

llama.cpp and LM Studio read a Jinja chat template from the GGUF; Ollama wants a Go template in its
Modelfile. Both are written from one :class:`ChatLayout`: the literal text that goes before the
system text, between system and user, user and assistant, and so on. The layout is measured by
rendering the run's own template (XTuner's or the tokenizer's Jinja, via
``tunesmith.core.data.templates.build_chat_prompt``) with marker messages, then checked by re-rendering
several conversations; a template whose text changes with the round number (ChatGLM's
"[Round N]") fails that check, and callers then keep the tokenizer's own Jinja and say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SYS, U1, A1, U2, A2, U3 = "Xq7SYSq", "Xq7U1q", "Xq7A1q", "Xq7U2q", "Xq7A2q", "Xq7U3q"


@dataclass(frozen=True)
class ChatLayout:
    system_start: str       # conversation start -> system text
    system_to_user: str     # system text -> first user message
    start_user: str         # conversation start (no system message) -> first user message; may hold a default system
    user_to_assistant: str  # user message -> assistant message in the history
    assistant_to_user: str  # assistant message -> next user message
    generation: str         # after the last user message: where the model starts writing

    def render(self, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
        """Lay ``messages`` out as the Jinja and Go templates below do."""
        parts, prev = [], "start"
        for m in messages:
            role = m["role"]
            if role == "system":
                parts.append(self.system_start)
            elif role == "user":
                parts.append({"start": self.start_user, "system": self.system_to_user}.get(prev,
                                                                                          self.assistant_to_user))
            else:
                parts.append(self.user_to_assistant)
            parts.append(m["content"])
            prev = role
        if add_generation_prompt and prev == "user":
            parts.append(self.generation)
        return "".join(parts)

    def jinja(self) -> str:
        """A Hugging Face / llama.cpp chat template (every piece a string literal, so no whitespace games)."""
        q = _literal
        return ("{%- set ns = namespace(prev='start') -%}"
                "{%- for message in messages -%}"
                "{%- if message['role'] == 'system' -%}" + "{{ " + q(self.system_start) + " }}{{ message['content'] }}"
                "{%- elif message['role'] == 'user' -%}"
                "{%- if ns.prev == 'start' -%}{{ " + q(self.start_user) + " }}"
                "{%- elif ns.prev == 'system' -%}{{ " + q(self.system_to_user) + " }}"
                "{%- else -%}{{ " + q(self.assistant_to_user) + " }}{%- endif -%}{{ message['content'] }}"
                "{%- else -%}{{ " + q(self.user_to_assistant) + " }}{{ message['content'] }}"
                "{%- endif -%}"
                "{%- set ns.prev = message['role'] -%}"
                "{%- endfor -%}"
                "{%- if add_generation_prompt and ns.prev == 'user' -%}{{ " + q(self.generation) + " }}{%- endif -%}")

    def go(self) -> str:
        """An Ollama TEMPLATE (Go text/template over .Messages), the same layout as :meth:`render`."""
        q = _literal
        return ('{{- $prev := "start" }}\n'
                '{{- range .Messages }}\n'
                '{{- if eq .Role "system" }}{{ ' + q(self.system_start) + ' }}{{ .Content }}\n'
                '{{- else if eq .Role "user" }}'
                '{{ if eq $prev "start" }}{{ ' + q(self.start_user) + ' }}'
                '{{ else if eq $prev "system" }}{{ ' + q(self.system_to_user) + ' }}'
                '{{ else }}{{ ' + q(self.assistant_to_user) + ' }}{{ end }}{{ .Content }}\n'
                '{{- else if eq .Role "assistant" }}{{ ' + q(self.user_to_assistant) + ' }}{{ .Content }}\n'
                '{{- end }}\n'
                '{{- $prev = .Role }}\n'
                '{{- end }}\n'
                '{{- if eq $prev "user" }}{{ ' + q(self.generation) + ' }}{{ end }}')


def _literal(text: str) -> str:
    """A double-quoted string literal valid in both Jinja and Go (JSON escapes: \\n, \\", \\\\, \\u00XX).

    >>> _literal('<|im_start|>user\\n')
    '"<|im_start|>user\\\\n"'
    """
    return json.dumps(text, ensure_ascii=False)


CHECKS = [
    [{"role": "user", "content": U1}],
    [{"role": "system", "content": SYS}, {"role": "user", "content": U1}],
    [{"role": "system", "content": SYS}, {"role": "user", "content": U1}, {"role": "assistant", "content": A1},
     {"role": "user", "content": U2}],
    [{"role": "user", "content": U1}, {"role": "assistant", "content": A1}, {"role": "user", "content": U2}],
    [{"role": "system", "content": SYS}, {"role": "user", "content": U1}, {"role": "assistant", "content": A1},
     {"role": "user", "content": U2}, {"role": "assistant", "content": A2}, {"role": "user", "content": U3}],
]


def _between(text: str, start: str | None, end: str | None) -> str | None:
    i = 0 if start is None else text.find(start)
    if i < 0:
        return None
    i += 0 if start is None else len(start)
    j = len(text) if end is None else text.find(end, i)
    return None if j < 0 else text[i:j]


def measure_layout(render, *, strip_bos: str = "") -> ChatLayout | None:
    """The layout of ``render(messages) -> prompt text``, or None when no fixed layout reproduces it.

    ``strip_bos``: the BOS text to drop from the start (llama.cpp adds BOS itself when the model asks).
    """
    try:
        one, two, three = render(CHECKS[0]), render(CHECKS[1]), render(CHECKS[2])
        pieces = dict(system_start=_between(two, None, SYS), system_to_user=_between(two, SYS, U1),
                      start_user=_between(one, None, U1), user_to_assistant=_between(three, U1, A1),
                      assistant_to_user=_between(three, A1, U2), generation=_between(two, U1, None))
    except Exception:  # a template that refuses our marker conversations (e.g. demands alternation rules)
        return None
    if any(v is None for v in pieces.values()):
        return None  # the system text is dropped, or the messages are reordered
    if strip_bos:
        for key in ("system_start", "start_user"):
            if pieces[key].startswith(strip_bos):
                pieces[key] = pieces[key][len(strip_bos):]
    layout = ChatLayout(**pieces)
    for messages in CHECKS:
        expected = render(messages)
        if strip_bos and expected.startswith(strip_bos):
            expected = expected[len(strip_bos):]
        if layout.render(messages) != expected:
            return None
    return layout


def layout_for(template: str, tokenizer) -> ChatLayout | None:
    """The layout of a run's template (an XTuner name or ``chat_template``) with this tokenizer."""
    from tunesmith.core.data.templates import build_chat_prompt

    bos = getattr(tokenizer, "bos_token", None) or ""
    adds_bos = bool(bos) and _adds_bos(tokenizer)
    return measure_layout(lambda messages: build_chat_prompt(template, tokenizer, messages),
                          strip_bos=bos if adds_bos else "")


def _adds_bos(tokenizer) -> bool:
    """Whether tokenizing plain text puts BOS first (llama.cpp then adds it too, from the GGUF's flag)."""
    try:
        ids = tokenizer("a")["input_ids"]
    except Exception:
        return False
    return bool(ids) and ids[0] == tokenizer.bos_token_id
