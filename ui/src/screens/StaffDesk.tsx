import { useState } from "react";
import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import { Badge, Button, Card, Check, Message, SelectField, TextArea, TextField, TableScroll } from "../components/ui";
import { dateTime, hours } from "../format";
import { useAction, useData, useShared } from "../store";
import { OrderPanel } from "./MyOrders";

type Tab = "orders" | "held" | "safeguarding" | "feedback";

/** The staff desk: every order and its state, assignment, disputes and conflicts, safeguarding, feedback. */
export function StaffDesk() {
  const { t } = useTranslation();
  const [tab, setTab] = useState<Tab>("orders");
  return (
    <div className="screen">
      <h2>{t("desk.title")}</h2>
      <div className="segments" role="group" aria-label={t("desk.sections")}>
        {(["orders", "held", "safeguarding", "feedback"] as Tab[]).map((x) => (
          <button key={x} type="button" className={`btn btn-secondary ${tab === x ? "active" : ""}`} aria-pressed={tab === x} onClick={() => setTab(x)}>
            {t(`desk.tabs.${x}`)}
          </button>
        ))}
      </div>
      <ScheduledRules />
      {tab === "orders" && <DeskOrders />}
      {tab === "held" && <Held />}
      {tab === "safeguarding" && <Safeguarding />}
      {tab === "feedback" && <Feedback />}
    </div>
  );
}

/** The clock-driven rules: auto-confirmation, expiry, widening of urgent orders nobody took. */
function ScheduledRules() {
  const { t } = useTranslation();
  const { run, busy, error, done } = useAction();
  return (
    <div className="actions">
      <Button variant="secondary" disabled={busy} onClick={() => run(() => call(commands.runScheduledRules()), t("desk.rulesDone"))}>
        {t("desk.runRules")}
      </Button>
      <Message error={error} done={done} />
    </div>
  );
}

const STATUSES = ["", "open", "accepted", "in_service", "awaiting_confirmation", "disputed", "completed", "cancelled", "expired"];

