// For `jco run --jco-import preopen.mjs weft.wasm ARGS`: grants the command
// what `wasmtime run --dir HOME::/config --env NAME` would, the directory
// named by $CLAWFT_GUEST_HOME as /config and the *_API_KEY variables.
// The tests copy this file next to node_modules, where the shim resolves.
import { _setPreopens } from '@bytecodealliance/preview2-shim/filesystem';
import { _setEnv } from '@bytecodealliance/preview2-shim/cli';

_setPreopens({ '/config': process.env.CLAWFT_GUEST_HOME });
_setEnv(Object.fromEntries(Object.entries(process.env).filter(([name]) => name.endsWith('_API_KEY'))));
