"""The one error type of the chat core, shared by the HTTP and WebSocket sides."""


class ChatError(Exception):
    """A request the chat refuses, with a stable machine code and a human detail.

    Codes are listed in docs/protocol.md; the WebSocket side sends them in an
    error frame, the HTTP side in a JSON error body with `http_status`.
    """

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        http_status: int = 400,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.http_status = http_status
        # Seconds after which the same request may succeed (rate limits).
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, str | int]:
        error: dict[str, str | int] = {"code": self.code, "detail": self.detail}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return error