function DeskOrders() {
  const { t, i18n } = useTranslation();
  const { me } = useShared();
  const communities = me?.staff_communities ?? [];
  const [community, setCommunity] = useState(communities[0]?.id ?? me?.home_community_id ?? "");
  const [status, setStatus] = useState("");
  const [open, setOpen] = useState<string | null>(null);
  const { data: orders, error } = useData(() => call(commands.communityOrders(community, status || null)), [community, status]);
  return (
    <>
      <div className="filters">
        <SelectField label={t("desk.community")} value={community} onChange={(e) => setCommunity(e.target.value)}>
          {communities.map((c) => (
            <option key={c.id} value={c.id}>{i18n.language === "en" ? c.name_en : c.name_zh}</option>
          ))}
        </SelectField>
        <SelectField label={t("desk.status")} value={status} onChange={(e) => setStatus(e.target.value)}>
          {STATUSES.map((s) => (
            <option key={s} value={s}>{s ? t(`status.${s}`) : t("desk.allStatuses")}</option>
          ))}
        </SelectField>
      </div>
      <Message error={error} />
      <div className="columns">
        <TableScroll label={t("desk.ordersCaption", { count: orders?.length ?? 0 })}>
          <table className="table">
            <caption>{t("desk.ordersCaption", { count: orders?.length ?? 0 })}</caption>
            <thead>
              <tr>
                <th scope="col">{t("desk.service")}</th>
                <th scope="col">{t("desk.resident")}</th>
                <th scope="col" className="nowrap">{t("desk.status")}</th>
                <th scope="col">{t("desk.updatedAt")}</th>
              </tr>
            </thead>
            <tbody>
              {orders?.map((o) => (
                <tr key={o.id} className={open === o.id ? "selected" : ""}>
                  <td>
                    <button type="button" className="link" lang="zh-CN" aria-pressed={open === o.id} onClick={() => setOpen(o.id)}>{o.service_zh}</button>
                    {o.urgent && <Badge tone="urgent">{t("board.urgent")}</Badge>}
                  </td>
                  <td>{o.beneficiary_name}</td>
                  <td className="nowrap">{t(`status.${o.status}`)}</td>
                  <td>{dateTime(o.updated_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
        {open && (
          <div key={open}>
            <OrderPanel orderId={open} />
            <StaffOrderActions orderId={open} community={community} />
          </div>
        )}
      </div>
    </>
  );
}

function StaffOrderActions({ orderId, community }: { orderId: string; community: string }) {
  const { t } = useTranslation();
  const { data: o } = useData(() => call(commands.orderDetail(orderId)), [orderId]);
  const { data: members } = useData(() => call(commands.communityMembers(community)), [community]);
  const { run, busy, error, done } = useAction();
  const [volunteer, setVolunteer] = useState("");
  const [credit, setCredit] = useState(true);
  const [minutes, setMinutes] = useState("");
  const [note, setNote] = useState("");
  if (!o) return null;
  const volunteers = (members ?? []).filter((m) => m.roles.includes("volunteer"));
  return (
    <Card title={t("desk.actions")}>
      <Message error={error} done={done} />
      {(o.status === "open" || o.status === "accepted") && (
        <div className="form">
          <SelectField label={t("desk.assign")} value={volunteer} onChange={(e) => setVolunteer(e.target.value)}>
            <option value="">{t("desk.pickVolunteer")}</option>
            {volunteers.map((v) => (
              <option key={v.id} value={v.id}>{v.name}{v.vetting ? ` (${t(`vetting.${v.vetting}`)})` : ""}</option>
            ))}
          </SelectField>
          <Button disabled={busy || !volunteer} onClick={() => run(() => call(commands.assignVolunteer(o.id, volunteer)), t("desk.assigned"))}>{t("desk.assignButton")}</Button>
        </div>
      )}
      {o.status === "disputed" && (
        <div className="form">
          <h3>{t("desk.resolveTitle")}</h3>
          <Check label={t("desk.credit")} checked={credit} onChange={(e) => setCredit(e.target.checked)} />
          {credit && <TextField label={t("desk.minutes")} hint={t("desk.minutesHint")} inputMode="numeric" value={minutes} onChange={(e) => setMinutes(e.target.value.replace(/\D/g, ""))} />}
          <TextArea label={t("desk.note")} value={note} onChange={(e) => setNote(e.target.value)} />
          <Button disabled={busy || !note.trim()} onClick={() => run(() => call(commands.resolveDispute(o.id, credit, credit && minutes ? Number(minutes) : null, note)), t("desk.resolved"))}>{t("desk.resolve")}</Button>
        </div>
      )}
      {!["open", "accepted", "disputed"].includes(o.status) && <p>{t("desk.nothingToDo")}</p>}
    </Card>
  );
}

/** Held hours and flagged help (including sync conflicts): credited only on approval, once. */
function Held() {
  const { t, i18n } = useTranslation();
  const { data: flags, error: loadError } = useData(() => call(commands.heldHours()), []);
  const { data: inbox } = useData(() => call(commands.inbox()), []);
  const { run, busy, error, done } = useAction();
  const [note, setNote] = useState("");
  const rejected = (inbox ?? []).filter((m) => m.kind === "sync_rejected");
  const profiles = (inbox ?? []).filter((m) => m.kind === "profile_conflict");
  return (
    <>
      <Message error={error ?? loadError} done={done} />
      <TextField label={t("desk.decisionNote")} value={note} onChange={(e) => setNote(e.target.value)} />
      {flags && flags.length === 0 && <p className="empty">{t("desk.noHeld")}</p>}
      <ul className="list">
        {flags?.map((f) => (
          <li key={f.id} className="item">
            <p>
              <strong>{f.member_name}</strong> · {t(`flags.${f.kind}`, { defaultValue: f.kind })} · {hours(f.held_minutes, i18n.language)} · {dateTime(f.created_at)}
            </p>
            {f.kind === "contested_completion" && <ContestedInfo info={f.info} />}
            <div className="actions">
              <Button disabled={busy || !note.trim()} onClick={() => run(() => call(commands.approveHeld(f.id, note)), t("desk.approved"))}>{t("desk.approve")}</Button>
              <Button variant="secondary" disabled={busy || !note.trim()} onClick={() => run(() => call(commands.dismissHeld(f.id, note)), t("desk.dismissed"))}>{t("desk.dismiss")}</Button>
            </div>
          </li>
        ))}
      </ul>
      <h3>{t("desk.syncConflicts")}</h3>
      {rejected.length === 0 && profiles.length === 0 && <p className="empty">{t("desk.noConflicts")}</p>}
      <ul className="list">
        {rejected.map((m) => {
          const p = m.params as Record<string, string>;
          return (
            <li key={m.id} className="item">
              {dateTime(m.created_at)} · {i18n.language === "en" ? p.message_en : p.message_zh}
            </li>
          );
        })}
        {profiles.map((m) => {
          const p = m.params as { member?: string; conflicts?: { field: string; kept: string | null; lost: string | null }[] };
          return (
            <li key={m.id} className="item">
              <p>
                {dateTime(m.created_at)} · {t("desk.profileConflict", { member: p.member ?? "" })}
              </p>
              <ul>
                {(p.conflicts ?? []).map((c, i) => (
                  <li key={i}>{t("desk.profileField", { field: t(`desk.fields.${c.field}`, { defaultValue: c.field }), kept: c.kept ?? "—", lost: c.lost ?? "—" })}</li>
                ))}
              </ul>
            </li>
          );
        })}
      </ul>
    </>
  );
}

/** What staff need to decide on help whose order another volunteer took first, offline. */
function ContestedInfo({ info }: { info: unknown }) {
  const { t } = useTranslation();
  const i = (info ?? {}) as { taken_by?: string; checked_in_at?: number; checked_out_at?: number; note?: string | null; resident_confirmed_at?: number };
  return (
    <>
      <p>{t("desk.contested", { takenBy: i.taken_by ?? "—", from: i.checked_in_at ? dateTime(i.checked_in_at) : "—", to: i.checked_out_at ? dateTime(i.checked_out_at) : "—" })}</p>
      {i.note && <p>{t("desk.volunteerNote", { note: i.note })}</p>}
      <p>{i.resident_confirmed_at ? t("desk.residentConfirmed", { at: dateTime(i.resident_confirmed_at) }) : t("desk.residentNotConfirmed")}</p>
    </>
  );
}

function Safeguarding() {
  const { t } = useTranslation();
  const { data: reports, error: loadError } = useData(() => call(commands.safeguardingQueue()), []);
  const { run, busy, error, done } = useAction();
  const [resolution, setResolution] = useState("");
  return (
    <>
      <Message error={error ?? loadError} done={done} />
      {reports && reports.length === 0 && <p className="empty">{t("desk.noReports")}</p>}
      <TextArea label={t("desk.resolution")} value={resolution} onChange={(e) => setResolution(e.target.value)} />
      <ul className="list">
        {reports?.map((r) => (
          <li key={r.id} className="item">
            <p>
              <strong>{t(`safeguarding.categories.${r.category}`, { defaultValue: r.category })}</strong> · {t(`safeguarding.status.${r.status}`, { defaultValue: r.status })} · {dateTime(r.created_at)}
            </p>
            <p>{r.details}</p>
            {r.status !== "closed" && (
              <div className="actions">
                <Button variant="secondary" disabled={busy} onClick={() => run(() => call(commands.updateSafeguarding(r.id, "in_progress", null)), t("desk.updated"))}>{t("desk.review")}</Button>
                <Button disabled={busy || !resolution.trim()} onClick={() => run(() => call(commands.updateSafeguarding(r.id, "closed", resolution)), t("desk.updated"))}>{t("desk.close")}</Button>
              </div>
            )}
          </li>
        ))}
      </ul>
    </>
  );
}

function Feedback() {
  const { t } = useTranslation();
  const { data: items, error: loadError } = useData(() => call(commands.feedbackDesk()), []);
  const { run, busy, error, done } = useAction();
  const [answers, setAnswers] = useState<Record<string, string>>({});
  return (
    <>
      <Message error={error ?? loadError} done={done} />
      {items && items.length === 0 && <p className="empty">{t("desk.noFeedback")}</p>}
      <ul className="list">
        {items?.map((f) => (
          <li key={f.id} className="item">
            <p>
              <strong lang="zh-CN">{f.service_zh}</strong> · {f.author} · {f.rating ? t("order.stars", { count: f.rating }) : t("desk.noRating")} · {dateTime(f.created_at)}
            </p>
            <p>{f.comment || "—"}</p>
            {f.staff_response ? (
              <p className="muted">{t("desk.answered", { text: f.staff_response })}</p>
            ) : (
              <div className="form">
                <TextArea label={t("desk.answer")} value={answers[f.id] ?? ""} onChange={(e) => setAnswers({ ...answers, [f.id]: e.target.value })} />
                <Button disabled={busy || !(answers[f.id] ?? "").trim()} onClick={() => run(() => call(commands.respondFeedback(f.id, answers[f.id] ?? "")), t("desk.sentAnswer"))}>{t("desk.sendAnswer")}</Button>
              </div>
            )}
          </li>
        ))}
      </ul>
    </>
  );
}
