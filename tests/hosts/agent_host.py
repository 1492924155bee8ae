"""Embeds clawft-agent.wasm in Python (PyPI wasmtime), for tests/embedding.rs.

usage: python agent_host.py COMPONENT HOME

One instance of the component, with HOME preopened as /config, outgoing
wasi:http, and the *_API_KEY variables of this process's environment. Reads
one call per line on stdin, as JSON ({"fn": "turn", "request": {...}}, ...),
makes it through the component's clawft:agent/agent exports, and answers
each with one JSON line: {"ok": value} or {"err": {"tag": case, "val": payload}}.
"""

import json
import os
import sys
import time
from types import SimpleNamespace

from wasmtime import Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Record, Variant

AGENT = "clawft:agent/agent@0.1.0"


class Failed(Exception):
    """The component returned err(error); args[0] is that error variant."""


def main():
    wasm, home = sys.argv[1:3]
    engine = Engine()
    component = Component.from_file(engine, wasm)
    linker = Linker(engine)
    linker.add_wasip2()
    linker.add_wasi_http()
    wasi = WasiConfig()
    wasi.preopen_dir(home, "/config")
    wasi.env = [(k, v) for k, v in os.environ.items() if k.endswith("_API_KEY")]
    wasi.inherit_stderr()
    store = Store(engine)
    store.set_wasi(wasi)
    store.set_wasi_http()
    instance = linker.instantiate(store, component)
    agent = component.get_export_index(AGENT)

    def call(name, *args):
        func = instance.get_func(store, component.get_export_index(name, agent))
        result = func(store, *args)
        func.post_return(store)
        # An ok value comes back as itself; err(error) as the error variant
        # (no ok type of this interface is a variant, so the two never mix).
        if isinstance(result, Variant):
            raise Failed(result)
        return result

    def stream(request, take):
        started = time.monotonic()
        turn = call("start-turn", request)
        pieces, arrived, end, again = [], [], None, None
        try:
            ended = False
            try:
                while take is None or len(pieces) < take:
                    piece = call("[method]turn-stream.next", turn)
                    if piece is None:
                        ended = True
                        break
                    pieces.append(piece)
                    arrived.append((time.monotonic() - started) * 1000)
            except Failed as failed:
                end = error(failed)
                ended = True
            # What one more call says once the turn is over.
            if ended:
                try:
                    again = {"ok": call("[method]turn-stream.next", turn)}
                except Failed as failed:
                    again = {"err": error(failed)}
        finally:
            turn.drop(store)
        return {"pieces": pieces, "ms": arrived, "end": end, "again": again}

    calls = {
        "turn": lambda c: call("turn", turn_request(c["request"])),
        "stream": lambda c: stream(turn_request(c["request"]), c.get("take")),
        "list-sessions": lambda c: call("list-sessions"),
        "show-session": lambda c: call("show-session", c["key"]),
        "remove-session": lambda c: call("remove-session", c["key"]),
        "status": lambda c: call("status"),
    }
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = {"ok": plain(calls[request["fn"]](request))}
        except Failed as failed:
            answer = {"err": error(failed)}
        print(json.dumps(answer), flush=True)


def turn_request(r):
    """A turn-request record: records go in as objects with those attributes."""
    options = SimpleNamespace(model=r["model"], stream=r["stream"], tools=r["tools"])
    return SimpleNamespace(session=r["session"], message=r["message"], options=options)


def error(failed):
    variant = failed.args[0]
    return {"tag": variant.tag, "val": plain(variant.payload)}


def plain(value):
    """A component value as JSON: records become objects."""
    if isinstance(value, Record):
        return {name: plain(field) for name, field in vars(value).items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {name: plain(item) for name, item in value.items()}
    return value


if __name__ == "__main__":
    main()
