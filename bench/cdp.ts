// A minimal Chrome DevTools Protocol client over a WebSocket (RFC 6455 text frames), built on
// node:http so that it needs no package: Node 20 has no WebSocket client without a flag.
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';

export interface CdpSession {
  /** Sends one command and resolves with its result (rejects with the protocol's error message). */
  send<T = unknown>(method: string, params?: Record<string, unknown>): Promise<T>;
  close(): void;
}

function frame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, 0x80 | n]) : n < 65536 ? Buffer.from([0x81, 0x80 | 126, n >> 8, n & 255]) : Buffer.concat([Buffer.from([0x81, 0x80 | 127]), bigLength(n)]);
  const mask = randomBytes(4);
  const masked = Buffer.alloc(n);
  for (let i = 0; i < n; i++) masked[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, masked]);
}

function bigLength(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** Splits complete frames off `buffer`; returns the text messages (fragments joined) and the rest. */
function parseFrames(buffer: Buffer, partial: Buffer[]): { messages: string[]; rest: Buffer } {
  const messages: string[] = [];
  let at = 0;
  for (;;) {
    if (buffer.length - at < 2) break;
    const fin = (buffer[at] & 0x80) !== 0;
    const opcode = buffer[at] & 0x0f;
    let len = buffer[at + 1] & 0x7f;
    let header = 2;
    if (len === 126) {
      if (buffer.length - at < 4) break;
      len = buffer.readUInt16BE(at + 2);
      header = 4;
    } else if (len === 127) {
      if (buffer.length - at < 10) break;
      len = Number(buffer.readBigUInt64BE(at + 2));
      header = 10;
    }
    if (buffer.length - at < header + len) break;
    const payload = buffer.subarray(at + header, at + header + len);
    at += header + len;
    if (opcode === 0x1 || opcode === 0x0) {
      partial.push(Buffer.from(payload));
      if (fin) messages.push(Buffer.concat(partial.splice(0)).toString('utf8'));
    }
  }
  return { messages, rest: buffer.subarray(at) };
}

/** Connects to a DevTools WebSocket URL (ws://host:port/path). */
export function connectCdp(url: string): Promise<CdpSession> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64') },
    });
    req.on('error', reject);
    req.on('response', (res) => reject(new Error(`inspector ${url}: HTTP ${res.statusCode} instead of a WebSocket upgrade`)));
    req.on('upgrade', (_res, socket: Socket, head: Buffer) => {
      let nextId = 1;
      const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
      const partial: Buffer[] = [];
      let buffered = head;
      const onData = (chunk: Buffer) => {
        const { messages, rest } = parseFrames(Buffer.concat([buffered, chunk]), partial);
        buffered = rest;
        for (const m of messages) {
          const msg = JSON.parse(m) as { id?: number; result?: unknown; error?: { message: string } };
          const p = msg.id === undefined ? undefined : pending.get(msg.id);
          if (!p) continue;
          pending.delete(msg.id!);
          if (msg.error) p.reject(new Error(`CDP: ${msg.error.message}`));
          else p.resolve(msg.result);
        }
      };
      socket.on('data', onData);
      socket.on('close', () => {
        for (const p of pending.values()) p.reject(new Error(`inspector ${url}: connection closed`));
        pending.clear();
      });
      socket.on('error', () => undefined);
      if (head.length) onData(Buffer.alloc(0));
      resolve({
        send<T>(method: string, params: Record<string, unknown> = {}) {
          const id = nextId++;
          return new Promise<T>((res, rej) => {
            pending.set(id, { resolve: res as (v: unknown) => void, reject: rej });
            socket.write(frame(JSON.stringify({ id, method, params })));
          });
        },
        close: () => socket.destroy(),
      });
    });
    req.end();
  });
}
