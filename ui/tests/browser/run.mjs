// Browser tests of the web-view UI with an accessibility scan: builds the UI with the in-memory
// backend (VITE_MOCK=1) into test-results/dist-mock, serves it with the desktop app's CSP, drives
// Debian's Chromium through playwright-core, visits every screen and runs axe (WCAG 2.0/2.1 A
// and AA) on each, and checks a few interactions (keyboard, accepting an order, offline).
// One line per check, then `browser: N passed, M failed`; the exit code is non-zero on failure.
//
//   cd ui && node tests/browser/run.mjs        (CHROMIUM=/path/to/chromium to use another one)
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { AxeBuilder } from "@axe-core/playwright";

const UI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const OUT = path.join(UI, "test-results");
const DIST = path.join(OUT, "dist-mock");
const SHOTS = path.join(OUT, "browser");
const TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
const started = Date.now();
const log = (s) => process.stdout.write(`${s}\n`);

// ----- build -----
{
  const vite = path.join(UI, "node_modules", "vite", "bin", "vite.js");
  const r = spawnSync(process.execPath, [vite, "build", "--outDir", DIST, "--emptyOutDir", "--logLevel", "warn"], {
    cwd: UI,
    env: { ...process.env, VITE_MOCK: "1" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (r.status !== 0) {
    log("browser: the mock build failed");
    log("browser: 0 passed, 1 failed");
    process.exit(1);
  }
}
fs.rmSync(SHOTS, { recursive: true, force: true });
fs.mkdirSync(SHOTS, { recursive: true });

// ----- a tiny static server with the desktop app's Content-Security-Policy -----
function csp() {
  // The same policy as src-tauri/tauri.conf.json, so that inline scripts or styles the app
  // would be refused in the desktop window fail here too. IPC is mocked in the page.
  let policy = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self' data:",
    "font-src": "'self' data:", "object-src": "'none'", "base-uri": "'none'", "form-action": "'none'",
  };
  try {
    const conf = JSON.parse(fs.readFileSync(path.join(UI, "..", "src-tauri", "tauri.conf.json"), "utf8"));
    policy = { ...(conf.app?.security?.csp ?? policy) };
  } catch {
    /* the copy above */
  }
  policy["connect-src"] = "'self'";
  return Object.entries(policy).map(([k, v]) => `${k} ${v}`).join("; ");
}
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png", ".json": "application/json" };
const policy = csp();
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname === "/favicon.ico") {
    res.writeHead(204);
    res.end();
    return;
  }
  const rel = path.normalize(decodeURIComponent(url.pathname)).replace(/^([/\\])+/, "");
  let file = path.join(DIST, rel || "index.html");
  if (!file.startsWith(DIST)) file = path.join(DIST, "index.html");
  fs.readFile(file, (err, body) => {
    if (err) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream", "content-security-policy": policy, "cache-control": "no-store" });
    res.end(body);
  });
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const BASE = `http://127.0.0.1:${server.address().port}/index.html`;

// ----- Chromium (Debian's; playwright-core never downloads a browser) -----
let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
} catch (e) {
  log(`FAIL Chromium does not start: ${String(e?.message ?? e).split("\n")[0]}`);
  log("browser: 0 passed, 1 failed");
  server.close();
  process.exit(1);
}

let passed = 0;
let failed = 0;
const pageErrors = [];
let current = null; // the page of the running check, for a screenshot when it fails

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    log(`FAIL ${name} (${Date.now() - t0} ms)`);
    log(String(e?.message ?? e).split("\n").map((l) => `     ${l}`).join("\n"));
    if (current) {
      const file = path.join(SHOTS, `${name.replace(/[^\p{L}\p{N}]+/gu, "-").slice(0, 80)}.png`);
      await current.screenshot({ path: file, fullPage: true }).then(() => log(`     screenshot: ${path.relative(UI, file)}`), () => undefined);
    }
  }
}

