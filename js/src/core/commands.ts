// Commands: kernel work started from the view, over the widget's custom
// messages, each with an id and a reply or an error (the kernel side is
// exbert_widget/widget/commands.py). One request per command name is in flight
// at a time; a newer request supersedes the one waiting and the one in flight:
// the waiting one is never sent, and the reply of the one in flight is dropped.
// Both are rejected with `Superseded`, so only the newest result is shown.
// A request in flight waits NO_REPLY_MS at most without a sign of life: the
// kernel sends a heartbeat (`exbert-working`) every HEARTBEAT_S while the
// command runs, each of which restarts the wait, so however long a search takes
// it is never cut; only a lost reply (kernel dead, restarted, or busy with
// another cell) ends in `NoReply`, and a reply arriving after that is dropped.
// Arrays in a result arrive as array traits do: {dtype, shape} in the JSON, the
// bytes as the message's binary buffers (`buffer_paths` says where each goes);
// they are decoded here, like array traits at the model boundary.

import type { AnyModel } from "@anywidget/types";
import { type CommandName, type Commands as Declared, HEARTBEAT_S, type WireState } from "../generated/contract";
import { decodeFloat, isPayload } from "./arrays";

export const REQUEST = "exbert-command";
export const REPLY = "exbert-reply";
export const WORKING = "exbert-working";
/** Silence after which a command is given up: ten heartbeats missed, not a slow command. */
export const NO_REPLY_MS = 10 * HEARTBEAT_S * 1000;

export type Args<N extends CommandName> = Declared[N]["args"];
export type Result<N extends CommandName> = Declared[N]["result"];

export type Reply = (
  | { kind: typeof REPLY; id: string; ok: true; result: unknown }
  | { kind: typeof REPLY; id: string; ok: false; error: { type: string; message: string } }
) & { buffer_paths?: Array<Array<string | number>> };

type Buffer = DataView | ArrayBuffer | ArrayBufferView;

/** The kernel refused or failed a command; `type` is the Python exception's class name. */
export class CommandError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

/** A newer request of the same command replaced this one. */
export class Superseded extends Error {
  constructor(name: string) {
    super(`${name}: superseded by a newer request`);
    this.name = "Superseded";
  }
}

/** No reply and no heartbeat for the command for `NO_REPLY_MS`: the kernel is gone or stuck. */
export class NoReply extends CommandError {
  constructor(name: string, ms: number) {
    super(
      "NoReply",
      `${name}: no reply from the kernel after ${Math.round(ms / 1000)} s — is it still running, or ` +
        "busy with another cell? " +
        "If it was restarted or stopped, run the cell again.",
    );
    this.name = "NoReply";
  }
}

/** What a panel shows for a command that failed: its own message, or what went wrong. */
export function failureText(e: unknown): string {
  return e instanceof CommandError ? e.message : `the kernel did not answer: ${String(e)}`;
}

interface Request {
  id: string;
  args: unknown;
  resolve(result: unknown): void;
  reject(error: Error): void;
}

interface Lane {
  inFlight: Request | null; // sent, no reply yet
  dropped: boolean; // the one in flight was superseded: its reply is ignored
  waiting: Request | null; // the newest request, sent when the kernel is free
  timer: ReturnType<typeof setTimeout> | null; // gives up on the one in flight
}

let counter = 0;
const session = Math.random().toString(36).slice(2, 10);

export class CommandChannel {
  private lanes = new Map<CommandName, Lane>();
  private onMessage = (msg: unknown, buffers?: readonly Buffer[]) => this.receive(msg, buffers ?? []);

  constructor(
    private model: Pick<AnyModel<WireState>, "on" | "off" | "send">,
    private noReplyMs = NO_REPLY_MS,
  ) {
    model.on("msg:custom", this.onMessage);
  }

