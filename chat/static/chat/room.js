/* Chat room client: live over WebSocket, HTTP polling as a fallback.
   Implements docs/protocol.md. Message text is only ever set with textContent. */
(function () {
  "use strict";

  const configEl = document.getElementById("chat-config");
  if (!configEl) return;
  const config = JSON.parse(configEl.textContent);

  const els = {
    list: document.getElementById("messages"),
    status: document.getElementById("connection-status"),
    presence: document.getElementById("presence"),
    typing: document.getElementById("typing"),
    form: document.getElementById("message-form"),
    input: document.getElementById("message-input"),
    sendError: document.getElementById("send-error"),
    loadOlder: document.getElementById("load-older"),
  };

  const ECHO_TIMEOUT_MS = 10000;
  const TYPING_SEND_INTERVAL_MS = 2000;
  const TYPING_SHOW_MS = 3000;
  const FINAL_CLOSE_CODES = { 4401: "Signed out — log in again to chat.", 4404: "This room does not exist." };
  const STATUS_TEXT = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    polling: "Live updates unavailable — refreshing every few seconds",
    closed: "Disconnected",
  };

  const known = new Map();    // message id -> <li>
  const pending = new Map();  // client_id -> {clientId, body, li, via, timer, attempts}
  const typers = new Map();   // username -> hide timer
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
  let lastTypingSent = 0;

  let polling = false;
  let pollTimer = null;
  let pollGeneration = 0;     // lets a stale in-flight poll discard its result

  /* ---------- small helpers ---------- */

  function backoff(attempt, capMs) {
    // Exponential from 500 ms, capped, with "equal jitter" so clients spread out.
    const base = Math.min(capMs, 500 * 2 ** attempt);
    return base / 2 + Math.random() * (base / 2);
  }

  function newClientId() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    if (window.crypto) crypto.getRandomValues(bytes);
    else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function csrfToken() {
    const input = els.form.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  function apiUrl(params) {
    const url = new URL(config.api_url, location.href);
    for (const [key, value] of Object.entries(params || {})) url.searchParams.set(key, String(value));
    return url.toString();
  }

  function maxId(a, b) {
    if (a == null) return b ?? null;
    if (b == null) return a;
    return Math.max(a, b);
  }

  function codePointLength(text) {
    return Array.from(text).length; // the server counts characters, not UTF-16 units
  }

  /* ---------- status ---------- */

  function setState(next, text) {
    state = next;
    els.status.dataset.state = next;
    els.status.textContent = text || STATUS_TEXT[next];
    document.body.dataset.chatState = next;
  }

  function showSendError(text) {
    els.sendError.textContent = text;
    els.sendError.hidden = false;
  }

  function hideSendError() {
    els.sendError.hidden = true;
    els.sendError.textContent = "";
  }

  /* ---------- rendering ---------- */

  function formatTime(date) {
    return String(date.getHours()).padStart(2, "0") + ":" + String(date.getMinutes()).padStart(2, "0");
  }

  function localizeTime(timeEl) {
    const date = new Date(timeEl.dateTime || timeEl.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) return;
    timeEl.textContent = formatTime(date);
    timeEl.title = date.toLocaleString();
  }

  function buildMessageElement(author, body, createdAt) {
    const li = document.createElement("li");
    li.className = "message";
    li.dataset.author = author;
    const authorEl = document.createElement("span");
    authorEl.className = "author";
    authorEl.textContent = author;
    const timeEl = document.createElement("time");
    timeEl.setAttribute("datetime", createdAt);
    localizeTime(timeEl);
    const bodyEl = document.createElement("span");
    bodyEl.className = "body";
    bodyEl.textContent = body;
    li.append(authorEl, document.createTextNode(" "), timeEl, document.createTextNode(" "), bodyEl);
    return li;
  }

  function isAtBottom() {
    const list = els.list;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }

  function scrollToBottom() {
    els.list.scrollTop = els.list.scrollHeight;
  }

  // Place li by id: walk back from the end (the usual case is appending),
  // skipping pending/failed items, which have no id and stay at the bottom.
  function insertSorted(li, id) {
    let child = els.list.lastElementChild;
    while (child) {
      const childId = child.dataset.id ? Number(child.dataset.id) : null;
      if (childId !== null && childId < id) {
        child.after(li);
        return;
      }
      child = child.previousElementSibling;
    }
    els.list.prepend(li);
  }

  // Render a stored message unless it is already shown; settles a matching pending one.
  function addMessage(msg) {
    const stick = isAtBottom();
    const own = resolvePending(msg);
    clearTyper(msg.author);
    if (!known.has(msg.id)) {
      const li = buildMessageElement(msg.author, msg.body, msg.created_at);
      li.dataset.id = String(msg.id);
      known.set(msg.id, li);
      insertSorted(li, msg.id);
    }
    if (stick || own) scrollToBottom();
  }

  function oldestKnownId() {
    let oldest = null;
    for (const id of known.keys()) if (oldest === null || id < oldest) oldest = id;
    return oldest;
  }

  /* ---------- ordering and gaps ---------- */

  // A message is contiguous when the one before it is already accounted for.
  function noteLiveMessage(msg) {
    const prev = msg.prev_id;
    if (prev !== null) nextAfter.set(prev, msg.id);
    const covered = prev === null || (lastContiguousId !== null && prev <= lastContiguousId);
    if (covered) {
      markContiguous(msg.id);
    } else if (!known.has(prev)) {
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
    // Messages waiting for a retry go out now instead of after their backoff.
    for (const entry of pending.values()) if (entry.via === "waiting") transmit(entry);
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
    // Sends that were waiting for an echo on this socket are retried elsewhere.
    for (const entry of pending.values()) if (entry.via === "ws") transmit(entry);

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
      case "message":
        onMessageFrame(frame);
        break;
      case "resume_done":
        onResumeDone(frame);
        break;
      case "presence":
        renderPresence(frame.users || []);
        break;
      case "typing":
        onTypingFrame(frame.user);
        break;
      case "error":
        onErrorFrame(frame);
        break;
      default:
        break; // "hello" and anything newer need nothing from us
    }
  }

  function onMessageFrame(msg) {
    const replayed = msg.prev_id === undefined;
    addMessage(msg);
    if (replayed) {
      // Resume replays arrive in id order with no gap.
      if (resuming) markContiguous(msg.id);
    } else {
      noteLiveMessage(msg);
    }
  }

  function onErrorFrame(frame) {
    const final = frame.code === "not_authenticated" || frame.code === "room_not_found";
    if (final) {
      lastErrorDetail = frame.detail || null; // shown when the close that follows arrives
      return;
    }
    const entry = frame.client_id ? pending.get(frame.client_id) : null;
    if (entry && frame.code === "unavailable") {
      showSendError(frame.detail);
      scheduleRetry(entry); // the server asks for a retry with the same client_id
    } else if (entry) {
      failPending(entry, frame.detail || "The message was not sent.");
    } else if (frame.detail) {
      showSendError(frame.detail);
    }
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
      const response = await fetch(apiUrl({ after: lastContiguousId ?? 0 }), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
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
          addMessage(msg);
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

  /* ---------- sending ---------- */

  function renderPending(entry) {
    const li = buildMessageElement(config.user, entry.body, new Date().toISOString());
    li.classList.add("pending");
    li.dataset.clientId = entry.clientId;
    els.list.append(li);
    scrollToBottom();
    return li;
  }

  function resolvePending(msg) {
    const entry = msg.client_id ? pending.get(msg.client_id) : null;
    if (!entry || msg.author !== config.user) return false;
    clearTimeout(entry.timer);
    pending.delete(entry.clientId);
    entry.li.remove();
    hideSendError();
    return true;
  }

  function failPending(entry, detail) {
    clearTimeout(entry.timer);
    pending.delete(entry.clientId);
    entry.li.classList.remove("pending");
    entry.li.classList.add("failed");
    const note = document.createElement("span");
    note.className = "error";
    note.textContent = detail;
    entry.li.append(document.createTextNode(" "), note);
    showSendError(detail);
  }

  function scheduleRetry(entry) {
    clearTimeout(entry.timer);
    entry.via = "waiting";
    entry.timer = setTimeout(() => transmit(entry), backoff(entry.attempts++, 30000));
  }

  // Send over the socket when it is open, otherwise over HTTP. Retries reuse client_id.
  function transmit(entry) {
    clearTimeout(entry.timer);
    if (!pending.has(entry.clientId)) return;
    if (state === "live" && sendFrame({ type: "message", body: entry.body, client_id: entry.clientId })) {
      entry.via = "ws";
      entry.timer = setTimeout(() => transmit(entry), ECHO_TIMEOUT_MS);
    } else {
      postMessage(entry);
    }
  }

  async function postMessage(entry) {
    entry.via = "http";
    let response;
    try {
      response = await fetch(config.api_url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ body: entry.body, client_id: entry.clientId }),
      });
    } catch (err) {
      scheduleRetry(entry); // offline or server unreachable: keep it pending
      return;
    }
    if (!pending.has(entry.clientId) || entry.via !== "http") return; // settled meanwhile
    const data = await response.json().catch(() => null);
    if (response.ok && data) {
      addMessage(data);
      if (data.prev_id !== undefined) noteLiveMessage(data);
    } else if (response.status >= 400 && response.status < 500) {
      failPending(entry, (data && data.error && data.error.detail) || `The message was not sent (${response.status}).`);
    } else {
      scheduleRetry(entry); // 5xx, including 503 unavailable
    }
  }

  function sendFromInput() {
    const body = els.input.value.trim();
    if (!body) {
      showSendError("Type a message first.");
      return;
    }
    if (codePointLength(body) > config.max_body_length) {
      showSendError(`Messages can be at most ${config.max_body_length} characters.`);
      return;
    }
    const entry = { clientId: newClientId(), body, li: null, via: null, timer: null, attempts: 0 };
    entry.li = renderPending(entry);
    pending.set(entry.clientId, entry);
    els.input.value = "";
    els.input.focus();
    transmit(entry);
  }

  /* ---------- typing and presence ---------- */

  function onInputTyping() {
    const now = Date.now();
    if (state !== "live" || now - lastTypingSent < TYPING_SEND_INTERVAL_MS) return;
    if (sendFrame({ type: "typing" })) lastTypingSent = now;
  }

  function renderTyping() {
    const names = Array.from(typers.keys());
    if (names.length === 0) els.typing.textContent = "";
    else if (names.length === 1) els.typing.textContent = `${names[0]} is typing…`;
    else els.typing.textContent = `${names.join(", ")} are typing…`;
  }

  function onTypingFrame(user) {
    if (!user || user === config.user) return;
    clearTimeout(typers.get(user));
    typers.set(user, setTimeout(() => clearTyper(user), TYPING_SHOW_MS));
    renderTyping();
  }

  function clearTyper(user) {
    if (!typers.has(user)) return;
    clearTimeout(typers.get(user));
    typers.delete(user);
    renderTyping();
  }

  function renderPresence(users) {
    const items = users.map((name) => {
      const li = document.createElement("li");
      li.dataset.user = name;
      li.textContent = name;
      if (name === config.user) li.classList.add("me");
      return li;
    });
    els.presence.replaceChildren(...items);
  }

  /* ---------- history ---------- */

  async function loadOlder() {
    const button = els.loadOlder;
    const oldest = oldestKnownId();
    button.disabled = true;
    try {
      const response = await fetch(apiUrl(oldest === null ? {} : { before: oldest }), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      // Keep the view anchored on what the reader was looking at.
      const fromBottom = els.list.scrollHeight - els.list.scrollTop;
      for (const msg of data.messages || []) {
        if (known.has(msg.id)) continue;
        const li = buildMessageElement(msg.author, msg.body, msg.created_at);
        li.dataset.id = String(msg.id);
        known.set(msg.id, li);
        insertSorted(li, msg.id);
      }
      els.list.scrollTop = els.list.scrollHeight - fromBottom;
      button.textContent = "Load older messages";
      button.hidden = !data.has_more;
    } catch (err) {
      button.textContent = "Couldn't load older messages — try again";
    } finally {
      button.disabled = false;
    }
  }

  /* ---------- start ---------- */

  function adoptServerRendered() {
    for (const li of els.list.querySelectorAll("li.message[data-id]")) {
      known.set(Number(li.dataset.id), li);
      const timeEl = li.querySelector("time");
      if (timeEl) localizeTime(timeEl);
    }
  }

  function bindEvents() {
    els.form.addEventListener("submit", (event) => {
      event.preventDefault();
      sendFromInput();
    });
    els.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendFromInput();
      }
    });
    els.input.addEventListener("input", onInputTyping);
    if (els.loadOlder) els.loadOlder.addEventListener("click", loadOlder);
  }

  adoptServerRendered();
  bindEvents();
  scrollToBottom();
  setState("connecting");
  connect();
})();
