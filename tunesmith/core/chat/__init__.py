"""Chat with a base model, an adapter, a merged folder or a run: shared by the GUI and ``python -m tunesmith chat``.

Example::

    from tunesmith.core.chat import ChatEngine
    engine = ChatEngine.load("work_dirs/my_run")          # base + adapter + template from config.yaml
    session = engine.new_session(system="Be brief.")      # one per conversation / browser tab
    for delta in session.stream("What is the capital of France?"):
        print(delta, end="")
"""

from tunesmith.core.chat.engine import ChatEngine
from tunesmith.core.chat.session import AnswerInfo, ChatSession
from tunesmith.core.chat.settings import GenerationSettings

__all__ = ["ChatEngine", "ChatSession", "GenerationSettings", "AnswerInfo"]
