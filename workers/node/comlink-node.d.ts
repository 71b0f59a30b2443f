// comlink ships its Node adapter as an .mjs next to a .d.ts of another name.
declare module 'comlink/dist/esm/node-adapter.mjs' {
  export { default } from 'comlink/dist/esm/node-adapter';
}
