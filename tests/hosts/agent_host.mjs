// Embeds clawft-agent.wasm in Node, through the module `jco transpile`
// made of it and @bytecodealliance/preview2-shim, for tests/embedding.rs.
//
// usage: node agent_host.mjs MODULE HOME
//
// One instance of the component, with HOME preopened as /config, outgoing
// wasi:http, and the *_API_KEY variables of this process's environment. Reads
// one call per line on stdin, as JSON ({"fn": "turn", "request": {...}}, ...),
// makes it through the module's `agent` export, and answers each with one
// JSON line: {"ok": value} or {"err": {"tag": case, "val": payload}}.
// The tests copy this file next to node_modules, where the shim resolves.
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { _setPreopens } from '@bytecodealliance/preview2-shim/filesystem';
import { _setEnv } from '@bytecodealliance/preview2-shim/cli';

const [module, home] = process.argv.slice(2);
_setPreopens({ '/config': home });
_setEnv(Object.fromEntries(Object.entries(process.env).filter(([name]) => name.endsWith('_API_KEY'))));
const { agent } = await import(pathToFileURL(module).href);

const turnRequest = (r) => ({
  session: r.session,
  message: r.message,
  options: { model: r.model ?? undefined, stream: r.stream, tools: r.tools },
});

// err(error) is thrown as a ComponentError whose payload is the error
// variant, { tag, val }; anything else thrown is a broken host.
function error(thrown) {
  if (typeof thrown?.payload?.tag !== 'string') throw thrown;
  return { tag: thrown.payload.tag, val: thrown.payload.val };
}

function stream(request, take) {
  const started = performance.now();
  const turn = agent.startTurn(request);
  const pieces = [];
  const ms = [];
  let end = null;
  let again = null;
  try {
    let ended = false;
    try {
      while (take == null || pieces.length < take) {
        const piece = turn.next();
        if (piece === undefined) {
          ended = true;
          break;
        }
        pieces.push(piece);
        ms.push(performance.now() - started);
      }
    } catch (thrown) {
      end = error(thrown);
      ended = true;
    }
    // What one more call says once the turn is over.
    if (ended) {
      try {
        again = { ok: turn.next() ?? null };
      } catch (thrown) {
        again = { err: error(thrown) };
      }
    }
  } finally {
    turn[Symbol.dispose]();
  }
  return { pieces, ms, end, again };
}

const calls = {
  turn: (c) => agent.turn(turnRequest(c.request)),
  stream: (c) => stream(turnRequest(c.request), c.take),
  'list-sessions': () => agent.listSessions(),
  'show-session': (c) => agent.showSession(c.key),
  'remove-session': (c) => agent.removeSession(c.key),
  status: () => agent.status(),
};

for await (const line of createInterface({ input: process.stdin })) {
  const request = JSON.parse(line);
  let answer;
  try {
    answer = { ok: calls[request.fn](request) ?? null };
  } catch (thrown) {
    answer = { err: error(thrown) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
