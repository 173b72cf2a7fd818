"""Reading a dataset into a ``datasets.Dataset``: files, saved folders and hub ids.

``datasets`` does the reading (so results are memory-mapped and cached); when it fails we find
out why ourselves and say it in one line: the file is missing or empty, is not UTF-8 (byte, line
and column), or is not valid JSON (line and column).

Accepted: .json (a list of objects, one object, or JSON Lines), .jsonl, .csv, .parquet, .txt
(one sample per line, or blank-line separated paragraphs when the file has blank lines), a folder
written by ``Dataset.save_to_disk``, or a hub id such as ``tatsu-lab/alpaca`` (needs internet).
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path

from core.errors import DataError

FILE_TYPES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_CHUNK = 1 << 24
JSON_PRECHECK_BYTES = 64 << 20  # larger files are only parsed by datasets (our parser runs on failure)


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` without a file extension we read.

    >>> looks_like_hub_id("tatsu-lab/alpaca"), looks_like_hub_id("data/train.json"), looks_like_hub_id("x.json")
    (True, False, False)
    """
    return bool(_HUB_ID.match(name or "")) and Path(name).suffix.lower() not in FILE_TYPES


def check_utf8(path: Path) -> None:
    """Raise a DataError at the first byte that is not UTF-8, naming its line and column."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line, line_start = 0, 1, 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            final = not chunk
            try:
                decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                bad = exc.start  # index inside this chunk (plus the decoder's few buffered bytes)
                buffered = len(exc.object) - len(chunk)
                bad_abs = offset + bad - buffered
                fh.seek(0)
                head = fh.read(bad_abs)
                line = head.count(b"\n") + 1
                column = bad_abs - (head.rfind(b"\n") + 1) + 1
                raise DataError(f"{path} is not UTF-8 text: byte 0x{exc.object[bad]:02x} at line {line}, "
                                f"column {column} (byte offset {bad_abs}).",
                                "Save the file as UTF-8, e.g. `iconv -f GBK -t UTF-8 in.json > out.json`.") from None
            if final:
                return
            offset += len(chunk)


def _is_blank(path: Path) -> bool:
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                return True
            if chunk.strip(b" \t\r\n\xef\xbb\xbf"):
                return False


def _json_rows(path: Path) -> list[dict]:
    """Parse JSON / JSON Lines with Python's json to find a syntax error's line and column, or rows."""
    raw = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".jsonl":
        return _json_lines(raw, path)
    try:
        return _normalise(json.loads(raw), path)
    except json.JSONDecodeError as exc:
        whole_doc_error = exc
    try:
        return _json_lines(raw, path)  # JSON Lines written to a .json file
    except DataError:
        exc = whole_doc_error
        raise _json_error(path, exc.lineno, exc.colno, exc.msg) from None


def _json_lines(raw: str, path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _json_error(path, number, exc.colno, exc.msg) from None
        rows.extend(_normalise(value, path, line=number))
    return rows


CONVERSATION_KEYS = ("conversation", "conversations", "messages")


def _is_row_list(key, value) -> bool:
    """True for {"data": [row, ...]} wrappers, not for one conversation such as {"messages": [...]}.

    >>> _is_row_list("data", [{"input": "q", "output": "a"}]), _is_row_list("messages", [{"role": "user"}])
    (True, False)
    """
    if key in CONVERSATION_KEYS or not isinstance(value, list) or not value:
        return False
    if not all(isinstance(v, dict) for v in value):
        return False
    return not all(("role" in v and "content" in v) or ("from" in v and "value" in v) for v in value)


def _normalise(value, path: Path, line: int | None = None) -> list[dict]:
    """Top-level JSON -> rows: a list of objects, one object, {"key": [rows]}, or a list of chat messages."""
    where = f" (line {line})" if line else ""
    if isinstance(value, dict):
        (key, inner), = value.items() if len(value) == 1 else ((None, None),)
        if line is None and _is_row_list(key, inner):
            return list(inner)
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(i, dict) and "role" in i and "content" in i for i in value):
            return [{"messages": value}]  # one conversation written as a bare list of messages
        if all(isinstance(i, dict) for i in value):
            return list(value)
    raise DataError(f"{path}{where} holds {type(value).__name__} values where objects (rows) were expected.",
                    "Write one JSON object per row, e.g. {\"instruction\": ..., \"output\": ...}.")


def _json_error(path: Path, line: int, column: int, msg: str) -> DataError:
    return DataError(f"{path} is not valid JSON: {msg} at line {line}, column {column}.",
                     "Fix that spot (a missing comma, quote or bracket is usual); `python -m json.tool FILE` "
                     "checks a file.")


def _from_rows(rows: list[dict], path: Path):
    import datasets

    try:
        return datasets.Dataset.from_list(rows)
    except Exception as exc:  # pyarrow type clashes between rows
        raise DataError(f"{path}: the rows do not share one layout ({type(exc).__name__}: {str(exc)[:200]}).",
                        "Make every row use the same fields with the same kinds of values.") from None


def _txt_mode(path: Path) -> str:
    """'paragraph' when the file has a blank line between text, else 'line'."""
    seen_text = blank_after_text = False
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            if line.strip():
                if blank_after_text:
                    return "paragraph"
                seen_text = True
            elif seen_text:
                blank_after_text = True
    return "line"


def _load_file(path: Path, kind: str):
    import datasets

    if kind == "text":
        mode = _txt_mode(path)
        ds = datasets.load_dataset("text", data_files=str(path), split="train", sample_by=mode)
        if mode == "paragraph":
            ds = ds.map(lambda b: {"text": [t.strip("\n") for t in b["text"]]}, batched=True)
        return ds.filter(lambda b: [bool(t.strip()) for t in b["text"]], batched=True)
    try:
        ds = datasets.load_dataset(kind, data_files=str(path), split="train")
        if kind == "json" and ds.num_rows == 1 and len(ds.column_names) == 1:
            value = ds[0][ds.column_names[0]]
            if _is_row_list(ds.column_names[0], value):
                return _from_rows(value, path)  # {"data": [rows]}: the rows are inside one key
        return ds
    except DataError:
        raise
    except Exception as exc:
        if kind == "json":
            return _from_rows(_json_rows(path), path)
        if kind == "parquet":
            raise DataError(f"{path} is not a readable Parquet file ({str(exc)[:200]}).",
                            "Re-export it, e.g. with pandas DataFrame.to_parquet.") from None
        raise DataError(f"{path} could not be read as {kind.upper()}: {str(exc)[:300]}",
                        "Check the header line and the quoting of fields with commas or newlines.") from None


def _load_saved(folder: Path, split: str):
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except Exception as exc:
        raise DataError(f"{folder} is a folder but not a dataset saved by `datasets` ({str(exc)[:200]}).",
                        "Point at a data file, or at a folder written by Dataset.save_to_disk.") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{folder} has no split '{split}'.", f"Splits present: {', '.join(loaded)}.",
                            field="data.split")
        return loaded[split]
    return loaded


def _load_hub(name: str, split: str):
    import datasets

    try:
        return datasets.load_dataset(name, split=split)
    except Exception as exc:
        raise DataError(f"could not load the hub dataset '{name}' ({type(exc).__name__}: {str(exc)[:200]}).",
                        "Check the id and your internet connection, or download the data and give a local file."
                        ) from None


def precheck(path: str) -> tuple[Path | None, str]:
    """Cheap checks that need no heavy import: (local path or None for a hub id, reader kind).

    Raises a DataError for a missing, empty, non-UTF-8 or unsupported file.
    """
    if not path:
        raise DataError("no dataset given.", "Give a .json/.jsonl/.csv/.parquet/.txt file, a saved folder or a hub id.",
                        field="data.path")
    p = Path(path).expanduser()
    if not p.exists():
        if looks_like_hub_id(path):
            return None, "hub"
        raise DataError(f"dataset file {path} does not exist.",
                        "Check the path (relative paths start from the current folder), or give a hub id like "
                        "tatsu-lab/alpaca.", field="data.path")
    if p.is_dir():
        return p, "saved"
    kind = FILE_TYPES.get(p.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: files ending in '{p.suffix or '(no extension)'}' are not a dataset format we read.",
                        f"Use one of {', '.join(FILE_TYPES)}, or a folder saved by `datasets`.")
    if p.stat().st_size == 0 or (kind != "parquet" and _is_blank(p)):
        raise DataError(f"{path} is empty.", "Put at least one sample in it.")
    if kind != "parquet":
        check_utf8(p)
    if kind == "json" and p.stat().st_size <= JSON_PRECHECK_BYTES:
        _json_rows(p)  # syntax errors with line and column, without importing datasets
    return p, kind


def load_rows(path: str, *, split: str = "train"):
    """Load a dataset file, saved folder or hub id as a ``datasets.Dataset`` (one split).

    >>> import json, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "d.jsonl")
    >>> _ = open(f, "w").write(json.dumps({"input": "a", "output": "b"}) + "\\n")
    >>> load_rows(f)[0]
    {'input': 'a', 'output': 'b'}
    """
    p, kind = precheck(path)
    if kind == "hub":
        ds = _load_hub(path, split)
    elif kind == "saved":
        ds = _load_saved(p, split)
    else:
        ds = _load_file(p, kind)
    if ds.num_rows == 0:
        raise DataError(f"{path} has no rows.", "Put at least one sample in it.")
    return ds
