// A small WebDriver client (W3C protocol over fetch) for the end-to-end tests: enough to find
// elements by text or label, click, type, choose options and wait. No dependencies.
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

export class Driver {
  constructor(base = "http://127.0.0.1:4444") {
    this.base = base;
    this.session = null;
  }

  async req(method, path, body) {
    const url = this.session ? `${this.base}/session/${this.session}${path}` : `${this.base}${path}`;
    const r = await fetch(url, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = new Error(`${method} ${path}: ${j.value?.error ?? r.status} ${j.value?.message ?? ""}`);
      e.wd = j.value?.error;
      throw e;
    }
    return j.value;
  }

  async start(application, args = []) {
    const v = await this.req("POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application, args } } },
    });
    this.session = v.sessionId;
    return this;
  }

  async quit() {
    if (!this.session) return;
    try {
      await this.req("DELETE", "");
    } catch {
      /* the app may already be gone */
    }
    this.session = null;
  }

  async exec(script, ...args) {
    return this.req("POST", "/execute/sync", { script, args });
  }

  /** Run an async script; it ends by calling its last argument with the result. */
  async execAsync(script, ...args) {
    return this.req("POST", "/execute/async", { script, args });
  }

  async xpathAll(xpath) {
    const v = await this.req("POST", "/elements", { using: "xpath", value: xpath });
    return v.map((e) => e[ELEMENT]);
  }

  /** Wait until `xpath` matches a displayed element; returns its id. */
  async find(xpath, timeout = 15000) {
    const until = Date.now() + timeout;
    let last;
    while (Date.now() < until) {
      try {
        for (const id of await this.xpathAll(xpath)) {
          if (await this.req("GET", `/element/${id}/displayed`)) return id;
        }
      } catch (e) {
        last = e;
      }
      await sleep(150);
    }
    throw new Error(`timed out waiting for ${xpath}${last ? ` (${last.message})` : ""}`);
  }

  async gone(xpath, timeout = 15000) {
    const until = Date.now() + timeout;
    while (Date.now() < until) {
      if ((await this.xpathAll(xpath)).length === 0) return;
      await sleep(150);
    }
    throw new Error(`still there after ${timeout} ms: ${xpath}`);
  }

  async click(xpath) {
    const id = await this.find(xpath);
    await this.exec("arguments[0].scrollIntoView({block:'center'})", { [ELEMENT]: id });
    await this.req("POST", `/element/${id}/click`, {});
    return id;
  }

  async text(xpath) {
    const id = await this.find(xpath);
    return this.req("GET", `/element/${id}/text`);
  }

  async attr(xpath, name) {
    const id = await this.find(xpath);
    return this.req("GET", `/element/${id}/attribute/${name}`);
  }

  /** The form control labelled `label` (by its <label for=...>). */
  async control(label) {
    const forId = await this.attr(`//label[normalize-space(.)=${q(label)}]`, "for");
    return this.find(`//*[@id=${q(forId)}]`);
  }

  async type(label, value) {
    const id = await this.control(label);
    await this.req("POST", `/element/${id}/clear`, {});
    await this.req("POST", `/element/${id}/value`, { text: value });
  }

  /** Choose the option whose text contains `option` in the select labelled `label`. */
  async choose(label, option) {
    const id = await this.control(label);
    const ok = await this.exec(
      `const s = arguments[0]; const want = arguments[1];
       const o = [...s.options].find((o) => o.textContent.includes(want));
       if (!o) return false;
       const set = Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, "value").set;
       set.call(s, o.value);
       s.dispatchEvent(new Event("change", { bubbles: true }));
       return true;`,
      { [ELEMENT]: id },
      option,
    );
    if (!ok) throw new Error(`no option containing ${option} in ${label}`);
  }

  async go(route) {
    await this.exec(`window.location.hash = arguments[0]`, `#/${route}`);
  }

  async screenshot(file) {
    const png = await this.req("GET", "/screenshot");
    const fs = await import("node:fs");
    fs.writeFileSync(file, Buffer.from(png, "base64"));
  }
}

/** An XPath string literal (handles quotes). */
export function q(s) {
  if (!s.includes("'")) return `'${s}'`;
  if (!s.includes('"')) return `"${s}"`;
  return `concat('${s.replace(/'/g, `', "'", '`)}')`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start tauri-driver on `port` (WebKitWebDriver behind it on `nativePort`) and wait until both
 * answer. tauri-driver accepts connections before its native driver listens
 * (tauri-apps/tauri#15156): a session asked for in that window has its connection closed with
 * no answer, so readiness is a `/status` answered through tauri-driver, not an open port.
 */
export async function startDriver({ port = 4444, nativePort = 4445, spawn, stdio = "ignore", timeout = 30000 }) {
  const child = spawn("tauri-driver", ["--port", String(port), "--native-port", String(nativePort)], {
    stdio: ["ignore", stdio, stdio],
  });
  let exited = null;
  child.on("exit", (code, signal) => (exited = signal ?? code));
  const until = Date.now() + timeout;
  let last = "no answer";
  while (Date.now() < until) {
    if (exited !== null) throw new Error(`tauri-driver exited (${exited}) before it was ready`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/status`);
      const j = await r.json();
      if (r.ok && j.value?.ready !== false) return child;
      last = `status ${r.status} ${JSON.stringify(j.value ?? j)}`;
    } catch (e) {
      last = e.cause?.code ?? e.message;
    }
    await sleep(100);
  }
  child.kill();
  throw new Error(`tauri-driver was not ready on port ${port} after ${timeout} ms (${last})`);
}
