/* Chat room client, wiring: reads #chat-config, owns sending (pending
   messages, retries with the same client_id, echo timeouts), typing sends
   and load-older, and starts everything. The page is drawn by render.js
   (window.chat.createView) and the server is reached through
   connection.js (window.chat.createConnection); both load before this. */
(function () {
  "use strict";

  const configEl = document.getElementById("chat-config");
  if (!configEl) return;
  const config = JSON.parse(configEl.textContent);
  const chat = window.chat;

  const els = {
    list: document.getElementById("messages"),
    status: document.getElementById("connection-status"),
    presence: document.getElementById("presence"),
    presenceCount: document.getElementById("presence-count"),
    presenceMore: document.getElementById("presence-more"),
    typing: document.getElementById("typing"),
    form: document.getElementById("message-form"),
    input: document.getElementById("message-input"),
    sendError: document.getElementById("send-error"),
    loadOlder: document.getElementById("load-older"),
  };

  const ECHO_TIMEOUT_MS = 10000;
  const TYPING_SEND_INTERVAL_MS = 2000;

  const pending = new Map();  // client_id -> {clientId, body, li, via, timer, attempts}
  let lastTypingSent = 0;

  const view = chat.createView(els, config.user);
  const roster = chat.createRoster();
  const conn = chat.createConnection(config, {
    status: view.setStatus,
    message: addMessage,
    presence: (frame) => {
      roster.apply(frame);
      view.renderPresence(roster);
    },
    presenceRefused: () => view.renderPresence(roster),
    typing: view.showTyper,
    error: onErrorFrame,
    opened: () => {
      for (const entry of pending.values()) if (entry.via === "waiting") transmit(entry);
    },
    closed: () => {
      for (const entry of pending.values()) if (entry.via === "ws") transmit(entry);
    },
    isKnown: view.hasMessage,
    csrfToken,
  });

  /* ---------- small helpers ---------- */

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

  function codePointLength(text) {
    return Array.from(text).length; // the server counts characters, not UTF-16 units
  }

  /* ---------- receiving ---------- */

  // Render a stored message unless it is already shown; settles a matching pending one.
  function addMessage(msg) {
    const stick = view.isAtBottom();
    const own = resolvePending(msg);
    view.clearTyper(msg.author);
    view.insertMessage(msg);
    if (stick || own) view.scrollToBottom();
  }

  function onErrorFrame(frame) {
    const entry = frame.client_id ? pending.get(frame.client_id) : null;
    if (entry && frame.code === "unavailable") {
      view.showSendError(frame.detail);
      scheduleRetry(entry); // the server asks for a retry with the same client_id
    } else if (entry && frame.code === "rate_limited") {
      view.showSendError(frame.detail);
      scheduleRetry(entry, frame.retry_after);
    } else if (entry) {
      failPending(entry, frame.detail || "The message was not sent.");
    } else if (frame.detail) {
      view.showSendError(frame.detail);
    }
  }

  /* ---------- sending ---------- */

  function resolvePending(msg) {
    const entry = msg.client_id ? pending.get(msg.client_id) : null;
    if (!entry || msg.author !== config.user) return false;
    clearTimeout(entry.timer);
    pending.delete(entry.clientId);
    view.removePending(entry.li);
    view.hideSendError();
    return true;
  }

  function failPending(entry, detail) {
    clearTimeout(entry.timer);
    pending.delete(entry.clientId);
    view.markFailed(entry.li, detail);
    view.showSendError(detail);
  }

  // Retry with the same client_id after a backoff, or after the seconds the
  // server asked for (rate limits).
  function scheduleRetry(entry, afterSeconds) {
    clearTimeout(entry.timer);
    entry.via = "waiting";
    const delay = afterSeconds > 0 ? afterSeconds * 1000 : chat.backoff(entry.attempts++, 30000);
    entry.timer = setTimeout(() => transmit(entry), delay);
  }

  // Send over the socket when it is open, otherwise over HTTP. Retries reuse client_id.
  function transmit(entry) {
    clearTimeout(entry.timer);
    if (!pending.has(entry.clientId)) return;
    if (conn.isLive() && conn.send({ type: "message", body: entry.body, client_id: entry.clientId })) {
      entry.via = "ws";
      entry.timer = setTimeout(() => transmit(entry), ECHO_TIMEOUT_MS);
    } else {
      postPending(entry);
    }
  }

  async function postPending(entry) {
    entry.via = "http";
    let response;
    try {
      response = await conn.postMessage({ body: entry.body, client_id: entry.clientId });
    } catch (err) {
      scheduleRetry(entry); // offline or server unreachable: keep it pending
      return;
    }
    if (!pending.has(entry.clientId) || entry.via !== "http") return; // settled meanwhile
    const data = await response.json().catch(() => null);
    if (response.ok && data) {
      addMessage(data);
      if (data.prev_id !== undefined) conn.noteLiveMessage(data);
    } else if (response.status === 429) {
      const detail = data && data.error && data.error.detail;
      if (detail) view.showSendError(detail);
      scheduleRetry(entry, Number(response.headers.get("Retry-After")) || 1);
    } else if (response.status >= 400 && response.status < 500) {
      failPending(entry, (data && data.error && data.error.detail) || `The message was not sent (${response.status}).`);
    } else {
      scheduleRetry(entry); // 5xx, including 503 unavailable
    }
  }

  function sendFromInput() {
    const body = els.input.value.trim();
    if (!body) {
      view.showSendError("Type a message first.");
      return;
    }
    if (codePointLength(body) > config.max_body_length) {
      checkLength();
      return;
    }
    const entry = { clientId: newClientId(), body, li: null, via: null, timer: null, attempts: 0 };
    entry.li = view.renderPending(entry.body, entry.clientId);
    pending.set(entry.clientId, entry);
    els.input.value = "";
    els.input.focus();
    transmit(entry);
  }

  function tooLongText(body) {
    const max = config.max_body_length.toLocaleString();
    const length = codePointLength(body).toLocaleString();
    return `Messages can be at most ${max} characters; this one has ${length}.`;
  }

  // Say so while typing, not only on sending, when the text grows too long,
  // and take the notice back once it fits again.
  function checkLength() {
    const body = els.input.value.trim();
    const tooLong = codePointLength(body) > config.max_body_length;
    els.input.setAttribute("aria-invalid", tooLong ? "true" : "false");
    if (tooLong) {
      view.showSendError(tooLongText(body));
      els.sendError.dataset.reason = "length";
    } else if (els.sendError.dataset.reason === "length") {
      view.hideSendError();
    }
  }

  /* ---------- typing ---------- */

  function onInputTyping() {
    const now = Date.now();
    if (!conn.isLive() || now - lastTypingSent < TYPING_SEND_INTERVAL_MS) return;
    if (conn.send({ type: "typing" })) lastTypingSent = now;
  }

  /* ---------- history ---------- */

  async function loadOlder() {
    const oldest = view.oldestKnownId();
    view.setOlderBusy(true);
    try {
      const response = await conn.getMessages(oldest === null ? {} : { before: oldest });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      view.insertOlder(data.messages || []);
      view.olderLoaded(data.has_more);
    } catch (err) {
      view.olderFailed();
    } finally {
      view.setOlderBusy(false);
    }
  }

  /* ---------- start ---------- */

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
    els.input.addEventListener("input", checkLength);
    if (els.loadOlder) els.loadOlder.addEventListener("click", loadOlder);
    els.presenceMore.addEventListener("click", () => {
      // The next page of a large room's roster; its frame re-enables the button.
      if (roster.next() !== null && conn.send({ type: "presence", after: roster.next() })) {
        els.presenceMore.disabled = true;
      }
    });
  }

  view.adoptServerRendered();
  bindEvents();
  // Text typed before this script ran raised no input event we heard: check it now.
  checkLength();
  view.scrollToBottom();
  conn.start();
})();
