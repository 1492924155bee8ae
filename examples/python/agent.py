"""One streamed turn of clawft's agent, embedded in Python (pip install wasmtime).

usage: python agent.py clawft-agent.wasm HOME MESSAGE
HOME holds config.json and sessions/, as for weft; the key comes from a
*_API_KEY variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)."""
import os
import sys
from types import SimpleNamespace as record

from wasmtime import Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Variant

wasm, home, message = sys.argv[1:4]
engine = Engine()
component = Component.from_file(engine, wasm)
linker = Linker(engine)
linker.add_wasip2()
linker.add_wasi_http()  # the agent calls its provider through wasi:http
wasi = WasiConfig()
wasi.preopen_dir(home, "/config")  # the component's home directory
wasi.env = [(k, v) for k, v in os.environ.items() if k.endswith("_API_KEY")]
store = Store(engine)
store.set_wasi(wasi)
store.set_wasi_http()
instance = linker.instantiate(store, component)
agent = component.get_export_index("clawft:agent/agent@0.1.0")


def call(name, *args):
    func = instance.get_func(store, component.get_export_index(name, agent))
    result = func(store, *args)
    func.post_return(store)
    if isinstance(result, Variant):  # err(error): the tag names the case
        detail = result.payload if isinstance(result.payload, str) else vars(result.payload)
        sys.exit(f"error: {result.tag}: {detail}")
    return result


options = record(model=None, stream=True, tools=False)
turn = call("start-turn", record(session="default", message=message, options=options))
while (piece := call("[method]turn-stream.next", turn)) is not None:
    print(piece, end="", flush=True)  # each piece as it arrives
print()
turn.drop(store)
