// An in-memory stand-in for the Rust core, for the UI tests (Vitest) and the browser tests
// (Playwright + axe). It answers the same commands with the same shapes as src-tauri, from a
// small Fuyuanxincun demo; it is never part of the desktop app's build.
import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import type {
  AppInfo, BalanceView_Serialize, BoardItem_Serialize, Dashboard_Serialize, InboxItemView, Me, OrderRow,
  OrderView_Serialize, Preferences, ResidentChoice, ServiceItem, SignInChoice, SyncStatusView_Serialize, UiError_Serialize,
} from "../bindings";

const H = 3600_000;
const NOW = Date.UTC(2026, 10, 28, 6, 0);
const FY = { id: "c-fy", name_zh: "府苑新村", name_en: "Fuyuanxincun" };
const XY = { id: "c-xy", name_zh: "西溪花园", name_en: "Xixi Garden" };

export interface MockState {
  pins: Record<string, string>;
  people: Record<string, Me>;
  signedIn: string | null;
  prefs: Preferences;
  sync: SyncStatusView_Serialize;
  orders: OrderView_Serialize[];
  board: BoardItem_Serialize[];
  inbox: InboxItemView[];
  balance: number;
  calls: { cmd: string; args: unknown }[];
}

function me(id: string, name: string, roles: string[], staff = false): Me {
  return {
    id, name, roles, home_community_id: FY.id, home_community: FY.name_zh,
    staff_communities: staff ? [FY, XY] : [], is_staff: staff,
  };
}

export function initialState(): MockState {
  return {
    pins: { "m-staff": "1234", "m-majun": "1234", "m-xiuzhi": "1234" },
    people: {
      "m-staff": me("m-staff", "李娟", ["staff"], true),
      "m-majun": me("m-majun", "马军", ["resident", "volunteer"]),
      "m-xiuzhi": me("m-xiuzhi", "王秀芝", ["resident", "family"]),
    },
    signedIn: null,
    prefs: { lang: "zh-CN", font_scale: 100, lock_minutes: 5 },
    sync: { enrolled: true, server: "http://127.0.0.1:8620", online: true, pending: 0, last_success_ms: NOW - 60_000, last_error: null, last_error_en: null, syncing: false },
    orders: [
      {
        id: "o-1", status: "open", status_zh: "待接单", service_zh: "陪同就医", service_en: "Escort to clinic", description: "陪王德明到社区医院复查",
        urgent: true, beneficiary_name: "王德明", posted_by_name: "王秀芝", place_hint: "府苑新村12幢", address: null, beneficiary_phone: null,
        expected_minutes: 120, volunteers_needed: 1, accepted_count: 0, visits_total: 1, visits_done: 0, volunteers: [], created_at: NOW - 2 * H,
      },
    ],
    board: [
      {
        id: "o-1", service_code: "escort_clinic", service_zh: "陪同就医", service_en: "Escort to clinic", field_code: "health", urgent: true,
        escalated: false, community_id: FY.id, place_hint: "府苑新村12幢", window_start: NOW + 20 * H, window_end: NOW + 23 * H,
        expected_minutes: 120, volunteers_needed: 1, accepted_count: 0, visits_total: 1, created_at: NOW - 2 * H,
      },
      {
        id: "o-2", service_code: "chat", service_zh: "聊天陪伴", service_en: "Companionship", field_code: "companionship", urgent: false,
        escalated: false, community_id: FY.id, place_hint: "府苑新村3幢", window_start: null, window_end: null,
        expected_minutes: 60, volunteers_needed: 1, accepted_count: 0, visits_total: 1, created_at: NOW - 5 * H,
      },
    ],
    inbox: [
      { id: "i-1", kind: "hours_credited", params: { minutes: 120, order_id: "o-0" }, read: false, created_at: NOW - H },
      { id: "i-2", kind: "order_accepted", params: { volunteer: "马军", order_id: "o-9" }, read: true, created_at: NOW - 30 * H },
    ],
    balance: 720,
    calls: [],
  };
}

