// The two translations stay complete and in step with the code: the same keys (plurals
// included), no empty text, the same {{placeholders}}, every key the source uses with a
// literal, and every value a key built at run time (t(`status.${s}`)) can take.
import { describe, expect, it } from "vitest";
import zh from "../../src/i18n/zh-CN.json";
import en from "../../src/i18n/en.json";
import { ALL } from "../../src/App";

type Tree = { [k: string]: string | Tree };

function flatten(tree: Tree, prefix = "", out: Record<string, string> = {}): Record<string, string> {
  for (const [k, v] of Object.entries(tree)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === "string") out[key] = v;
    else if (v && typeof v === "object") flatten(v, key, out);
    else out[key] = v as unknown as string; // a number or null: reported as not text below
  }
  return out;
}

const ZH = flatten(zh as Tree);
const EN = flatten(en as Tree);
const LANGS = { "zh-CN": ZH, en: EN } as const;

// Every source file of the UI except the generated bindings and the test backend.
const SOURCES = Object.entries(
  import.meta.glob<string>(["../../src/**/*.{ts,tsx}", "!../../src/bindings.ts", "!../../src/mock/**"], { query: "?raw", import: "default", eager: true }),
);
const BINDINGS = Object.values(import.meta.glob<string>("../../src/bindings.ts", { query: "?raw", import: "default", eager: true }))[0];
const source = (name: string) => SOURCES.find(([f]) => f.endsWith(name))?.[1] ?? "";

/** A key as used in code: the key itself, or a plural pair key_one / key_other. */
function has(flat: Record<string, string>, key: string): boolean {
  return key in flat || (`${key}_one` in flat && `${key}_other` in flat);
}

/** The members of a string union in the generated bindings, e.g. `export type Role = "a" | "b";`. */
function union(name: string): string[] {
  const m = new RegExp(`export type ${name} = ([^;]+);`).exec(BINDINGS);
  if (!m) throw new Error(`no type ${name} in bindings.ts`);
  return [...m[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]);
}

