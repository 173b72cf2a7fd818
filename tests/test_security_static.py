"""Security rules read from the source itself (issue 6): no shell, safe YAML, no pickle of user files,
no code of a model run unless the user asked for it.

Each rule is an AST check over the shipped Python (tunesmith/, launch.py, bench/);
every checker is first shown to catch a bad snippet, so a rule cannot pass by finding nothing.
"""

from __future__ import annotations

import ast

from conftest import ROOT

SHIPPED = [ROOT / "launch.py", *sorted((ROOT / "tunesmith").rglob("*.py")), *sorted((ROOT / "bench").glob("*.py"))]

SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"),
               ("os", "execl"), ("os", "execlp"), ("os", "spawnl"), ("os", "spawnlp")}
SAFE_YAML = {"safe_load", "safe_load_all", "safe_dump", "safe_dump_all", "YAMLError", "MarkedYAMLError"}
REMOTE_CODE_LOADERS = {"from_pretrained", "load_dataset", "AutoConfig", "pipeline"}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for an attribute chain, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_text(node: ast.AST) -> bool:
    """A string literal, f-string, or string concatenation / %-format: a command line built as text."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("format", "join"):
        return isinstance(node.func.value, (ast.Constant, ast.JoinedStr))
    return False


def findings(source: str, where: str = "<snippet>") -> list[str]:
    """Every violation of the rules in one module's source, as ``where:line: what``."""
    tree = ast.parse(source)
    found: list[str] = []

    def bad(node: ast.AST, what: str) -> None:
        found.append(f"{where}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "yaml":
            for alias in node.names:
                if alias.name not in SAFE_YAML:
                    bad(node, f"from yaml import {alias.name}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "yaml":
            if node.attr not in SAFE_YAML:
                bad(node, f"yaml.{node.attr} (only safe_load / safe_dump)")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        shell = kwargs.get("shell")
        if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
            bad(node, f"{name or 'a call'}(shell=...)")
        head, _, last = name.rpartition(".")
        if (head.split(".")[-1] if head else "", last) in SHELL_CALLS:
            bad(node, f"{name}() runs a shell")
        if last in SUBPROCESS_CALLS and head.endswith("subprocess"):
            command = node.args[0] if node.args else kwargs.get("args")
            if command is not None and _is_text(command):
                bad(node, f"{name}() with a command string instead of an argument list")
        if name in ("eval", "exec"):
            bad(node, f"{name}() of text")
        if name in ("pickle.load", "pickle.loads", "marshal.loads"):
            bad(node, f"{name}() of a file a user gave")
        if name == "torch.load":
            weights_only = kwargs.get("weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                bad(node, "torch.load without weights_only=True (unpickles arbitrary code)")
        trust = kwargs.get("trust_remote_code")
        if trust is not None and isinstance(trust, ast.Constant) and trust.value is not False:
            bad(node, f"{name}(trust_remote_code={trust.value!r}): only the user's own setting may turn it on")
    return found


BAD_SNIPPET = '''
import os, subprocess, yaml, torch, pickle
from yaml import load, Loader
subprocess.run("rm -rf " + path, shell=True)
subprocess.Popen(f"torchrun {args}")
subprocess.check_output("ls")
os.system("ls")
os.popen("ls")
yaml.load(text, Loader=yaml.Loader)
yaml.unsafe_load(text)
yaml.full_load(text)
torch.load(path)
pickle.load(fh)
eval(text)
AutoModel.from_pretrained(path, trust_remote_code=True)
'''

GOOD_SNIPPET = '''
import subprocess, yaml, torch
subprocess.run(["python", "-m", "tunesmith"], check=True)
subprocess.Popen(cmd, shell=False)
yaml.safe_load(text); yaml.safe_dump(data)
torch.load(path, weights_only=True)
AutoModel.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
'''


def test_the_checker_catches_every_kind_of_violation():
    got = findings(BAD_SNIPPET)
    expected = ["shell=", "command string", "os.system", "os.popen", "yaml.load", "yaml.Loader", "yaml.unsafe_load",
                "yaml.full_load", "torch.load without", "pickle.load", "eval()", "trust_remote_code=True",
                "from yaml import load", "from yaml import Loader"]
    for needle in expected:
        assert any(needle in f for f in got), (needle, got)
    assert sum("command string" in f for f in got) == 3  # concatenation, f-string, plain literal
    assert findings(GOOD_SNIPPET) == []


def test_shipped_code_follows_the_rules():
    found = [f for path in SHIPPED for f in findings(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert found == [], "\n".join(found)


def test_the_rules_cover_the_code_that_starts_processes_and_reads_yaml():
    """The scan really sees the launcher, the supervisor and the YAML reader (not an empty file list)."""
    names = {str(p.relative_to(ROOT)) for p in SHIPPED}
    assert {"launch.py", "tunesmith/app/launch.py", "tunesmith/core/train/launcher.py",
            "tunesmith/core/train/supervise.py", "tunesmith/core/config.py", "tunesmith/app/callbacks/config_cb.py"} <= names
    text = (ROOT / "tunesmith" / "core" / "train" / "launcher.py").read_text()
    assert "subprocess.Popen(" in text and "yaml.safe_load" in (ROOT / "tunesmith" / "core" / "config.py").read_text()
