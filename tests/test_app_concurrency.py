"""Several browser sessions hitting the app at the same moment, through the real callbacks.

Found by tests/test_browser_load.py: eight sessions pressing Load in Chat together made seven of them
fail with "cannot import name 'AutoModelForCausalLM' from 'transformers'" (its first import is not
thread-safe) and would have loaded the same weights eight times. This runs in a fresh interpreter, so
transformers really is imported for the first time by the racing callbacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPT = r"""
import json, sys, threading
sys.path.insert(0, sys.argv[1])
from tunesmith.app.callbacks import chat_cb, model_cb
from tunesmith.app.settings import AppSettings
from tunesmith.core.chat import engine as engine_module

model, home = sys.argv[2], sys.argv[3]
assert "transformers" not in sys.modules, "the app's callbacks must not import transformers at start-up"
settings = AppSettings.from_env({"TUNESMITH_HOME": home}, extra_roots=(model,))
loads = []
real_load = engine_module.ChatEngine.load.__func__
def counting_load(cls, *args, **kwargs):
    loads.append(args[0])
    return real_load(cls, *args, **kwargs)
engine_module.ChatEngine.load = classmethod(counting_load)

chat_values = {"chat/source": "base", "chat/base": model, "chat/max_new_tokens": 4, "chat/temperature": 0,
               "chat/top_p": 0.75, "chat/top_k": 40, "chat/repetition_penalty": 1.0, "chat/template": "auto",
               "top/lang": "en"}
barrier = threading.Barrier(8)
FACTS = (3, 7)  # two sessions read model facts, six press Load in Chat
results, errors = {}, []

def facts(i):
    barrier.wait()
    try:
        results[i] = model_cb.read_facts({"model.name_or_path": model, "top/lang": "en"}, settings)["model/facts"]
    except Exception as exc:
        errors.append(f"facts {i}: {exc!r}")

def load(i):
    barrier.wait()
    try:
        last = list(chat_cb.load(chat_values, settings))[-1]
        results[i] = last[chat_cb.STATE]
    except Exception as exc:
        errors.append(f"load {i}: {exc!r}")

threads = [threading.Thread(target=facts if i in FACTS else load, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
loaded = [results[i] for i in range(8) if i not in FACTS and i in results]
engines = {id(state.tuned.engine) for state in loaded}
sessions = {id(state.tuned) for state in loaded}
print(json.dumps({"errors": errors, "loads": len(loads), "engines": len(engines), "sessions": len(sessions),
                  "facts": sum("layers" in str(results.get(i, "")) for i in FACTS)}))
"""


@pytest.mark.slow  # many first loads at once: the fast tier keeps the cheaper tests of the same code
def test_simultaneous_first_loads_and_facts_all_succeed_and_load_once(tmp_path, tiny_model_dir):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), str(tiny_model_dir), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == [], out["errors"]
    assert out["facts"] == 2, out
    assert out["loads"] == 1, "the same model was loaded more than once"
    assert out["engines"] == 1 and out["sessions"] == 6, "one shared engine, one conversation per session"
