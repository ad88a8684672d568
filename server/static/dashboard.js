// The bureau dashboard's live updates, framework-free: Socket.IO (Engine.IO 4) spoken over a
// plain WebSocket on namespace /live. A sale or payout event (registry.*, payouts.*) re-renders
// the live part of the page from the server (/bureau/live): one renderer for every figure.
(function () {
  "use strict";
  const root = document.querySelector("[data-live-url]");
  const target = document.getElementById("live");
  const state = document.getElementById("live-state");
  if (!root || !target || !("WebSocket" in window)) return;
  let timer = null;
  let delay = 1000;
  let refreshing = false;

  function say(text) {
    if (state) state.textContent = text;
  }

  async function refresh() {
    timer = null;
    if (refreshing) return soon();
    refreshing = true;
    try {
      const response = await fetch(root.dataset.liveUrl, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.ok) {
        target.innerHTML = await response.text();
        say("实时更新：已更新 " + new Date().toLocaleTimeString("zh-CN"));
        document.dispatchEvent(new CustomEvent("dashboard:updated"));
      }
    } finally {
      refreshing = false;
    }
  }

  function soon() {
    if (!timer) timer = setTimeout(refresh, 500); // a burst of events, one refresh
  }

  function connect(again) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(scheme + "//" + location.host + "/socket.io/?EIO=4&transport=websocket");
    socket.onmessage = function (message) {
      const data = String(message.data);
      if (data[0] === "0") socket.send("40/live,"); // engine open: join the namespace
      else if (data === "2") socket.send("3"); // ping: pong
      else if (data.startsWith("40/live")) {
        delay = 1000;
        say("实时更新：已连接");
        if (again) soon(); // events may have passed while we were away
      } else if (data.startsWith("44/live")) say("实时更新：未获授权，请重新登录");
      else if (data.startsWith("42/live,")) {
        const name = JSON.parse(data.slice(data.indexOf("[")))[0];
        if (/^(registry|payouts)\./.test(name)) soon(); // money news; not sync arrivals
      }
    };
    socket.onclose = function () {
      say("实时更新：连接已断开，正在重连…");
      setTimeout(function () { connect(true); }, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  connect(false);
})();
