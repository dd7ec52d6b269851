/* Room presence as the page knows it, kept as docs/protocol.md says: the
   roster arrives in pages ("presence" frames), then changes
   ("presence_change"); each carries the room's presence version, and what is
   newest per user wins, whatever order frames from different server processes
   arrive in. chat/tests/roster.py keeps the same view for the tests.
   Defines window.chat.createRoster. */
(function () {
  "use strict";

  const chat = (window.chat = window.chat || {});

  chat.createRoster = function createRoster() {
    let known = new Map(); // name -> {present, version}
    let floor = -1;        // changes at or below it are already in the first page
    let count = 0;         // present in all, as the server last said
    let next = null;       // the name to ask the next page after, or null

    // Names compare by code point, as the server orders them (JavaScript's
    // own < compares UTF-16 units, which differs beyond the BMP).
    function compare(a, b) {
      const x = Array.from(a, (c) => c.codePointAt(0));
      const y = Array.from(b, (c) => c.codePointAt(0));
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
      return x.length - y.length;
    }

    function inPage(name, frame) {
      return (frame.after == null || compare(name, frame.after) > 0) &&
        (frame.next == null || compare(name, frame.next) <= 0);
    }

    // Take a "presence" or "presence_change" frame.
    function apply(frame) {
      if (frame.type === "presence") {
        if (frame.after == null) {
          // A first page is a fresh view: whatever was known is replaced.
          known = new Map();
          floor = frame.version;
        }
        for (const name of known.keys()) {
          if (inPage(name, frame)) known.set(name, { present: false, version: frame.version });
        }
        for (const name of frame.users || []) known.set(name, { present: true, version: frame.version });
        next = frame.next ?? null;
      } else if (frame.type === "presence_change") {
        for (const change of frame.changes || []) {
          const entry = known.get(change.user);
          if (change.version > Math.max(floor, entry ? entry.version : -1)) {
            known.set(change.user, { present: !!change.present, version: change.version });
          }
        }
      } else {
        return;
      }
      if (typeof frame.count === "number") count = frame.count;
    }

    function users() {
      return Array.from(known).filter(([, e]) => e.present).map(([name]) => name).sort(compare);
    }

    return { apply, users, count: () => count, next: () => next };
  };
})();
