"""A Kiln plugin in Python: `wordcount` counts lines, words and bytes of a text.

Build it into a component against Kiln's WIT with componentize-py:

    componentize-py -d ../../wit -w kiln:plugin/processor componentize app -o wordcount.wasm

and run it like any other plugin:

    kiln process --plugin wordcount.wasm --params 'count,unit_words' notes.txt -o out/
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

UNITS = ("lines", "words", "bytes")


def parse(params: str) -> list:
    """`count,unit_words` (one unit) or nothing (all units)."""
    if not params:
        return list(UNITS)
    action, *args = params.split(",")
    if action != "count":
        raise Err(f"unknown action `{action}`; expected one of: count")
    units = []
    for arg in args:
        key, _, value = arg.partition("_")
        if key != "unit":
            raise Err(f"action `count`: unknown parameter `{key}`; expected one of: unit")
        if value not in UNITS:
            raise Err(f"action `count`: parameter `unit` has invalid value `{value}`: expected one of {', '.join(UNITS)}")
        units.append(value)
    return units or list(UNITS)


class WitWorld(wit_world.WitWorld):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="wordcount",
            version="0.1.0",
            description="Counts lines, words and bytes (written in Python)",
            reads=["txt"],
            writes=["json"],
        )

    def validate(self, params: str) -> None:
        parse(params)

    def process(self, params: str, object: types.ObjectInfo, input: types.Input, outputs: types.Outputs) -> None:
        try:
            units = parse(params)
        except Err as e:
            raise Err(types.ProcessError_InvalidParams(e.value))
        counts = {"lines": 0, "words": 0, "bytes": 0}
        in_word = False
        while True:
            chunk = input.read(65536)
            if not chunk:
                break
            counts["bytes"] += len(chunk)
            counts["lines"] += chunk.count(b"\n")
            for byte in chunk:
                space = byte in b" \t\r\n"
                if not space and not in_word:
                    counts["words"] += 1
                in_word = not space
        host.log(host.Level.INFO, f"counted {object.key}")
        out = outputs.open("json")
        out.write(json.dumps({u: counts[u] for u in units}).encode())
