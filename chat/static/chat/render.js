/* Chat room view: everything that touches the page and never the network.
   Owns the message list (messages placed by id, pending and failed sends),
   the connection status text, the send error, presence, "is typing",
   the load-older button and local time formatting.
   Message text is only ever set with textContent / createTextNode.
   Defines window.chat.createView; loaded before connection.js and room.js. */
(function () {
  "use strict";

  const chat = (window.chat = window.chat || {});

  const TYPING_SHOW_MS = 3000;
  const STATUS_TEXT = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    polling: "Live updates unavailable — refreshing every few seconds",
    closed: "Disconnected",
  };

  /* ---------- time and message elements ---------- */

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

  /* ---------- the view of one room page ---------- */

  // els: the page's elements (list, status, presence, typing, sendError, loadOlder);
  // me: the signed-in username.
  chat.createView = function createView(els, me) {
    const known = new Map();   // message id -> <li>
    const typers = new Map();  // username -> hide timer

    /* status and send error */

    function setStatus(state, text) {
      els.status.dataset.state = state;
      els.status.textContent = text || STATUS_TEXT[state];
      document.body.dataset.chatState = state;
    }

    function showSendError(text) {
      els.sendError.textContent = text;
      els.sendError.hidden = false;
      delete els.sendError.dataset.reason;
    }

    function hideSendError() {
      els.sendError.hidden = true;
      els.sendError.textContent = "";
    }

    /* message list */

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

    function hasMessage(id) {
      return known.has(id);
    }

    // Show a stored message in id order unless it is already shown.
    function insertMessage(msg) {
      if (known.has(msg.id)) return;
      const li = buildMessageElement(msg.author, msg.body, msg.created_at);
      li.dataset.id = String(msg.id);
      known.set(msg.id, li);
      insertSorted(li, msg.id);
    }

    // Older history: keep the view anchored on what the reader was looking at.
    function insertOlder(messages) {
      const fromBottom = els.list.scrollHeight - els.list.scrollTop;
      for (const msg of messages) insertMessage(msg);
      els.list.scrollTop = els.list.scrollHeight - fromBottom;
    }

    function oldestKnownId() {
      let oldest = null;
      for (const id of known.keys()) if (oldest === null || id < oldest) oldest = id;
      return oldest;
    }

    function adoptServerRendered() {
      for (const li of els.list.querySelectorAll("li.message[data-id]")) {
        known.set(Number(li.dataset.id), li);
        const timeEl = li.querySelector("time");
        if (timeEl) localizeTime(timeEl);
      }
    }

    /* pending and failed sends */

    function renderPending(body, clientId) {
      const li = buildMessageElement(me, body, new Date().toISOString());
      li.classList.add("pending");
      li.dataset.clientId = clientId;
      els.list.append(li);
      scrollToBottom();
      return li;
    }

    function removePending(li) {
      li.remove();
    }

    function markFailed(li, detail) {
      li.classList.remove("pending");
      li.classList.add("failed");
      const note = document.createElement("span");
      note.className = "error";
      note.textContent = detail;
      li.append(document.createTextNode(" "), note);
    }

    /* typing and presence */

    function renderTyping() {
      const names = Array.from(typers.keys());
      if (names.length === 0) els.typing.textContent = "";
      else if (names.length === 1) els.typing.textContent = `${names[0]} is typing…`;
      else els.typing.textContent = `${names.join(", ")} are typing…`;
    }

    function showTyper(user) {
      if (!user || user === me) return;
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

    // roster: window.chat.createRoster(); shows the names it has, how many
    // are here in all, and a button for the next page while there is one.
    function renderPresence(roster) {
      const users = roster.users();
      const items = users.map((name) => {
        const li = document.createElement("li");
        li.dataset.user = name;
        li.textContent = name;
        if (name === me) li.classList.add("me");
        return li;
      });
      els.presence.replaceChildren(...items);
      const count = Math.max(roster.count(), users.length);
      els.presenceCount.textContent = count === 1 ? "1 person" : `${count.toLocaleString()} people`;
      els.presenceMore.hidden = roster.next() === null;
      els.presenceMore.disabled = false;
    }

    /* load-older button */

    function setOlderBusy(busy) {
      els.loadOlder.disabled = busy;
    }

    function olderLoaded(hasMore) {
      els.loadOlder.textContent = "Load older messages";
      els.loadOlder.hidden = !hasMore;
    }

    function olderFailed() {
      els.loadOlder.textContent = "Couldn't load older messages — try again";
    }

    return {
      setStatus,
      showSendError,
      hideSendError,
      isAtBottom,
      scrollToBottom,
      hasMessage,
      insertMessage,
      insertOlder,
      oldestKnownId,
      adoptServerRendered,
      renderPending,
      removePending,
      markFailed,
      showTyper,
      clearTyper,
      renderPresence,
      setOlderBusy,
      olderLoaded,
      olderFailed,
    };
  };
})();
