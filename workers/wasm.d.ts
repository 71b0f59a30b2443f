// Workers bundlers (wrangler, and esbuild + Miniflare's CompiledWasm modules in the tests) turn a
// `.wasm` import into a precompiled WebAssembly.Module.
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
