// An in-memory stand-in for the Rust core, for the UI tests (Vitest) and the browser tests
// (Playwright + axe). It answers the same commands with the same shapes as src-tauri, from a
// small Fuyuanxincun demo, with the core's messages in both languages and the events the app
// emits (data-changed, sync-status-changed, session-locked); it is never part of the desktop
// app's build.
import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import type {
  ActivityItem, AppInfo, BalanceView_Serialize, BoardItem_Serialize, Dashboard_Serialize, EntryView_Serialize,
  FeedbackItem_Serialize, InboxItemView, HeldRow_Serialize, Me, MemberRow_Serialize, NewOrder_Serialize, OrderRow,
  OrderView_Serialize, Preferences, ResidentChoice, SafeguardingReport_Serialize, ServiceItem, SignInChoice,
  SignupItem, SyncStatusView_Serialize, UiError_Serialize,
} from "../bindings";

const H = 3600_000;
export const NOW = Date.UTC(2026, 10, 28, 6, 0);
const FY = { id: "c-fy", name_zh: "府苑新村", name_en: "Fuyuanxincun" };
const XY = { id: "c-xy", name_zh: "西溪花园", name_en: "Xixi Garden" };

/** A member of the demo, as the core knows them. */
export interface MockMember {
  me: Me;
  phone: string;
  age: number;
  vetting: string | null;
  /** Ids of linked family (both directions). */
  family: string[];
  balance: number;
  entries: EntryView_Serialize[];
}

export interface MockState {
  pins: Record<string, string>;
  members: Record<string, MockMember>;
  signedIn: string | null;
  prefs: Preferences;
  deviceRole: string;
  sync: SyncStatusView_Serialize;
  orders: OrderView_Serialize[];
  board: BoardItem_Serialize[];
  inbox: InboxItemView[];
  activities: ActivityItem[];
  signups: Record<string, SignupItem[]>;
  flags: (HeldRow_Serialize & { status: string })[];
  reports: SafeguardingReport_Serialize[];
  feedback: FeedbackItem_Serialize[];
  calls: { cmd: string; args: unknown }[];
  nextId: number;
}

function member(id: string, name: string, roles: string[], o: Partial<MockMember> & { staff?: boolean } = {}): MockMember {
  const staff = !!o.staff;
  return {
    me: { id, name, roles, home_community_id: FY.id, home_community: FY.name_zh, staff_communities: staff ? [FY, XY] : [], is_staff: staff },
    phone: o.phone ?? "13700000000",
    age: o.age ?? 60,
    vetting: o.vetting ?? null,
    family: o.family ?? [],
    balance: o.balance ?? 0,
    entries: o.entries ?? [],
  };
}

const SERVICES: ServiceItem[] = [
  { code: "escort_clinic", field_code: "health", field_zh: "医疗健康", field_en: "Health", name_zh: "陪同就医", name_en: "Escort to clinic" },
  { code: "shopping", field_code: "daily_living", field_zh: "生活照料", field_en: "Daily living", name_zh: "代购买菜", name_en: "Shopping" },
  { code: "medicine", field_code: "daily_living", field_zh: "生活照料", field_en: "Daily living", name_zh: "代取药品", name_en: "Collect medicine" },
  { code: "chat", field_code: "companionship", field_zh: "精神慰藉", field_en: "Companionship", name_zh: "聊天陪伴", name_en: "Companionship" },
];
const service = (code: string) => SERVICES.find((s) => s.code === code) ?? SERVICES[0];

function order(id: string, code: string, status: string, o: Partial<OrderView_Serialize>): OrderView_Serialize {
  const s = service(code);
  const zh: Record<string, string> = {
    open: "待接单", accepted: "已接单", in_service: "服务中", awaiting_confirmation: "待确认", completed: "已完成", cancelled: "已取消", expired: "已过期", disputed: "有争议",
  };
  return {
    id, status, status_zh: zh[status] ?? status, service_zh: s.name_zh, service_en: s.name_en, description: "", urgent: false,
    beneficiary_name: "王德明", posted_by_name: "王秀芝", place_hint: "府苑新村12幢", address: null, beneficiary_phone: null,
    expected_minutes: 60, volunteers_needed: 1, accepted_count: 0, visits_total: 1, visits_done: 0, volunteers: [], created_at: NOW - 2 * H,
    ...o,
  };
}

