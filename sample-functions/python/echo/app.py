"""Echo: sends every message back to its sender, text as text and binary as binary."""

from wit_world import exports
from wit_world.exports.websocket_connection import Accept, ConnectRequest, Decision, Decision_Accept
from wit_world.imports import connections
from wit_world.imports.types import Message as WsMessage


class WebsocketConnection(exports.WebsocketConnection):
    def on_connect(self, request: ConnectRequest) -> Decision:
        # Everyone is welcome: the Rust SDK's default.
        return Decision_Accept(Accept(subprotocol=None, groups=[], attachment=None))


class Message(exports.Message):
    def on_message(self, id: str, message: WsMessage) -> None:
        connections.reply(message)


class Close(exports.Close):
    def on_close(self, id: str, code: int, reason: str) -> None:
        pass


class Error(exports.Error):
    def on_error(self, id: str, message: str) -> None:
        pass
