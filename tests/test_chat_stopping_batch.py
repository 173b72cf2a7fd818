"""One stop-word mechanism (issue 10): chat's stopping criterion, also used by the trainer's sample answers,
ends each row of a batch on its own stop word."""

from __future__ import annotations

import threading

import torch

from tunesmith.core.chat.stopping import make_stopping_criteria

CHARS = {0: "_", 1: "<", 2: "e", 3: ">", 4: "x"}


class FakeTokenizer:
    def batch_decode(self, rows, skip_special_tokens=False):
        return ["".join(CHARS[int(i)] for i in row) for row in rows]


def test_each_row_stops_on_its_own_stop_word():
    calls = []
    stop = make_stopping_criteria(FakeTokenizer(), 2, ["<e>"], between_steps=lambda: calls.append(1))
    ids = torch.tensor([[0, 0, 1, 2, 3], [0, 0, 4, 4, 1]])
    assert stop(ids, None).tolist() == [True, False]
    assert stop.reason == "stop_word" and stop.generated == 3 and calls == [1]
    assert stop(torch.tensor([[0, 0, 1, 2, 3], [0, 0, 1, 2, 3]]), None).tolist() == [True, True]
    assert calls == [1]  # every row done: nobody else to hand the turn to


def test_the_prompt_is_not_searched_and_cancel_ends_every_row():
    cancel = threading.Event()
    stop = make_stopping_criteria(FakeTokenizer(), 3, ["<e>"], cancel)
    assert stop(torch.tensor([[1, 2, 3, 4]]), None).tolist() == [False]  # "<e>" is in the prompt only
    cancel.set()
    assert stop(torch.tensor([[1, 2, 3, 4], [0, 0, 0, 4]]), None).tolist() == [True, True]
    assert stop.reason == "cancelled"


def test_no_stop_words_never_stops():
    stop = make_stopping_criteria(FakeTokenizer(), 1, [])
    assert stop(torch.tensor([[1, 2, 3]]), None).tolist() == [False]


def test_the_trainers_sample_answers_stop_per_row(tmp_path, tiny_model_dir, tokenizer):
    """EvalChatCallback (batched, left-padded) uses the same criterion: a row that reaches a stop word ends
    there, the others go on exactly as without it."""
    from transformers import AutoModelForCausalLM

    from tunesmith.core.train.callbacks import EvalChatCallback
    from tunesmith.core.train.dist import DistContext
    from tunesmith.core.train.rundir import RunDir

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir(parents=True, exist_ok=True)

    def answers(stop_words):
        cb = EvalChatCallback(rd, DistContext(), tokenizer, template="internlm2_chat", prompts=["Hi", "Who are you?"],
                              max_new_tokens=12, seed=3)
        cb._stop_words = lambda: stop_words
        return [r["answer"] for r in cb.generate(model, step=1, when="samples")]

    free = answers([])
    word = free[0].strip()[len(free[0].strip()) // 2:][:3]
    assert word and word not in free[1]
    stopped = answers([word])
    assert stopped[0] == free[0][:free[0].find(word)].strip()
    assert stopped[1] == free[1]