export function initialState(): MockState {
  const members: Record<string, MockMember> = {
    "m-staff": member("m-staff", "李娟", ["staff"], { staff: true, phone: "13700000009", age: 38, balance: 0 }),
    "m-majun": member("m-majun", "马军", ["resident", "volunteer"], {
      phone: "13700000003", age: 41, vetting: "verified", balance: 720,
      entries: [
        { entry_id: "e-2", transfer_id: "t-2", at: NOW - H, kind: "service_credit", amount: 120, memo: "陪同就医 / Escort to clinic", balance_after: 720 },
        { entry_id: "e-1", transfer_id: "t-1", at: NOW - 50 * H, kind: "signup_bonus", amount: 600, memo: "", balance_after: 600 },
      ],
    }),
    "m-xiuzhi": member("m-xiuzhi", "王秀芝", ["resident", "family"], {
      phone: "13700000002", age: 58, family: ["m-wang"], balance: 720,
      entries: [
        { entry_id: "e-4", transfer_id: "t-4", at: NOW - 3 * H, kind: "gift", amount: -60, memo: "给爸爸 / For Dad", balance_after: 720 },
        { entry_id: "e-3", transfer_id: "t-3", at: NOW - 80 * H, kind: "service_credit", amount: 780, memo: "代购买菜 / Shopping", balance_after: 780 },
      ],
    }),
    "m-wang": member("m-wang", "王德明", ["resident"], { phone: "13700000001", age: 85, family: ["m-xiuzhi"], balance: 60 }),
    "m-zhang": member("m-zhang", "张桂英", ["resident"], { phone: "13700000004", age: 79, balance: 0 }),
  };
  const orders = [
    order("o-1", "escort_clinic", "open", { urgent: true, description: "陪王德明到社区医院复查", expected_minutes: 120, created_at: NOW - 2 * H }),
    order("o-2", "chat", "open", { beneficiary_name: "张桂英", posted_by_name: "李娟", place_hint: "府苑新村3幢", created_at: NOW - 5 * H }),
    order("o-3", "shopping", "awaiting_confirmation", { volunteers: ["马军"], accepted_count: 1, visits_done: 0, created_at: NOW - 26 * H }),
    order("o-4", "escort_clinic", "completed", { volunteers: ["马军"], accepted_count: 1, visits_done: 1, expected_minutes: 120, created_at: NOW - 72 * H }),
    order("o-5", "chat", "disputed", { beneficiary_name: "张桂英", posted_by_name: "李娟", place_hint: "府苑新村3幢", volunteers: ["马军"], accepted_count: 1, created_at: NOW - 30 * H }),
    order("o-6", "shopping", "accepted", { beneficiary_name: "张桂英", posted_by_name: "李娟", place_hint: "府苑新村3幢", volunteers: ["马军"], accepted_count: 1, created_at: NOW - 4 * H }),
  ];
  return {
    pins: { "m-staff": "1234", "m-majun": "1234", "m-xiuzhi": "1234", "m-wang": "2468" },
    members,
    signedIn: null,
    prefs: { lang: "zh-CN", font_scale: 100, lock_minutes: 5 },
    deviceRole: "center",
    sync: { enrolled: true, server: "http://127.0.0.1:8620", online: true, pending: 0, last_success_ms: NOW - 60_000, last_error: null, last_error_en: null, syncing: false, pull: null },
    orders,
    board: orders.filter((o) => o.status === "open").map((o) => boardItem(o, o.id === "o-1" ? NOW + 20 * H : null)),
    inbox: [
      { id: "i-1", kind: "hours_credited", params: { minutes: 120, order_id: "o-4" }, read: false, created_at: NOW - H },
      { id: "i-2", kind: "order_accepted", params: { volunteer: "马军", order_id: "o-3" }, read: true, created_at: NOW - 30 * H },
      { id: "i-3", kind: "sync_rejected", params: { message_zh: "这个订单已被赵强接单，人数已满。", message_en: "This order was already taken by 赵强; no more volunteers are needed." }, read: true, created_at: NOW - 6 * H },
    ],
    activities: [
      { id: "a-1", community_id: FY.id, title: "重阳节包饺子", description: "社区食堂，欢迎老人和志愿者一起来", starts_at: NOW + 48 * H, credit_minutes: 120, capacity: 30, status: "open", signed_up: 2, attended: 0, i_signed_up: false },
      { id: "a-2", community_id: FY.id, title: "智能手机课堂", description: "教老人用手机挂号", starts_at: NOW + 96 * H, credit_minutes: 60, capacity: 15, status: "open", signed_up: 1, attended: 0, i_signed_up: false },
    ],
    signups: {
      "a-1": [{ member_id: "m-majun", name: "马军", attended: false }, { member_id: "m-xiuzhi", name: "王秀芝", attended: false }],
      "a-2": [{ member_id: "m-zhang", name: "张桂英", attended: false }],
    },
    flags: [
      { id: "f-1", kind: "max_per_day", member_id: "m-majun", member_name: "马军", order_id: "o-4", held_minutes: 300, status: "open", info: { reason: "max_per_day" }, created_at: NOW - 20 * H },
      {
        id: "f-2", kind: "contested_completion", member_id: "m-majun", member_name: "马军", order_id: "o-3", held_minutes: 90, status: "open", created_at: NOW - 6 * H,
        info: { taken_by: "赵强", checked_in_at: NOW - 8 * H, checked_out_at: NOW - 6.5 * H, note: "老人血压正常", resident_confirmed_at: NOW - 6.4 * H },
      },
    ],
    reports: [
      { id: "s-1", reporter_id: "m-majun", subject_member_id: "m-zhang", order_id: null, community_id: FY.id, category: "neglect", details: "老人家里没有吃的，子女联系不上", status: "open", handled_by: null, resolution: null, created_at: NOW - 8 * H, updated_at: NOW - 8 * H },
    ],
    feedback: [
      { id: "fb-1", order_id: "o-0", service_zh: "陪同就医", author: "王秀芝", rating: 5, comment: "马军很细心", staff_response: null, created_at: NOW - 3 * H },
    ],
    calls: [],
    nextId: 100,
  };
}

