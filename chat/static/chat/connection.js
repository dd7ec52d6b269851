/* Chat room connection: everything that talks to the server and never the page.
   Owns the WebSocket lifecycle (connect, handshake timeout, backoff, final
   closes), resume and gap tracking by prev_id, the HTTP polling fallback and
   the HTTP GET/POST helpers for the messages API. Implements docs/protocol.md.
   What it receives goes to the handlers given by room.js.
   Defines window.chat.createConnection and window.chat.backoff. */
(function () {
  "use strict";

  const chat = (window.chat = window.chat || {});

  const FINAL_CLOSE_CODES = {
    4401: "Signed out — log in again to chat.",
    4404: "This room does not exist.",
    4429: "Too many chat tabs open — close some, then reload this one.",
  };

  function backoff(attempt, capMs) {
    // Exponential from 500 ms, capped, with "equal jitter" so clients spread out.
    const base = Math.min(capMs, 500 * 2 ** attempt);
    return base / 2 + Math.random() * (base / 2);
  }

  function maxId(a, b) {
    if (a == null) return b ?? null;
    if (b == null) return a;
    return Math.max(a, b);
  }

  chat.backoff = backoff;

  // config: the #chat-config object (ws_path, api_url, last_id, poll_interval_ms).
  // handlers: status(state, text), message(msg), presence(frame) for presence
  //   pages and changes, typing(user),
  //   error(frame) for non-final error frames, opened(), closed() (after the
  //   socket went away, before reconnecting), isKnown(id), csrfToken().
  chat.createConnection = function createConnection(config, handlers) {
    const nextAfter = new Map(); // prev_id -> id from live frames, to close a gap once it is filled
    let lastContiguousId = config.last_id ?? null;
    let state = "connecting";

    let ws = null;
    let everOpened = false;     // has any socket opened on this page?
    let openedAt = 0;
    let finished = false;       // a final close: no reconnecting, no polling
    let wsAttempts = 0;
    let reconnectTimer = null;
    let lastErrorDetail = null; // detail of the error frame that precedes a final close
    let resuming = false;
    let resumeAgain = false;    // a gap was seen while a resume was running
    let resumeFailures = 0;     // resume_failed answers in a row, for backoff

    let polling = false;
    let pollTimer = null;
    let pollGeneration = 0;     // lets a stale in-flight poll discard its result

    function setState(next, text) {
      state = next;
      handlers.status(next, text);
    }

    /* ---------- HTTP ---------- */

    function apiUrl(params) {
      const url = new URL(config.api_url, location.href);
      for (const [key, value] of Object.entries(params || {})) url.searchParams.set(key, String(value));
      return url.toString();
    }

    // GET a page of messages; resolves to the Response.
    function getMessages(params) {
      return fetch(apiUrl(params), { credentials: "same-origin", headers: { Accept: "application/json" } });
    }

    // POST one message; resolves to the Response.
    function postMessage(payload) {
      return fetch(config.api_url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": handlers.csrfToken() },
        body: JSON.stringify(payload),
      });
    }

    /* ---------- ordering and gaps ---------- */

    // A message is contiguous when the one before it is already accounted for.
    function noteLiveMessage(msg) {
      const prev = msg.prev_id;
      if (prev !== null) nextAfter.set(prev, msg.id);
      const covered = prev === null || (lastContiguousId !== null && prev <= lastContiguousId);
      if (covered) {
        markContiguous(msg.id);
      } else if (!handlers.isKnown(prev)) {
        requestResume();
      }
      // else: prev arrived after an earlier gap; markContiguous catches up once it is filled.
    }

    // Everything up to id is present; then follow live messages chained by prev_id.
    function markContiguous(id) {
      lastContiguousId = maxId(lastContiguousId, id);
      while (lastContiguousId !== null && nextAfter.has(lastContiguousId)) {
        lastContiguousId = nextAfter.get(lastContiguousId);
      }
    }

    function requestResume(after) {
      if (!isSocketOpen()) return; // the next open (or the next poll) resumes anyway
      if (resuming && after === undefined) {
        resumeAgain = true;
        return;
      }
      resuming = true;
      sendFrame({ type: "resume", after: after ?? lastContiguousId ?? 0 });
    }

    function onResumeDone(frame) {
      resuming = false;
      resumeFailures = 0;
      markContiguous(frame.last_id);
      if (frame.has_more) {
        requestResume(frame.last_id);
      } else if (resumeAgain) {
        resumeAgain = false;
        requestResume(lastContiguousId ?? 0);
      }
    }

    /* ---------- WebSocket ---------- */

    function isSocketOpen() {
      return ws !== null && ws.readyState === WebSocket.OPEN;
    }

    function sendFrame(frame) {
      if (!isSocketOpen()) return false;
      ws.send(JSON.stringify(frame));
      return true;
    }

    function connect() {
      reconnectTimer = null;
      const url = (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + config.ws_path;
      let socket;
      try {
        socket = new WebSocket(url);
      } catch (err) {
        onSocketClose({ code: 1006 });
        return;
      }
      ws = socket;
      lastErrorDetail = null;
      // A handshake that hangs would leave us "connecting" forever; give up and fall back.
      const openTimer = setTimeout(() => socket.readyState === WebSocket.CONNECTING && socket.close(), 8000);
      socket.addEventListener("open", () => {
        clearTimeout(openTimer);
        onSocketOpen();
      });
      socket.addEventListener("message", (event) => onFrame(event.data));
      socket.addEventListener("close", (event) => {
        clearTimeout(openTimer);
        if (ws === socket) onSocketClose(event);
      });
    }

    function onSocketOpen() {
      everOpened = true;
      openedAt = Date.now();
      stopPolling();
      setState("live");
      resuming = false;
      resumeAgain = false;
      requestResume(lastContiguousId ?? 0);
      handlers.opened(); // messages waiting for a retry go out now
    }

    function onSocketClose(event) {
      ws = null;
      resuming = false;
      resumeAgain = false;
      if (finished) return;
      // Reset the backoff only after a socket that lasted: one that opens and
      // drops at once (server error) must not make us hammer the server.
      if (openedAt && Date.now() - openedAt > 5000) wsAttempts = 0;
      openedAt = 0;
      handlers.closed(); // sends waiting for an echo on this socket are retried elsewhere

      if (event.code in FINAL_CLOSE_CODES) {
        shutDown(lastErrorDetail || FINAL_CLOSE_CODES[event.code]);
        return;
      }
      if (!everOpened) {
        // No WebSocket here (e.g. runserver): poll, and keep probing slowly.
        if (!polling) startPolling();
        reconnectTimer = setTimeout(connect, backoff(wsAttempts++, 30000));
        return;
      }
      // Once live, do not poll: the resume after reconnecting fetches what was missed.
      setState("reconnecting");
      reconnectTimer = setTimeout(connect, backoff(wsAttempts++, 10000));
    }

    function shutDown(text) {
      finished = true;
      stopPolling();
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      setState("closed", text);
    }

    function onFrame(data) {
      let frame;
      try {
        frame = JSON.parse(data);
      } catch (err) {
        return;
      }
      if (!frame || typeof frame !== "object") return;
      switch (frame.type) {
        case "message": onMessageFrame(frame); break;
        case "resume_done": onResumeDone(frame); break;
        case "presence":
        case "presence_change": handlers.presence(frame); break;
        case "typing": handlers.typing(frame.user); break;
        case "error": onErrorFrame(frame); break;
        default: break; // "hello" and anything newer need nothing from us
      }
    }

    function onMessageFrame(msg) {
      const replayed = msg.prev_id === undefined;
      handlers.message(msg);
      if (replayed) {
        // Resume replays arrive in id order with no gap.
        if (resuming) markContiguous(msg.id);
      } else {
        noteLiveMessage(msg);
      }
    }

    function onErrorFrame(frame) {
      const final = ["not_authenticated", "room_not_found", "too_many_sockets"].includes(frame.code);
      if (final) {
        lastErrorDetail = frame.detail || null; // shown when the close that follows arrives
        return;
      }
      if (frame.code === "resume_failed") {
        // The server could not read history: ask again later, or gaps stay open.
        resuming = false;
        resumeFailures += 1;
        setTimeout(() => requestResume(), backoff(resumeFailures, 10000));
        return;
      }
      if (frame.code === "presence_rate_limited" || frame.code === "presence_failed") {
        handlers.presenceRefused();
        return;
      }
      if (frame.code === "resume_rate_limited") {
        // Resumed too often: ask again when the server says it will answer.
        resuming = false;
        setTimeout(() => requestResume(), (frame.retry_after || 1) * 1000);
        return;
      }
      handlers.error(frame);
    }

    /* ---------- polling fallback ---------- */

    function startPolling() {
      polling = true;
      setState("polling");
      pollOnce();
    }

    function stopPolling() {
      polling = false;
      pollGeneration += 1;
      clearTimeout(pollTimer);
      pollTimer = null;
    }

    async function pollOnce() {
      const generation = pollGeneration;
      let again = false;
      try {
        const response = await getMessages({ after: lastContiguousId ?? 0 });
        if (generation !== pollGeneration) return;
        if (response.status === 401 || response.status === 404) {
          const data = await response.json().catch(() => null);
          const detail = data && data.error && data.error.detail;
          shutDown(detail || FINAL_CLOSE_CODES[response.status === 401 ? 4401 : 4404]);
          return;
        }
        if (response.ok) {
          const data = await response.json();
          if (generation !== pollGeneration) return;
          // "after" pages are contiguous, oldest first.
          for (const msg of data.messages || []) {
            handlers.message(msg);
            markContiguous(msg.id);
          }
          again = Boolean(data.has_more);
        }
      } catch (err) {
        // Network trouble: just try again on the next tick.
      }
      if (generation !== pollGeneration || !polling) return;
      pollTimer = setTimeout(pollOnce, again ? 0 : config.poll_interval_ms || 3000);
    }

    /* ---------- start ---------- */

    function start() {
      setState("connecting");
      connect();
    }

    const isLive = () => state === "live";
    return { start, isLive, send: sendFrame, noteLiveMessage, getMessages, postMessage };
  };
})();
