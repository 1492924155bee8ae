// One streamed turn of clawft's agent, embedded in Node.
//   npm install @bytecodealliance/jco @bytecodealliance/preview2-shim
//   npx jco transpile clawft-agent.wasm -o clawft-agent --name clawft-agent
//   node agent.mjs HOME MESSAGE
// HOME holds config.json and sessions/, as for weft; the key comes from a
// *_API_KEY variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...).
import { _setPreopens } from '@bytecodealliance/preview2-shim/filesystem';
import { _setEnv } from '@bytecodealliance/preview2-shim/cli';
import { agent } from './clawft-agent/clawft-agent.js';

const [home, message] = process.argv.slice(2);
_setPreopens({ '/config': home }); // the component's home directory
_setEnv(Object.fromEntries(Object.entries(process.env).filter(([name]) => name.endsWith('_API_KEY'))));

try {
  const turn = agent.startTurn({ session: 'default', message, options: { stream: true, tools: false } });
  for (let piece; (piece = turn.next()) !== undefined; ) process.stdout.write(piece); // as it arrives
  process.stdout.write('\n');
  turn[Symbol.dispose]();
} catch (e) {
  // err(error) is thrown; e.payload.tag names the case, e.payload.val says more.
  console.error(`error: ${e.payload?.tag ?? e}: ${JSON.stringify(e.payload?.val)}`);
  process.exitCode = 1;
}
