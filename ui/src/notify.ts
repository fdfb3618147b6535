// Desktop notifications for new inbox messages of the member signed in here. The inbox is the
// record: a notification may not appear (Linux never reports failure), the message stays.
import { isPermissionGranted, requestPermission, sendNotification } from "@tauri-apps/plugin-notification";
import type { TFunction } from "i18next";
import type { InboxItemView } from "./bindings";

export function inboxText(item: InboxItemView, t: TFunction): { title: string; body: string } {
  const p = (item.params ?? {}) as Record<string, unknown>;
  const key = `inbox.kinds.${item.kind}`;
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(p)) values[k] = String(v);
  if (typeof p.minutes === "number") {
    const m = p.minutes;
    values.hours = m % 60 === 0 ? String(m / 60) : (m / 60).toFixed(1);
  }
  const title = t(`${key}.title`, { defaultValue: t("inbox.kinds.other.title"), ...values });
  const body = t(`${key}.body`, { defaultValue: "", ...values });
  return { title, body };
}

export async function notifyInbox(items: InboxItemView[], t: TFunction) {
  let granted = await isPermissionGranted();
  if (!granted) granted = (await requestPermission()) === "granted";
  if (!granted) return;
  for (const item of items.slice(0, 3)) {
    const { title, body } = inboxText(item, t);
    sendNotification({ title, body });
  }
}
