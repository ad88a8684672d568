// The order page: while an order waits for payment, ask the server every 2 s and, once it is
// paid, swap in the certificate without a reload. "分享卡片" opens the card for a long press.
const section = document.getElementById("order");
const certs = document.getElementById("certificates");

function certificateHtml(orderId, cert) {
  const q = `?order=${encodeURIComponent(orderId)}`;
  const base = `/api/v1/certificates/${cert.id}`;
  return `<div class="cert"><a href="${base}/image.png${q}"><img src="${base}/image.png${q}" alt="证书 ${cert.id}"></a>
    <p><strong>${cert.id}</strong> · ${cert.tonnes} 吨 · <a href="${base}/image.png${q}" download>图片</a> ·
    <a href="${base}/document.pdf${q}">PDF</a> · <a href="/verify/${cert.id}">验证</a> ·
    <a href="${base}/card.png${q}" class="share">分享卡片</a></p></div>`;
}

function show(order) {
  const status = document.getElementById("pay-status");
  if (order.status === "retired" || order.status === "held") {
    if (status) {
      status.className = "status ok";
      status.textContent = order.status === "retired" ? "已付款并注销，感谢您支持村庄四旁树！" : "已付款，由企业账户持有，待注销。";
    }
    const pay = document.getElementById("pay");
    if (pay) pay.hidden = true;
  } else if (order.status === "expired" && status) {
    status.className = "status bad";
    status.textContent = "预订已过期，吨数已释放。若已付款，款项将原路退回。";
  }
  if (order.certificates.length) {
    certs.innerHTML = "<h2>证书</h2>" + order.certificates.map((c) => certificateHtml(order.public_id, c)).join("");
    certs.hidden = false;
  }
  section.dataset.status = order.status;
}

async function poll() {
  if (section.dataset.status !== "reserved" || document.hidden) return;
  try {
    const response = await fetch(`/api/v1/orders/${section.dataset.order}/status`, { headers: { Accept: "application/json" } });
    if (response.ok) show((await response.json()).order);
  } catch (error) {
    // offline for a moment: the next tick asks again
  }
}

if (section && section.dataset.status === "reserved") {
  setInterval(poll, 2000);
  document.addEventListener("visibilitychange", poll);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a.share");
  if (!link) return;
  event.preventDefault();
  document.getElementById("share-card").src = link.href;
  document.getElementById("share-overlay").hidden = false;
});
document.getElementById("share-close").addEventListener("click", () => {
  document.getElementById("share-overlay").hidden = true;
});
