// Benchmark of the desktop app (release build, demo data): time from start to an interactive
// screen and to the dashboard, and total memory (the app plus its WebKit processes, PSS),
// against a bare Tauri hello-world built and measured the same way. Prints figures; asserts
// nothing. Run through bench/app/run.sh (it builds, starts a city server and a display).
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Driver, q, sleep, startDriver } from "../../tests/e2e/wd.mjs";

const { APP, HELLO, SERVER_URL, CODE, WORK } = process.env;
const RUNS = Number(process.env.RUNS ?? 5);

function children(pid) {
  const out = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

function pss(pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function name(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

/** PSS in MB of the process named `comm` and all its descendants (the WebKit processes). */
function treePss(comm) {
  const root = execFileSync("pgrep", ["-n", "-x", comm.slice(0, 15)], { encoding: "utf8" }).trim();
  const parts = {};
  const walk = (pid) => {
    parts[`${name(pid)}(${pid})`] = pss(pid) / 1024;
    children(pid).forEach(walk);
  };
  walk(Number(root));
  const total = Object.values(parts).reduce((a, b) => a + b, 0);
  return { total, parts };
}

/** Wall-clock start of the newest process named `comm`, in epoch ms (10 ms resolution). */
function processStartEpoch(comm) {
  const pid = execFileSync("pgrep", ["-n", "-x", comm.slice(0, 15)], { encoding: "utf8" }).trim();
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  const btime = Number(/^btime (\d+)$/m.exec(fs.readFileSync("/proc/stat", "utf8"))[1]);
  return btime * 1000 + ticks * 10;
}

/** Epoch ms of the UI's performance mark `name` (set when a screen first shows its data). */
async function markEpoch(name) {
  return d.exec(
    `const m = performance.getEntriesByName(arguments[0])[0];
     return m ? performance.timeOrigin + m.startTime : null;`,
    name,
  );
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => x.toFixed(0);

const driver = await startDriver({ spawn });
const d = new Driver();

// --- the app ---
const startup = [];
const sessions = [];
const inPage = [];
const dashInPage = [];
// Process start to an interactive dashboard without the time WebDriver spends choosing the
// member and typing the PIN: the sign-in screen's mark plus sign-in to the dashboard's.
const toDashboardOwn = [];
const toDashboard = [];
const mem = [];
for (let i = 0; i < RUNS; i++) {
  const t0 = performance.now();
  await d.start(APP, ["--data-dir", path.join(WORK, "app"), "--enrol-server", SERVER_URL, "--enrol-code", CODE]);
  const tSession = performance.now();
  await d.find(`//button[contains(@class,'person')][.//span[normalize-space(.)=${q("沈伟")}]]`, 60000);
  const t1 = performance.now();
  const ready = await markEpoch("signin-interactive");
  if (i === 0) {
    // The first run enrols and downloads the demo data: not a start-up, not counted.
    await d.quit();
    await sleep(500);
    continue;
  }
  await d.click(`//button[contains(@class,'person')][.//span[normalize-space(.)=${q("沈伟")}]]`);
  await d.type("密码（4到6位数字）", "1234");
  const t2 = performance.now();
  await d.click(`//button[normalize-space(.)='登录']`);
  await d.find("//*[@data-testid='dashboard-figures']");
  const t3 = performance.now();
  const clicked = await markEpoch("signin-submitted");
  const shown = await markEpoch("dashboard-interactive");
  if (ready) inPage.push(ready - processStartEpoch("timebank-app"));
  if (clicked && shown) dashInPage.push(shown - clicked);
  if (ready && clicked && shown) toDashboardOwn.push(ready - processStartEpoch("timebank-app") + (shown - clicked));
  startup.push(t1 - t0);
  sessions.push(tSession - t0);
  toDashboard.push(t3 - t2);
  await sleep(3000);
  mem.push(treePss("timebank-app"));
  await d.quit();
  await sleep(500);
}

// --- the hello-world, measured the same way (and with a page of Chinese text) ---
const helloInPage = [];
async function hello(args) {
  const start = [];
  const memory = [];
  for (let i = 0; i < RUNS - 1; i++) {
    const t0 = performance.now();
    await d.start(HELLO, args);
    await d.find("//h1[@id='hello']", 30000);
    start.push(performance.now() - t0);
    const loaded = await d.exec(
      "const n = performance.getEntriesByType('navigation')[0]; return n && n.loadEventEnd > 0 ? performance.timeOrigin + n.loadEventEnd : null;",
    );
    if (loaded && args.length === 0) helloInPage.push(loaded - processStartEpoch("tauri-hello"));
    await sleep(3000);
    memory.push(treePss("tauri-hello"));
    await d.quit();
    await sleep(500);
  }
  return { start, memory };
}
const { start: helloStart, memory: helloMem } = await hello([]);
const { memory: helloZhMem } = await hello(["--zh"]);
driver.kill();

const appPss = median(mem.map((m) => m.total));
const helloPss = median(helloMem.map((m) => m.total));
console.log(`runs: ${startup.length} (after one enrolling run)`);
console.log(`start to interactive sign-in screen: median ${fmt(median(startup))} ms (min ${fmt(Math.min(...startup))}, max ${fmt(Math.max(...startup))}; includes WebDriver session set-up)`);
console.log(`  of which the WebDriver session (driver start, app start, page load): median ${fmt(median(sessions))} ms`);
if (inPage.length) console.log(`process start to interactive sign-in screen (the UI's own mark, no WebDriver): median ${fmt(median(inPage))} ms (min ${fmt(Math.min(...inPage))}, max ${fmt(Math.max(...inPage))})`);
console.log(`sign-in to interactive dashboard with live figures: median ${fmt(median(toDashboard))} ms through WebDriver${dashInPage.length ? `, ${fmt(median(dashInPage))} ms by the UI's marks` : ""}`);
if (toDashboardOwn.length) console.log(`process start to an interactive dashboard (the two marks above, without the time spent choosing and typing): median ${fmt(median(toDashboardOwn))} ms (min ${fmt(Math.min(...toDashboardOwn))}, max ${fmt(Math.max(...toDashboardOwn))})`);
console.log(`hello-world start to page: median ${fmt(median(helloStart))} ms (same WebDriver set-up)`);
if (helloInPage.length) console.log(`hello-world process start to its page loaded (the page's own timing, no WebDriver): median ${fmt(median(helloInPage))} ms`);
console.log(`memory (PSS, app + WebKit processes): app ${fmt(appPss)} MB, hello-world ${fmt(helloPss)} MB, ratio ${(appPss / helloPss).toFixed(2)}`);
const helloZhPss = median(helloZhMem.map((m) => m.total));
console.log(`  hello-world showing Chinese text (the CJK fonts loaded): ${fmt(helloZhPss)} MB; app / that: ${(appPss / helloZhPss).toFixed(2)}`);
console.log("  app parts:", Object.entries(mem[mem.length - 1].parts).map(([k, v]) => `${k} ${fmt(v)} MB`).join(", "));
console.log("  hello parts:", Object.entries(helloMem[helloMem.length - 1].parts).map(([k, v]) => `${k} ${fmt(v)} MB`).join(", "));
