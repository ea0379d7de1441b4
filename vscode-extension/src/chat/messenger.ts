/**
 * Both ends of the webview message map (no `vscode` import: unit-tested with plain functions
 * standing in for postMessage).
 */
import {
  ChunkOf,
  HostRequests,
  ParamsOf,
  parseToHost,
  RequestName,
  ResultOf,
  ToHost,
  ToWebview,
  WebviewEvents,
} from "./messages";

export interface RequestContext<K extends RequestName> {
  /** Aborted when the webview sends `abort` for this request (or goes away). */
  signal: AbortSignal;
  /** Stream a chunk before the result. */
  chunk(value: ChunkOf<K>): void;
}

type Handler<K extends RequestName> = (params: ParamsOf<K>, ctx: RequestContext<K>) => Promise<ResultOf<K>>;

/** Host side: answers the webview's requests, sends events once the webview is ready. */
export class HostEndpoint {
  private readonly handlers = new Map<RequestName, Handler<RequestName>>();
  private readonly inflight = new Map<number, AbortController>();
  private queue: ToWebview[] = [];
  private ready = false;

  constructor(private readonly post: (msg: ToWebview) => void) {}

  on<K extends RequestName>(name: K, handler: Handler<K>): void {
    this.handlers.set(name, handler as unknown as Handler<RequestName>);
  }

  /** Send an event now if the webview is ready, else when it says `ready`. */
  event<K extends keyof WebviewEvents>(name: K, payload: WebviewEvents[K]): void {
    const msg: ToWebview = { kind: "event", name, payload };
    if (this.ready) this.post(msg);
    else this.queue.push(msg);
  }

  /** The webview was disposed or reloaded: abort what runs, hold events until `ready`. */
  reset(): void {
    this.ready = false;
    for (const controller of this.inflight.values()) controller.abort();
    this.inflight.clear();
  }

  get isReady(): boolean {
    return this.ready;
  }

  async handle(raw: unknown): Promise<void> {
    const msg: ToHost | undefined = parseToHost(raw);
    if (!msg) return;
    if (msg.kind === "abort") {
      this.inflight.get(msg.id)?.abort();
      return;
    }
    const handler = this.handlers.get(msg.name);
    if (!handler) {
      this.post({ kind: "response", id: msg.id, done: true, error: `unknown request ${msg.name}` });
      return;
    }
    if (msg.name === "ready") {
      // A (re)loaded webview: whatever ran for the previous page is abandoned.
      this.reset();
    }
    const controller = new AbortController();
    this.inflight.set(msg.id, controller);
    const ctx: RequestContext<RequestName> = {
      signal: controller.signal,
      chunk: (value) => {
        if (!controller.signal.aborted) this.post({ kind: "response", id: msg.id, done: false, chunk: value });
      },
    };
    try {
      const result = await handler(msg.params as never, ctx);
      this.post({ kind: "response", id: msg.id, done: true, result });
    } catch (err) {
      this.post({
        kind: "response",
        id: msg.id,
        done: true,
        error: err instanceof Error ? err.message : String(err),
      });
    } finally {
      this.inflight.delete(msg.id);
      if (msg.name === "ready") {
        this.ready = true;
        const queued = this.queue;
        this.queue = [];
        queued.forEach((m) => this.post(m));
      }
    }
  }
}

export interface PendingRequest<R> {
  id: number;
  result: Promise<R>;
  abort(): void;
}

/** Webview side: makes requests, receives chunks and events. */
export class WebviewEndpoint {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void; onChunk?: (c: unknown) => void }
  >();
  private readonly listeners = new Map<keyof WebviewEvents, ((payload: never) => void)[]>();

  constructor(private readonly post: (msg: ToHost) => void) {}

  request<K extends RequestName>(
    name: K,
    params: ParamsOf<K>,
    onChunk?: (chunk: ChunkOf<K>) => void,
  ): PendingRequest<ResultOf<K>> {
    const id = this.nextId++;
    const result = new Promise<ResultOf<K>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onChunk: onChunk as (c: unknown) => void });
    });
    this.post({ kind: "request", id, name, params });
    return { id, result, abort: () => this.post({ kind: "abort", id }) };
  }

  on<K extends keyof WebviewEvents>(name: K, listener: (payload: WebviewEvents[K]) => void): void {
    const list = this.listeners.get(name) ?? [];
    list.push(listener as (payload: never) => void);
    this.listeners.set(name, list);
  }

  handle(raw: unknown): void {
    const msg = raw as ToWebview;
    if (!msg || typeof msg !== "object") return;
    if (msg.kind === "event") {
      for (const listener of this.listeners.get(msg.name) ?? []) listener(msg.payload as never);
      return;
    }
    if (msg.kind !== "response") return;
    const entry = this.pending.get(msg.id);
    if (!entry) return;
    if (!msg.done) {
      entry.onChunk?.(msg.chunk);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.error !== undefined) entry.reject(new Error(msg.error));
    else entry.resolve(msg.result);
  }
}

export type { HostRequests };
