// Generated from shared/src/lib.rs by shared/src/typescript.rs: do not edit.
// Regenerate: SHADDOCK_UPDATE_TYPES=1 cargo test -p shared typescript

export type QueryEntryRequest = { uid: string, };

export type QueryEntryResponse = { code: number, host?: string | null, port?: number | null, };

export type EnterRequest = { username: string, rid: string, };

export type EnterResponse = { users: Array<string>, } | { code: number, message: string, } | { code: number, error: boolean, };

export type SendRequest = { rid: string, content: string, from: string, target: string, };

export type SendResponse = { code: number, error: boolean, } | Record<symbol, never>;

export type OnChat = { msg: string, from: string, target: string, };

export type OnSystem = { msg: string, };

export type UserEvent = { route: string, user: string, };

/** Request body by route. */
export type Requests = {
  "gate.gateHandler.queryEntry": QueryEntryRequest;
  "connector.entryHandler.enter": EnterRequest;
  "chat.chatHandler.send": SendRequest;
};

/** Response body by route. */
export type Responses = {
  "gate.gateHandler.queryEntry": QueryEntryResponse;
  "connector.entryHandler.enter": EnterResponse;
  "chat.chatHandler.send": SendResponse;
};

/** Push body by route. */
export type Pushes = {
  "onChat": OnChat;
  "onAdd": UserEvent;
  "onLeave": UserEvent;
  "onSystem": OnSystem;
};