/** A new page on a fresh in-memory backend (each page load starts from the demo data). */
async function open(hash = "", locale = "zh-CN") {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale });
  context.setDefaultTimeout(5000);
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(`${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(`console: ${m.text()}`);
  });
  await page.goto(`${BASE}${hash}`);
  current = page;
  return page;
}

function formatViolations(violations) {
  const lines = [];
  for (const v of violations) {
    lines.push(`${v.id} (${v.impact}): ${v.help} — ${v.helpUrl}`);
    for (const n of v.nodes.slice(0, 6)) {
      lines.push(`    at ${n.target.join(" ")}`);
      const why = (n.failureSummary ?? "").split("\n").filter((l) => l.trim() && !/^Fix (any|all)/.test(l)).map((l) => l.trim());
      if (why.length) lines.push(`       ${why.join(" / ")}`);
    }
    if (v.nodes.length > 6) lines.push(`    … and ${v.nodes.length - 6} more`);
  }
  return lines.join("\n");
}

/** Run axe on the page as it is; throw with a readable list of the violations. */
async function axe(page) {
  // Let transitions and pending renders settle so that colours are final.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  // Legacy mode runs axe in the page itself: the app has no frames, and the frame-aware mode
  // opens a blank page for every scan, which doubles the time.
  const r = await new AxeBuilder({ page }).withTags(TAGS).setLegacyMode(true).analyze();
  if (r.violations.length > 0) {
    const n = r.violations.reduce((s, v) => s + v.nodes.length, 0);
    throw new Error(`axe: ${r.violations.length} rule(s), ${n} element(s) fail WCAG 2.1 AA\n${formatViolations(r.violations)}`);
  }
}

async function signIn(page, name, pin = "1234") {
  await page.getByRole("button", { name: new RegExp(name) }).click();
  await page.getByLabel("密码（4到6位数字）").fill(pin);
  await page.getByRole("button", { name: "登录", exact: true }).click();
  await page.getByTestId("signed-in-as").filter({ hasText: name }).waitFor();
}

async function go(page, route) {
  await page.evaluate((r) => {
    window.location.hash = `#/${r}`;
  }, route);
}

/** Wait until a screen has its data: the ready element is there and nothing says loading. */
async function ready(page, selector) {
  await page.locator(selector).first().waitFor({ state: "visible" });
  await page.locator(".loading").first().waitFor({ state: "detached" }).catch(() => undefined);
}

async function expectHeading(page, text) {
  const h = page.locator("main h2").first();
  await h.waitFor();
  const got = (await h.textContent())?.trim();
  if (got !== text) throw new Error(`the screen's heading is "${got}", expected "${text}"`);
}

// Every screen a signed-in staff member reaches, with what shows it has loaded.
const SCREENS = [
  ["dashboard", "数据看板", "[data-testid=dashboard-figures]"],
  ["request", "申请帮助", "input[type=radio][name=who]"],
  ["board", "接单大厅", "li.order"],
  ["my-orders", "我的订单", ".row-button"],
  ["desk", "工作台", "table tbody tr"],
  ["members", "成员管理", "table tbody tr"],
  ["account", "时间账户", "[data-testid=balance]"],
  ["activities", "活动", "li.item"],
  ["reports", "报表", "table tbody tr"],
  ["inbox", "消息", "li.item"],
  ["settings", "设置", "dl.facts"],
];

