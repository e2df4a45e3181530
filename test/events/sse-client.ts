// A real SSE client for the stream tests: the `eventsource` package (what a browser-like client
// does: reconnects, Last-Event-ID) with a fetch that adds the credentials header, since
// EventSource itself cannot send headers.
import { EventSource } from 'eventsource';
import { EVENT_TYPE_NAMES } from '../../src/events/catalog.js';

export interface Received {
  event: string;
  id: string;
  data: Record<string, unknown>;
}

const CONTROL_EVENTS = ['ready', 'resync_required', 'session_expired', 'session_revoked', 'shutdown'];

export class SseClient {
  readonly messages: Received[] = [];
  readonly source: EventSource;
  /** Connection errors EventSource reported (a non-200 answer, a dropped connection). */
  errors = 0;
  private waiters: Array<() => void> = [];

  constructor(url: string, headers: Record<string, string>, options: { lastEventId?: string } = {}) {
    this.source = new EventSource(url, {
      fetch: (input, init) =>
        fetch(input, {
          ...init,
          headers: { ...(init?.headers as Record<string, string>), ...headers, ...(options.lastEventId ? { 'last-event-id': options.lastEventId } : {}) },
        }),
    });
    for (const name of [...EVENT_TYPE_NAMES, ...CONTROL_EVENTS]) {
      this.source.addEventListener(name, (message) => {
        this.messages.push({ event: name, id: message.lastEventId, data: JSON.parse(message.data) as Record<string, unknown> });
        this.notify();
      });
    }
    this.source.addEventListener('error', () => {
      this.errors += 1;
      this.notify();
    });
  }

  /** The domain events received (not the control messages). */
  get events(): Received[] {
    return this.messages.filter((message) => !CONTROL_EVENTS.includes(message.event));
  }

  /** Waits until `check` holds for what was received, failing after timeoutMs. */
  async until(what: string, check: (client: SseClient) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check(this)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; received ${JSON.stringify(this.messages.map((m) => [m.event, m.id]))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  untilEvent(name: string, timeoutMs?: number): Promise<void> {
    return this.until(`event ${name}`, (client) => client.messages.some((message) => message.event === name), timeoutMs);
  }

  close(): void {
    this.source.close();
  }

  private notify(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}
