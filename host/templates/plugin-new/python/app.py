"""`{{name}}`: a Kiln processing plugin in Python (kiln:plugin@0.2.0), made by `kiln plugin new`.

    {{name}}/upper   the text, upper-cased (the default)
    {{name}}/copy    the object unchanged
    {{name}}/count   no output; the task's result is {"bytes": N, "lines": N}
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import types

ACTIONS = [
    {"name": "upper", "description": "The text, upper-cased", "params": []},
    {"name": "copy", "description": "The object unchanged", "params": []},
    {"name": "count", "description": "No output; the task result is {\"bytes\",\"lines\"}", "params": []},
]
NAMES = [a["name"] for a in ACTIONS]


def action(params: str) -> str:
    name = "upper"
    for part in (params or "").split("/"):
        if not part:
            continue
        name, *args = part.split(",")
        if name not in NAMES:
            raise Err(f"unknown action `{name}`; expected one of: {', '.join(NAMES)}")
        if args:
            raise Err(f"action `{name}` takes no parameters")
    return name


class WitWorld(wit_world.WitWorld):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(
            name="{{name}}",
            version="0.1.0",
            description="Upper-cases or copies an object, or counts its lines",
            reads=[],
            writes=["txt"],
            variables=[],
            actions=json.dumps(ACTIONS),
        )

    def validate(self, params: str) -> types.CheckedStyle:
        return types.CheckedStyle(extension="txt" if action(params) == "upper" else None)

    def process(self, params: str, object: types.ObjectInfo, input: types.Input, outputs: types.Outputs):
        try:
            name = action(params)
        except Err as e:
            raise Err(types.ProcessError_InvalidParams(e.value))
        if name == "count":
            counts = {"bytes": 0, "lines": 0}
            while chunk := input.read(65536):
                counts["bytes"] += len(chunk)
                counts["lines"] += chunk.count(b"\n")
            return json.dumps(counts)
        ext = "txt" if name == "upper" else None
        out = outputs.open(types.OutputOptions(extension=ext, content_type=None, variables=[]))
        while chunk := input.read(65536):
            out.write(chunk.upper() if name == "upper" else chunk)
        return None