try {
  // ----- signed out: the sign-in list and the PIN entry -----
  const p = await open();
  await check("sign-in screen: the list of names passes axe", async () => {
    await p.getByRole("heading", { name: "请选择您的名字" }).waitFor();
    await p.getByRole("button", { name: /李娟/ }).waitFor();
    await axe(p);
  });
  await check("settings before signing in (language, text size, enrolment) pass axe and lead back", async () => {
    await p.getByRole("button", { name: "设置", exact: true }).click();
    await expectHeading(p, "设置");
    await p.getByRole("button", { name: "返回登录" }).waitFor();
    if (await p.locator("nav").count()) throw new Error("a menu is shown to nobody signed in");
    await axe(p);
    await p.getByRole("button", { name: "返回登录" }).click();
    await p.getByRole("heading", { name: "请选择您的名字" }).waitFor();
  });
  await check("PIN entry: the PIN field is labelled and passes axe", async () => {
    await p.getByRole("button", { name: /李娟/ }).click();
    await p.getByRole("heading", { name: "李娟，您好" }).waitFor();
    const pin = p.getByLabel("密码（4到6位数字）");
    if ((await pin.getAttribute("type")) !== "password") throw new Error("the PIN is shown while typed");
    await axe(p);
  });
  await check("PIN entry: a wrong PIN shows the core's message in an alert (and passes axe)", async () => {
    await p.getByLabel("密码（4到6位数字）").fill("9999");
    await p.getByRole("button", { name: "登录", exact: true }).click();
    await p.getByRole("alert").filter({ hasText: "密码不正确" }).waitFor();
    await axe(p);
  });
  await check("PIN entry: after a refusal the PIN field is empty and has the focus again", async () => {
    const f = await p.evaluate(() => ({ type: document.activeElement?.getAttribute("type"), value: document.activeElement?.value }));
    if (f.type !== "password" || f.value !== "") throw new Error(`the focus is on ${JSON.stringify(f)}`);
  });
  await check("PIN entry: the right PIN opens the dashboard", async () => {
    await p.getByLabel("密码（4到6位数字）").fill("1234");
    await p.getByRole("button", { name: "登录", exact: true }).click();
    await p.getByTestId("signed-in-as").filter({ hasText: "李娟" }).waitFor();
    await ready(p, "[data-testid=dashboard-figures]");
    await expectHeading(p, "数据看板");
    const focus = await p.evaluate(() => document.activeElement?.id);
    if (focus !== "main") throw new Error(`after signing in the focus is on "${focus}", not the screen`);
  });

  // ----- every screen, signed in as staff -----
  for (const [route, title, sel] of SCREENS) {
    await check(`#/${route} (${title}) passes axe`, async () => {
      await go(p, route);
      await ready(p, sel);
      await expectHeading(p, title);
      const t = await p.title();
      if (!t.includes(title)) throw new Error(`the window title is "${t}"`);
      const marked = await p.locator("nav a[aria-current=page]").textContent();
      if (marked?.trim() !== title) throw new Error(`the menu marks "${marked}" as the current page`);
      await axe(p);
    });
  }

  // ----- the parts of screens that open on demand -----
  await check("my orders: every order's panel passes axe", async () => {
    await go(p, "my-orders");
    await ready(p, ".row-button");
    const rows = p.locator(".row-button");
    const n = await rows.count();
    for (let i = 0; i < n; i++) {
      await rows.nth(i).click();
      await p.locator(".panel h2").waitFor();
      await axe(p);
    }
  });
  await check("staff desk: an order with the staff actions passes axe", async () => {
    await go(p, "desk");
    await ready(p, "table tbody tr");
    await p.locator("table tbody button.link").first().click();
    await p.locator(".panel h2").waitFor();
    await p.getByRole("heading", { name: "工作人员操作" }).waitFor();
    await axe(p);
  });
  await check("staff desk: no order's status is broken across lines beside an open order", async () => {
    await go(p, "desk");
    await ready(p, "table tbody tr");
    await p.locator("table tbody button.link").first().click();
    await p.locator(".panel h2").waitFor();
    const col = await p.evaluate(() => [...document.querySelectorAll("table thead th")].findIndex((th) => th.textContent?.trim() === "状态") + 1);
    if (col < 1) throw new Error("the desk's table has no 状态 column");
    const broken = await p.evaluate((n) => [...document.querySelectorAll(`table tbody tr td:nth-child(${n})`)].filter((td) => {
      const range = document.createRange();
      range.selectNodeContents(td);
      return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size > 1;
    }).map((td) => td.textContent), col);
    if (broken.length) throw new Error(`statuses broken across lines: ${[...new Set(broken)].join(", ")}`);
  });
  for (const [tab, ready_] of [["待审核时间与同步冲突", "li.item"], ["安全关爱", "li.item"], ["评价与反馈", "li.item"]]) {
    await check(`staff desk: the "${tab}" section passes axe`, async () => {
      await go(p, "desk");
      await p.getByRole("button", { name: tab }).click();
      await ready(p, ready_);
      await axe(p);
    });
  }
  await check("activities: the attendance list passes axe", async () => {
    await go(p, "activities");
    await ready(p, "li.item");
    await p.getByRole("button", { name: "签到" }).first().click();
    await p.getByRole("group", { name: "到场的人" }).waitFor();
    await axe(p);
  });

  // ----- offline: the indicator and the request screen -----
  await check("sync indicator offline: says offline with the count of waiting changes (and passes axe)", async () => {
    await go(p, "dashboard");
    await ready(p, "[data-testid=dashboard-figures]");
    await p.evaluate(() => window.__timebankMock.setSync({ online: false, pending: 2, last_error: "无法连接城市服务器", last_error_en: "Cannot reach the city server" }));
    const ind = p.getByTestId("sync-indicator");
    await p.locator("[data-testid=sync-indicator][data-state=offline]").waitFor();
    const text = await ind.textContent();
    for (const want of ["离线", "2项待上传", "无法连接城市服务器"]) {
      if (!text?.includes(want)) throw new Error(`the indicator says "${text}", without "${want}"`);
    }
    await axe(p);
  });
  await check("request screen offline: says the request will be sent later, saves it, counts it (and passes axe)", async () => {
    await go(p, "request");
    await ready(p, "input[type=radio][name=who]");
    const note = p.getByTestId("offline-note");
    await note.waitFor();
    if (!(await note.textContent())?.includes("网络恢复后自动发送")) throw new Error(`the note says "${await note.textContent()}"`);
    await axe(p);
    await p.getByRole("radio", { name: /王德明/ }).check();
    await p.getByLabel("服务项目").selectOption({ label: "陪同就医" });
    await p.getByLabel("需求描述").fill("陪父亲到社区医院复查");
    await p.getByRole("button", { name: "提交申请" }).click();
    await p.getByRole("status").filter({ hasText: "申请已保存在本机" }).waitFor();
    await p.locator("[data-testid=sync-indicator][data-state=offline][data-pending='3']").waitFor();
    await axe(p);
  });
  await check("sync indicator: back online it says synced with nothing waiting", async () => {
    await p.evaluate(() => window.__timebankMock.setSync({ online: true, pending: 0, last_error: null, last_error_en: null }));
    await p.locator("[data-testid=sync-indicator][data-state=online][data-pending='0']").waitFor();
    const text = await p.getByTestId("sync-indicator").textContent();
    if (!text?.includes("已同步") || !text.includes("没有待上传的内容")) throw new Error(`the indicator says "${text}"`);
    if (await p.getByTestId("offline-note").count()) throw new Error("the request screen still says offline");
  });
  await p.context().close();

  // ----- keyboard -----
  await check("keyboard: sign in with Tab and Enter only", async () => {
    const k = await open();
    await k.getByRole("button", { name: /马军/ }).waitFor();
    let found = false;
    for (let i = 0; i < 20 && !found; i++) {
      await k.keyboard.press("Tab");
      found = await k.evaluate(() => document.activeElement?.textContent?.includes("马军") ?? false);
    }
    if (!found) throw new Error("Tab never reaches 马军's name");
    await k.keyboard.press("Enter");
    await k.getByRole("heading", { name: "马军，您好" }).waitFor();
    const focused = await k.evaluate(() => document.activeElement?.getAttribute("type"));
    if (focused !== "password") throw new Error(`after choosing a name the focus is on ${focused}, not the PIN`);
    await k.keyboard.type("1234");
    await k.keyboard.press("Enter");
    await k.getByTestId("signed-in-as").filter({ hasText: "马军" }).waitFor();
    await k.context().close();
  });

  await check("members: on an English (en-US) system the date of birth is still 年, 月, 日, a missing field is named in Chinese, and the date reaches the core as YYYY-MM-DD", async () => {
    const k = await open("", "en-US");
    await signIn(k, "李娟");
    await go(k, "members");
    await ready(k, "table tbody tr");
    const dob = k.getByRole("group", { name: "出生日期" });
    const units = await dob.locator("select").evaluateAll((ls) => ls.map((l) => l.labels?.[0]?.textContent));
    if (units.join("") !== "年月日") throw new Error(`the date of birth's lists are ${JSON.stringify(units)}, not 年, 月, 日`);
    if (await k.locator("input[type=date], input[type=datetime-local]").count()) throw new Error("a date is still asked in the system's locale");
    const register = k.getByRole("region", { name: "登记新成员" });
    // Sent empty: the browser stops at the name, with the app's words, not the en-US system's.
    await register.getByRole("button", { name: "登记", exact: true }).click();
    const stopped = await k.evaluate(() => ({ label: document.activeElement?.labels?.[0]?.textContent, message: document.activeElement?.validationMessage }));
    if (stopped.label !== "姓名" || stopped.message !== "请填写此项。") throw new Error(`sent empty, the form stopped at ${JSON.stringify(stopped)}`);
    await register.getByLabel("姓名").fill("赵桂兰");
    await register.getByLabel("手机号").fill("13912345678");
    await dob.getByLabel("年").selectOption("1941");
    await dob.getByLabel("月").selectOption("2");
    const days = await dob.getByLabel("日").locator("option").count();
    if (days !== 29) throw new Error(`February 1941 offers ${days - 1} days, not 28`);
    await dob.getByLabel("日").selectOption("8");
    await register.getByRole("button", { name: "登记", exact: true }).click();
    await register.getByRole("status").filter({ hasText: "赵桂兰" }).waitFor();
    const sent = await k.evaluate(() => window.__timebankMock.state().calls.filter((c) => c.cmd === "register_member").map((c) => c.args.member.date_of_birth));
    if (JSON.stringify(sent) !== JSON.stringify(["1941-02-08"])) throw new Error(`the core was sent ${JSON.stringify(sent)}`);
    if ((await dob.getByLabel("年").inputValue()) !== "") throw new Error("the date of birth is not cleared for the next member");
    await axe(k);
    await k.context().close();
  });

  await check("keyboard: Tab reaches the skip link and every nav link, with a visible focus ring", async () => {
    const k = await open();
    await signIn(k, "李娟");
    await go(k, "account");
    await ready(k, "[data-testid=balance]");
    await k.evaluate(() => {
      (document.activeElement instanceof HTMLElement) && document.activeElement.blur();
      window.scrollTo(0, 0);
    });
    const seen = [];
    for (let i = 0; i < 40; i++) {
      await k.keyboard.press("Tab");
      const f = await k.evaluate(() => {
        const el = document.activeElement;
        if (!el || el === document.body) return null;
        const s = getComputedStyle(el);
        const r = el.getBoundingClientRect();
        return {
          text: el.textContent?.trim() ?? "",
          nav: !!el.closest("nav"),
          skip: el.classList.contains("skip"),
          outline: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2,
          onScreen: r.right > 0 && r.bottom > 0 && r.left < innerWidth && r.width > 0,
        };
      });
      if (f) seen.push(f);
    }
    const skip = seen.find((f) => f.skip);
    if (!skip) throw new Error("Tab never reaches the skip link");
    if (!skip.onScreen || !skip.outline) throw new Error("the focused skip link is not visible");
    const navs = seen.filter((f) => f.nav);
    const want = await k.locator("nav a").allTextContents();
    const missing = want.filter((w) => !navs.some((n) => n.text === w));
    if (missing.length) throw new Error(`Tab does not reach: ${missing.join(", ")}`);
    const bad = navs.filter((n) => !n.outline || !n.onScreen);
    if (bad.length) throw new Error(`no visible focus ring on: ${bad.map((b) => b.text).join(", ")}`);
    await k.context().close();
  });

  await check("keyboard: the skip link moves the focus to the screen and stays on it", async () => {
    const k = await open();
    await signIn(k, "李娟");
    await go(k, "inbox");
    await ready(k, "li.item");
    // Shift+Tab from the first control of the top bar reaches the skip link, which shows itself.
    await k.getByRole("button", { name: "立即同步" }).focus();
    await k.keyboard.press("Shift+Tab");
    const skip = await k.evaluate(() => {
      const el = document.activeElement;
      const r = el?.getBoundingClientRect();
      return { isSkip: !!el?.classList.contains("skip"), visible: !!r && r.left >= 0 && r.top >= 0 && r.width > 0, html: el?.outerHTML.slice(0, 80) };
    });
    if (!skip.isSkip) throw new Error(`Shift+Tab lands on ${skip.html}, not the skip link`);
    if (!skip.visible) throw new Error("the focused skip link is off screen");
    await k.keyboard.press("Enter");
    await k.waitForTimeout(100);
    const state = await k.evaluate(() => ({ hash: location.hash, focus: document.activeElement?.id, h2: document.querySelector("main h2")?.textContent }));
    if (state.hash !== "#/inbox" || state.h2 !== "消息") throw new Error(`the skip link left the screen: ${JSON.stringify(state)}`);
    if (state.focus !== "main") throw new Error(`the focus is on "${state.focus}", not the main content`);
    await k.context().close();
  });

  await check("keyboard: a button keeps the focus after its action, though disabled while it ran", async () => {
    const k = await open();
    await signIn(k, "李娟");
    await go(k, "settings");
    await ready(k, "dl.facts");
    await k.evaluate(() => window.__timebankMock.setLatency(150));
    await k.getByRole("button", { name: "保存", exact: true }).focus();
    await k.keyboard.press("Enter");
    await k.getByRole("status").filter({ hasText: "已保存" }).waitFor();
    await k.waitForTimeout(50);
    const f = await k.evaluate(() => `${document.activeElement?.tagName ?? "nothing"} ${document.activeElement?.textContent?.slice(0, 30) ?? ""}`);
    if (f !== "BUTTON 保存") throw new Error(`the focus is on ${f}`);
    await k.context().close();
  });

  // ----- a volunteer accepts an order -----
  await check("volunteer: accepts an order from the board; it leaves the board and is in my orders", async () => {
    const v = await open();
    await signIn(v, "马军");
    const nav = await v.locator("nav a").allTextContents();
    for (const staffOnly of ["工作台", "成员管理", "报表"]) if (nav.includes(staffOnly)) throw new Error(`a volunteer's menu has ${staffOnly}`);
    await go(v, "board");
    await ready(v, "li.order");
    const order = v.locator("li.order").filter({ hasText: "府苑新村12幢" });
    await order.getByRole("button", { name: "我来接单" }).click();
    await v.getByRole("status").filter({ hasText: "接单成功" }).waitFor();
    await order.waitFor({ state: "detached" });
    const focus = await v.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
    if (focus !== "main") throw new Error(`with the order gone the focus is on ${focus}, not the screen`);
    await axe(v);
    await go(v, "my-orders");
    await ready(v, ".row-button");
    const row = v.locator(".row-button").filter({ hasText: "陪同就医" }).filter({ hasText: "已接单" });
    await row.first().click();
    await v.getByRole("button", { name: "到达签到" }).waitFor();
    await v.context().close();
  });

  await check("family: the menu has my orders, where a completed visit is rated (and passes axe)", async () => {
    const f = await open();
    await signIn(f, "王秀芝");
    const nav = await f.locator("nav a").allTextContents();
    if (!nav.includes("我的订单") || nav.includes("接单大厅")) throw new Error(`the menu is ${nav.join(", ")}`);
    await f.getByRole("link", { name: "我的订单" }).click();
    await ready(f, ".row-button");
    await f.locator(".row-button").filter({ hasText: "已完成" }).first().click();
    await f.getByLabel("打分").selectOption({ label: "5星" });
    await f.getByLabel("评价内容").fill("马军很细心，谢谢！");
    await f.getByRole("button", { name: "提交评价" }).click();
    await f.getByRole("status").filter({ hasText: "谢谢您的评价" }).waitFor();
    await axe(f);
    await f.context().close();
  });

  // ----- language and text size -----
  await check("settings: English changes the screen text and the page language (and passes axe)", async () => {
    const e = await open();
    await signIn(e, "李娟");
    await go(e, "settings");
    await ready(e, "dl.facts");
    await e.getByLabel("语言").selectOption("en");
    await e.getByRole("button", { name: "保存", exact: true }).click();
    await e.getByRole("heading", { name: "Settings", exact: true }).waitFor();
    const lang = await e.evaluate(() => document.documentElement.lang);
    if (lang !== "en") throw new Error(`<html lang="${lang}">`);
    const nav = await e.locator("nav a").allTextContents();
    if (!nav.includes("Dashboard") || !nav.includes("Time account")) throw new Error(`the menu says ${nav.join(", ")}`);
    await axe(e);
    await go(e, "dashboard");
    await ready(e, "[data-testid=dashboard-figures]");
    await expectHeading(e, "Dashboard");
    await axe(e);
    await e.context().close();
  });

  await check("settings: the largest text size doubles the root font and every screen fits the smallest window", async () => {
    const f = await open();
    // The desktop window's minimum size (src-tauri/tauri.conf.json).
    await f.setViewportSize({ width: 960, height: 640 });
    await signIn(f, "李娟");
    await go(f, "settings");
    await ready(f, "dl.facts");
    await f.getByLabel("字号").selectOption("200");
    await f.getByRole("button", { name: "保存", exact: true }).click();
    await f.getByRole("status").filter({ hasText: "已保存" }).waitFor();
    const size = await f.evaluate(() => getComputedStyle(document.documentElement).fontSize);
    if (size !== "40px") throw new Error(`the root font size is ${size}, expected 40px`);
    const wide = [];
    for (const [route, , sel] of SCREENS) {
      await go(f, route);
      await ready(f, sel);
      const over = await f.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      if (over > 1) wide.push(`${route} (+${over}px)`);
      // A wide table scrolls by itself: it must then take the focus (scrollable-region-focusable).
      if (["members", "reports", "desk", "account"].includes(route)) await axe(f).catch((e) => wide.push(`${route}: ${e.message}`));
    }
    if (wide.length) throw new Error(`at 200% text: ${wide.join("\n")}`);
    await f.context().close();
  });

  await check("the page raised no errors", async () => {
    current = null;
    if (pageErrors.length) throw new Error([...new Set(pageErrors)].join("\n"));
  });
} catch (e) {
  failed++;
  log(`FAIL the browser run stopped: ${e?.stack ?? e}`);
} finally {
  await browser.close().catch(() => undefined);
  server.close();
}

log(`all checks took ${((Date.now() - started) / 1000).toFixed(1)} s, the build included`);
// The last line, as scripts/test.sh reads it: "browser: N passed, M failed".
log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
