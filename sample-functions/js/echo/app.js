// Echo: sends every message back to its sender, text as text and binary as binary.

import { reply } from "wsfn:function/connections@0.1.0";

// Everyone is welcome: the Rust SDK's default.
export const websocketConnection = {
  onConnect(_request) {
    return { tag: "accept", val: { subprotocol: undefined, groups: [], attachment: undefined } };
  },
};

export const message = {
  onMessage(_id, message) {
    reply(message);
  },
};

export const close = {
  onClose(_id, _code, _reason) {},
};

export const error = {
  onError(_id, _message) {},
};
