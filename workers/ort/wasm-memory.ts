/** The linear memories a wasm instance uses: imported ones (Emscripten's usual layout) and exported ones. */
export function instanceMemories(imports: WebAssembly.Imports | undefined, instance: WebAssembly.Instance): WebAssembly.Memory[] {
  const values = [...Object.values(imports ?? {}).flatMap((ns) => Object.values(ns)), ...Object.values(instance.exports)];
  return values.filter((v): v is WebAssembly.Memory => v instanceof WebAssembly.Memory);
}