  /** Run command `name` in the kernel; resolves with its result. */
  invoke<N extends CommandName>(name: N, args: Args<N>): Promise<Result<N>> {
    const lane = this.lane(name);
    return new Promise<Result<N>>((resolve, reject) => {
      const request: Request = {
        id: `${session}-${++counter}`,
        args,
        resolve: resolve as (r: unknown) => void,
        reject,
      };
      lane.waiting?.reject(new Superseded(name));
      lane.waiting = request;
      if (lane.inFlight && !lane.dropped) {
        lane.dropped = true;
        lane.inFlight.reject(new Superseded(name));
      }
      if (!lane.inFlight) this.sendNext(name, lane);
    });
  }

  /** Stop listening; whatever is pending is rejected. */
  dispose(): void {
    this.model.off("msg:custom", this.onMessage);
    for (const [name, lane] of this.lanes) {
      if (lane.timer !== null) clearTimeout(lane.timer);
      lane.waiting?.reject(new Superseded(name));
      if (lane.inFlight && !lane.dropped) lane.inFlight.reject(new Superseded(name));
    }
    this.lanes.clear();
  }

  private lane(name: CommandName): Lane {
    let lane = this.lanes.get(name);
    if (!lane) {
      lane = { inFlight: null, dropped: false, waiting: null, timer: null };
      this.lanes.set(name, lane);
    }
    return lane;
  }

  private sendNext(name: CommandName, lane: Lane): void {
    const next = lane.waiting;
    lane.waiting = null;
    lane.inFlight = next;
    lane.dropped = false;
    this.arm(name, lane);
    if (next) this.model.send({ kind: REQUEST, id: next.id, name, args: next.args });
  }

  /** (Re)start the wait for the request in flight; none in flight, none to wait for. */
  private arm(name: CommandName, lane: Lane): void {
    if (lane.timer !== null) clearTimeout(lane.timer);
    lane.timer = null;
    const request = lane.inFlight;
    if (!request) return;
    lane.timer = setTimeout(() => {
      lane.timer = null;
      if (lane.inFlight !== request) return;
      if (!lane.dropped) request.reject(new NoReply(name, this.noReplyMs));
      this.sendNext(name, lane); // a late reply finds no request in flight with its id: dropped
    }, this.noReplyMs);
  }

  private receive(msg: unknown, buffers: readonly Buffer[]): void {
    if (isWorking(msg)) {
      for (const [name, lane] of this.lanes) if (lane.inFlight?.id === msg.id) this.arm(name, lane);
      return;
    }
    if (!isReply(msg)) return;
    for (const [name, lane] of this.lanes) {
      const request = lane.inFlight;
      if (!request || request.id !== msg.id) continue;
      if (!lane.dropped) {
        if (!msg.ok) request.reject(new CommandError(msg.error.type, msg.error.message));
        else {
          try {
            request.resolve(decodeResult(msg.result, msg.buffer_paths ?? [], buffers));
          } catch (e) {
            request.reject(new CommandError("ViewError", `the view cannot read the reply: ${String(e)}`));
          }
        }
      }
      this.sendNext(name, lane);
      return;
    }
  }
}

/** The result with its buffers put back at their paths and every array payload decoded. */
export function decodeResult(
  result: unknown,
  paths: ReadonlyArray<ReadonlyArray<string | number>>,
  buffers: readonly Buffer[],
): unknown {
  const root = { result };
  paths.forEach((path, i) => {
    // Paths start at the reply's "result" key (the kernel lifted them from the whole reply).
    let obj: Record<string | number, unknown> = root;
    for (const key of path.slice(0, -1)) obj = obj[key] as Record<string | number, unknown>;
    obj[path[path.length - 1]] = buffers[i];
  });
  return decodeArrays(root.result);
}

function decodeArrays(value: unknown): unknown {
  if (isPayload(value)) return decodeFloat(value);
  if (Array.isArray(value)) return value.map(decodeArrays);
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = decodeArrays(v);
    return out;
  }
  return value;
}

function isWorking(msg: unknown): msg is { kind: typeof WORKING; id: string } {
  return typeof msg === "object" && msg !== null && (msg as { kind?: unknown }).kind === WORKING;
}

function isReply(msg: unknown): msg is Reply {
  return typeof msg === "object" && msg !== null && (msg as { kind?: unknown }).kind === REPLY;
}