function boardItem(o: OrderView_Serialize, start: number | null): BoardItem_Serialize {
  const s = SERVICES.find((x) => x.name_zh === o.service_zh) ?? SERVICES[0];
  return {
    id: o.id, service_code: s.code, service_zh: s.name_zh, service_en: s.name_en, field_code: s.field_code, urgent: o.urgent,
    escalated: false, community_id: FY.id, place_hint: o.place_hint, window_start: start, window_end: start === null ? null : start + 3 * H,
    expected_minutes: o.expected_minutes, volunteers_needed: o.volunteers_needed, accepted_count: o.accepted_count, visits_total: o.visits_total,
    created_at: o.created_at,
  };
}

export function err(code: string, zh: string, en: string, data: unknown = null): UiError_Serialize {
  return { code, message_zh: zh, message_en: en, detail: {}, data: data as UiError_Serialize["data"] };
}

const zhHours = (m: number) => (m % 60 === 0 ? `${m / 60}小时` : `${Math.floor(m / 60)}小时${m % 60}分钟`);
const enHours = (m: number) => (m % 60 === 0 ? `${m / 60} h` : `${Math.floor(m / 60)} h ${m % 60} min`);

function dashboard(): Dashboard_Serialize {
  return {
    volunteers_registered: 132, volunteers_active_30d: 57, orders_open: 6, orders_in_service: 2, orders_completed_today: 3,
    orders_completed_month: 81, minutes_deposited: 24_360, minutes_spent: 3_120, median_minutes_to_accept: 42,
    satisfaction_avg: 4.8, ratings: 64,
    by_field: [
      { key: "daily_living", label_zh: "生活照料", label_en: "Daily living", orders_completed: 40, minutes_credited: 9_600 },
      { key: "health", label_zh: "医疗健康", label_en: "Health", orders_completed: 22, minutes_credited: 8_200 },
      { key: "companionship", label_zh: "精神慰藉", label_en: "Companionship", orders_completed: 19, minutes_credited: 6_560 },
    ],
    by_community: [
      { key: FY.id, label_zh: FY.name_zh, label_en: FY.name_en, orders_completed: 51, minutes_credited: 15_000 },
      { key: XY.id, label_zh: XY.name_zh, label_en: XY.name_en, orders_completed: 30, minutes_credited: 9_360 },
    ],
  };
}

/** The report as the core writes it (core/src/read.rs report_csv): snake_case header, one row a key. */
function reportCsv(by: string): string {
  const head = by === "community" ? "community" : by === "month" ? "month" : "service_field";
  const rows =
    by === "community"
      ? [["府苑新村", "60", "51", "15000", "250.00", "70"], ["西溪花园", "34", "30", "9360", "156.00", "41"]]
      : by === "month"
        ? [["2026-10", "50", "44", "13000", "216.67", "60"], ["2026-11", "44", "37", "11360", "189.33", "51"]]
        : [["daily_living 生活照料", "45", "40", "9600", "160.00", "52"], ["health 医疗健康", "26", "22", "8200", "136.67", "30"], ["companionship 精神慰藉", "23", "19", "6560", "109.33", "29"]];
  return [[head, "orders_posted", "orders_completed", "minutes_credited", "hours_credited", "volunteer_visits"], ...rows].map((r) => r.join(",")).join("\n") + "\n";
}

const IMPORT_HEADER = ["name", "phone", "date_of_birth", "community", "roles", "address", "service_fields"];

