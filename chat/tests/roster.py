"""A client's view of a room's presence, kept as docs/protocol.md tells clients
to keep it (chat/static/chat/presence.js does the same in the page): what the
tests of every layer compare with who is really there."""


class Roster:
    def __init__(self) -> None:
        self.known: dict[str, tuple[bool, int]] = {}  # name -> (present, version)
        self.floor = -1  # changes at or below it are already in the first page
        self.count: int | None = None

    @property
    def users(self) -> list[str]:
        return sorted(name for name, (present, _v) in self.known.items() if present)

    def apply(self, frame: dict) -> bool:
        """Take a `presence` or `presence_change` frame; False for any other."""
        if frame.get("type") == "presence":
            after, last = frame["after"], frame["next"]
            if after is None:  # a first page is a fresh view
                self.known, self.floor = {}, frame["version"]
            for name, (_present, _version) in list(self.known.items()):
                if (after is None or name > after) and (last is None or name <= last):
                    self.known[name] = (False, frame["version"])
            for name in frame["users"]:
                self.known[name] = (True, frame["version"])
        elif frame.get("type") == "presence_change":
            for change in frame["changes"]:
                _present, known = self.known.get(change["user"], (False, -1))
                if change["version"] > max(self.floor, known):
                    self.known[change["user"]] = (change["present"], change["version"])
        else:
            return False
        self.count = frame["count"]
        return True
