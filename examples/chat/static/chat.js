// The chat's page: one WebSocket to /ws on the host that served the page; the
// protocol is in examples/chat.cpp's header comment. Everything shown is put in
// with textContent, never as HTML.
"use strict";

const served = document.getElementById("served");
const messages = document.getElementById("messages");
const online = document.getElementById("online");
const count = document.getElementById("count");
const sayForm = document.getElementById("say");
const nickForm = document.getElementById("nick");
const text = document.getElementById("text");
const name = document.getElementById("name");

// The server's limits are in UTF-8 bytes (chat --max-text, --max-nick): a longer
// line would close this tab's connection, so it is refused here first.
const maxTextBytes = 1000;
const maxNickBytes = 32;
const utf8 = new TextEncoder();

let socket = null;
let welcomed = false;   // this connection got its welcome
let retryDelay = 500;  // after a close, reconnect (to whichever process accepts) with backoff

function element(tag, className, content) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (content !== undefined) node.textContent = content;
  return node;
}

function clock(ms) {
  if (typeof ms !== "number") return "";
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function showLine(line) {
  const atBottom = messages.scrollTop + messages.clientHeight >= messages.scrollHeight - 4;
  const item = element("li", "message");
  item.append(element("span", "node", `${clock(line.time)} node ${line.node} `),
              element("span", "from", line.from), document.createTextNode(": " + line.text));
  messages.append(item);
  if (atBottom) messages.scrollTop = messages.scrollHeight;
}

function showSystem(what) {
  messages.append(element("li", "system", what));
  messages.scrollTop = messages.scrollHeight;
}

function showOnline(users) {
  online.replaceChildren(...users.map((user) => element("li", "user", user)));
  count.textContent = String(users.length);
}

function enable(on) {
  for (const control of document.querySelectorAll("input, button")) control.disabled = !on;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}/ws`);
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "welcome") {
      welcomed = true;
      retryDelay = 500;
      served.textContent = `served by node ${message.node} (pid ${message.pid})`;
      served.dataset.node = String(message.node);
      served.dataset.pid = String(message.pid);
      served.classList.remove("closed");
      messages.replaceChildren();
      for (const line of message.history) showLine(line);
      showOnline(message.online);
      enable(true);
      if (name.value) socket.send(JSON.stringify({ type: "nick", name: name.value }));
      text.focus();
    } else if (message.type === "message") {
      showLine(message);
    } else if (message.type === "online") {
      showOnline(message.users);
    }
  });
  socket.addEventListener("close", (event) => {
    enable(false);
    served.classList.add("closed");
    served.dataset.node = "";
    const why = event.reason ? `: ${event.reason}` : "";
    served.textContent = `disconnected (${event.code}${why}), reconnecting…`;
    if (welcomed) showSystem(`connection closed (${event.code}${why}), reconnecting`);
    welcomed = false;
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  });
}

sayForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!text.value || !socket || socket.readyState !== WebSocket.OPEN) return;
  if (utf8.encode(text.value).length > maxTextBytes) return showSystem(`longer than ${maxTextBytes} bytes: not sent`);
  socket.send(JSON.stringify({ type: "say", text: text.value }));
  text.value = "";
});

nickForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!name.value || !socket || socket.readyState !== WebSocket.OPEN) return;
  if (utf8.encode(name.value).length > maxNickBytes) return showSystem(`a name is at most ${maxNickBytes} bytes`);
  socket.send(JSON.stringify({ type: "nick", name: name.value }));
});

connect();