/** The core's CSV check (core/src/import.rs), for the rows the demo needs: every bad row, with its line. */
function checkImport(csv: string, known: Set<string>): { rows: number; volunteers: number; errors: { line: number; field: string; reason_zh: string; reason_en: string }[] } {
  const lines = csv.replace(/^\uFEFF/, "").split(/\r?\n/);
  const header = (lines[0] ?? "").split(",").map((h) => h.trim().toLowerCase());
  if (header.join(",") !== IMPORT_HEADER.join(",")) {
    return { rows: 0, volunteers: 0, errors: [{ line: 1, field: "header", reason_zh: `表头应为：${IMPORT_HEADER.join(",")}`, reason_en: `the header must be: ${IMPORT_HEADER.join(",")}` }] };
  }
  const errors: { line: number; field: string; reason_zh: string; reason_en: string }[] = [];
  let rows = 0;
  let volunteers = 0;
  const phones = new Set(known);
  lines.slice(1).forEach((text, i) => {
    const line = i + 2;
    if (!text.trim()) return;
    const f = text.split(",").map((x) => x.trim());
    const bad = (field: string, zh: string, en: string) => errors.push({ line, field, reason_zh: zh, reason_en: en });
    if (f.length !== IMPORT_HEADER.length) return bad("row", `应有${IMPORT_HEADER.length}列，实际${f.length}列`, `expected ${IMPORT_HEADER.length} columns, found ${f.length}`);
    if (!/^\d{4}-\d{2}-\d{2}$/.test(f[2])) return bad("date_of_birth", "出生日期格式应为 YYYY-MM-DD", "date of birth must be YYYY-MM-DD");
    if (![FY.name_zh, FY.name_en, XY.name_zh, XY.name_en].includes(f[3])) return bad("community", `找不到社区“${f[3]}”`, `no community named '${f[3]}'`);
    const roles = f[4].split(";").map((r) => r.trim()).filter(Boolean);
    if (roles.some((r) => !["resident", "family", "volunteer"].includes(r))) return bad("roles", "身份只能是 resident、family、volunteer（用;分隔）", "roles must be resident, family or volunteer, separated by ;");
    if (!f[0]) return bad("name", "“name”填写有误：姓名不能为空", "The field 'name' is not valid: a name is needed");
    if (!/^1\d{10}$/.test(f[1])) return bad("phone", "“phone”填写有误：手机号应为11位数字", "The field 'phone' is not valid: a phone number has 11 digits");
    if (phones.has(f[1])) return bad("phone", `手机号${f[1]}已登记或在文件中重复`, `phone ${f[1]} is already registered or repeated in the file`);
    phones.add(f[1]);
    rows++;
    if (roles.includes("volunteer")) volunteers++;
  });
  return { rows, volunteers, errors };
}