const SERVICES: ServiceItem[] = [
  { code: "escort_clinic", field_code: "health", field_zh: "医疗健康", field_en: "Health", name_zh: "陪同就医", name_en: "Escort to clinic" },
  { code: "shopping", field_code: "daily_living", field_zh: "生活照料", field_en: "Daily living", name_zh: "代购买菜", name_en: "Shopping" },
  { code: "chat", field_code: "companionship", field_zh: "精神慰藉", field_en: "Companionship", name_zh: "聊天陪伴", name_en: "Companionship" },
];

function err(code: string, zh: string, en: string): UiError_Serialize {
  return { code, message_zh: zh, message_en: en, detail: {}, data: null };
}

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

/** Answer one command as src-tauri would. Exported for unit tests. */
export async function handle(s: MockState, cmd: string, args: Record<string, unknown>): Promise<unknown> {
  s.calls.push({ cmd, args });
  const who = s.signedIn ? s.people[s.signedIn] : null;
  const needMe = () => {
    if (!who) throw err("sign_in_required", "请先选择您的名字并输入密码登录。", "Please sign in: choose your name and enter your PIN.");
    return who;
  };
  const changed = async () => {
    await emit("data-changed", { source: "local" });
  };
  switch (cmd) {
    case "app_info": {
      const info: AppInfo = { version: "0.1.0", device_id: "dev-1", device_role: "staff", data_dir: "/tmp/timebank", preferences: s.prefs, sync: s.sync };
      return info;
    }
    case "sign_in_choices": {
      const q = String(args.query ?? "");
      const list: SignInChoice[] = Object.values(s.people)
        .filter((p) => p.name.includes(q))
        .map((p) => ({ id: p.id, name: p.name, community: FY.name_zh, roles: p.roles }));
      return list;
    }
    case "sign_in": {
      const id = String(args.memberId);
      if (s.pins[id] !== args.pin) throw err("pin_incorrect", "密码不正确，请老人再输入一次。", "The PIN is not correct. Please enter it again.");
      s.signedIn = id;
      return s.people[id];
    }
    case "sign_out":
      s.signedIn = null;
      return null;
    case "current_user":
      return who;
    case "touch":
      return !!who;
    case "set_preferences":
      s.prefs = args.prefs as Preferences;
      return s.prefs;
    case "sync_status":
    case "sync_now":
      return s.sync;
    case "dashboard":
      needMe();
      return dashboard();
    case "communities":
      return [FY, XY];
    case "services":
      return SERVICES;
    case "board":
      needMe();
      return s.board.filter((b) => {
        const q = args.query as { field_code: string | null };
        return !q.field_code || b.field_code === q.field_code;
      });
    case "order_detail": {
      needMe();
      const o = s.orders.find((x) => x.id === args.orderId);
      if (!o) throw err("not_found", "找不到订单。", "No such order.");
      return o;
    }
    case "my_orders":
    case "community_orders": {
      needMe();
      const rows: OrderRow[] = s.orders.map((o) => ({
        id: o.id, status: o.status, service_zh: o.service_zh, beneficiary_name: o.beneficiary_name, urgent: o.urgent,
        place_hint: o.place_hint, created_at: o.created_at, updated_at: o.created_at,
      }));
      return rows;
    }
    case "find_residents": {
      const m = needMe();
      const all: ResidentChoice[] = [
        { id: m.id, name: m.name, phone: "*******0002", community: FY.name_zh, because: "self" },
        { id: "m-wang", name: "王德明", phone: "*******0001", community: FY.name_zh, because: "family" },
      ];
      const q = String(args.query ?? "");
      return all.filter((r) => !q || r.name.includes(q) || r.phone.includes(q));
    }
    case "family_of":
      needMe();
      return [{ id: "m-wang", name: "王德明", phone: "*******0001", community: FY.name_zh, because: "family" }];
    case "account": {
      const m = needMe();
      const b: BalanceView_Serialize = {
        member_id: m.id, name: m.name, account_id: "a-1", balance: s.balance, balance_text_zh: "",
        entries: [
          { entry_id: "e-2", transfer_id: "t-2", at: NOW - H, kind: "service_credit", amount: 120, memo: "陪同就医", balance_after: s.balance },
          { entry_id: "e-1", transfer_id: "t-1", at: NOW - 50 * H, kind: "gift", amount: -60, memo: "给爸爸", balance_after: s.balance - 120 },
        ],
      };
      return b;
    }
    case "inbox":
      needMe();
      return s.inbox;
    case "mark_read": {
      const i = s.inbox.find((x) => x.id === args.messageId);
      if (i) i.read = true;
      await changed();
      return { id: String(args.messageId), detail: null };
    }
    case "activities":
      needMe();
      return [
        { id: "a-1", community_id: FY.id, title: "重阳节包饺子", description: "社区食堂，欢迎老人和志愿者一起来", starts_at: NOW + 48 * H, credit_minutes: 120, capacity: 30, status: "open", signed_up: 12, attended: 0, i_signed_up: false },
      ];
    case "activity_signups":
      return [{ member_id: "m-majun", name: "马军", attended: false }];
    case "community_members":
      needMe();
      return [
        { id: "m-wang", name: "王德明", phone: "13700000001", community: FY.name_zh, roles: ["resident"], vetting: null, age: 85 },
        { id: "m-majun", name: "马军", phone: "13700000003", community: FY.name_zh, roles: ["resident", "volunteer"], vetting: "verified", age: 41 },
      ];
    case "feedback_desk":
      return [{ id: "f-1", order_id: "o-0", service_zh: "陪同就医", author: "王秀芝", rating: 5, comment: "马军很细心", staff_response: null, created_at: NOW - 3 * H }];
    case "safeguarding_queue":
      return [];
    case "held_hours":
      return [];
    case "report_csv":
      return "服务类别,完成订单,存入分钟\n生活照料,40,9600\n医疗健康,22,8200\n";
    case "save_report":
      return "/root/Documents/时间银行报表/report.csv";
    case "list_backups":
      return [];
    case "import_members": {
      const csv = String(args.csv ?? "");
      if (csv.includes("bad")) {
        throw { ...err("csv_invalid", "导入文件有1行错误，没有导入任何数据。请修改后重新导入。", "The file has 1 bad rows; nothing was imported."), data: [{ line: 2, field: "phone", reason_zh: "手机号应为11位数字", reason_en: "a phone number has 11 digits" }] };
      }
      return { imported: csv.trim().split("\n").length - 1, volunteers: 0 };
    }
    case "gift": {
      needMe();
      const minutes = Number(args.minutes);
      if (minutes > s.balance) {
        throw err("insufficient_balance", `余额不足：当前余额${s.balance / 60}小时，需要${minutes / 60}小时。`, "Not enough hours.");
      }
      s.balance -= minutes;
      await changed();
      return { id: "t-new", detail: null };
    }
    case "post_order": {
      needMe();
      if (s.sync.enrolled && !s.sync.online) s.sync = { ...s.sync, pending: s.sync.pending + 1 };
      await changed();
      return { id: "o-new", detail: null };
    }
    case "accept_order": {
      needMe();
      s.board = s.board.filter((b) => b.id !== args.orderId);
      await changed();
      return { id: String(args.orderId), detail: null };
    }
    case "plugin:notification|is_permission_granted":
      return true;
    case "plugin:notification|request_permission":
      return "granted";
    case "plugin:notification|notify":
      return null;
    default:
      needMe();
      await changed();
      return { id: "ok", detail: null };
  }
}

export let mockState: MockState = initialState();

export function installMockBackend(state: MockState = initialState()) {
  mockState = state;
  mockIPC((cmd, args) => handle(mockState, cmd, (args ?? {}) as Record<string, unknown>), { shouldMockEvents: true });
  // The browser tests drive the indicator and sign-in through this hook.
  (window as unknown as { __timebankMock: unknown }).__timebankMock = {
    state: () => mockState,
    signIn: (id: string) => {
      mockState.signedIn = id;
    },
    setSync: async (patch: Partial<SyncStatusView_Serialize>) => {
      mockState.sync = { ...mockState.sync, ...patch };
      await emit("sync-status-changed", { status: mockState.sync });
    },
  };
}
