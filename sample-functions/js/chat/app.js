// Chat rooms: connect to `/chat?room=R&user=U`; every text message is broadcast to the room
// (the sender included) and the room is told when someone joins or leaves.
//
// The same function as the Rust `chat` sample, byte for byte on the wire.

import { getAttachment, publish, reply } from "wsfn:function/connections@0.1.0";

const utf8 = { encode: (text) => new TextEncoder().encode(text), decode: (bytes) => new TextDecoder().decode(bytes) };

// JSON.stringify writes compact UTF-8 JSON like serde_json, keeping the key order given here.
const text = (value) => ({ tag: "text", val: JSON.stringify(value) });

/** The first value of `name` in the query, like the Rust SDK's `query_param`. */
function queryParam(request, name) {
  const pair = request.query.find(([key]) => key === name);
  return pair === undefined ? undefined : pair[1];
}

/**
 * Who the connection is: the `{"room":..,"user":..}` attachment set by onConnect, or
 * undefined when there is none. Throws when it cannot be read or is not a member record.
 */
function memberOf(id) {
  const attachment = getAttachment(id);
  if (attachment === undefined || attachment === null) {
    return undefined;
  }
  const member = JSON.parse(utf8.decode(attachment));
  if (typeof member?.room !== "string" || typeof member?.user !== "string") {
    throw new Error("the attachment is not a chat member");
  }
  return member;
}

export const websocketConnection = {
  onConnect(request) {
    const room = queryParam(request, "room");
    const user = queryParam(request, "user");
    if (!room || !user) {
      return { tag: "reject", val: { status: 400, reason: "connect with ?room=ROOM&user=NAME" } };
    }
    // Announce before accepting: the newcomer is not in the group yet, so everyone else
    // hears about the join and the newcomer does not hear about itself.
    publish(room, text({ type: "join", user }), undefined);
    return {
      tag: "accept",
      val: {
        subprotocol: undefined,
        groups: [room],
        attachment: utf8.encode(JSON.stringify({ room, user })),
      },
    };
  },
};

export const message = {
  onMessage(id, message) {
    // Binary messages have no place in a text chat; ignore them rather than guess.
    if (message.tag !== "text") {
      return;
    }
    let member;
    try {
      member = memberOf(id);
    } catch (error) {
      reply(text({ type: "error", text: String(error?.message ?? error) }));
      return;
    }
    if (member === undefined) {
      reply(text({ type: "error", text: "no room joined" }));
      return;
    }
    publish(member.room, text({ type: "message", user: member.user, text: message.val }), undefined);
  },
};

export const close = {
  onClose(id, _code, _reason) {
    // The closed connection has already left its groups, but its attachment is still
    // readable, so the room can be told who left.
    let member;
    try {
      member = memberOf(id);
    } catch {
      return;
    }
    if (member !== undefined) {
      publish(member.room, text({ type: "leave", user: member.user }), undefined);
    }
  },
};

export const error = {
  onError(_id, _message) {},
};
