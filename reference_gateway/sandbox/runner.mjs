// The code_interpreter sandbox's inside: one Node process runs one Python cell in Pyodide, then
// exits. The Python side (reference_gateway/sandbox/spawn.py) starts it through jail.py, which
// has already applied the kernel limits (Landlock, seccomp, rlimits) before exec'ing Node with
// the permission model on; this file adds the in-process layer: no network globals, a `js`
// module that reaches nothing, and the scratch folder as the only host folder Python sees.
//
// Protocol (trusted side: the parent Python process):
//   stdin  two JSON lines. First, at once: {"scratch": host path, "pyodide": dir path,
//          "memory_mb": the Python heap's cap, named in a MemoryError}; then, once "ready" has
//          been sent (a warm runner waits here, having run nothing yet): {"code": str}, EOF.
//   stdout NDJSON frames, one per line:
//     {"ready": true, "load_ms": n}      Pyodide is loaded; send the code
//     {"out": str}                        a piece of what Python wrote to stdout or stderr
//     {"done": {"error": str|null, "display": str|null}}
//                                         the cell ended; display is repr() of its last
//                                         expression (None shows nothing), like a notebook
//   stderr Node's own diagnostics (a fatal V8 error, say), read by the parent for its message.
// Frames after "ready" could be forged by code that escaped into JS; the parent treats them as
// no more trusted than the code's own output, which is all they can change.

import { constants as fsConstants, writeSync } from "node:fs";

// A frame's text stays under this so that a frame is always a short line for the parent's
// reader (spawn.py FRAME_LINE_LIMIT_BYTES is 1 MiB; 6x JSON escaping of 16 KiB still fits).
const OUT_CHUNK_CHARS = 16 * 1024;

// Where the scratch folder appears inside Python: OpenAI's code interpreter keeps user files
// in /mnt/data (the recorded stream in shared/fixtures writes /mnt/data/roll2dice_sums_10000.csv).
const SCRATCH_MOUNT = "/mnt/data";

function emit(frame) {
  const line = Buffer.from(JSON.stringify(frame) + "\n", "utf8");
  let off = 0;
  while (off < line.length) {
    try {
      off += writeSync(1, line, off, line.length - off);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
    }
  }
}

// 1. No network from JS, even before Pyodide is imported (a module may capture fetch at load).
for (const name of ["fetch", "WebSocket", "XMLHttpRequest", "EventSource", "Request",
                    "Response", "Headers", "navigator"]) {
  try { delete globalThis[name]; } catch { /* non-configurable: left, the kernel refuses */ }
}

// 2. Under --experimental-permission process.binding() throws, and Emscripten's NODEFS asks it
// only for the fs open() flag constants (NODEFS.staticInit): hand those over, nothing else.
process.binding = (name) => {
  if (name === "constants") return { fs: fsConstants };
  throw new Error(`process.binding(${JSON.stringify(name)}) is not available in the sandbox`);
};

// stdin, one JSON object per line (see the protocol above)
const stdinLines = (async function* () {
  let buffer = "";
  for await (const chunk of process.stdin) {
    buffer += chunk;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
    }
  }
  if (buffer) yield buffer;
})();
async function nextJob() {
  const { value, done } = await stdinLines.next();
  if (done) process.exit(0);  // the parent went away (or discarded a warm runner)
  return JSON.parse(value);
}
process.stdin.setEncoding("utf8");
const job = await nextJob();

// 3. The `js` module Python sees: only timers (asyncio's loop needs them) and plain data
// constructors; no process, require, fetch, import, eval. The default is globalThis.
const jsglobals = Object.create(null);
for (const name of ["setTimeout", "clearTimeout", "setInterval", "clearInterval",
                    "queueMicrotask", "Object", "Array", "Promise", "Error", "JSON", "Math",
                    "Date", "Uint8Array", "ArrayBuffer", "DataView", "TextEncoder",
                    "TextDecoder"]) {
  jsglobals[name] = globalThis[name];
}

const started = performance.now();
const { loadPyodide } = await import(new URL("pyodide.mjs", `file://${job.pyodide}/`).href);