// The values each key built at run time can take, by the literal prefix of its template.
// Where the code or the generated bindings list them, they are read from there; the rest are
// the values the Rust core sends (the file named next to each).
const FAMILIES: Record<string, string[]> = {
  "nav.": ALL,
  "roles.": union("Role"),
  "vetting.": union("Vetting"),
  "relations.": union("Relation"),
  // core/src/domain/order.rs OrderStatus
  "status.": ["open", "accepted", "in_service", "awaiting_confirmation", "completed", "cancelled", "expired", "disputed"],
  "desk.tabs.": [...(/type Tab = ([^;]+);/.exec(source("screens/StaffDesk.tsx"))?.[1] ?? "").matchAll(/"([^"]+)"/g)].map((x) => x[1]),
  // core/src/views.rs ResidentChoice.because, src-tauri/src/prefs.rs family_of
  "request.because.": ["self", "family", "staff"],
  "settings.font": (/\[([\d, ]+)\]\.map\(\(f\)/.exec(source("screens/Settings.tsx"))?.[1] ?? "").split(",").map((x) => x.trim()),
  // src-tauri/src/prefs.rs device_role: the role the server enrolled the device with, or local
  "settings.roles.": ["center", "volunteer", "local"],
  // core/src/import.rs: the columns, and "header" and "row" for the whole header or row
  "members.fields.": ["header", "row", "name", "phone", "date_of_birth", "community", "roles", "address", "service_fields"],
  // core/src/domain/rules.rs HoldReason, and the flags of core/src/service (ledger.rs, orders.rs)
  "flags.": ["max_per_visit", "max_per_day", "balance_cap", "paid_by_programme", "contested_completion"],
  // core/src/service/feedback.rs SAFEGUARDING_CATEGORIES and update_safeguarding
  "safeguarding.categories.": ["neglect", "abuse", "fraud", "health", "conduct", "other"],
  "safeguarding.status.": ["open", "in_progress", "closed"],
  // src/components/ui.tsx DateField: the parts of a date and a time
  "date.": ["y", "m", "d", "h", "min"],
  // src/components/ui.tsx useRequired: the message of a required field left empty
  "form.": ["fill", "choose"],
  // core/src/domain/types.rs TransferKind
  "kinds.": ["service_credit", "spend", "gift", "signup_bonus", "correction"],
  // core/src/read.rs report_csv: the header of each report
  "reports.columns.": ["service_field", "community", "month", "orders_posted", "orders_completed", "minutes_credited", "hours_credited", "volunteer_visits"],
  "reports.": ["byField", "byCommunity", "byMonth"],
  // core/src/service/members.rs update: the profile fields decided per field on the server
  "desk.fields.": ["name", "phone", "address"],
};
// notify.ts builds `inbox.kinds.<kind>.title` and `.body` from the kind of each inbox message:
// every kind the core and the server write (notify(…, "kind", …) in core/src/service, server/src/push.rs).
const INBOX_KINDS = [
  "order_accepted", "order_assigned", "order_released", "order_posted_for_you", "volunteer_arrived", "visit_complete", "order_completed",
  "hours_credited", "hours_gifted", "dispute_filed", "order_cancelled", "order_expired", "urgent_escalated", "urgent_order", "vetting_changed",
  "ledger_flag", "feedback_answered", "safeguarding_filed", "sync_rejected", "profile_conflict", "completion_contested",
  "completion_review",
];

// The kinds the Rust sources pass to notify(c, ctx, member, "kind", …), read from the files.
const RUST_SOURCES = Object.values(
  import.meta.glob<string>(["../../../core/src/service/*.rs", "../../../server/src/*.rs"], { query: "?raw", import: "default", eager: true }),
);
function rustInboxKinds(): string[] {
  const kinds = new Set<string>();
  for (const text of RUST_SOURCES) {
    for (const m of text.matchAll(/\bnotify\(\s*[^,;]+,\s*[^,;]+,\s*[^,;]+,\s*"([a-z_]+)"/g)) kinds.add(m[1]);
  }
  return [...kinds].sort();
}

describe("the translations (zh-CN.json and en.json)", () => {
  it("have exactly the same keys, plural forms included", () => {
    const onlyZh = Object.keys(ZH).filter((k) => !(k in EN));
    const onlyEn = Object.keys(EN).filter((k) => !(k in ZH));
    expect({ onlyZh, onlyEn }).toEqual({ onlyZh: [], onlyEn: [] });
  });

  it("have no empty or non-text values", () => {
    for (const [lang, flat] of Object.entries(LANGS)) {
      const bad = Object.entries(flat).filter(([, v]) => typeof v !== "string" || v.trim() === "").map(([k]) => k);
      expect(bad, `${lang}: empty or not text`).toEqual([]);
    }
  });

  it("have both plural forms wherever one is given", () => {
    for (const [lang, flat] of Object.entries(LANGS)) {
      const missing = Object.keys(flat)
        .filter((k) => /_(one|other)$/.test(k))
        .map((k) => k.replace(/_(one|other)$/, ""))
        .filter((base) => !(`${base}_one` in flat && `${base}_other` in flat));
      expect([...new Set(missing)], `${lang}: plural without its pair`).toEqual([]);
    }
  });

  it("use the same {{placeholders}} in both languages", () => {
    // The server's refusal comes in both languages; each translation shows its own.
    const own: Record<string, [string, string]> = { "inbox.kinds.sync_rejected.body": ["message_zh", "message_en"] };
    const vars = (s: string) => [...new Set([...s.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]))].sort();
    const differ = Object.keys(ZH).filter((k) => {
      if (own[k]) return vars(ZH[k]).join() !== own[k][0] || vars(EN[k]).join() !== own[k][1];
      return vars(ZH[k]).join() !== vars(EN[k]).join();
    });
    expect(differ.map((k) => `${k}: zh ${vars(ZH[k])} / en ${vars(EN[k])}`)).toEqual([]);
  });
});

describe("the keys the source uses", () => {
  const staticKeys = new Map<string, string>(); // key → file
  const templates: { file: string; prefix: string; text: string }[] = [];
  for (const [file, text] of SOURCES) {
    for (const m of text.matchAll(/\bt\(\s*(["'])([^"'\n]+)\1/g)) staticKeys.set(m[2], file);
    for (const m of text.matchAll(/\bt\(\s*`([^`]*)`/g)) {
      const tpl = m[1];
      if (!tpl.includes("${")) staticKeys.set(tpl, file);
      else templates.push({ file, prefix: tpl.slice(0, tpl.indexOf("${")), text: tpl });
    }
  }

  it("are found (the scan works)", () => {
    expect(SOURCES.length).toBeGreaterThan(10);
    expect(staticKeys.size).toBeGreaterThan(200);
    expect(templates.length).toBeGreaterThan(10);
  });

  it("every literal key t(\"…\") exists in both languages", () => {
    for (const [lang, flat] of Object.entries(LANGS)) {
      const missing = [...staticKeys].filter(([k]) => !has(flat, k)).map(([k, f]) => `${k} (${f.replace(/^.*\/src\//, "src/")})`);
      expect(missing, `missing in ${lang}`).toEqual([]);
    }
  });

  it("every key built at run time belongs to a family whose values are all checked", () => {
    const unknown = templates.filter((x) => x.prefix !== "" && !(x.prefix in FAMILIES)).map((x) => `t(\`${x.text}\`) in ${x.file}`);
    expect(unknown, "add these to FAMILIES with every value they can take").toEqual([]);
    // The only template without a literal prefix is the inbox kind in notify.ts.
    expect(templates.filter((x) => x.prefix === "").map((x) => x.file.replace(/^.*\/src\//, "src/"))).toEqual(["src/notify.ts", "src/notify.ts"]);
  });

  it.each(Object.entries(FAMILIES))("every value of %s… has a text in both languages", (prefix, values) => {
    expect(values.length).toBeGreaterThan(0);
    for (const [lang, flat] of Object.entries(LANGS)) {
      const missing = values.filter((v) => !has(flat, `${prefix}${v}`));
      expect(missing, `${prefix}… missing in ${lang}`).toEqual([]);
    }
  });

  it("lists every inbox kind the core and the server send", () => {
    const found = rustInboxKinds();
    expect(found.length).toBeGreaterThan(15);
    expect(found.filter((k) => !INBOX_KINDS.includes(k))).toEqual([]);
  });

  it("every kind of inbox message has a title in both languages, and a body unless it needs none", () => {
    for (const [lang, flat] of Object.entries(LANGS)) {
      expect(INBOX_KINDS.filter((k) => !(`inbox.kinds.${k}.title` in flat)), `titles missing in ${lang}`).toEqual([]);
      expect(INBOX_KINDS.filter((k) => !(`inbox.kinds.${k}.body` in flat)), `bodies missing in ${lang}`).toEqual([]);
    }
    expect("inbox.kinds.other.title" in ZH && "inbox.kinds.other.title" in EN).toBe(true);
  });
});
