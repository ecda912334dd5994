"""Chat rooms: connect to `/chat?room=R&user=U`; every text message is broadcast to the room
(the sender included) and the room is told when someone joins or leaves.

The same function as the Rust `chat` sample, byte for byte on the wire.
"""

import json
from typing import Any, Optional

from wit_world import exports
from wit_world.exports.websocket_connection import (
    Accept,
    ConnectRequest,
    Decision,
    Decision_Accept,
    Decision_Reject,
    Reject,
)
from wit_world.imports import connections
from wit_world.imports.types import Message as WsMessage, Message_Text


def to_json(value: Any) -> str:
    # Compact and UTF-8, as serde_json writes it, so both samples send the same bytes.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def query_param(request: ConnectRequest, name: str) -> Optional[str]:
    """The first value of `name` in the query, like the Rust SDK's `query_param`."""
    return next((value for key, value in request.query if key == name), None)


def publish(room: str, event: dict) -> None:
    connections.publish(room, Message_Text(to_json(event)), None)


def member_of(id: str) -> Optional[dict]:
    """Who the connection is: the `{"room":..,"user":..}` attachment set by on_connect.

    Raises when the attachment cannot be read or is not a member record.
    """
    attachment = connections.get_attachment(id)
    if attachment is None:
        return None
    member = json.loads(attachment)
    if not isinstance(member, dict) or not isinstance(member.get("room"), str) or not isinstance(member.get("user"), str):
        raise ValueError("the attachment is not a chat member")
    return member


class WebsocketConnection(exports.WebsocketConnection):
    def on_connect(self, request: ConnectRequest) -> Decision:
        room = query_param(request, "room")
        user = query_param(request, "user")
        if not room or not user:
            return Decision_Reject(Reject(status=400, reason="connect with ?room=ROOM&user=NAME"))
        # Announce before accepting: the newcomer is not in the group yet, so everyone else
        # hears about the join and the newcomer does not hear about itself.
        publish(room, {"type": "join", "user": user})
        attachment = to_json({"room": room, "user": user}).encode()
        return Decision_Accept(Accept(subprotocol=None, groups=[room], attachment=attachment))


class Message(exports.Message):
    def on_message(self, id: str, message: WsMessage) -> None:
        # Binary messages have no place in a text chat; ignore them rather than guess.
        if not isinstance(message, Message_Text):
            return
        try:
            member = member_of(id)
        except Exception as error:
            connections.reply(Message_Text(to_json({"type": "error", "text": str(error)})))
            return
        if member is None:
            connections.reply(Message_Text(to_json({"type": "error", "text": "no room joined"})))
            return
        publish(member["room"], {"type": "message", "user": member["user"], "text": message.value})


class Close(exports.Close):
    def on_close(self, id: str, code: int, reason: str) -> None:
        # The closed connection has already left its groups, but its attachment is still
        # readable, so the room can be told who left.
        try:
            member = member_of(id)
        except Exception:
            return
        if member is not None:
            publish(member["room"], {"type": "leave", "user": member["user"]})


class Error(exports.Error):
    def on_error(self, id: str, message: str) -> None:
        pass