const decoders = { out: new TextDecoder("utf-8"), err: new TextDecoder("utf-8") };
function writer(stream) {
  return {
    write(bytes) {
      const text = decoders[stream].decode(bytes, { stream: true });
      for (let i = 0; i < text.length;) {
        let end = Math.min(i + OUT_CHUNK_CHARS, text.length);
        const last = text.charCodeAt(end - 1);
        if (end < text.length && last >= 0xd800 && last <= 0xdbff) end += 1;  // keep pairs whole
        emit({ out: text.slice(i, end) });
        i = end;
      }
      return bytes.length;
    },
  };
}

const pyodide = await loadPyodide({
  indexURL: job.pyodide + "/",
  jsglobals,
  packages: [],
  fullStdLib: false,
  env: { HOME: "/home/pyodide", LANG: "C.UTF-8" },
  stdin: () => null,
});
// Pyodide defines globalThis.require for its own use (fs, crypto, ws, child_process): drop it.
delete globalThis.require;
pyodide.setStdout(writer("out"));
pyodide.setStderr(writer("err"));
pyodide.setStdin({ stdin: () => null });

pyodide.FS.mkdirTree(SCRATCH_MOUNT);
pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: job.scratch }, SCRATCH_MOUNT);
pyodide.FS.chdir(SCRATCH_MOUNT);

// The cell runs like a notebook cell: top-level await allowed, the last expression's repr shown,
// a trailing semicolon hides it, an exception prints its traceback (without this wrapper's own
// frames) and becomes the error "Type: message".
const runCell = pyodide.runPython(`
def _make_run_cell():
    import errno, json, socket, sys, traceback
    from pyodide.code import eval_code_async

    # Emscripten emulates sockets over WebSockets and its connect() "succeeds" at once, then
    # hangs until a timeout (the kernel refuses the real socket). Fail at once, and clearly:
    # this is for the message only; the boundary is seccomp (jail.py).
    NO_NETWORK = "network access is disabled in the code sandbox"

    def _connect(self, address):
        raise OSError(errno.ENETUNREACH, NO_NETWORK)

    def _connect_ex(self, address):
        return errno.ENETUNREACH

    def _sendto(self, *args):
        raise OSError(errno.ENETUNREACH, NO_NETWORK)

    socket.socket.connect = _connect
    socket.socket.connect_ex = _connect_ex
    socket.socket.sendto = _sendto

    CELL = "<cell>"
    MEMORY_MB = ${Number(job.memory_mb) | 0}

    def _user_frames(tb):
        while tb is not None and tb.tb_frame.f_code.co_filename != CELL:
            tb = tb.tb_next
        return tb

    def _describe(exc):
        text = str(exc)
        if isinstance(exc, MemoryError) and not text:
            text = f"out of memory (the sandbox's limit is {MEMORY_MB} MB)"
        return type(exc).__name__ + (": " + text if text else "")

    async def run_cell(code):
        ns = {"__name__": "__main__", "__builtins__": __builtins__}
        error = display = None
        try:
            value = await eval_code_async(code, ns, return_mode="last_expr", filename=CELL)
            if value is not None:
                display = repr(value)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                error = "SystemExit: " + str(exc.code)
        except BaseException as exc:
            traceback.print_exception(type(exc), exc, _user_frames(exc.__traceback__))
            error = _describe(exc)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        return json.dumps({"error": error, "display": display})

    return run_cell

_make_run_cell()
`);

// How the interpreter itself can end a cell: os._exit() (Emscripten's ExitStatus, thrown from a
// later tick), or a fatal error (a Wasm stack overflow under a huge recursion limit, say) that
// Pyodide rethrows outside any await. Either is reported as the cell's error, not a crash.
function describeFatal(e) {
  if (e && typeof e.status === "number" && /exit\(/.test(String(e.message))) {
    return e.status === 0 ? null : `SystemExit: ${e.status} (the cell called os._exit)`;
  }
  const first = String((e && e.message) || e).split("\n")[0].slice(0, 200);
  return `PythonFatalError: the interpreter stopped: ${(e && e.name) || "Error"}: ${first}`;
}
function finish(done) {
  emit({ done });
  process.exit(0);
}
process.on("uncaughtException", (e) => finish({ error: describeFatal(e), display: null }));
process.on("unhandledRejection", (e) => finish({ error: describeFatal(e), display: null }));

emit({ ready: true, load_ms: Math.round(performance.now() - started) });
const { code } = await nextJob();
let done;
try {
  done = JSON.parse(await runCell(code));
} catch (e) {
  done = { error: describeFatal(e), display: null };
}
finish(done);
