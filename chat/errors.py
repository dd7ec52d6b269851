"""The one error type of the chat core, shared by the HTTP and WebSocket sides."""


class ChatError(Exception):
    """A request the chat refuses, with a stable machine code and a human detail.

    Codes are listed in docs/protocol.md; the WebSocket side sends them in an
    error frame, the HTTP side in a JSON error body with `http_status`.
    """

    def __init__(self, code: str, detail: str, *, http_status: int = 400) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.http_status = http_status

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail}