/** Answer one command as src-tauri would. Exported for unit tests. */
export async function handle(s: MockState, cmd: string, args: Record<string, unknown>): Promise<unknown> {
  s.calls.push({ cmd, args });
  const whoM = s.signedIn ? s.members[s.signedIn] : null;
  const who = whoM?.me ?? null;
  const needMe = () => {
    if (!whoM) throw err("sign_in_required", "请先选择您的名字并输入密码登录。", "Please sign in: choose your name and enter your PIN.");
    return whoM;
  };
  const needStaff = () => {
    const m = needMe();
    if (!m.me.is_staff) throw err("forbidden", "您没有权限执行此操作：工作人员操作。如需办理，请联系社区工作人员。", "You are not allowed to do staff work. Ask community staff if this needs doing.");
    return m;
  };
  const findOrder = (id: unknown) => {
    const o = s.orders.find((x) => x.id === id);
    if (!o) throw err("not_found", `找不到订单（${String(id)}）。请检查编号后重试。`, `No order with id ${String(id)} was found. Check the id and try again.`);
    return o;
  };
  const illegal = (o: OrderView_Serialize, zhAction: string, enAction: string) =>
    err("illegal_transition", `订单当前状态为“${o.status_zh}”，不能执行“${zhAction}”。`, `This cannot be done now (${enAction}): it is ${o.status.replace(/_/g, " ")}.`);
  const setStatus = (o: OrderView_Serialize, status: string) => {
    const zh: Record<string, string> = { open: "待接单", accepted: "已接单", in_service: "服务中", awaiting_confirmation: "待确认", completed: "已完成", cancelled: "已取消", disputed: "有争议" };
    o.status = status;
    o.status_zh = zh[status] ?? status;
  };
  const id = () => `x-${s.nextId++}`;
  // A local write: the data changed; offline it waits to be sent, which the indicator shows.
  const changed = async (): Promise<{ id: string; detail: null }> => {
    if (s.sync.enrolled && !s.sync.online) {
      s.sync = { ...s.sync, pending: s.sync.pending + 1 };
      await emit("sync-status-changed", { status: s.sync });
    }
    await emit("data-changed", { source: "local" });
    return { id: String(args.orderId ?? args.memberId ?? args.activityId ?? "ok"), detail: null };
  };
  switch (cmd) {
    case "app_info": {
      const info: AppInfo = { version: "0.1.0", device_id: "dev-1", device_role: s.deviceRole, data_dir: "/tmp/timebank", preferences: s.prefs, sync: s.sync };
      return info;
    }
    case "sign_in_choices": {
      const q = String(args.query ?? "").trim();
      const list: SignInChoice[] = Object.values(s.members)
        // As the core: a resident only for their whole name or phone number (session::choices).
        .filter((m) => s.pins[m.me.id] && ((q !== "" && (m.me.name === q || m.phone === q)) || (m.me.roles.some((r) => r !== "resident") && m.me.name.includes(q))))
        // Found by the number alone, a resident's name shows as the surname only.
        .map((m) => ({ id: m.me.id, name: m.me.roles.every((r) => r === "resident") && m.me.name !== q ? m.me.name[0] + "*".repeat(m.me.name.length - 1) : m.me.name, community: FY.name_zh, roles: m.me.roles }));
      return list;
    }
    case "sign_in": {
      const mid = String(args.memberId);
      if (!s.pins[mid] || s.pins[mid] !== args.pin) throw err("pin_incorrect", "密码不正确，请老人再输入一次。", "The PIN is not correct. Please enter it again.");
      s.signedIn = mid;
      return s.members[mid].me;
    }
    case "sign_out":
      s.signedIn = null;
      return null;
    case "current_user":
      return who;
    case "touch":
      return !!who;
    case "set_preferences": {
      const p = args.prefs as Preferences;
      if (!["zh-CN", "en"].includes(p.lang)) throw err("invalid_input", "“lang”填写有误：只能是 zh-CN 或 en", "The field 'lang' is not valid: zh-CN or en");
      if (p.font_scale < 100 || p.font_scale > 200) throw err("invalid_input", "“font_scale”填写有误：100到200", "The field 'font_scale' is not valid: 100 to 200");
      s.prefs = { ...p };
      return s.prefs;
    }
    case "enrol":
      s.sync = { ...s.sync, enrolled: true, server: String(args.server), online: true, last_success_ms: NOW };
      await emit("sync-status-changed", { status: s.sync });
      return { pushed: 0, rejected: 0, pulled: 120, repaired: 0, rejections: [] };
    case "sync_status":
      return s.sync;
    case "sync_now":
      if (s.sync.enrolled && s.sync.online) {
        s.sync = { ...s.sync, pending: 0, last_success_ms: Date.now(), last_error: null, last_error_en: null };
        await emit("sync-status-changed", { status: s.sync });
      }
      return s.sync;
    case "dashboard":
      needMe();
      return dashboard();
    case "city_dashboard": {
      needStaff();
      if (!s.sync.online) throw err("server_unreachable", "连不上城市服务器。数据已保存在本机，恢复连接后会自动同步。", "The city server cannot be reached. Everything is saved on this device and syncs when the connection is back.");
      const city = dashboard();
      return {
        ...city, volunteers_registered: 2_417, orders_completed_month: 1_530,
        by_community: [...city.by_community, { key: "c-jc", label_zh: "蒋村花园", label_en: "Jiangcun Garden", orders_completed: 640, minutes_credited: 41_200 }],
      };
    }
    case "communities":
      return [FY, XY];
    case "services":
      return SERVICES;
    case "board": {
      needMe();
      const q = args.query as { field_code: string | null };
      return s.board
        .filter((b) => !q.field_code || b.field_code === q.field_code)
        .sort((a, b) => Number(b.urgent) - Number(a.urgent) || b.created_at - a.created_at);
    }
    case "order_detail": {
      const m = needMe();
      const o = findOrder(args.orderId);
      const close = m.me.is_staff || o.volunteers.includes(m.me.name) || o.posted_by_name === m.me.name || o.beneficiary_name === m.me.name;
      return { ...o, address: close ? `${o.place_hint}301室` : null, beneficiary_phone: close ? "13700000001" : null };
    }
    case "my_orders":
    case "community_orders": {
      const m = needMe();
      const mine = (o: OrderView_Serialize) => o.volunteers.includes(m.me.name) || o.posted_by_name === m.me.name || o.beneficiary_name === m.me.name;
      if (cmd === "community_orders") needStaff();
      const rows: OrderRow[] = s.orders
        .filter((o) => (cmd === "my_orders" ? mine(o) : !args.status || o.status === args.status))
        .map((o) => ({
          id: o.id, status: o.status, service_zh: o.service_zh, beneficiary_name: o.beneficiary_name, urgent: o.urgent,
          place_hint: o.place_hint, created_at: o.created_at, updated_at: o.created_at + H,
        }));
      return rows;
    }
    case "find_residents": {
      const m = needMe();
      const q = String(args.query ?? "");
      const choice = (x: MockMember, because: string): ResidentChoice => ({
        id: x.me.id, name: x.me.name, phone: m.me.is_staff ? x.phone : `*******${x.phone.slice(-4)}`, community: FY.name_zh, because,
      });
      const all: ResidentChoice[] = m.me.is_staff
        ? Object.values(s.members).filter((x) => x.me.roles.includes("resident")).map((x) => choice(x, "staff"))
        : [choice(m, "self"), ...m.family.map((f) => choice(s.members[f], "family"))];
      return all.filter((r) => !q || r.name.includes(q) || r.phone.includes(q));
    }
    case "family_of": {
      const m = needMe();
      return m.family.map((f) => ({ id: f, name: s.members[f].me.name, phone: `*******${s.members[f].phone.slice(-4)}`, community: FY.name_zh, because: "family" }));
    }
    case "account": {
      const m = needMe();
      const target = s.members[String(args.memberId || m.me.id)];
      if (!target || (target !== m && !m.family.includes(target.me.id) && !m.me.is_staff)) {
        throw err("forbidden", "您没有权限执行此操作：查看他人账户。如需办理，请联系社区工作人员。", "You are not allowed to see another member's account. Ask community staff if this needs doing.");
      }
      const b: BalanceView_Serialize = {
        member_id: target.me.id, name: target.me.name, account_id: `acct-${target.me.id}`, balance: target.balance, balance_text_zh: zhHours(target.balance),
        entries: target.entries,
      };
      return b;
    }
    case "gift": {
      const m = needMe();
      const to = s.members[String(args.toMemberId)];
      const minutes = Number(args.minutes);
      if (!to || !m.family.includes(to.me.id)) {
        throw err("gift_not_allowed", `按照本项目规则，时间只能赠送给家人；${to?.me.name ?? "对方"}不在此范围内。`, `Under this programme's rules hours may only be given to family; ${to?.me.name ?? "they"} is not.`);
      }
      if (!(minutes > 0)) throw err("invalid_input", "“minutes”填写有误：必须大于0", "The field 'minutes' is not valid: it must be more than 0");
      if (minutes > m.balance) {
        throw err("insufficient_balance", `余额不足：当前余额${zhHours(m.balance)}，需要${zhHours(minutes)}。`, `Not enough hours: the balance is ${enHours(m.balance)}, ${enHours(minutes)} is needed.`);
      }
      m.balance -= minutes;
      to.balance += minutes;
      const tid = id();
      m.entries = [{ entry_id: id(), transfer_id: tid, at: Date.now(), kind: "gift", amount: -minutes, memo: String(args.note ?? ""), balance_after: m.balance }, ...m.entries];
      to.entries = [{ entry_id: id(), transfer_id: tid, at: Date.now(), kind: "gift", amount: minutes, memo: String(args.note ?? ""), balance_after: to.balance }, ...to.entries];
      await changed();
      return { id: tid, detail: null };
    }
    case "inbox":
      needMe();
      return s.inbox;
    case "mark_read": {
      needMe();
      const i = s.inbox.find((x) => x.id === args.messageId);
      if (i) i.read = true;
      return changed();
    }
    case "activities": {
      const m = needMe();
      return s.activities.map((a) => ({ ...a, signed_up: s.signups[a.id]?.length ?? 0, i_signed_up: !!s.signups[a.id]?.some((x) => x.member_id === m.me.id) }));
    }
    case "activity_signups":
      needStaff();
      return s.signups[String(args.activityId)] ?? [];
    case "sign_up_activity": {
      needMe();
      const aid = String(args.activityId);
      const list = (s.signups[aid] ??= []);
      if (list.some((x) => x.member_id === args.memberId)) throw err("already_signed_up", "已经报名过这个活动了。", "Already signed up for this activity.");
      list.push({ member_id: String(args.memberId), name: s.members[String(args.memberId)]?.me.name ?? "?", attended: false });
      return changed();
    }
    case "record_attendance": {
      needStaff();
      const list = s.signups[String(args.activityId)] ?? [];
      for (const mid of args.memberIds as string[]) {
        const x = list.find((p) => p.member_id === mid);
        if (!x) throw err("not_signed_up", `${s.members[mid]?.me.name ?? mid}没有报名这个活动。`, `${s.members[mid]?.me.name ?? mid} did not sign up for this activity.`);
        x.attended = true;
      }
      return changed();
    }
    case "create_activity": {
      needStaff();
      const a = args.activity as ActivityItem;
      if (!a.title.trim()) throw err("invalid_input", "“title”填写有误：不能为空", "The field 'title' is not valid: it is empty");
      s.activities.push({ ...a, id: id(), status: "open", signed_up: 0, attended: 0, i_signed_up: false });
      return changed();
    }
    case "community_members": {
      needStaff();
      const rows: MemberRow_Serialize[] = Object.values(s.members)
        .filter((m) => !m.me.is_staff)
        .map((m) => ({ id: m.me.id, name: m.me.name, phone: m.phone, community: FY.name_zh, roles: m.me.roles, vetting: m.vetting, age: m.age }));
      return rows;
    }
    case "feedback_desk":
      needStaff();
      return s.feedback;
    case "respond_feedback": {
      needStaff();
      const f = s.feedback.find((x) => x.id === args.feedbackId);
      if (f) f.staff_response = String(args.response);
      return changed();
    }
    case "safeguarding_queue":
      needStaff();
      return s.reports;
    case "update_safeguarding": {
      needStaff();
      const r = s.reports.find((x) => x.id === args.reportId);
      if (r) {
        r.status = String(args.status);
        r.resolution = (args.resolution as string | null) ?? r.resolution;
      }
      return changed();
    }
    case "held_hours":
      needStaff();
      return s.flags.filter((f) => f.status === "open").map(({ status: _, ...row }) => row);
    case "approve_held":
    case "dismiss_held": {
      needStaff();
      const f = s.flags.find((x) => x.id === args.flagId);
      if (f) f.status = cmd === "approve_held" ? "approved" : "dismissed";
      return changed();
    }
    case "report_csv":
      needStaff();
      return reportCsv(String(args.by));
    case "save_report":
      needStaff();
      return `/root/Documents/时间银行报表/report-${String(args.by)}.csv`;
    case "list_backups":
      needStaff();
      return [{ file_name: "timebank-2026-11-27.db", path: "/tmp/timebank/backups/timebank-2026-11-27.db", bytes: 1_048_576, modified_ms: NOW - 20 * H }];
    case "backup_now":
      needStaff();
      return { file_name: "timebank-2026-11-28.db", path: "/tmp/timebank/backups/timebank-2026-11-28.db", bytes: 1_048_576, modified_ms: NOW };
    case "import_members": {
      needStaff();
      const r = checkImport(String(args.csv ?? ""), new Set(Object.values(s.members).map((m) => m.phone)));
      if (r.errors.length > 0) {
        throw err(
          "csv_invalid",
          `导入文件有${r.errors.length}行错误，没有导入任何数据。请修改后重新导入。`,
          `The file has ${r.errors.length} bad rows; nothing was imported. Fix them and import again.`,
          r.errors,
        );
      }
      await changed();
      return { imported: r.rows, volunteers: r.volunteers };
    }
    case "post_order": {
      const m = needMe();
      const n = args.order as NewOrder_Serialize;
      const target = s.members[n.beneficiary_id];
      const sv = service(n.service_code);
      const o = order(id(), sv.code, "open", {
        description: n.description, urgent: n.urgent, beneficiary_name: target?.me.name ?? "?", posted_by_name: m.me.name, place_hint: n.place_hint,
        expected_minutes: n.expected_minutes, volunteers_needed: n.volunteers_needed, visits_total: Math.max(1, n.visits.length), created_at: Date.now(),
      });
      s.orders.unshift(o);
      s.board.unshift(boardItem(o, n.window_start));
      await changed();
      return { id: o.id, detail: null };
    }
    case "accept_order": {
      const m = needMe();
      if (!m.me.roles.includes("volunteer")) throw err("not_a_volunteer", "只有登记的志愿者才能接单。", "Only registered volunteers can take orders.");
      const o = findOrder(args.orderId);
      if (o.volunteers.includes(m.me.name)) throw err("already_accepted", "您已经接过这个订单了。", "You have already accepted this order.");
      if (o.status !== "open") throw err("order_full", `这个订单已被${o.volunteers.join("、")}接单，人数已满。`, `This order was already taken by ${o.volunteers.join(", ")}; no more volunteers are needed.`);
      o.volunteers.push(m.me.name);
      o.accepted_count++;
      if (o.accepted_count >= o.volunteers_needed) {
        setStatus(o, "accepted");
        s.board = s.board.filter((b) => b.id !== o.id);
      }
      return changed();
    }
    case "release_order": {
      const m = needMe();
      const o = findOrder(args.orderId);
      if (!o.volunteers.includes(m.me.name)) throw err("not_accepted", "您没有接这个订单，不能执行此操作。", "You have not accepted this order, so you cannot do this.");
      o.volunteers = o.volunteers.filter((v) => v !== m.me.name);
      o.accepted_count--;
      setStatus(o, "open");
      s.board.unshift(boardItem(o, null));
      return changed();
    }
    case "assign_volunteer": {
      needStaff();
      const o = findOrder(args.orderId);
      const v = s.members[String(args.volunteerId)];
      o.volunteers.push(v.me.name);
      o.accepted_count++;
      setStatus(o, "accepted");
      s.board = s.board.filter((b) => b.id !== o.id);
      return changed();
    }
    case "check_in": {
      const m = needMe();
      const o = findOrder(args.orderId);
      if (!o.volunteers.includes(m.me.name)) throw err("not_accepted", "您没有接这个订单，不能执行此操作。", "You have not accepted this order, so you cannot do this.");
      if (o.status === "in_service") throw err("already_checked_in", "您已经签到过这次服务了。", "You have already checked in for this visit.");
      setStatus(o, "in_service");
      return changed();
    }
    case "check_out": {
      needMe();
      const o = findOrder(args.orderId);
      if (o.status !== "in_service") throw err("not_checked_in", "您还没有签到，不能签退。", "You have not checked in, so you cannot check out.");
      setStatus(o, "awaiting_confirmation");
      return changed();
    }
    case "confirm_visit": {
      needMe();
      const o = findOrder(args.orderId);
      if (o.status !== "awaiting_confirmation") throw illegal(o, "确认服务", "confirm the visit");
      if (args.method === "pin") {
        const b = Object.values(s.members).find((x) => x.me.name === o.beneficiary_name);
        if (!b || s.pins[b.me.id] !== args.pin) throw err("pin_incorrect", "密码不正确，请老人再输入一次。", "The PIN is not correct. Please enter it again.");
      }
      o.visits_done = o.visits_total;
      setStatus(o, "completed");
      return changed();
    }
    case "dispute_visit": {
      needMe();
      setStatus(findOrder(args.orderId), "disputed");
      return changed();
    }
    case "resolve_dispute": {
      needStaff();
      const o = findOrder(args.orderId);
      if (o.status !== "disputed") throw illegal(o, "处理争议", "resolve the dispute");
      setStatus(o, args.credit ? "completed" : "cancelled");
      return changed();
    }
    case "cancel_order": {
      needMe();
      const o = findOrder(args.orderId);
      if (!["open", "accepted"].includes(o.status)) throw illegal(o, "取消订单", "cancel the order");
      setStatus(o, "cancelled");
      s.board = s.board.filter((b) => b.id !== o.id);
      return changed();
    }
    case "rate_service": {
      const m = needMe();
      const o = findOrder(args.orderId);
      if (s.feedback.some((f) => f.order_id === o.id && f.author === m.me.name)) throw err("already_rated", "这个订单已经评价过了。", "This order has already been rated.");
      s.feedback.push({ id: id(), order_id: o.id, service_zh: o.service_zh, author: m.me.name, rating: Number(args.rating), comment: String(args.comment ?? ""), staff_response: null, created_at: Date.now() });
      return changed();
    }
    case "plugin:notification|is_permission_granted":
      return true;
    case "plugin:notification|request_permission":
      return "granted";
    case "plugin:notification|notify":
      return null;
    default:
      needMe();
      return changed();
  }
}

