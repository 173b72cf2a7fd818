"""Chat with a base model, an adapter, a merged folder or a run: shared by the GUI and ``python -m core chat``.

Example::

    from core.chat import ChatEngine
    engine = ChatEngine.load("work_dirs/my_run")          # base + adapter + template from config.yaml
    session = engine.new_session(system="Be brief.")      # one per conversation / browser tab
    for delta in session.stream("What is the capital of France?"):
        print(delta, end="")
"""

from core.chat.engine import ChatEngine
from core.chat.session import AnswerInfo, ChatSession
from core.chat.settings import GenerationSettings

__all__ = ["ChatEngine", "ChatSession", "GenerationSettings", "AnswerInfo"]
