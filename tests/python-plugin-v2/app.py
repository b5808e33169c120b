"""A Kiln plugin in Python for contract 0.2.0: `wordcount` answers with a task
result (no output object), and `tail` reads the end of the object with
`size()` and `read-at`.

Build it against Kiln's 0.2.0 WIT with componentize-py:

    componentize-py -d ../../wit/0.2.0 -w kiln:plugin/processor componentize --stub-wasi app -o wordcount2.wasm

and run it like any other plugin:

    kiln process --plugin wordcount2.wasm --params count notes.txt        # prints the result
    kiln process --plugin wordcount2.wasm --params tail,n_10 notes.txt -o out/
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

ACTIONS = [
    {"name": "count", "description": "Lines, words and bytes, as the task's result", "params": []},
    {
        "name": "tail",
        "description": "The last bytes of the object, read with read-at",
        "params": [{"name": "n", "kind": "int", "description": "How many bytes", "default": "64", "range": "1..=65536"}],
    },
]


def parse(params: str):
    """`count`, or `tail,n_N`."""
    action, *args = (params or "count").split(",")
    if action == "count" and not args:
        return ("count", None)
    if action == "tail":
        n = 64
        for arg in args:
            key, _, value = arg.partition("_")
            if key != "n" or not value.isdigit() or not 1 <= int(value) <= 65536:
                raise Err(f"action `tail`: parameter `{arg}`: use n_ with 1 to 65536")
            n = int(value)
        return ("tail", n)
    raise Err(f"unknown action `{action}` or parameters; expected count or tail,n_N")


class WitWorld(wit_world.WitWorld):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="wordcount2",
            version="0.2.0",
            description="Counts lines, words and bytes; the tail of a text (Python, contract 0.2.0)",
            reads=["txt"],
            writes=["txt"],
            variables=[],
            actions=json.dumps(ACTIONS),
        )

    def validate(self, params: str) -> types.CheckedStyle:
        action, _ = parse(params)
        return types.CheckedStyle(extension="txt" if action == "tail" else None)

    def process(self, params: str, object: types.ObjectInfo, input: types.Input, outputs: types.Outputs):
        try:
            action, n = parse(params)
        except Err as e:
            raise Err(types.ProcessError_InvalidParams(e.value))
        if action == "tail":
            size = input.size()
            if size is None:
                raise Err(types.ProcessError_Failed("the object's size is unknown: tail needs read-at"))
            start = max(0, size - n)
            out = outputs.open(types.OutputOptions(extension="txt", content_type="text/plain", variables=[]))
            out.write(input.read_at(start, size - start))
            return None
        counts = {"lines": 0, "words": 0, "bytes": 0}
        while True:
            chunk = input.read(65536)
            if not chunk:
                break
            counts["bytes"] += len(chunk)
            counts["lines"] += chunk.count(b"\n")
            counts["words"] += len(chunk.split())
        host.log(host.Level.INFO, f"counted {object.key}")
        return json.dumps(counts)