export let mockState: MockState = initialState();

/** What the browser tests and screenshots reach as `window.__timebankMock`. */
export interface MockHook {
  state: () => MockState;
  signIn: (id: string) => void;
  setSync: (patch: Partial<SyncStatusView_Serialize>) => Promise<void>;
  lock: () => Promise<void>;
  /** Answer every command after `ms` milliseconds, as the real core takes a moment. */
  setLatency: (ms: number) => void;
}

const STORE = "timebank-mock-state";

/**
 * Answer the app's commands from `state`. With `persist`, the state lives in sessionStorage, so
 * that reloading the page keeps it as reloading the web-view keeps the Rust core's (the browser
 * tests and screenshots; each new browser context starts from the demo data).
 */
export function installMockBackend(state: MockState = initialState(), { persist = false } = {}): MockHook {
  mockState = state;
  if (persist) {
    try {
      const saved = sessionStorage.getItem(STORE);
      if (saved) mockState = { ...(JSON.parse(saved) as MockState), calls: [] };
    } catch {
      /* the demo data */
    }
  }
  const save = () => {
    if (persist) sessionStorage.setItem(STORE, JSON.stringify({ ...mockState, calls: [] }));
  };
  let latency = 0;
  mockIPC(async (cmd, args) => {
    if (latency > 0 && !cmd.startsWith("plugin:")) await new Promise((r) => setTimeout(r, latency));
    try {
      return await handle(mockState, cmd, (args ?? {}) as Record<string, unknown>);
    } finally {
      save();
    }
  }, { shouldMockEvents: true });
  const hook: MockHook = {
    state: () => mockState,
    signIn: (id: string) => {
      mockState.signedIn = id;
      save();
    },
    setSync: async (patch: Partial<SyncStatusView_Serialize>) => {
      mockState.sync = { ...mockState.sync, ...patch };
      save();
      await emit("sync-status-changed", { status: mockState.sync });
    },
    lock: async () => {
      const id = mockState.signedIn;
      mockState.signedIn = null;
      save();
      await emit("session-locked", { member_id: id ?? "" });
    },
    setLatency: (ms: number) => {
      latency = ms;
    },
  };
  (window as unknown as { __timebankMock: MockHook }).__timebankMock = hook;
  return hook;
}
